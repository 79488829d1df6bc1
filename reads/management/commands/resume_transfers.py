"""Queue again the sponsor transfers whose build was lost; meant to run every few minutes (cron or Celery beat)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from reads.transfers import transfers_resume


class Command(BaseCommand):
    help = (
        "Queue the build of every transfer still queued or building some minutes after it was requested (its task "
        "was lost with the broker, or its worker died). A build is idempotent, so this is safe to run at any time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=int, default=10, help="How old a transfer must be (default 10).")

    def handle(self, *args, **options):
        queued = transfers_resume(older_than=timedelta(minutes=options["minutes"]))
        self.stdout.write(f"{len(queued)} transfer build(s) queued again.")
