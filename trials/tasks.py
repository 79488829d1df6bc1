"""Celery tasks of the trials app: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

# A database that is down or refusing connections: wait and try again, backing off up to four minutes between
# tries (about half an hour in all); a longer outage is outlasted by the sweeper, which queues the files again.
# The longest wait stays under Redis's visibility timeout (300 s by default), or the waiting task would be
# handed to a second worker as if its worker had died.
DATABASE_DOWN = (OperationalError, InterfaceError)
RETRY = {
    "autoretry_for": DATABASE_DOWN,
    "retry_backoff": 2,
    "retry_backoff_max": 240,
    "retry_jitter": True,
    "max_retries": 10,
}


@shared_task(bind=True, acks_late=True, **RETRY)
def process_upload_batch(self, item_ids: list[int]) -> int:
    """De-identify, verify, store and index a batch of received files (idempotent: a redelivered task finds them done)."""
    from .ingest.services import upload_batch_process

    upload_batch_process(item_ids=item_ids)
    return len(item_ids)


@shared_task(acks_late=True, **RETRY)
def ingest_sweep() -> int:
    """The outbox's sweeper (Celery beat, and every worker at start): queue again every waiting file without a live task."""
    from .ingest.services import upload_items_requeue

    return upload_items_requeue()


@shared_task(acks_late=True, **RETRY)
def uploads_idle_close() -> int:
    """Every quarter of an hour (Celery beat): close the upload sessions idle for UPLOAD_IDLE_HOURS, so that an
    abandoned upload does not keep its visit "uploading"; what they received is kept."""
    from .ingest.services import uploads_idle_close as close

    return close()


@shared_task(acks_late=True)
def store_leftovers_sweep() -> int:
    """Daily (Celery beat): remove the temporary files of writes that died before their final link, and the raw
    copies in quarantine that nothing waits for (a process died between settling a file and deleting its copy).

    The temporary files are invisible to everything (no final name, no row) and only take space; the raw copies
    of settled files are normally deleted at once, so a walk of the stores once a day is enough.
    """
    from .ingest import store
    from .ingest.services import quarantine_leftovers_sweep

    return store.temporary_leftovers_sweep() + quarantine_leftovers_sweep()


@shared_task(acks_late=True, autoretry_for=DATABASE_DOWN, retry_backoff=True, max_retries=3)
def timepoint_checks(timepoint_id: int) -> int:
    """After an upload: make the new instances' DICOM JSON (the viewer's first request is then quick) and run QC."""
    from .models import Timepoint
    from .qc_services import qc_run

    return len(qc_run(timepoint=Timepoint.objects.get(pk=timepoint_id)))
