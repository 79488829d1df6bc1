"""The image store: de-identified Part 10 files written once, addressed by trial and UIDs; and the quarantine.

Every file is written atomically and durably, so a final key never holds a partial file whatever dies when:

- on a file system: the bytes go to a temporary name in the same directory and are fsynced; the temporary name
  is then renamed to the final one with RENAME_NOREPLACE (or, where a file system lacks it, linked with `os.link`
  and unlinked), which fails if the final name exists (it never replaces another file), and the directory is
  fsynced. A process killed before that leaves only a temporary file (`.<name>.<random>.tmp`), which
  `temporary_leftovers_sweep` removes; after it the file is whole.
- on S3: one PUT is atomic (an object appears whole or not at all); write-once is a conditional put
  (`If-None-Match: *`), so two writers of one key cannot both succeed.

`FAULT_HOOKS` are named points inside a write where a test can kill the process or raise (never timing luck).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages

# Fault-injection points, called with the final key: "mid_write" (half the bytes are in the temporary file),
# "before_link" (the temporary file is whole and fsynced, the final name not yet created). Tests only.
FAULT_HOOKS: dict[str, Callable[[str], None]] = {}

TEMP_SUFFIX = ".tmp"


def _fault(point: str, key: str) -> None:
    hook = FAULT_HOOKS.get(point)
    if hook is not None:
        hook(key)


def image_storage():
    return storages["images"]


def quarantine_storage():
    return storages["quarantine"]


def instance_key(trial_code: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{trial_code}/{study_uid}/{series_uid}/{sop_uid}.dcm"


_pending_dirs: ContextVar[set[str] | None] = ContextVar("ctims_store_pending_dirs", default=None)


class DurableNames:
    """What `durable_batch` yields: the directories its writes touched, flushed when the block ends, or from
    `flush_now` on beside the caller."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self._flushes: list[Future[None]] = []

    def flush_now(self) -> None:
        """Start flushing the directories touched so far (`flush_pool`), while the caller goes on with work that
        needs no file (writing the index rows that will point to them); the block's end waits for them."""
        for path in sorted(self.pending):
            self._flushes.append(flush_pool().submit(_fsync_dir, path, now=True))
        self.pending.clear()

    def wait(self) -> None:
        """Every directory touched flushed: those started by `flush_now` waited for, the others flushed now."""
        for path in sorted(self.pending):
            _fsync_dir(path, now=True)
        self.pending.clear()
        errors = []
        for flush in self._flushes:
            try:
                flush.result()
            except BaseException as exc:  # noqa: BLE001 - every flush is waited for before one is raised
                errors.append(exc)
        self._flushes.clear()
        if errors:
            raise errors[0]


@contextmanager
def durable_batch() -> Iterator[DurableNames]:
    """Writes inside the block fsync each directory they touched once, when the block ends (or from
    `flush_now` on), instead of once per file.

    Leave the block before the commit that depends on the files (the acknowledgement, the index): the files
    are then durable, names included, before anything points to them. Each file's bytes are still fsynced
    before its final name is created, so no final name ever holds a partial file.
    """
    names = DurableNames()
    token = _pending_dirs.set(names.pending)
    try:
        yield names
    finally:
        _pending_dirs.reset(token)
    names.wait()


def _fsync_dir(path: str, *, now: bool = False) -> None:
    pending = _pending_dirs.get()
    if pending is not None and not now:
        pending.add(path)
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(directory: str) -> None:
    """Create `directory` and its missing parents, fsyncing each parent so the new entries survive a power cut."""
    missing = []
    path = directory
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        _fsync_dir(os.path.dirname(path))


@dataclass(frozen=True)
class Staged:
    """A file written whole under a temporary name, waiting for its final name (`final`)."""

    key: str
    final: str
    temporary: str
    sha256: str | None
    cached: bool = False  # its pages stay in the page cache once durable (_flush)


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages now, without waiting (Linux sync_file_range);
    a later fdatasync then finds most of them written. Elsewhere nothing happens and fdatasync does it all."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE


def _linux_libc(name: str, argtypes: tuple):
    """The C library's function `name` on Linux (errno kept for ctypes.get_errno), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    return function


_sync_file_range = _linux_libc("sync_file_range", (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint))


def _flush(fd: int, *, cached: bool) -> None:
    """Make a written file's bytes durable (fdatasync); unless `cached`, then let the kernel drop its pages.

    A stored file is written once and read again later if ever (by a reader's viewer, after QC), so its pages in
    the page cache would only push out what readers use now (frames being viewed, the index's tables); clean after
    the flush, they go at once, and the next write reuses them. A quarantine copy stays `cached`: its processing
    reads it back within seconds. Where the hint is unknown (not Linux, tmpfs) only the flush happens. Measured
    (`bench ingest`'s processing, files interleaved): 4.2 ms of CPU a CT slice against 5.1 with the pages kept,
    as a virtual machine's fresh pages cost several times reused ones to write into."""
    os.fdatasync(fd)
    if not cached and _fadvise_dontneed is not None:
        with suppress(OSError):  # a hint: a file system that refuses it still has the bytes on disk
            os.posix_fadvise(fd, 0, 0, _fadvise_dontneed)


def _read_back_soon(storage) -> bool:
    """Whether files written to `storage` are read again within seconds: the quarantine's, by their processing."""
    quarantine = quarantine_storage()
    return storage is quarantine or getattr(storage, "location", None) == getattr(quarantine, "location", "")


_fadvise_dontneed = getattr(os, "POSIX_FADV_DONTNEED", None) if hasattr(os, "posix_fadvise") else None


CHUNK = 1 << 20  # what a file-like source is read in (write_once_file)


def _parts(data: bytes | BinaryIO) -> Iterator[memoryview | bytes]:
    """Bytes in two halves (so that a fault hook can stop a write half-way), or a file-like source from where it
    stands, a chunk at a time: never the whole of it in memory."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        yield view[: len(view) // 2]
        yield view[len(view) // 2 :]
        return
    while chunk := data.read(CHUNK):
        yield chunk


def _write_temporary(
    storage: FileSystemStorage,
    key: str,
    data: bytes | BinaryIO,
    *,
    hashed: bool = False,
    durable: bool = True,
    sha256: str | None = None,
) -> Staged:
    """The bytes (or a file-like source's, read from where it stands) in a temporary file beside the final path,
    durable (fdatasync: data and size on disk) unless `durable` is False: then their write-back is only started,
    and `_make_durable` must follow before a link.

    With `hashed`, their SHA-256 is computed in the same pass over the bytes as the write; `sha256`: the caller
    knows it already (it is not computed again).
    """
    final = storage.path(key)
    directory = os.path.dirname(final)
    _makedirs_durable(directory)
    temporary = os.path.join(directory, f".{os.path.basename(final)}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    cached = _read_back_soon(storage)
    digest = hashlib.sha256() if hashed and sha256 is None else None
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            for n, part in enumerate(_parts(data)):
                if n == 1:
                    _fault("mid_write", key)
                if digest is not None:
                    digest.update(part)
                while part:
                    part = part[os.write(fd, part) :]
            if durable:
                _flush(fd, cached=cached)
            else:
                _start_writeback(fd)
        finally:
            os.close(fd)
        if storage.file_permissions_mode is not None:
            os.chmod(temporary, storage.file_permissions_mode)
        staged = Staged(key, final, temporary, digest.hexdigest() if digest is not None else sha256, cached)
        if durable:
            _fault("before_link", key)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    return staged


def _make_durable(staged: Staged) -> None:
    """Wait until a staged file's bytes are on disk (its write-back was started when it was written)."""
    try:
        fd = os.open(staged.temporary, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            _flush(fd, cached=staged.cached)  # on Linux any descriptor of the file flushes it
        finally:
            os.close(fd)
        _fault("before_link", staged.key)
    except BaseException:
        _unlink_quietly(staged.temporary)
        raise


def _unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _s3_put(storage, key: str, data: bytes | BinaryIO, *, only_if_absent: bool) -> bool:
    """One PUT through django-storages' S3 client; with only_if_absent, a conditional put that never replaces."""
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    name = storage._normalize_name(clean_name(key))  # the bucket key, under the storage's location
    params = storage.get_object_parameters(name)  # server-side encryption and the like (S3_SSE)
    params.setdefault("ContentType", "application/dicom" if key.endswith(".dcm") else "application/octet-stream")
    if storage.default_acl:
        params["ACL"] = storage.default_acl
    if only_if_absent:
        params["IfNoneMatch"] = "*"
    _fault("mid_write", key)
    try:
        # One PUT (files here are well under S3's 5 GB limit for it): the object appears whole or not at all.
        storage.bucket.Object(name).put(Body=data, **params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


def _is_s3(storage) -> bool:
    return hasattr(storage, "bucket") and hasattr(storage, "get_object_parameters")


def _link(staged: Staged) -> bool:
    """Give a durable temporary file its final name, never replacing one; False if the name exists.

    One rename that refuses an existing name (Linux renameat2 with RENAME_NOREPLACE) where the file system has it;
    elsewhere a hard link, which refuses one too, and the temporary name's unlink."""
    global _rename_noreplace
    if _rename_noreplace is not None:
        try:
            _rename_noreplace(staged.temporary, staged.final)
        except FileExistsError:
            _unlink_quietly(staged.temporary)
            return False
        except NotImplementedError:  # this file system has no such rename: links from now on
            _rename_noreplace = None
        except BaseException:
            _unlink_quietly(staged.temporary)
            raise
        else:
            _fsync_dir(os.path.dirname(staged.final))
            return True
    try:
        os.link(staged.temporary, staged.final)
    except FileExistsError:
        return False
    finally:
        _unlink_quietly(staged.temporary)
    _fsync_dir(os.path.dirname(staged.final))
    return True


def _libc_rename_noreplace() -> Callable[[str, str], None] | None:
    """renameat2(old, new, RENAME_NOREPLACE) from the C library (Linux, glibc 2.28 or later), or None.
    Raises FileExistsError if `new` exists, NotImplementedError if the file system or kernel has no such rename."""
    function = _linux_libc("renameat2", (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint))
    if function is None:
        return None
    at_fdcwd, noreplace = -100, 1

    def rename(old: str, new: str) -> None:
        if function(at_fdcwd, os.fsencode(old), at_fdcwd, os.fsencode(new), noreplace) == 0:
            return
        error = ctypes.get_errno()
        if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise NotImplementedError("no RENAME_NOREPLACE here")
        raise OSError(error, os.strerror(error), new)  # FileExistsError for EEXIST

    return rename


_rename_noreplace = _libc_rename_noreplace()


def _write_once(storage, key: str, data: bytes, *, staged: Staged | None = None) -> bool:
    """Create `key` with `data` (or the file `staged` for it), whole or not at all; False if it already exists.
    Never overwrites."""
    if isinstance(storage, FileSystemStorage):
        return _link(staged if staged is not None else _write_temporary(storage, key, data))
    if _is_s3(storage):
        return _s3_put(storage, key, data, only_if_absent=True)
    raise TypeError(f"no atomic write-once for {type(storage).__name__}; use the file system or S3")


def _replace(storage, key: str, data: bytes) -> None:
    """Put `data` under `key` whole, replacing what is there (only for keys named by their content's hash)."""
    if isinstance(storage, FileSystemStorage):
        staged = _write_temporary(storage, key, data)
        try:
            os.replace(staged.temporary, staged.final)
        except BaseException:
            _unlink_quietly(staged.temporary)
            raise
        _fsync_dir(os.path.dirname(staged.final))
    elif _is_s3(storage):
        _s3_put(storage, key, data, only_if_absent=False)
    else:
        raise TypeError(f"no atomic write for {type(storage).__name__}; use the file system or S3")


def stored_sha256(storage, key: str) -> str | None:
    """The SHA-256 of the file stored under `key`, read a chunk at a time; None if there is none."""
    try:
        with storage.open(key, "rb") as f:
            digest = hashlib.sha256()
            for chunk in _parts(f):
                digest.update(chunk)
            return digest.hexdigest()
    except FileNotFoundError:  # django-storages' S3 backend answers a missing key the same way
        return None


_written: ContextVar[list[str] | None] = ContextVar("ctims_store_written", default=None)


@contextmanager
def stored_files_undone_on_error() -> Iterator[None]:
    """Files that store_instance first writes inside the block are deleted again if the block raises.

    Wrap it around the transaction that indexes them: when their rows roll back, no file is left in the
    store that nothing points to. (A rollback of a transaction further out is not seen here.)
    """
    token = _written.set([])
    try:
        yield
    except BaseException:
        storage = image_storage()
        for key in _written.get():
            storage.delete(key)
        raise
    finally:
        _written.reset(token)


class DifferentFileStored(FileExistsError):
    """Another file is already stored under these UIDs: the store never replaces a file."""


def write_once(
    storage,
    key: str,
    data: bytes,
    *,
    refusal: str = "a different file is already stored here",
    staged: Staged | None = None,
) -> bool:
    """Write `data` under `key` once, whole or not at all: True if written now, False if the same bytes were there.

    Writing the same bytes again is a no-op (a retried task); other bytes never replace a file and raise
    DifferentFileStored(`refusal`). Because writes are atomic, what is found under `key` is always a whole
    file: a mismatch is a different file, never the leftover of an interrupted write. `staged`: these bytes
    already written for `key` by StagedWrites (on a file system), which only need their final name.
    """
    if _write_once(storage, key, data, staged=staged):
        return True
    sha256 = staged.sha256 if staged is not None and staged.sha256 else hashlib.sha256(data).hexdigest()
    if stored_sha256(storage, key) != sha256:
        raise DifferentFileStored(refusal)
    return False


def write_once_file(
    storage, key: str, source: BinaryIO, *, refusal: str = "a different file is already stored here"
) -> tuple[str, int]:
    """`write_once` of what the seekable file `source` holds from where it stands, read a chunk at a time, never
    whole in memory (a sponsor's transfer package can be hundreds of MB); returns its SHA-256 and size."""
    start = source.tell()
    if isinstance(storage, FileSystemStorage):
        staged = _write_temporary(storage, key, source, hashed=True)  # hashed in the same pass as the write
        sha256, size = staged.sha256, source.tell() - start
        written = _link(staged)
    elif _is_s3(storage):
        digest = hashlib.sha256()
        for chunk in _parts(source):
            digest.update(chunk)
        sha256, size = digest.hexdigest(), source.tell() - start
        source.seek(start)
        written = _s3_put(storage, key, source, only_if_absent=True)  # botocore streams a file-like body
    else:
        raise TypeError(f"no atomic write-once for {type(storage).__name__}; use the file system or S3")
    if not written and stored_sha256(storage, key) != sha256:
        raise DifferentFileStored(refusal)
    return sha256, size


class InlineExecutor(Executor):
    """Runs each submitted call at once in the calling thread (no I/O threads): the same code paths, with no
    thread beside the caller."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - raised where the result is asked for, as from a thread
            future.set_exception(exc)
        return future


IO_STAGES = ("receive", "processing")
_io_pools: dict[str, tuple[int, int, Executor]] = {}
_io_pool_lock = threading.Lock()


def io_pool(stage: str) -> Executor:
    """This process's threads for the file writes, flushes, reads and SHA-256 of one ingest stage: work that
    releases the GIL, so it runs on another core while the calling thread goes on (parsing a request, or
    de-identifying the next file). Sized by settings.INGEST_RECEIVE_IO_THREADS and INGEST_PROCESSING_IO_THREADS;
    with 0 the calling thread does the work itself (InlineExecutor). Made anew in a forked child (a Celery worker
    process), whose parent's threads did not come along."""
    if stage not in IO_STAGES:
        raise ValueError(f"no ingest stage {stage!r}")
    size = getattr(settings, f"INGEST_{stage.upper()}_IO_THREADS")
    state = _io_pools.get(stage)
    if state is None or state[:2] != (os.getpid(), size):
        with _io_pool_lock:
            state = _io_pools.get(stage)
            if state is None or state[:2] != (os.getpid(), size):
                if state is not None and state[0] == os.getpid():
                    state[2].shutdown(wait=False)  # the setting changed (a test, a bench): its threads end
                pool = ThreadPoolExecutor(size, thread_name_prefix=f"ctims-{stage}-io") if size else InlineExecutor()
                state = _io_pools[stage] = (os.getpid(), size, pool)
    return state[2]


FLUSH_THREADS = 8
_flush_pools: dict[int, Executor] = {}


def flush_pool() -> Executor:
    """This process's threads that wait for staged files to reach the disk (fdatasync), whatever the I/O threads
    of the stage: a flush is a wait, not work (it holds neither a core nor the GIL), and flushes that wait side by
    side share the file system's journal commits and the disk's cache flushes, where one after the other each
    waits for its own (30 files of 0.53 MB: about 8 ms side by side against 25 to 70 ms in turn on this host's
    disk). Made anew in a forked child, whose parent's threads did not come along."""
    pool = _flush_pools.get(os.getpid())
    if pool is None:
        with _io_pool_lock:
            pool = _flush_pools.get(os.getpid())
            if pool is None:
                _flush_pools.clear()  # a forked child's copy of its parent's pool has no threads
                pool = _flush_pools[os.getpid()] = ThreadPoolExecutor(FLUSH_THREADS, thread_name_prefix="ctims-flush")
    return pool


class StagedWrites:
    """Files written under temporary names as soon as their bytes exist, made durable only when they are taken.

    Used as a context manager around the work that produces and then stores a batch of files: `stage` each
    file when its bytes exist, and `take` it when it is stored, which waits for it to be on disk;
    `write_once(..., staged=...)` then only gives it its final name. A staged file is written (its SHA-256
    computed in the same pass, the kernel asked to start writing it to disk) by the I/O threads of the `stage`
    (`io_pool`), if it has any, while the caller goes on computing the next file; the waits for the disk come
    together at the end (`settle`), instead of one full wait per file; each file is still durable before its
    final name exists. An error of a write (a full disk, a fault hook) is raised where the file is settled or taken.
    Leaving the block waits for the writes still running and removes every temporary file it made that was not
    linked (a file not taken, or taken and then refused before its link). Off a file system (S3) nothing is
    staged: the one PUT happens at `write_once`.
    """

    def __init__(self, storage, *, stage: str) -> None:
        self.storage, self._pool = storage, io_pool(stage)
        self._stages = isinstance(storage, FileSystemStorage)
        self._staged: dict[str, Future[Staged]] = {}
        self._durable: set[str] = set()
        self._taken: list[str] = []  # temporary files handed out by `take`; linking removes each

    def __enter__(self) -> StagedWrites:
        return self

    def __exit__(self, *exc_info) -> None:
        for future in self._staged.values():
            with suppress(BaseException):  # a write that failed left no temporary file (_write_temporary)
                _unlink_quietly(future.result().temporary)
        self._staged.clear()
        for temporary in self._taken:
            _unlink_quietly(temporary)  # gone already once linked
        self._taken.clear()

    def stage(self, key: str, data: bytes, *, sha256: str | None = None) -> None:
        """Write `data` for `key` under a temporary name; its SHA-256 is computed in the same pass unless the
        caller knows it (`sha256`)."""
        if self._stages and key not in self._staged:
            self._staged[key] = self._pool.submit(
                _write_temporary, self.storage, key, data, hashed=sha256 is None, durable=False, sha256=sha256
            )

    def settle(self) -> None:
        """Wait until every file staged so far is on disk: their flushes run side by side (`flush_pool`) after all
        the writes, so the kernel has had them all at once. Call it before taking locks that others wait on."""
        flushes: dict[str, Future[None]] = {}
        errors: list[BaseException] = []
        for key in [key for key in self._staged if key not in self._durable]:
            try:
                flushes[key] = flush_pool().submit(_make_durable, self._staged[key].result())
            except BaseException as exc:  # noqa: BLE001 - its write failed (and left no temporary file)
                self._staged.pop(key)
                errors.append(exc)
        for key, flush in flushes.items():
            try:
                flush.result()
                self._durable.add(key)
            except BaseException as exc:  # noqa: BLE001 - every flush is waited for before one is raised
                self._staged.pop(key)  # _make_durable removed its temporary file
                errors.append(exc)
        if errors:
            raise errors[0]

    def take(self, key: str) -> Staged | None:
        """The temporary file staged for `key`, durable now and the caller's to link; None if none was staged."""
        future = self._staged.pop(key, None)
        if future is None:
            return None
        staged = future.result()
        if key not in self._durable:
            _make_durable(staged)
        self._durable.discard(key)
        self._taken.append(staged.temporary)
        return staged


def store_instance(key: str, data: bytes, *, staged: Staged | None = None) -> None:
    """Write a de-identified file once into the image store (write_once), remembered for stored_files_undone_on_error."""
    refusal = "a different file is already stored under this instance's UIDs"
    if write_once(image_storage(), key, data, refusal=refusal, staged=staged):
        written = _written.get()
        if written is not None:
            written.append(key)


def quarantine_key(upload_id: int, sha256: str) -> str:
    return f"{upload_id}/{sha256}"


def quarantine_put(
    upload_id: int, sha256: str, data: bytes, *, resent: bool = False, staged: Staged | None = None
) -> str:
    """Keep raw bytes under their own hash: a second copy of the same file is the same file.

    `resent`: the file was received before. Its copy is then checked first, and one that does not hash to its
    name (damaged, or discarded after failing its check) is replaced by these bytes, which the caller hashed:
    a resend always mends the quarantine. `staged`: these bytes already written for the key by StagedWrites.
    """
    key = quarantine_key(upload_id, sha256)
    storage = quarantine_storage()
    if resent:
        if stored_sha256(storage, key) != sha256:
            _replace(storage, key, data)
    elif not _write_once(storage, key, data, staged=staged) and stored_sha256(storage, key) != sha256:
        _replace(storage, key, data)
    return key


def quarantine_read(upload_id: int, sha256: str) -> bytes | None:
    try:
        with quarantine_storage().open(quarantine_key(upload_id, sha256), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def quarantine_read_verified(upload_id: int, sha256: str) -> bytes | None:
    """The quarantined bytes if they hash to the item's SHA-256; a missing or damaged copy is None (and discarded)."""
    data = quarantine_read(upload_id, sha256)
    if data is not None and hashlib.sha256(data).hexdigest() != sha256:
        quarantine_delete(upload_id, sha256)
        return None
    return data


class ReadAhead:
    """The verified quarantine copies of `shas`, in order (`quarantine_read_verified`), `depth` copies read ahead:
    with processing I/O threads, each is read and hashed by them while the caller works on the one before;
    without, the calling thread reads them itself."""

    def __init__(self, upload_id: int, shas: list[str], *, depth: int = 2) -> None:
        self._upload_id, self._shas, self._depth = upload_id, list(shas), depth
        self._pool = io_pool("processing")
        self._reads: list[Future[bytes | None]] = []
        self._fill()

    def _fill(self) -> None:
        while self._shas and len(self._reads) < self._depth:
            self._reads.append(self._pool.submit(quarantine_read_verified, self._upload_id, self._shas.pop(0)))

    def next(self) -> bytes | None:
        read = self._reads.pop(0)
        self._fill()
        return read.result()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quarantine_delete(upload_id: int, sha256: str) -> None:
    quarantine_storage().delete(quarantine_key(upload_id, sha256))


def temporary_leftovers_sweep(*, older_than: float = 3600.0) -> int:
    """Delete temporary files of writes that died before their final link; returns how many were removed.

    Only files older than `older_than` seconds go, so a write in progress is never touched.
    """
    removed, cutoff = 0, time.time() - older_than
    for storage in (image_storage(), quarantine_storage()):
        if not isinstance(storage, FileSystemStorage) or not os.path.isdir(storage.location):
            continue
        for path in Path(storage.location).rglob(f".*{TEMP_SUFFIX}"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed
