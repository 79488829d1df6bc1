"""Email the sites about their overdue queries; meant to run once a day (cron, a systemd timer or Celery beat)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from trials.qc_services import queries_remind_overdue


class Command(BaseCommand):
    help = (
        "Email the site coordinators about each query past its due date and not closed; a query is reminded at "
        "most once a day, so running it again the same day sends nothing new."
    )

    def handle(self, *args, **options):
        sent = queries_remind_overdue()
        self.stdout.write(f"{sent} overdue {'query' if sent == 1 else 'queries'} reminded.")
