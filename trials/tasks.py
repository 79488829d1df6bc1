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
def warm_timepoint_metadata(timepoint_id: int) -> int:
    """Make the DICOM JSON metadata of a timepoint's new instances, so the viewer's first request is quick."""
    from .dicomweb.wado import load_metadata
    from .models import Instance

    instances = list(
        Instance.objects.filter(series__study__timepoint_id=timepoint_id, metadata__isnull=True).defer("metadata")
    )
    for start in range(0, len(instances), 100):
        load_metadata(instances[start : start + 100])
    return len(instances)
