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
def process_upload_item(self, item_id: int) -> str:
    """De-identify, verify, store and index one received file (idempotent: a redelivered task finds it done)."""
    from .ingest.services import upload_item_process

    return upload_item_process(item_id=item_id).state
