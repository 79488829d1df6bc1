"""manage.py restore SRC: a backup restored into an empty database and the image store, then verified."""

from django.core.management.base import BaseCommand, CommandError

from trials.backup import BackupError, backup_check, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup written by `manage.py backup` into the configured (empty) database and image store, "
        "then check every stored file against its row and the audit chain. --check only checks the backup."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="the backup's folder")
        parser.add_argument("--check", action="store_true", help="only check the backup against its manifest")

    def handle(self, *args, source: str, check: bool, **options):
        try:
            if check:
                manifest = backup_check(source=source)
                self.stdout.write(self.style.SUCCESS(f"Backup intact: {len(manifest['images'])} stored files."))
                return
            report = backup_restore(source=source)
        except BackupError as exc:
            raise CommandError(str(exc))
        for section in report.not_in_backup:
            self.stderr.write(
                self.style.WARNING(
                    f"This backup was written before {section} were backed up: their files are not restored, and "
                    f"the rows that name them point to nothing."
                )
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {report.images} stored files"
                + "".join(f", {count} {section}" for section, count in report.kept.items())
                + f" and {report.quarantined} waiting uploads; every file matches "
                f"its row; audit chain intact ({report.audit_events} events)."
            )
        )
