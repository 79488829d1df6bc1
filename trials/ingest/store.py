"""The image store: de-identified Part 10 files written once, addressed by trial and UIDs; and the quarantine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages


def image_storage():
    return storages["images"]


def quarantine_storage():
    return storages["quarantine"]


def instance_key(trial_code: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{trial_code}/{study_uid}/{series_uid}/{sop_uid}.dcm"


def _write_once(storage, key: str, data: bytes) -> bool:
    """Create `key` with `data`; False if it already exists. Never overwrites.

    On the local file system this is one exclusive open (the hot path of ingest); other backends go through
    the storage API.
    """
    if isinstance(storage, FileSystemStorage):
        path = storage.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
        if storage.file_permissions_mode is not None:
            os.chmod(path, storage.file_permissions_mode)
        return True
    if storage.exists(key):
        return False
    saved = storage.save(key, ContentFile(data))
    if saved != key:  # another writer created `key` between exists() and save()
        storage.delete(saved)
        return False
    return True


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


def store_instance(key: str, data: bytes) -> None:
    """Write a de-identified file once. Writing the same bytes again is a no-op (a retried task); other bytes never replace it."""
    storage = image_storage()
    if _write_once(storage, key, data):
        written = _written.get()
        if written is not None:
            written.append(key)
        return
    with storage.open(key, "rb") as existing:
        if hashlib.sha256(existing.read()).digest() != hashlib.sha256(data).digest():
            raise FileExistsError("a different file is already stored under this instance's UIDs")


def quarantine_key(upload_id: int, sha256: str) -> str:
    return f"{upload_id}/{sha256}"


def quarantine_put(upload_id: int, sha256: str, data: bytes) -> str:
    """Keep raw bytes under their own hash: a second copy of the same file is the same file."""
    key = quarantine_key(upload_id, sha256)
    _write_once(quarantine_storage(), key, data)
    return key


def quarantine_read(upload_id: int, sha256: str) -> bytes | None:
    try:
        with quarantine_storage().open(quarantine_key(upload_id, sha256), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def quarantine_delete(upload_id: int, sha256: str) -> None:
    quarantine_storage().delete(quarantine_key(upload_id, sha256))
