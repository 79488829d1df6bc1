from django.core.management.base import BaseCommand, CommandError

from ctims.audit import audit_verify
from ctims.models import AuditEvent
from ctims.signatures import signatures_verify


class Command(BaseCommand):
    help = (
        "Walk the audit trail's hash chain and report the first broken link; then check every electronic signature "
        "against its audit event and the record it signs."
    )

    def handle(self, *args, **options):
        report = audit_verify()
        if not report.intact:
            raise CommandError(
                f"Audit chain broken after {report.checked} intact events: {report.problem}.{report.key_hint}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))
        # Kept outside the database (a log, a ticket), the head shows later whether events were cut from the end,
        # which no check inside the database can (whoever can delete events can set the head back too).
        head = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
        if head is not None:
            self.stdout.write(f"Keep outside the database: last event #{head.seq} {head.hash}")
        signatures = signatures_verify()
        if not signatures.intact:
            lines = "\n".join(f"  {problem}" for problem in signatures.problems)
            raise CommandError(
                f"{len(signatures.problems)} of {signatures.checked} signatures do not stand on what they signed:\n"
                + lines
            )
        self.stdout.write(
            self.style.SUCCESS(f"Signatures intact: {signatures.checked} checked against their events and records.")
        )
