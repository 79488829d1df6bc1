"""Prometheus metrics (prometheus_client): request latency by route, frames served, de-identification time, and
the ingest's own figures read from the database at each scrape.

No label ever carries a value from a request's path or a file: routes are Django URL names, rejections are the
pipeline's fixed codes (`other_patient`, `unreadable`, ...), never a UID, a subject code or a reason's text.

Several processes (gunicorn's workers, Celery's pool) each count for themselves; with PROMETHEUS_MULTIPROC_DIR
set (before any import of prometheus_client: the systemd units set it in the environment) they write their
values to files there and `/metrics` adds them up (prometheus_client's multiprocess mode; gunicorn's
`child_exit` hook in deploy/gunicorn.conf.py marks a dead worker's files). Figures read from the database
(upload sessions, files by state and code, the waiting queue) are counted once, by the process that answers the scrape.

`/metrics` answers a request that carries `Authorization: Bearer <METRICS_TOKEN>`; without METRICS_TOKEN set,
only a request from the loopback address (the nginx example refuses `/metrics` from outside).
"""

from __future__ import annotations

import hmac
import os
import time

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_SECONDS = Histogram(
    "ctims_http_request_seconds",
    "Time to answer a request, by route name and status class.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
FRAMES_SERVED = Counter("ctims_frames_served", "DICOMweb frames answered (each requested frame counts once).")
FRAME_SECONDS = Histogram(
    "ctims_frame_request_seconds", "Time to answer a DICOMweb frames request.", buckets=LATENCY_BUCKETS
)
DEID_SECONDS = Histogram(
    "ctims_deidentify_seconds",
    "Time to de-identify and verify one file.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# The method label's values: the methods HTTP defines that a client of CTIMS sends; any other word (the client
# chooses it, and nginx passes on any word of capitals) is "other", so that no client makes new series or puts its
# own text in a label.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# URL names of DICOMweb frame answers (trials.dicomweb and the readers' roots name them "<root>-frames").
FRAME_ROUTE_SUFFIX = "frames"


class IngestCollector:
    """The ingest's figures, from the rows themselves (exact across every process, and after a restart)."""

    def collect(self):
        from trials.models import Upload, UploadItem

        # A session counts as received at its first file, never before: the upload page opens one before it knows
        # whether any file is to be sent, and a session that received none is discarded (counted apart), so a
        # count of sessions opened would count uploads that never took place. Both only ever grow.
        uploads = CounterMetricFamily("ctims_uploads_received", "Upload sessions that received at least one file.")
        uploads.add_metric([], UploadItem.objects.order_by().values("upload_id").distinct().count())
        yield uploads
        discarded = CounterMetricFamily(
            "ctims_uploads_discarded", "Upload sessions closed with no file received (finished empty, or left idle)."
        )
        discarded.add_metric([], Upload.objects.filter(state=Upload.State.CANCELLED).count())
        yield discarded
        idle = CounterMetricFamily(
            "ctims_uploads_idle_closed",
            "Upload sessions with files closed after UPLOAD_IDLE_HOURS without a file, not finished by the site.",
        )
        idle.add_metric([], Upload.objects.filter(idle_closed=True).count())
        yield idle
        live = GaugeMetricFamily(
            "ctims_upload_sessions", "Upload sessions receiving files or being processed.", labels=["state"]
        )
        by_state = dict(
            Upload.objects.filter(state__in=(Upload.State.OPEN, Upload.State.PROCESSING))
            .values_list("state")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for state in (Upload.State.OPEN, Upload.State.PROCESSING):
            live.add_metric([state], by_state.get(state, 0))
        yield live
        files = CounterMetricFamily(
            "ctims_ingest_files", "Files received, by their state and rejection code.", labels=["state", "code"]
        )
        for row in UploadItem.objects.values("state", "code").annotate(n=Count("pk")).order_by():
            files.add_metric([row["state"], row["code"] or ""], row["n"])
        yield files
        waiting = GaugeMetricFamily("ctims_ingest_waiting_files", "Received files not yet processed (the outbox).")
        waiting.add_metric([], UploadItem.objects.filter(state=UploadItem.State.QUARANTINED).count())
        yield waiting
        depth = broker_queue_depth()
        if depth is not None:
            queue = GaugeMetricFamily("ctims_broker_queue_depth", "Tasks waiting in this installation's queue.")
            queue.add_metric([], depth)
            yield queue


def broker_queue_depth() -> int | None:
    """Messages waiting in the installation's Celery queue (Redis or RabbitMQ), or None without a broker."""
    if not settings.CELERY_BROKER_URL:
        return None
    from ctims.celery import app

    try:
        with app.connection_for_read(connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            try:
                return conn.default_channel.queue_declare(
                    queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True
                ).message_count
            except Exception as exc:
                # The broker answers that the queue does not exist: nothing waits. Redis deletes a queue's list
                # whenever it is emptied (an idle installation), RabbitMQ has none before the first task.
                if str(getattr(exc, "reply_code", "")) == "404":
                    return 0
                raise
    except Exception:
        return None  # a broker that is down (/readyz says so): no figure rather than a false one


def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for collector in (REQUEST_SECONDS, FRAMES_SERVED, FRAME_SECONDS, DEID_SECONDS):
            registry.register(collector)
    registry.register(IngestCollector())
    return registry


def allowed(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")


@never_cache
@require_GET
def metrics(request):
    if not allowed(request):
        return HttpResponseNotFound()
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every request under its route's name; counts the frames a DICOMweb frames answer carries."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - start
        match = getattr(request, "resolver_match", None)
        route = match.url_name if match and match.url_name else "unmatched"
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(route, method, f"{response.status_code // 100}xx").observe(elapsed)
        if route.endswith(FRAME_ROUTE_SUFFIX) and response.status_code == 200:
            FRAME_SECONDS.observe(elapsed)
            FRAMES_SERVED.inc(len(str(match.kwargs.get("frames", "")).split(",")))
        return response
