"""The image store's I/O threads: staged writes, flushes and read-ahead run beside the caller, and every error of
theirs still reaches the caller with nothing left behind under a final name."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from trials.ingest import store


@pytest.fixture(autouse=True)
def io_threads(settings):
    """Both stages with I/O threads, whatever the defaults: the tests below are about what threads change."""
    settings.INGEST_RECEIVE_IO_THREADS = settings.INGEST_PROCESSING_IO_THREADS = 4


@pytest.fixture
def hooks():
    yield store.FAULT_HOOKS
    store.FAULT_HOOKS.clear()


def temporaries(folder: Path) -> list[Path]:
    return list(folder.rglob(f"*{store.TEMP_SUFFIX}"))


def test_staging_a_file_returns_while_its_write_goes_on(stores, hooks):
    """The caller computes its next file while the last one is written: the first file's write is held half-way
    until the caller has staged the second, which would never happen if staging waited for the write."""
    caller_moved_on = threading.Event()
    writers = []

    def mid_write(key):
        writers.append(threading.current_thread().name)
        if key.endswith("first.dcm"):
            assert caller_moved_on.wait(30), "the caller was held until the write ended"

    hooks["mid_write"] = mid_write
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        staging.stage("T/1/2/first.dcm", b"a" * 4096)
        staging.stage("T/1/2/second.dcm", b"b" * 4096)
        caller_moved_on.set()
        staging.settle()
        for key, data in (("T/1/2/first.dcm", b"a" * 4096), ("T/1/2/second.dcm", b"b" * 4096)):
            staged = staging.take(key)
            assert staged.sha256 == hashlib.sha256(data).hexdigest()  # hashed in the same pass as the write
            store.store_instance(key, data, staged=staged)
    assert all(name.startswith("ctims-processing-io") for name in writers)
    assert store.image_storage().open("T/1/2/first.dcm").read() == b"a" * 4096
    assert temporaries(stores) == []


@pytest.mark.parametrize("point", ["mid_write", "before_link"])
def test_a_failed_write_in_an_io_thread_reaches_the_caller_and_leaves_no_file(stores, hooks, point):
    def fails(key):
        if key.endswith("bad.dcm"):
            raise OSError(28, "No space left on device")

    hooks[point] = fails
    with (
        pytest.raises(OSError, match="No space left"),
        store.StagedWrites(store.image_storage(), stage="processing") as staging,
    ):
        staging.stage("T/1/2/good.dcm", b"g" * 4096)
        staging.stage("T/1/2/bad.dcm", b"x" * 4096)
        staging.settle()
    assert temporaries(stores) == []  # neither the failed write nor the good one left waiting
    assert not store.image_storage().exists("T/1/2/bad.dcm")
    assert not store.image_storage().exists("T/1/2/good.dcm")  # never taken, so never given its name


def test_take_raises_the_error_of_its_own_write(stores, hooks):
    hooks["mid_write"] = lambda key: (_ for _ in ()).throw(OSError(5, "Input/output error"))
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        staging.stage("T/1/2/3.dcm", b"x" * 4096)
        with pytest.raises(OSError, match="Input/output error"):
            staging.take("T/1/2/3.dcm")
    assert temporaries(stores) == []


def test_read_ahead_gives_each_verified_copy_in_order_and_none_for_a_damaged_one(stores):
    datas = [bytes([n]) * (1000 + n) for n in range(5)]
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    for sha, data in zip(shas, datas, strict=True):
        store.quarantine_put(9, sha, data)
    damaged = Path(store.quarantine_storage().path(store.quarantine_key(9, shas[2])))
    damaged.write_bytes(b"flipped" + datas[2][7:])
    copies = store.ReadAhead(9, shas, depth=2)
    got = [copies.next() for _ in shas]
    assert got == [datas[0], datas[1], None, datas[3], datas[4]]
    assert not damaged.exists()  # a damaged copy is discarded, as quarantine_read_verified does


def test_a_forked_worker_process_gets_its_own_io_threads(stores):
    parent = store.io_pool("receive")
    assert store.io_pool("receive") is parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a Celery prefork worker after the fork
        ok = False
        try:
            child = store.io_pool("receive")
            ok = child is not parent and child.submit(lambda: 6 * 7).result(10) == 42
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_with_no_io_threads_the_caller_writes_and_reads_itself(stores, hooks, settings):
    settings.INGEST_PROCESSING_IO_THREADS = 0
    writers = []
    hooks["mid_write"] = lambda key: writers.append(threading.current_thread().name)
    data = b"z" * 4096
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        staging.stage("T/1/2/3.dcm", data)
        assert writers == [threading.current_thread().name]  # written before stage returned, by the caller
        staging.settle()
        store.store_instance("T/1/2/3.dcm", data, staged=staging.take("T/1/2/3.dcm"))
    sha = hashlib.sha256(data).hexdigest()
    store.quarantine_put(3, sha, data)
    assert store.ReadAhead(3, [sha]).next() == data
    assert temporaries(stores) == []
    settings.INGEST_PROCESSING_IO_THREADS = 4
    assert isinstance(store.io_pool("processing"), store.ThreadPoolExecutor)  # the setting is read again


def test_the_defaults_give_threads_to_receiving_and_none_to_processing():
    from ctims import settings as defaults  # the module: this file's fixture sets both to 4 for every test

    assert (defaults.INGEST_RECEIVE_IO_THREADS, defaults.INGEST_PROCESSING_IO_THREADS) == (4, 0)
    with pytest.raises(ValueError, match="no ingest stage"):
        store.io_pool("elsewhere")


def test_raw_uploads_in_quarantine_are_readable_by_the_application_only(tmp_path, settings):
    """nginx's user joins the ctims group to send stored instances (README), and the units write with UMask=0027:
    the raw, identified copies in quarantine were 0644 (Django's FILE_UPLOAD_PERMISSIONS), so nginx could read them
    too, and anyone on the host where the folders' mode let them through. Stored
    (de-identified) instances stay readable by the group."""
    from django.conf import settings as configured
    from django.core.files.storage import storages

    entries = {}
    for name in ("images", "quarantine"):
        entry = {**configured.STORAGES[name], "OPTIONS": {**configured.STORAGES[name]["OPTIONS"]}}
        entry["OPTIONS"]["location"] = tmp_path / name
        entries[name] = entry
    settings.STORAGES = settings.STORAGES | entries
    storages._storages.clear()
    usual = os.umask(0o027)  # the units' UMask
    try:
        raw = b"raw identified bytes"
        key = store.quarantine_put(7, hashlib.sha256(raw).hexdigest(), raw)
        store.store_instance("T/1/2/3.dcm", b"de-identified bytes")
    finally:
        os.umask(usual)
        storages._storages.clear()
    assert (tmp_path / "quarantine" / key).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "images" / "T/1/2/3.dcm").stat().st_mode & 0o040  # nginx sends these


def test_directories_flushed_early_are_flushed_beside_the_caller_and_waited_for_at_the_batchs_end(stores, monkeypatch):
    """The index rows are written while the stored files' directories reach the disk; the batch's block does not
    end (nor its commit come) before they have, and a failed flush reaches the caller."""
    flushed, release, real = [], threading.Event(), os.fsync

    def fsync(fd):
        if threading.current_thread().name.startswith("ctims-flush"):
            assert release.wait(30)
            flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(store.os, "fsync", fsync)
    with store.durable_batch() as names:
        store.store_instance("T/1/2/3.dcm", b"x" * 4096)  # its new folders and its name wait for the block's end
        names.flush_now()
        assert flushed == []  # the caller goes on while the flushes wait for the disk
        release.set()
    folder = os.path.dirname(store.image_storage().path("T/1/2/3.dcm"))
    assert folder in flushed and len(flushed) == len(set(flushed))  # each folder once, done when the block ended

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store.os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output error"), store.durable_batch() as names:
        store.store_instance("T/1/2/4.dcm", b"y" * 4096)
        names.flush_now()


def test_with_no_io_threads_a_batchs_flushes_still_wait_for_the_disk_side_by_side(stores, hooks, settings):
    """Flushes are waits, not work: each staged file's flush waits for the other's to have begun, which files
    flushed one after the other never would."""
    settings.INGEST_PROCESSING_IO_THREADS = 0
    both_flushing = threading.Barrier(2, timeout=30)
    flushers = []

    def before_link(key):  # each file's bytes are on disk (fdatasync), its name not yet made
        flushers.append(threading.current_thread().name)
        both_flushing.wait()

    hooks["before_link"] = before_link
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        staging.stage("T/1/2/a.dcm", b"a" * 4096)
        staging.stage("T/1/2/b.dcm", b"b" * 4096)
        staging.settle()
        for key, data in (("T/1/2/a.dcm", b"a" * 4096), ("T/1/2/b.dcm", b"b" * 4096)):
            store.store_instance(key, data, staged=staging.take(key))
    assert len(flushers) == 2 and all(name.startswith("ctims-flush") for name in flushers)
    assert store.image_storage().open("T/1/2/b.dcm").read() == b"b" * 4096
    assert temporaries(stores) == []


def test_stored_files_leave_the_page_cache_once_durable_and_quarantine_copies_stay(stores, monkeypatch):
    """A stored file is not read again soon: once its bytes are flushed, the kernel is told it may drop its pages
    (POSIX_FADV_DONTNEED after the fdatasync, never before: dirty pages would only be written out). A quarantine
    copy, read back by its processing within seconds, keeps its pages. Staged writes, direct writes and S3-less
    write-once all go through the same flush."""
    if store._fadvise_dontneed is None:
        pytest.fail("this platform has no posix_fadvise: the page-cache hint cannot be given here")
    events: list[tuple[str, int]] = []
    real_fdatasync, real_fadvise = os.fdatasync, os.posix_fadvise

    def fdatasync(fd):
        events.append(("flush", os.fstat(fd).st_ino))
        return real_fdatasync(fd)

    def fadvise(fd, offset, length, advice):
        if advice == os.POSIX_FADV_DONTNEED:
            events.append(("drop", os.fstat(fd).st_ino))
        return real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        staging.stage("T/1/2/staged.dcm", b"s" * 8192)
        staging.settle()
        store.store_instance("T/1/2/staged.dcm", b"s" * 8192, staged=staging.take("T/1/2/staged.dcm"))
    store.store_instance("T/1/2/direct.dcm", b"d" * 8192)
    sha = hashlib.sha256(b"raw" * 4096).hexdigest()
    store.quarantine_put(7, sha, b"raw" * 4096)

    def inode(storage, key):
        return os.stat(storage.path(key)).st_ino

    for key in ("T/1/2/staged.dcm", "T/1/2/direct.dcm"):
        ino = inode(store.image_storage(), key)
        mine = [event for event, number in events if number == ino]
        assert mine == ["flush", "drop"], (key, mine)
    raw = inode(store.quarantine_storage(), store.quarantine_key(7, sha))
    assert [event for event, number in events if number == raw] == ["flush"]


def test_a_staged_file_gets_its_final_name_by_one_rename_that_never_replaces(stores, monkeypatch):
    """Where the file system has RENAME_NOREPLACE the temporary name becomes the final one in one step (no link
    and unlink); a final name that exists is never replaced; where the rename is missing, a link does the same."""
    storage = store.image_storage()
    calls = []
    real = store._rename_noreplace
    if real is None:
        pytest.fail("no renameat2 in this C library: the link fallback alone is tested below")

    def rename(old, new):
        calls.append(os.path.basename(new))
        return real(old, new)

    monkeypatch.setattr(store, "_rename_noreplace", rename)
    monkeypatch.setattr(os, "link", lambda *a: pytest.fail("linked where a rename was possible"))
    assert store.write_once(storage, "T/1/2/a.dcm", b"first") is True
    with pytest.raises(store.DifferentFileStored):
        store.write_once(storage, "T/1/2/a.dcm", b"other")
    assert calls == ["a.dcm", "a.dcm"]
    assert storage.open("T/1/2/a.dcm").read() == b"first"
    assert os.stat(storage.path("T/1/2/a.dcm")).st_nlink == 1
    assert temporaries(stores) == []

    def missing(old, new):
        raise NotImplementedError

    monkeypatch.undo()
    monkeypatch.setattr(store, "_rename_noreplace", missing)
    assert store.write_once(storage, "T/1/2/b.dcm", b"second") is True
    assert store._rename_noreplace is None  # remembered: links from now on
    with pytest.raises(store.DifferentFileStored):
        store.write_once(storage, "T/1/2/b.dcm", b"other")
    assert storage.open("T/1/2/b.dcm").read() == b"second"
    assert temporaries(stores) == []
