"""No acknowledged file is ever lost: faults injected at named points, each test ending in the checked end state."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import threading
from datetime import timedelta

import psycopg
import pydicom
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone
from pydicom.uid import generate_uid

from tests.conftest import build_world
from tests.trials.durability import (
    ROOT,
    RedisServer,
    assert_end_state,
    celery_on,
    end_state_problems,
    kill_a_worker_mid_write_then_recover,
    refuse_the_index_row_of_one_file,
    start_worker,
    stop,
    storage_keys,
    stow,
    wait_for,
)
from trials.ingest import reverify, services, store
from trials.ingest.services import (
    unreadable_reason,
    upload_finish,
    upload_items_requeue,
    upload_open,
    upload_receive,
)
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Subject, Timepoint, Upload, UploadItem
from trials.tasks import process_upload_batch


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=10, seed="durability-tests")


@pytest.fixture
def faults():
    """Install fault hooks for one test; they are always removed again."""
    yield {"store": store.FAULT_HOOKS, "services": services.FAULT_HOOKS}
    store.FAULT_HOOKS.clear()
    services.FAULT_HOOKS.clear()


def timepoint() -> Timepoint:
    return Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")


# --- atomic, durable writes ------------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r})
import django
django.setup()
from trials.ingest import store
store.FAULT_HOOKS[{point!r}] = lambda key: os.kill(os.getpid(), signal.SIGKILL)
store.store_instance({key!r}, open({source!r}, "rb").read())
"""


@pytest.mark.parametrize("point", ["mid_write", "before_link"])
def test_a_process_killed_while_writing_a_large_file_leaves_no_partial_file(stores, tmp_path, point):
    key = "ALPHA/1.2/3.4/5.6.dcm"
    data = os.urandom(33 * 1024 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "ctims.settings", "CTIMS_VAR_DIR": str(stores)}
    script = CHILD.format(root=str(ROOT), point=point, key=key, source=str(source))
    child = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    final = stores / "images" / key
    assert not final.exists()  # never a partial file under the final key
    assert len([p for p in final.parent.iterdir() if p.name.endswith(".tmp")]) == 1
    store.store_instance(key, data)  # the retried task stores it whole
    assert final.read_bytes() == data
    assert store.temporary_leftovers_sweep(older_than=0) == 1
    assert [p.name for p in final.parent.iterdir()] == ["5.6.dcm"]


def test_a_different_file_under_the_same_uids_stays_an_error_with_a_clear_reason(stores):
    store.store_instance("ALPHA/1/2/3.dcm", b"first")
    store.store_instance("ALPHA/1/2/3.dcm", b"first")  # the same bytes again: a retried task
    with pytest.raises(store.DifferentFileStored, match="a different file is already stored"):
        store.store_instance("ALPHA/1/2/3.dcm", b"second")
    assert (stores / "images/ALPHA/1/2/3.dcm").read_bytes() == b"first"


def test_a_sweep_leaves_a_write_in_progress_alone(stores):
    (stores / "images/ALPHA").mkdir(parents=True)
    (stores / "images/ALPHA/.x.dcm.0123.tmp").write_bytes(b"half")
    assert store.temporary_leftovers_sweep() == 0
    assert store.temporary_leftovers_sweep(older_than=0) == 1


def test_files_written_by_a_batch_that_rolls_back_are_removed(world, stores, series, monkeypatch, on_commit_now):
    def fail(items):
        raise RuntimeError("the index write failed")

    monkeypatch.setattr(services, "_save_outcomes", fail)
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    with pytest.raises(RuntimeError):
        upload_receive(upload=upload, files=series[:3])
    assert not [p for p in (stores / "images").rglob("*") if p.is_file()]


def test_a_task_run_again_after_its_commit_removes_the_raw_copies_its_first_run_left(
    world, stores, series, monkeypatch, on_commit_now
):
    """A worker killed between the commit that settles its batch and the deletion of the raw copies after it:
    the task comes again (it is acknowledged only when it ends) and finds its files done. It removes their raw
    copies, or identified bytes of files already de-identified would stay in quarantine for good."""
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    with monkeypatch.context() as killed:
        killed.setattr(store, "quarantine_delete", lambda upload_id, sha256: None)  # dies before deleting
        items = upload_receive(upload=upload, files=series[:3])
    assert {i.state for i in UploadItem.objects.filter(upload=upload)} == {UploadItem.State.ACCEPTED}
    assert len(storage_keys(store.quarantine_storage())) == 3

    process_upload_batch([item.pk for item in items])  # the task, redelivered to another worker

    assert storage_keys(store.quarantine_storage()) == []
    assert Instance.objects.count() == 3


def test_the_sweep_removes_raw_copies_nothing_waits_for_and_keeps_the_rest(
    world, stores, series, monkeypatch, on_commit_now
):
    """Raw copies no task will come for: a settled file's (its web request died after processing it while its
    copy was written again), and one that no row names, once old (a request that died before its commit)."""
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    with monkeypatch.context() as killed:
        killed.setattr(store, "quarantine_delete", lambda upload_id, sha256: None)  # dies before deleting
        upload_receive(upload=upload, files=series[:2])
    monkeypatch.setattr(services, "_enqueue_on_commit", lambda ids: None)  # this one waits for its task
    waiting = upload_receive(upload=upload, files=series[2:3])[0]
    quarantine = store.quarantine_storage()
    old_orphan, young_orphan = store.quarantine_key(upload.pk, "a" * 64), store.quarantine_key(upload.pk, "b" * 64)
    for key in (old_orphan, young_orphan):
        quarantine.save(key, io.BytesIO(b"raw bytes whose request died before its commit"))
    two_hours_ago = timezone.now().timestamp() - 7200
    os.utime(quarantine.path(old_orphan), (two_hours_ago, two_hours_ago))
    assert len(storage_keys(quarantine)) == 5

    assert services.quarantine_leftovers_sweep() == 3
    assert sorted(storage_keys(quarantine)) == sorted([store.quarantine_key(upload.pk, waiting.sha256), young_orphan])
    assert services.quarantine_leftovers_sweep() == 0


def test_the_sweeps_run_on_a_host_whose_quarantine_was_never_written(stores):
    """A host whose uploads all came de-identified from the browser has no quarantine folder at all."""
    assert not os.path.exists(store.quarantine_storage().location)
    assert services.quarantine_leftovers_sweep() == 0
    assert store.temporary_leftovers_sweep() == 0


def test_a_batch_waits_for_its_files_to_reach_the_disk_before_it_locks_rows_other_batches_need(
    transactional_db, stores, series, faults
):
    """Batches of one upload run side by side on several workers: none may hold the upload's or the subject's
    row while it waits for its files to reach the disk, or the workers take turns instead of working at once."""
    world = build_world()
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    db = connection.settings_dict
    rows = {Upload._meta.db_table: upload.pk, Subject._meta.db_table: upload.timepoint.subject_id}
    seen = []
    one_look_at_a_time = threading.Lock()

    def rows_free_while_on_disk(key):
        if not key.endswith(".dcm"):
            return  # a quarantine copy, written before anything is locked
        # The I/O threads flush a batch's files side by side: one look at a time, or they would see each other's.
        with (
            one_look_at_a_time,
            psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432) as other,
        ):
            for table, pk in rows.items():
                try:
                    other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [pk])  # noqa: S608
                    seen.append("free")
                except psycopg.errors.LockNotAvailable:
                    seen.append(f"{table} locked")
                other.rollback()

    faults["store"]["before_link"] = rows_free_while_on_disk  # each stored file is on disk, not yet linked
    upload_receive(upload=upload, files=series[:3])  # processed at the commit (no broker in the tests)
    assert seen == ["free"] * 6
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted"] * 3


def test_a_batch_leaves_the_upload_row_free_while_it_stores_its_files(transactional_db, stores, series, monkeypatch):
    """Locking a batch's own files must not lock their upload's row too (a join in the locking query would: it
    locks the joined rows as well), or the batches of one upload on several workers take turns for their whole
    index transaction instead of only for its last step."""
    world = build_world()
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    db = connection.settings_dict
    real, seen = store.store_instance, []

    def store_instance(key, data, **written):  # called in the index transaction, the batch's files locked
        with psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432) as other:
            try:
                other.execute(f"SELECT 1 FROM {Upload._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT", [upload.pk])  # noqa: S608
                seen.append("free")
            except psycopg.errors.LockNotAvailable:
                seen.append("locked")
        real(key, data, **written)

    monkeypatch.setattr(store, "store_instance", store_instance)
    upload_receive(upload=upload, files=series[:3])  # processed at the commit (no broker in the tests)
    assert seen == ["free"] * 3
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted"] * 3


def test_a_file_already_stored_with_other_bytes_is_rejected_alone(world, stores, series, monkeypatch, on_commit_now):
    real = store.store_instance
    conflicted = []

    def store_instance(key, data, **written):
        if not conflicted:
            real(key, data + b"\0\0")  # another file got there first under these UIDs
            conflicted.append(key)
        real(key, data, **written)

    monkeypatch.setattr(store, "store_instance", store_instance)
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:3])
    states = sorted(UploadItem.objects.values_list("state", "code"))
    assert states == [("accepted", ""), ("accepted", ""), ("rejected", "conflict")]
    assert "already stored under this image's identifiers" in UploadItem.objects.get(code="conflict").reason


# --- quarantine integrity --------------------------------------------------------------------------------------


def flip_a_byte(upload_id: int, sha: str) -> None:
    path = store.quarantine_storage().path(store.quarantine_key(upload_id, sha))
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)


def tear(upload_id: int, sha: str) -> None:
    path = store.quarantine_storage().path(store.quarantine_key(upload_id, sha))
    os.truncate(path, os.path.getsize(path) // 3)


@pytest.mark.parametrize("damage", [flip_a_byte, tear])
def test_a_damaged_quarantine_copy_is_discarded_and_the_file_asked_for_again(
    world, api, stores, series, faults, on_commit_now, damage
):
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    victim = hashlib.sha256(series[1]).hexdigest()
    # Between receipt and processing, the copy is damaged (a disk error, a torn write of an older version).
    faults["services"]["after_commit_before_enqueue"] = lambda ids: damage(upload.pk, victim)
    upload_receive(upload=upload, files=series[:4])
    faults["services"].clear()

    status = api.as_(world.cora).get(reverse("api-upload", args=["ALPHA", upload.pk])).json()
    resend = [i for i in status["items"] if i["state"] == "resend"]
    assert [i["sha256"] for i in resend] == [victim] and "send the file again" in resend[0]["reason"]
    assert status["counts"]["accepted"] == 3 and Instance.objects.count() == 3
    assert store.quarantine_read(upload.pk, victim) is None  # the damaged copy was discarded

    upload_receive(upload=upload, files=[series[1]])  # the client sends it again
    assert UploadItem.objects.get(sha256=victim).state == "accepted"
    upload_finish(actor=world.cora, upload=upload)
    assert Upload.objects.get(pk=upload.pk).state == "complete"
    assert_end_state()


def test_a_resend_replaces_a_copy_that_failed_its_check(world, stores, series, monkeypatch):
    queued = []
    monkeypatch.setattr(process_upload_batch, "delay", lambda ids: queued.append(ids))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    victim = hashlib.sha256(series[0]).hexdigest()
    upload_receive(upload=upload, files=series[:2])
    flip_a_byte(upload.pk, victim)
    upload_receive(upload=upload, files=series[:1])  # resent before it was processed: the copy is mended
    assert store.quarantine_read_verified(upload.pk, victim) == series[0]
    for ids in queued:
        process_upload_batch(ids)
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted", "accepted"]


def test_a_web_process_killed_while_writing_to_quarantine_leaves_nothing_a_resend_trips_over(
    world, stores, series, faults, on_commit_now
):
    upload = upload_open(actor=world.cora, timepoint=timepoint())

    def killed(key):
        raise SystemExit("the web process dies half-way through the quarantine write")

    faults["store"]["mid_write"] = killed
    with pytest.raises(SystemExit):
        upload_receive(upload=upload, files=series[:1])
    faults["store"].clear()
    assert not UploadItem.objects.exists()  # never acknowledged
    assert storage_keys(store.quarantine_storage()) == []  # no torn copy under the file's name
    upload_receive(upload=upload, files=series[:1])  # the client's resend
    assert UploadItem.objects.get().state == "accepted"
    assert_end_state()


def test_a_file_damaged_after_the_upload_was_closed_is_rejected_with_a_reason(
    world, stores, series, faults, on_commit_now
):
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    victim = hashlib.sha256(series[0]).hexdigest()
    faults["services"]["after_commit_before_enqueue"] = lambda ids: (
        flip_a_byte(upload.pk, victim),
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.PROCESSING),
    )
    upload_receive(upload=upload, files=series[:2])
    item = UploadItem.objects.get(sha256=victim)
    assert item.state == "rejected" and item.code == "lost" and "new upload" in item.reason
    assert_end_state()


# --- per-file isolation ----------------------------------------------------------------------------------------


def nested_sequence_file(template: bytes, depth: int) -> bytes:
    """A valid CT file with a defined-length sequence nested `depth` deep inserted before its pixel data."""
    ds = pydicom.dcmread(io.BytesIO(template))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    body = struct.pack("<HH2sH", 0x0008, 0x0103, b"SH", 6) + b"DCM   "  # innermost item: one element
    for _level in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
        body = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item  # Content Sequence
    at = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    return data[:at] + body + data[at:]


def test_a_1000_deep_sequence_is_rejected_alone_and_its_batch_goes_on(world, api, stores, series, on_commit_now):
    hostile = nested_sequence_file(series[0], 1000)
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=[*series[:5], hostile, *series[5:10]])
    states = dict(UploadItem.objects.values_list("sha256", "state"))
    bad = UploadItem.objects.get(sha256=hashlib.sha256(hostile).hexdigest())
    assert bad.state == "rejected" and bad.reason, bad
    assert list(states.values()).count("accepted") == 10
    upload_finish(actor=world.cora, upload=upload)
    assert_end_state()


def test_any_exception_of_one_file_becomes_its_rejection(world, stores, series, monkeypatch, on_commit_now):
    real = reverify.deidentify  # the server path's engine call (reverify.file_processor)

    def deidentify(raw, **kwargs):
        if raw == series[2]:
            raise RecursionError("maximum recursion depth exceeded while calling a Python object")
        return real(raw, **kwargs)

    monkeypatch.setattr(reverify, "deidentify", deidentify)
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:4])
    bad = UploadItem.objects.get(sha256=hashlib.sha256(series[2]).hexdigest())
    assert bad.state == "rejected" and bad.code == "unreadable"
    assert bad.reason == "unreadable: RecursionError: maximum recursion depth exceeded while calling a Python object"
    assert UploadItem.objects.filter(state="accepted").count() == 3


def test_a_file_that_fails_while_it_is_indexed_is_rejected_alone_and_leaves_no_temporary_file(
    world, stores, series, monkeypatch, on_commit_now
):
    """Its de-identified copy was written (staged) before the index transaction; the failure comes after the
    copy was taken for linking, so nothing else would remove it."""
    refuse_the_index_row_of_one_file(monkeypatch, error=ValueError("an index value this code cannot take"))
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:4])
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted"] * 3 + ["rejected"]
    upload_finish(actor=world.cora, upload=upload)
    assert_end_state()  # among others: no file in the image store that no row points to


def test_an_unreadable_reason_never_carries_a_value_of_the_file():
    raw = b"DICM\x10\x00\x10\x00PN\x0c\x00HONG^GILDONG\x10\x00\x20\x00LO\x08\x00PID0001 "
    exc = ValueError("could not convert string to float: 'HONG^GILDONG' (PID0001)")
    reason = unreadable_reason(exc, raw)
    assert reason.startswith("unreadable: ValueError: could not convert string to float")
    assert "HONG" not in reason and "PID0001" not in reason


# --- a queue that recovers by itself ---------------------------------------------------------------------------


def test_the_web_process_killed_between_commit_and_queueing_loses_nothing(transactional_db, stores, series, faults):
    world = build_world()
    upload = upload_open(actor=world.cora, timepoint=timepoint())

    def die(ids):
        raise SystemExit("killed")  # what a killed web process does: nothing after this point runs

    faults["services"]["after_commit_before_enqueue"] = die
    with pytest.raises(SystemExit):
        upload_receive(upload=upload, files=series[:4])
    faults["services"].clear()
    assert UploadItem.objects.filter(state="quarantined").count() == 4  # acknowledged, with no task
    assert upload_items_requeue() == 0  # within the grace period a task may still be on its way
    assert upload_items_requeue(grace=timedelta(0)) == 4  # the sweeper (beat, worker start)
    assert UploadItem.objects.filter(state="accepted").count() == 4
    upload_finish(actor=world.cora, upload=upload)
    assert_end_state()


def test_a_resend_of_acknowledged_but_unprocessed_files_queues_them_again(world, stores, series, monkeypatch):
    queued = []
    monkeypatch.setattr(process_upload_batch, "delay", lambda ids: queued.append(sorted(ids)))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:3])
    upload_receive(upload=upload, files=series[:3])
    ids = sorted(UploadItem.objects.values_list("pk", flat=True))
    assert queued == [ids, ids]


def test_a_database_refused_longer_than_the_retries_is_outlasted_by_the_sweeper(world, stores, series, faults):
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
        patch.setattr(process_upload_batch, "delay", lambda ids: None)
        upload_receive(upload=upload, files=series[:3])
    ids = list(UploadItem.objects.values_list("pk", flat=True))
    attempts = []

    def refuse(ids):
        attempts.append(ids)
        raise OperationalError("connection refused")

    faults["services"]["batch_start"] = refuse
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(process_upload_batch.app.conf, "task_eager_propagates", False)
        result = process_upload_batch.apply(args=[ids])  # every retry, run at once in-process
    assert result.state == "FAILURE" and isinstance(result.result, OperationalError)
    assert len(attempts) == process_upload_batch.max_retries + 1
    assert UploadItem.objects.filter(state="quarantined").count() == 3
    faults["services"].clear()  # the database is back
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
        assert upload_items_requeue(grace=timedelta(0)) == 3
        upload_finish(actor=world.cora, upload=upload)
    assert Upload.objects.get(pk=upload.pk).state == "complete"
    assert_end_state()


def test_the_task_retries_with_a_capped_backoff():
    assert OperationalError in process_upload_batch.autoretry_for and process_upload_batch.acks_late
    assert process_upload_batch.retry_backoff_max < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


@pytest.mark.worker
def test_redis_stopped_during_a_stow_and_restarted_empty_loses_nothing(transactional_db, stores, series, tmp_path, api):
    world = build_world()
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    worker = None
    try:
        with celery_on(redis_server.url) as queue:
            upload = upload_open(actor=world.cora, timepoint=timepoint())
            upload_receive(upload=upload, files=series[:4])  # queued in Redis; no worker yet
            redis_server.kill()  # everything queued is gone with it
            response = stow(api, world.cora, upload.pk, series[4:8])  # a STOW while the broker is down
            assert response.status_code == 202, response.content  # acknowledged: durable and committed
            assert UploadItem.objects.filter(upload=upload).count() == 8
            upload_finish(actor=world.cora, upload=upload)
            redis_server.start()  # empty
            worker = start_worker(redis_server.url, queue, stores, requeue_after=0)
            wait_for(
                lambda: Upload.objects.get(pk=upload.pk).state == "complete",
                90,
                "the sweep at worker start to recover every file",
                stores / "worker.log",
            )
    finally:
        if worker is not None:
            stop(worker)
        redis_server.kill()
    assert UploadItem.objects.filter(state="accepted").count() == 8
    assert_end_state()


@pytest.mark.worker
def test_a_worker_killed_while_writing_is_retried_to_a_consistent_end(transactional_db, stores, tmp_path):
    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=True), slices=12, seed="durability-kill")
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    workers = []
    try:
        kill_a_worker_mid_write_then_recover(
            redis_server.url, actor=world.cora, timepoint=timepoint(), files=files, folder=stores, workers=workers
        )
    finally:
        for worker in workers:
            stop(worker)
        redis_server.kill()
    assert UploadItem.objects.filter(state="accepted").count() == len(files)
    # The dead worker's temporary files, swept: the one it died writing, and (with INGEST_PROCESSING_IO_THREADS)
    # those of its batch of four that its I/O threads were writing beside it or had written whole; none of them
    # under a final name.
    assert 1 <= store.temporary_leftovers_sweep(older_than=0) <= 4
    assert store.temporary_leftovers_sweep(older_than=0) == 0
    assert_end_state()


def test_the_end_state_checker_finds_what_breaks_the_promise(world, stores, series, on_commit_now):
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:2])
    assert end_state_problems() == []
    instance = Instance.objects.first()
    path = stores / "images" / instance.storage_key
    path.write_bytes(path.read_bytes()[:-1])
    (stores / "images/ALPHA/stray.dcm").write_bytes(b"x")
    (stores / "quarantine/1").mkdir(parents=True)
    (stores / "quarantine/1/left").write_bytes(b"x")
    UploadItem.objects.filter(pk=UploadItem.objects.last().pk).update(state="quarantined")
    problems = "\n".join(end_state_problems())
    for words in ("still quarantined", "left in quarantine", "does not match", "no row points to"):
        assert words in problems
    assert "ALPHA/stray.dcm" in storage_keys(store.image_storage())


# --- soak ------------------------------------------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.worker
def test_random_kills_of_web_and_worker_processes_during_concurrent_uploads_end_consistent(
    transactional_db, stores, tmp_path, faults
):
    """Concurrent uploads while workers die by SIGKILL in the middle of writes and the web side dies after
    acknowledging files or while writing them to quarantine; every client retries what failed, as a browser
    does. The faults are drawn from a seeded generator; whatever the interleaving, the end state is the same."""
    import random
    import threading

    from django.db import connection

    from trials import services as trial_services

    uploads, kills = int(os.environ.get("SOAK_UPLOADS", "8")), int(os.environ.get("SOAK_KILLS", "4"))
    rng = random.Random(20261205)
    world = build_world()
    while Timepoint.objects.filter(subject__site=world.seo, visit__code="BL").count() < uploads:
        trial_services.subject_enroll(actor=world.alice, site=world.seo)
    timepoints = list(Timepoint.objects.filter(subject__site=world.seo, visit__code="BL").order_by("pk"))[:uploads]
    template = real_ct_template(large=False)
    series = {
        tp.pk: synthesize_ct_series(template, slices=6, seed=f"soak-{n}", patient_id=f"SOAK{n:03d}")
        for n, tp in enumerate(timepoints)
    }

    lock = threading.Lock()
    died = {"enqueue": 0, "write": 0}
    web_faults = {
        "enqueue": [rng.random() < 0.3 for _ in range(400)],
        "write": [rng.random() < 0.05 for _ in range(800)],
    }

    def web_dies(kind):
        def hook(*args):
            with lock:
                dies = web_faults[kind].pop() if web_faults[kind] else False
            if dies:
                died[kind] += 1
                raise SystemExit(f"web process killed ({kind})")

        return hook

    faults["services"]["after_commit_before_enqueue"] = web_dies("enqueue")
    faults["store"]["mid_write"] = web_dies("write")  # this process's writes are the web side's (quarantine)
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    errors, workers, killed = [], [], 0

    def client(timepoint):
        try:
            upload = upload_open(actor=world.cora, timepoint=timepoint)
            files = series[timepoint.pk]
            for start in range(0, len(files), 2):
                for _attempt in range(20):  # the browser retries a request that failed
                    try:
                        upload_receive(upload=upload, files=files[start : start + 2])
                        break
                    except SystemExit:
                        continue
            upload_finish(actor=world.cora, upload=upload)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def fault_worker():
        return start_worker(redis_server.url, queue, stores, visibility=2, fault=f"mid_write:{rng.randint(1, 6)}")

    try:
        with celery_on(redis_server.url, visibility=2) as queue:
            workers = [fault_worker(), start_worker(redis_server.url, queue, stores, visibility=2)]
            threads = [threading.Thread(target=client, args=(tp,)) for tp in timepoints]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            assert not errors, errors

            def settled():
                nonlocal killed
                for n, worker in enumerate(workers):
                    if worker.poll() is not None:  # died at its fault point: replace it
                        killed += 1
                        workers[n] = (
                            fault_worker()
                            if killed < kills
                            else start_worker(redis_server.url, queue, stores, visibility=2, requeue_after=0)
                        )
                return not Upload.objects.exclude(state=Upload.State.COMPLETE).exists()

            wait_for(settled, 400, "every upload to complete", stores / "worker.log")
    finally:
        for worker in workers:
            stop(worker)
        redis_server.kill()
    assert killed >= 1 and died["enqueue"] and died["write"], ("the soak exercised too little", killed, died)
    assert UploadItem.objects.filter(state="accepted").count() == uploads * 6
    store.temporary_leftovers_sweep(older_than=0)
    assert_end_state()


def test_the_sweepers_run_on_the_beat_schedule_and_at_worker_start():
    from celery.signals import worker_ready

    from ctims.celery import app, sweep_at_start

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert tasks == {
        "trials.tasks.ingest_sweep",
        "trials.tasks.uploads_idle_close",
        "trials.tasks.store_leftovers_sweep",
    }
    assert tasks <= set(app.tasks)
    assert any(receiver() is sweep_at_start for _key, receiver in worker_ready.receivers)


def test_the_sweep_command_processes_what_waits_without_a_broker(world, stores, series, monkeypatch, capsys):
    from django.core.management import call_command

    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(process_upload_batch, "delay", lambda ids: None)  # the process died before running it
        upload_receive(upload=upload, files=series[:2])
    call_command("ingest_sweep")
    assert "0 waiting files queued again" in capsys.readouterr().out  # within the grace period
    call_command("ingest_sweep", "--grace", "0")
    assert UploadItem.objects.filter(state="accepted").count() == 2


def test_a_file_whose_index_row_the_database_refuses_is_rejected_alone(
    world, stores, series, monkeypatch, on_commit_now
):
    refuse_the_index_row_of_one_file(monkeypatch)
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    upload_receive(upload=upload, files=series[:4])
    states = sorted(UploadItem.objects.values_list("state", "code"))
    assert states == [("accepted", ""), ("accepted", ""), ("accepted", ""), ("rejected", "unreadable")]
    assert "could not be indexed" in UploadItem.objects.get(state="rejected").reason
    upload_finish(actor=world.cora, upload=upload)
    assert_end_state()
