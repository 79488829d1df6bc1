"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (see settings)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctims.settings")

app = Celery("ctims")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def sweep_at_start(**kwargs) -> None:
    """A worker that starts (after a crash, or on a broker restarted empty) has the outbox swept at once."""
    app.send_task("trials.tasks.ingest_sweep")
