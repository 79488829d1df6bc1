"""The image store: de-identified Part 10 files written once, addressed by trial and UIDs; and the quarantine.

Every file is written atomically and durably, so a final key never holds a partial file whatever dies when:

- on a file system: the bytes go to a temporary name in the same directory and are fsynced; the final name is
  then created with `os.link`, which fails if it exists (it never replaces another file), the temporary name is
  unlinked and the directory fsynced. A process killed before the link leaves only a temporary file
  (`.<name>.<random>.tmp`), which `temporary_leftovers_sweep` removes; after the link the file is whole.
- on S3: one PUT is atomic (an object appears whole or not at all); write-once is a conditional put
  (`If-None-Match: *`), so two writers of one key cannot both succeed.

`FAULT_HOOKS` are named points inside a write where a test can kill the process or raise (never timing luck).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path

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


@contextmanager
def durable_batch() -> Iterator[None]:
    """Writes inside the block fsync each directory they touched once, when the block ends, instead of once per file.

    Leave the block before the commit that depends on the files (the acknowledgement, the index): the files
    are then durable, names included, before anything points to them. Each file's bytes are still fsynced
    before its final name is created, so no final name ever holds a partial file.
    """
    pending: set[str] = set()
    token = _pending_dirs.set(pending)
    try:
        yield
    finally:
        _pending_dirs.reset(token)
    for path in sorted(pending):
        _fsync_dir(path, now=True)


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


def _write_temporary(storage: FileSystemStorage, key: str, data: bytes) -> tuple[str, str]:
    """The bytes in a fsynced temporary file beside the final path; returns (temporary path, final path)."""
    final = storage.path(key)
    directory = os.path.dirname(final)
    _makedirs_durable(directory)
    temporary = os.path.join(directory, f".{os.path.basename(final)}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    half = len(data) // 2
    try:
        with open(temporary, "xb") as f:
            f.write(data[:half])
            _fault("mid_write", key)
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        if storage.file_permissions_mode is not None:
            os.chmod(temporary, storage.file_permissions_mode)
        _fault("before_link", key)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    return temporary, final


def _unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _s3_put(storage, key: str, data: bytes, *, only_if_absent: bool) -> bool:
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


def _write_once(storage, key: str, data: bytes) -> bool:
    """Create `key` with `data`, whole or not at all; False if it already exists. Never overwrites."""
    if isinstance(storage, FileSystemStorage):
        temporary, final = _write_temporary(storage, key, data)
        try:
            os.link(temporary, final)
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(temporary)
        _fsync_dir(os.path.dirname(final))
        return True
    if _is_s3(storage):
        return _s3_put(storage, key, data, only_if_absent=True)
    raise TypeError(f"no atomic write-once for {type(storage).__name__}; use the file system or S3")


def _replace(storage, key: str, data: bytes) -> None:
    """Put `data` under `key` whole, replacing what is there (only for keys named by their content's hash)."""
    if isinstance(storage, FileSystemStorage):
        temporary, final = _write_temporary(storage, key, data)
        try:
            os.replace(temporary, final)
        except BaseException:
            _unlink_quietly(temporary)
            raise
        _fsync_dir(os.path.dirname(final))
    elif _is_s3(storage):
        _s3_put(storage, key, data, only_if_absent=False)
    else:
        raise TypeError(f"no atomic write for {type(storage).__name__}; use the file system or S3")


def _sha256_of(storage, key: str) -> str | None:
    try:
        with storage.open(key, "rb") as f:
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1024 * 1024), b""):
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


def store_instance(key: str, data: bytes) -> None:
    """Write a de-identified file once. Writing the same bytes again is a no-op (a retried task); other bytes never replace it.

    Because writes are atomic, what is found under `key` is always a whole file: a mismatch is a different
    file under the same UIDs, never the leftover of an interrupted write.
    """
    storage = image_storage()
    if _write_once(storage, key, data):
        written = _written.get()
        if written is not None:
            written.append(key)
        return
    if _sha256_of(storage, key) != hashlib.sha256(data).hexdigest():
        raise DifferentFileStored("a different file is already stored under this instance's UIDs")


def quarantine_key(upload_id: int, sha256: str) -> str:
    return f"{upload_id}/{sha256}"


def quarantine_put(upload_id: int, sha256: str, data: bytes, *, resent: bool = False) -> str:
    """Keep raw bytes under their own hash: a second copy of the same file is the same file.

    `resent`: the file was received before. Its copy is then checked first, and one that does not hash to its
    name (damaged, or discarded after failing its check) is replaced by these bytes, which the caller hashed:
    a resend always mends the quarantine.
    """
    key = quarantine_key(upload_id, sha256)
    storage = quarantine_storage()
    if resent:
        if _sha256_of(storage, key) != sha256:
            _replace(storage, key, data)
    elif not _write_once(storage, key, data) and _sha256_of(storage, key) != sha256:
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
