"""A real Celery worker on Redis processes an upload; a worker killed mid-batch loses and duplicates nothing."""

from __future__ import annotations

import os
import signal

import pytest
import redis

from ctims.broker import transport_options
from tests.conftest import build_world
from tests.trials.durability import (
    assert_end_state,
    broker_state,
    broker_tasks,
    celery_on,
    start_worker,
    stop,
    wait_for,
)
from trials.ingest import store
from trials.ingest.services import upload_finish, upload_open, upload_receive
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Upload, UploadItem

pytestmark = pytest.mark.worker
REDIS = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
VISIBILITY = 3


@pytest.fixture
def queue(stores):
    """Route tasks to a fresh Redis queue; the worker's CTIMS_VAR_DIR is the test's store folder."""
    with celery_on(REDIS, visibility=VISIBILITY) as name:
        yield name


def worker_on(queue, tmp_path, *, requeue_after: int = 120):
    return start_worker(REDIS, queue, tmp_path, visibility=VISIBILITY, requeue_after=requeue_after)


def worker_killed_at(fault: str, queue, tmp_path) -> None:
    """Run a worker that kills itself by SIGKILL at `fault` (fault_worker.py), until it has died there."""
    worker = start_worker(REDIS, queue, tmp_path, visibility=VISIBILITY, fault=fault)
    try:
        wait_for(lambda: worker.poll() is not None, 60, f"the first worker to die at {fault}")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(20)
    assert worker.returncode == -signal.SIGKILL


def complete_with_a_worker(upload, queue, tmp_path, what: str, *, requeue_after: int = 120) -> None:
    """Run a worker until `upload` is complete; a failure says `what` was awaited, and what the items and the
    broker then held."""
    worker = worker_on(queue, tmp_path, requeue_after=requeue_after)
    try:
        wait_for(
            lambda: Upload.objects.get(pk=upload.pk).state == "complete",
            120,
            what,
            tmp_path / "worker.log",
            state=lambda: (
                f"items: {sorted(UploadItem.objects.filter(upload=upload).values_list('pk', 'state'))}; "
                f"upload {Upload.objects.get(pk=upload.pk).state}\n{broker_state(REDIS, queue)}"
            ),
        )
    finally:
        stop(worker)


def processed(upload) -> int:
    return UploadItem.objects.filter(upload=upload).exclude(state=UploadItem.State.QUARANTINED).count()


def test_a_worker_processes_an_upload_from_redis(transactional_db, queue, tmp_path):
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=False), slices=8, seed="worker-a")
    worker = worker_on(queue, tmp_path)
    try:
        timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
        upload = upload_open(actor=world.cora, timepoint=timepoint)
        upload_receive(upload=upload, files=files)
        upload_finish(actor=world.cora, upload=upload)
        wait_for(lambda: Upload.objects.get(pk=upload.pk).state == "complete", 60, "the upload to complete")
    finally:
        stop(worker)
    assert Instance.objects.count() == 8
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    assert_end_state()


def test_a_worker_killed_mid_batch_is_retried_without_loss_or_duplicates(transactional_db, queue, tmp_path):
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=True), slices=40, seed="worker-b")
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    for start in range(0, len(files), 5):  # eight STOW requests, eight processing tasks
        upload_receive(upload=upload, files=files[start : start + 5])
    upload_finish(actor=world.cora, upload=upload)

    # The first worker dies by SIGKILL half-way through writing the eighth file it stores: in its second batch,
    # whose task it holds unacknowledged. (Killed at a moment the test's clock picks, it could die between the
    # broker handing it a task and its recording the task as unacknowledged: the Redis transport then loses the
    # task, and only the ingest sweeper queues its files again, after its grace period. That is not this test.)
    worker_killed_at("mid_write:8", queue, tmp_path)
    done_before = processed(upload)
    assert 5 <= done_before < len(files), done_before  # its first batch done, the second not
    # The worst moment to die: while holding the lock under which workers restore unacknowledged tasks.
    # Before the lock expired with the visibility timeout, this left the batch stranded for five minutes.
    options = transport_options(VISIBILITY)
    held = redis.Redis.from_url(REDIS).lock("unacked_mutex", timeout=options["unacked_mutex_expire"])
    assert held.acquire(blocking=False), "another worker holds the restore lock"

    complete_with_a_worker(upload, queue, tmp_path, "the retried batch to finish")
    states = list(UploadItem.objects.filter(upload=upload).values_list("state", flat=True))
    assert states.count(UploadItem.State.ACCEPTED) == len(files), states
    assert Instance.objects.count() == len(files)
    assert len(set(Instance.objects.values_list("sop_instance_uid", flat=True))) == len(files)
    stored = list((tmp_path / "images").rglob("*.dcm"))
    assert len(stored) == len(files)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    # The killed batch's files written under temporary names (its sixth and seventh whole, the eighth half): no
    # final name, no row; the daily sweep's to remove.
    assert store.temporary_leftovers_sweep(older_than=0) == 3
    # Its batch's raw copies were deleted by the task run again (before, a kill timed by the clock could lose
    # the task, and the copies waited for the daily sweep).
    assert_end_state()


def test_a_worker_killed_as_it_takes_a_task_from_redis_loses_no_file(transactional_db, queue, tmp_path):
    """Redis hands a task over by removing it from its list; a worker that dies before it records the task as
    unacknowledged takes it along, and no visibility timeout brings it back. The outbox's sweeper queues the
    files again (here at the next worker's start; in production also every minute on the beat)."""
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=False), slices=10, seed="worker-c")
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    for start in range(0, len(files), 5):  # two processing tasks
        upload_receive(upload=upload, files=files[start : start + 5])
    upload_finish(actor=world.cora, upload=upload)

    worker_killed_at("taken:2", queue, tmp_path)  # as it takes its second task
    assert processed(upload) == 5
    waiting, taken = broker_tasks(REDIS, queue)
    assert "trials.tasks.process_upload_batch" not in waiting + taken, broker_state(REDIS, queue)  # it is gone

    complete_with_a_worker(upload, queue, tmp_path, "the sweeper to queue the lost task's files again", requeue_after=0)
    assert sorted(UploadItem.objects.filter(upload=upload).values_list("state", flat=True)) == ["accepted"] * 10
    assert Instance.objects.count() == 10
    assert_end_state()
