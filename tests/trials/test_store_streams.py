"""`store.write_once_file`: a file-like source written once under its key, a chunk at a time, on the file system
and on S3, with write-once's answers (the same bytes again: nothing; other bytes: refused)."""

from __future__ import annotations

import hashlib
import io
import tempfile
import tracemalloc
from contextlib import contextmanager

import pytest

from trials.ingest import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def stores(stores_on_both_backends):
    return stores_on_both_backends


@contextmanager
def source_of(data: bytes):
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.seek(0)
        yield handle


def test_a_file_source_is_stored_whole_and_answered_with_its_hash_and_size(stores):
    data = bytes(range(256)) * 9000  # 2.3 MB: several chunks
    with source_of(b"lead-in" + data) as source:
        source.seek(len(b"lead-in"))  # from where it stands, not from its start
        sha256, size = store.write_once_file(store.image_storage(), "T/pkg.zip", source)
    assert (sha256, size) == (hashlib.sha256(data).hexdigest(), len(data))
    with store.image_storage().open("T/pkg.zip", "rb") as stored:
        assert stored.read() == data


def test_the_same_bytes_again_are_no_change_and_other_bytes_are_refused(stores):
    with source_of(b"a" * 5000) as source:
        first = store.write_once_file(store.image_storage(), "T/pkg.zip", source)
    with source_of(b"a" * 5000) as source:
        assert store.write_once_file(store.image_storage(), "T/pkg.zip", source) == first
    with source_of(b"b" * 5000) as source, pytest.raises(store.DifferentFileStored, match="not this one"):
        store.write_once_file(store.image_storage(), "T/pkg.zip", source, refusal="not this one")
    with store.image_storage().open("T/pkg.zip", "rb") as stored:
        assert stored.read() == b"a" * 5000


def test_a_large_source_is_never_whole_in_memory(stores):
    """24 MB through the store holds at most a few chunks in Python's memory at once."""
    size = 24 * store.CHUNK
    with source_of(b"warm") as source:  # the S3 client loads its service models (some 10 MB) at its first call
        store.write_once_file(store.image_storage(), "T/warm.zip", source)
    with tempfile.TemporaryFile() as source:
        for n in range(24):
            source.write(bytes([n]) * store.CHUNK)
        source.seek(0)
        tracemalloc.start()
        try:
            _sha256, written = store.write_once_file(store.image_storage(), "T/big.zip", source)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert written == size
    assert peak < 6 * store.CHUNK, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB source"


def test_bytes_are_still_written_in_two_halves_for_the_mid_write_hook(stores, settings):
    """The fault hook that stops a write half-way still finds half the bytes written (file system only)."""
    if not isinstance(store.image_storage(), store.FileSystemStorage):
        assert store._is_s3(store.image_storage())
        return  # one PUT on S3: nothing is half-written there
    seen = []
    store.FAULT_HOOKS["mid_write"] = seen.append
    try:
        store.write_once(store.image_storage(), "T/x.dcm", b"x" * 1000)
        with source_of(b"y" * (store.CHUNK + 10)) as source:  # a source of two chunks stops after its first
            store.write_once_file(store.image_storage(), "T/y.zip", source)
    finally:
        store.FAULT_HOOKS.clear()
    assert seen == ["T/x.dcm", "T/y.zip"]
    assert io.BytesIO(store.image_storage().open("T/x.dcm").read()).getvalue() == b"x" * 1000
