"""A file that would file an image under a study of another visit, or a series under another study, is rejected
with a code that names which conflict it is, and a reason that says it."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.conftest import upload_files
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, UploadItem

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")


def changed(data: bytes, **values) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    if "SOPInstanceUID" in values:
        ds.file_meta.MediaStorageSOPInstanceUID = values["SOPInstanceUID"]
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def item_of(data: bytes) -> UploadItem:
    return UploadItem.objects.get(sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def baseline(world) -> list[bytes]:
    files = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="filing")
    upload_files(world.cora, "ALPHA-SEO-001", files)
    assert Instance.objects.count() == 2
    return files


def test_a_study_already_uploaded_for_another_visit_is_rejected_as_the_wrong_visit(world, baseline):
    again = changed(baseline[0], SOPInstanceUID=generate_uid())  # the baseline study, sent for week 6
    upload_files(world.cora, "ALPHA-SEO-001", [again], visit="W6")
    item = item_of(again)
    assert (item.state, item.code) == ("rejected", "wrong_timepoint")
    assert item.reason == "This study was already uploaded for Baseline of ALPHA-SEO-001."


def test_a_series_already_stored_under_another_study_is_rejected_as_a_series_conflict(world, baseline):
    moved = changed(baseline[0], SOPInstanceUID=generate_uid(), StudyInstanceUID=generate_uid())
    upload_files(world.cora, "ALPHA-SEO-001", [moved])
    item = item_of(moved)
    assert (item.state, item.code) == ("rejected", "series_in_other_study")
    assert item.reason == "This series belongs to another study already stored."
    assert Instance.objects.count() == 2
