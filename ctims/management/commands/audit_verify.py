from django.core.management.base import BaseCommand, CommandError

from ctims.audit import audit_verify


class Command(BaseCommand):
    help = "Walk the audit trail's hash chain and report the first broken link."

    def handle(self, *args, **options):
        report = audit_verify()
        if not report.intact:
            raise CommandError(
                f"Audit chain broken after {report.checked} intact events: {report.problem}.{report.key_hint}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))
