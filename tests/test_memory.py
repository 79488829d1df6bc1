"""ctims.memory: a process keeps the pages of the image buffers it frees, so a stream of files is processed without
mapping each file's buffers again, page by page."""

from __future__ import annotations

import resource

import pytest

from ctims.memory import keep_large_buffers
from tests.conftest import received_in_quarantine
from trials.ingest import services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

PAGES_PER_SLICE = 512 * 512 * 2 // resource.getpagesize()  # one 512x512 16-bit buffer: 128 pages of 4 KiB


def test_glibc_takes_the_setting_and_zero_leaves_its_own_thresholds():
    assert keep_large_buffers(64 * 1024 * 1024) is True  # Debian's glibc
    assert keep_large_buffers(0) is False


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_processing_ct_slices_maps_no_new_pages_for_each_file(world, monkeypatch):
    """Measured as the kernel counts it (minor page faults), not by time. With glibc's own thresholds the 16 files
    took about 125 faults each, every file's buffers mapped anew after the last one's pages went back to the
    kernel; kept, they map a few buffers' pages at most (257 in a run beside the ingest tests: the
    heap growing once by two buffers)."""
    files = synthesize_ct_series(real_ct_template(large=True), slices=24, seed="memory")
    upload, ids = received_in_quarantine(monkeypatch, world.cora, files)  # the test runs the batches
    # A batch holds its files' outputs until it indexes them: the first batch of 8 grows the process to its size
    # once; the next two, of the same size, are measured.
    services.upload_batch_process(item_ids=ids[:8])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    services.upload_batch_process(item_ids=ids[8:16])
    services.upload_batch_process(item_ids=ids[16:])
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 8 * PAGES_PER_SLICE, f"{faults} page faults for 16 files"  # fewer than one buffer a file
    assert services.upload_counts(upload)["accepted"] == 24
