"""manage.py backup DEST: the database (pg_dump of one snapshot) and every file its rows point to (trials.backup)."""

from django.core.management.base import BaseCommand, CommandError

from trials.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the database and the image store, consistent with each other, into a new folder."

    def add_arguments(self, parser):
        parser.add_argument("destination", help="a new or empty folder")

    def handle(self, *args, destination: str, **options):
        try:
            report = backup_create(destination=destination)
        except BackupError as exc:
            raise CommandError(str(exc))
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up the database, {report.images} stored files and {report.quarantined} waiting uploads "
                f"into {destination}" + (f" ({len(report.gone)} processed while copying)" if report.gone else "")
            )
        )
