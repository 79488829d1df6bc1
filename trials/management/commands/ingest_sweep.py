from django.core.management.base import BaseCommand

from trials.ingest import store
from trials.ingest.services import quarantine_leftovers_sweep, upload_items_requeue


class Command(BaseCommand):
    help = (
        "Queue again every received file still waiting without a live task, and remove the temporary files of "
        "writes that died and the raw copies that nothing waits for. Celery beat does this with workers; without "
        "a broker (the embedded default), run it at start-up (make run does) or from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="seconds a file's task may be on its way (default INGEST_REQUEUE_AFTER_SECONDS; 0 when nothing runs)",
        )

    def handle(self, *args, grace: int | None, **options):
        from datetime import timedelta

        removed = store.temporary_leftovers_sweep()
        copies = quarantine_leftovers_sweep()
        queued = upload_items_requeue(grace=None if grace is None else timedelta(seconds=grace))
        self.stdout.write(
            f"{queued} waiting files queued again, {removed} temporary files and {copies} raw copies removed."
        )
