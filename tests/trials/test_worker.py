"""A real Celery worker on Redis processes an upload; a worker killed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.conf import settings

from ctims.broker import transport_options
from ctims.celery import app
from tests.conftest import build_world
from trials.ingest.services import upload_finish, upload_open, upload_receive
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Upload, UploadItem

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
VISIBILITY = 3


def reset_connections() -> None:
    """Drop the app's broker connections so the next task is sent with the current configuration."""
    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def queue(stores):
    """Route tasks to a fresh Redis queue; the worker's CTIMS_VAR_DIR is the test's store folder."""
    name = f"ctims-test-{uuid.uuid4().hex[:8]}"
    saved = {
        k: app.conf[k] for k in ("task_always_eager", "broker_url", "task_default_queue", "broker_transport_options")
    }
    app.conf.update(
        task_always_eager=False,
        broker_url=REDIS,
        task_default_queue=name,
        broker_transport_options=transport_options(VISIBILITY),
    )
    reset_connections()
    yield name
    app.conf.update(saved)
    reset_connections()


def start_worker(queue: str, tmp_path: Path) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "ctims.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "CTIMS_VAR_DIR": str(tmp_path),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ctims",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("ab"),
    )


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def processed(upload) -> int:
    return UploadItem.objects.filter(upload=upload).exclude(state=UploadItem.State.QUARANTINED).count()


def test_a_worker_processes_an_upload_from_redis(transactional_db, queue, tmp_path):
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=False), slices=8, seed="worker-a")
    worker = start_worker(queue, tmp_path)
    try:
        timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
        upload = upload_open(actor=world.cora, timepoint=timepoint)
        upload_receive(upload=upload, files=files)
        upload_finish(actor=world.cora, upload=upload)
        wait_for(lambda: Upload.objects.get(pk=upload.pk).state == "complete", 60, "the upload to complete")
    finally:
        worker.terminate()
        worker.wait(20)
    assert Instance.objects.count() == 8
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    assert not [p for p in (tmp_path / "quarantine").rglob("*") if p.is_file()]


def test_a_worker_killed_mid_batch_is_retried_without_loss_or_duplicates(transactional_db, queue, tmp_path):
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=True), slices=40, seed="worker-b")
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    for start in range(0, len(files), 5):  # eight STOW requests, eight processing tasks
        upload_receive(upload=upload, files=files[start : start + 5])
    upload_finish(actor=world.cora, upload=upload)

    first = start_worker(queue, tmp_path)
    try:
        wait_for(lambda: processed(upload) >= 5, 60, "the first worker to start")
        first.send_signal(signal.SIGKILL)
        first.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
    done_before = processed(upload)
    assert done_before < len(files), "the batch finished before the worker could be killed"
    # The worst moment to die: while holding the lock under which workers restore unacknowledged tasks.
    # Before the lock expired with the visibility timeout, this left the batch stranded for five minutes.
    options = transport_options(VISIBILITY)
    held = redis.Redis.from_url(REDIS).lock("unacked_mutex", timeout=options["unacked_mutex_expire"])
    assert held.acquire(blocking=False), "another worker holds the restore lock"

    second = start_worker(queue, tmp_path)
    try:
        wait_for(
            lambda: Upload.objects.get(pk=upload.pk).state == "complete",
            120,
            "the retried batch to finish",
            tmp_path / "worker.log",
        )
    finally:
        second.terminate()
        second.wait(20)
    states = list(UploadItem.objects.filter(upload=upload).values_list("state", flat=True))
    assert states.count(UploadItem.State.ACCEPTED) == len(files), states
    assert Instance.objects.count() == len(files)
    assert len(set(Instance.objects.values_list("sop_instance_uid", flat=True))) == len(files)
    stored = list((tmp_path / "images").rglob("*.dcm"))
    assert len(stored) == len(files)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
