"""Liveness and readiness for the process supervisor and the load balancer.

`/healthz` answers as long as the process serves requests (nothing else is touched: a database outage must not
make the supervisor restart every web process). `/readyz` answers 200 only when a request could be served to
the end: the database answers, every migration is applied, the broker (when there is one) accepts a connection,
and the image store and the quarantine are reachable. Neither needs a log-in, and neither says more than the
names of the checks that failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# How long a readiness check may wait for the broker before it calls it unreachable.
BROKER_TIMEOUT_SECONDS = 2.0

_migrated = False  # once every migration is applied it stays so for this process: the plan is not cheap


def database_ready() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def migrations_ready() -> None:
    global _migrated
    if _migrated:
        return
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError("migrations not applied")
    _migrated = True


def broker_ready() -> None:
    """A fresh connection to the broker (not the pooled one, which could hide a broker gone since)."""
    if not settings.CELERY_BROKER_URL:
        return  # the embedded default: tasks run in-process
    from ctims.celery import app

    with app.connection_for_write(connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)


def store_ready() -> None:
    """The image store and the quarantine: a folder this process may write, or a bucket that answers."""
    for name in ("images", "quarantine"):
        storage = storages[name]
        if isinstance(storage, FileSystemStorage):
            os.makedirs(storage.location, exist_ok=True)
            if not os.access(storage.location, os.W_OK | os.X_OK):
                raise RuntimeError(f"{name} store is not writable")
        else:
            # A HEAD on the bucket: raises when it cannot be reached, does not exist or may not be read. (An object's
            # HEAD answers 404 alike for a missing object and a missing bucket, so a wrong bucket name passed.)
            storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)


CHECKS: dict[str, Callable[[], None]] = {
    "database": database_ready,
    "migrations": migrations_ready,
    "broker": broker_ready,
    "store": store_ready,
}


def readiness() -> dict[str, str]:
    """Each check's outcome, "ok" or "failing" (never the exception's text: it may name hosts or paths)."""
    outcome = {}
    for name, check in CHECKS.items():
        try:
            check()
            outcome[name] = "ok"
        except Exception:
            outcome[name] = "failing"
    return outcome


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = readiness()
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
