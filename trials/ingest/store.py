"""The image store: de-identified Part 10 files written once, addressed by trial and UIDs; and the quarantine."""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import storages


def image_storage():
    return storages["images"]


def quarantine_storage():
    return storages["quarantine"]


def instance_key(trial_code: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{trial_code}/{study_uid}/{series_uid}/{sop_uid}.dcm"


def store_instance(key: str, data: bytes) -> None:
    """Write a de-identified file once. Writing the same bytes again is a no-op (a retried task); other bytes never replace it."""
    storage = image_storage()
    if storage.exists(key):
        with storage.open(key, "rb") as existing:
            if hashlib.sha256(existing.read()).hexdigest() == hashlib.sha256(data).hexdigest():
                return
        raise FileExistsError("a different file is already stored under this instance's UIDs")
    saved = storage.save(key, ContentFile(data))
    if saved != key:  # another writer got there between exists() and save(); keep theirs only if identical
        storage.delete(saved)
        store_instance(key, data)


def quarantine_key(upload_id: int, sha256: str) -> str:
    return f"{upload_id}/{sha256}"


def quarantine_put(upload_id: int, sha256: str, data: bytes) -> str:
    storage = quarantine_storage()
    key = quarantine_key(upload_id, sha256)
    if not storage.exists(key):
        storage.save(key, ContentFile(data))
    return key


def quarantine_read(upload_id: int, sha256: str) -> bytes | None:
    storage = quarantine_storage()
    key = quarantine_key(upload_id, sha256)
    if not storage.exists(key):
        return None
    with storage.open(key, "rb") as f:
        return f.read()


def quarantine_delete(upload_id: int, sha256: str) -> None:
    quarantine_storage().delete(quarantine_key(upload_id, sha256))
