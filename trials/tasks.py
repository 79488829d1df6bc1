"""Celery tasks of the trials app: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def process_upload_batch(self, item_ids: list[int]) -> int:
    """De-identify, verify, store and index a batch of received files (idempotent: a redelivered task finds them done)."""
    from .ingest.services import upload_batch_process

    upload_batch_process(item_ids=item_ids)
    return len(item_ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def timepoint_checks(timepoint_id: int) -> int:
    """After an upload: make the new instances' DICOM JSON (the viewer's first request is then quick) and run QC."""
    from .models import Timepoint
    from .qc_services import qc_run

    return len(qc_run(timepoint=Timepoint.objects.get(pk=timepoint_id)))
