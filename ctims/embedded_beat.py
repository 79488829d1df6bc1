"""The periodic jobs of Celery beat, run by the web process itself when there is no broker (the embedded default).

With a broker, one `celery -A ctims beat` sends CELERY_BEAT_SCHEDULE's jobs to the workers. Without one (`make run`:
tasks run in the process that asks for them), nothing would ever run them: an abandoned upload session would keep
its visit "uploading" for good, and a store's leftovers would never be swept. So the first request a process
serves starts a thread that runs each job of the same schedule, in that process, at the same interval
(EMBEDDED_PERIODIC_JOBS turns it off). Each job is safe to run in several processes at once, as beat's may run on
several workers: they take their rows with `SKIP LOCKED` or claim them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import request_started
from django.db import close_old_connections

logger = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    task: str
    every: float  # seconds
    next_at: float = field(default=0.0)


class EmbeddedBeat:
    """CELERY_BEAT_SCHEDULE's jobs (`{name: {"task": dotted name, "schedule": seconds}}`), each first due one
    interval after the start, as Celery beat does for a schedule it has never run."""

    def __init__(self, schedule: dict[str, dict], *, now: float, run: Callable[[str], object] | None = None) -> None:
        self.jobs = [Job(name, entry["task"], float(entry["schedule"])) for name, entry in schedule.items()]
        for job in self.jobs:
            job.next_at = now + job.every
        self._run = run or _run_task
        self.stopped = threading.Event()

    def run_due(self, now: float) -> list[str]:
        """Runs every job due at `now` (each once, however late), schedules its next run, and returns their names.
        A job that fails is logged (by name and exception class: a task's message may quote a file's values) and
        runs again at its next turn."""
        ran = []
        for job in self.jobs:
            if job.next_at > now:
                continue
            job.next_at = now + job.every
            try:
                self._run(job.task)
            except Exception as error:  # noqa: BLE001 - one job's failure must not end the others'
                logger.error("periodic job %s failed: %s", job.name, type(error).__name__)
            ran.append(job.name)
        return ran

    def seconds_to_next(self, now: float) -> float:
        return max(0.0, min((job.next_at for job in self.jobs), default=3600.0) - now)

    def loop(self) -> None:
        while not self.stopped.wait(self.seconds_to_next(time.monotonic())):
            self.run_due(time.monotonic())


@functools.cache
def _tasks():
    """Celery's registry, with the apps' tasks modules imported (autodiscover_tasks) as a worker imports them: once."""
    from ctims.celery import app

    app.loader.import_default_modules()
    return app.tasks


def _run_task(name: str) -> object:
    task = _tasks()[name]
    close_old_connections()  # this thread's connection, as a request's: a broken or expired one is not reused
    try:
        return task.apply(throw=True).get()
    finally:
        close_old_connections()


_lock = threading.Lock()
_started: EmbeddedBeat | None = None


def wanted() -> bool:
    """Tasks run in-process (no broker) and the setting leaves the jobs to this process."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.EMBEDDED_PERIODIC_JOBS)


def start() -> EmbeddedBeat | None:
    """Starts this process's thread of periodic jobs once, when wanted; returns it (None when not wanted)."""
    global _started
    if not wanted():
        return None
    with _lock:
        if _started is None:
            beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE, now=time.monotonic())
            threading.Thread(target=beat.loop, name="ctims-embedded-beat", daemon=True).start()
            _started = beat
            logger.info("periodic jobs run in this process (no broker): %s", ", ".join(j.name for j in beat.jobs))
        return _started


def stop() -> None:
    """Stops this process's thread (tests)."""
    global _started
    with _lock:
        if _started is not None:
            _started.stopped.set()
            _started = None


DISPATCH_UID = "ctims.embedded_beat"


def _on_request(**kwargs) -> None:
    request_started.disconnect(dispatch_uid=DISPATCH_UID)
    start()


def connect() -> None:
    """Called by the ctims app's ready(): without a broker, the first request a process serves starts its
    periodic jobs (a management command such as `migrate` serves none, so runs none)."""
    if wanted():
        request_started.connect(_on_request, dispatch_uid=DISPATCH_UID)
