"""Celery tasks of the reads app: load by id, call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def create_read_tasks(timepoint_id: int) -> int:
    """Create the read tasks of a timepoint that became ready for read."""
    from trials.models import Timepoint

    from .services import read_tasks_create

    return len(read_tasks_create(timepoint=Timepoint.objects.get(pk=timepoint_id)))


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def build_transfer(transfer_id: int) -> str:
    """Build a requested sponsor transfer into its zip (idempotent: a built one is left as it is)."""
    from .transfers import transfer_build

    return transfer_build(transfer_id=transfer_id).state
