"""A file that would file an image under a study of another visit, or a series under another study, is rejected
with a code that names which conflict it is, and a reason that says it."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

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
    """The file's item in its latest upload."""
    return UploadItem.objects.filter(sha256=hashlib.sha256(data).hexdigest()).latest("pk")


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


def test_the_same_files_sent_again_for_another_visit_are_rejected_as_the_wrong_visit_not_already_stored(
    world, baseline
):
    timepoint = upload_files(world.cora, "ALPHA-SEO-001", baseline, visit="W6")
    for data in baseline:
        item = UploadItem.objects.filter(upload__timepoint=timepoint).get(sha256=hashlib.sha256(data).hexdigest())
        assert (item.state, item.code) == ("rejected", "wrong_timepoint")
        assert item.reason == "This study was already uploaded for Baseline of ALPHA-SEO-001."
        assert item.instance is None
    timepoint.refresh_from_db()
    assert timepoint.state == "expected"  # week 6 holds no image


def test_a_changed_file_under_a_stored_instances_uids_is_rejected_not_called_already_stored(world, baseline):
    """A corrected re-export that keeps its UIDs: the stored image is not replaced (the store writes once), and
    the coordinator is told so, not that the file is already stored."""
    corrected = changed(baseline[0], SliceThickness="2.5", SeriesDescription="CHEST 2.5MM")
    same = baseline[1]  # sent again as it was: already stored
    upload_files(world.cora, "ALPHA-SEO-001", [corrected, same])
    item = item_of(corrected)
    assert (item.state, item.code) == ("rejected", "instance_conflict")
    assert item.reason.startswith("A different image with the same UIDs is already stored")
    assert item_of(same).state == "duplicate"
    assert Instance.objects.count() == 2


def test_the_very_file_sent_again_after_the_engine_changed_is_already_stored_not_a_conflict(
    world, baseline, monkeypatch
):
    """An upgrade may write the same input's output differently (a new rule of the profile): the file the site
    sends again is recognised by the hash of what it sent."""
    from trials.ingest import reverify

    engine = reverify.deidentify
    monkeypatch.setattr(  # the same instance, written with other bytes
        reverify,
        "deidentify",
        lambda data, **kwargs: replace(engine(data, **kwargs), data=engine(data, **kwargs).data + b"\0\0"),
    )
    upload_files(world.cora, "ALPHA-SEO-001", [baseline[0]])
    item = item_of(baseline[0])
    assert (item.state, item.code) == ("duplicate", "")


def test_two_different_files_under_one_sops_uids_in_one_upload_store_the_first_and_refuse_the_second(world):
    """The second meets the first while the batch still holds it unsaved (a client found this: it was rejected
    as 'unreadable' with the ORM's own error)."""
    first = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="filing-same-batch")[0]
    second = changed(first, SliceThickness="2.5")
    upload_files(world.cora, "ALPHA-SEO-001", [first, second])
    assert (item_of(first).state, item_of(second).state, item_of(second).code) == (
        "accepted",
        "rejected",
        "instance_conflict",
    )
    assert Instance.objects.count() == 1
