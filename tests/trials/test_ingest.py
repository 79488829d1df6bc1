"""Ingest: STOW-RS into an upload session, de-identification into the trial's space, store and index."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import storages
from django.urls import reverse
from pydicom.uid import generate_uid

from ctims.models import AuditEvent
from tests.trials.durability import (
    assert_end_state,
    multipart,
    open_upload,
    storage_keys,
    stow,
)
from trials.ingest import store
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Series, Study, Timepoint, Trial, Upload, UploadItem

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")


@pytest.fixture
def stores(stores_on_both_backends):
    """Every test of this module runs on both image stores: the file system and S3 (moto)."""
    return stores_on_both_backends


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=6, seed="ingest-tests")


def finish(api, user, upload_id):
    return api.as_(user).post(reverse("api-upload-finish", args=["ALPHA", upload_id]))


def test_a_coordinator_uploads_a_series_and_the_visit_becomes_uploaded(world, api, series, stores):
    response = open_upload(api, world.cora)
    assert response.status_code == 201
    upload_id = response.json()["id"]
    assert Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL").state == "uploading"
    response = stow(api, world.cora, upload_id, series)
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 6
    status = finish(api, world.cora, upload_id).json()
    assert status["state"] == "complete" and status["counts"]["accepted"] == 6
    assert status["timepoint_state"] == "uploaded"
    study = Study.objects.get()
    assert study.timepoint.subject.code == "ALPHA-SEO-001" and study.study_instance_uid.startswith("2.25.")
    assert Series.objects.get().modality == "CT"
    assert Instance.objects.count() == 6
    assert storage_keys(store.quarantine_storage()) == []
    assert_end_state()


def test_stored_files_are_de_identified_and_indexed_with_their_hash(world, api, series, stores):
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:2])
    instance = Instance.objects.order_by("instance_number").first()
    data = storages["images"].open(instance.storage_key).read()
    import hashlib

    assert hashlib.sha256(data).hexdigest() == instance.sha256 and len(data) == instance.size
    ds = pydicom.dcmread(io.BytesIO(data))
    assert str(ds.PatientName) == "ALPHA-SEO-001" and ds.PatientID == "ALPHA-SEO-001"
    assert ds.PatientIdentityRemoved == "YES" and ds.SOPInstanceUID == instance.sop_instance_uid
    assert b"HONG" not in data and b"PID0001" not in data
    original = pydicom.dcmread(io.BytesIO(series[0]))
    assert ds.PixelData == original.PixelData
    assert instance.rows == original.Rows and instance.image_position[2] == pytest.approx(0.0)


def test_sending_the_same_files_again_is_acknowledged_once(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:3])
    stow(api, world.cora, upload_id, series[:4])
    assert UploadItem.objects.filter(upload_id=upload_id).count() == 4
    assert Instance.objects.count() == 4


def test_a_second_upload_of_the_same_images_stores_no_duplicates(world, api, series):
    first = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, first, series)
    finish(api, world.cora, first)
    second = open_upload(api, world.cora).json()["id"]
    assert second != first
    stow(api, world.cora, second, series)
    status = finish(api, world.cora, second).json()
    assert status["counts"]["duplicate"] == 6 and Instance.objects.count() == 6
    assert status["timepoint_state"] == "uploaded"


def test_a_reload_resumes_the_open_upload(world, api, series):
    first = open_upload(api, world.cora).json()
    stow(api, world.cora, first["id"], series[:2])
    again = open_upload(api, world.cora).json()
    assert again["id"] == first["id"]
    assert {i["sha256"] for i in again["items"]} == {i.sha256 for i in UploadItem.objects.all()}


def test_a_completed_upload_says_what_the_visit_holds_as_the_page_would_after_a_reload(world, api, series):
    """The upload page shows it when an upload ends: after a reload mid-upload, it added the files stored before
    the reload to the upload's own count, which includes them (255 images shown for a visit of 150)."""
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:4])
    status = open_upload(api, world.cora).json()  # a reload: the same upload, resumed
    assert status["id"] == upload_id and status["timepoint_stored"] is None  # not complete: not counted
    stow(api, world.cora, upload_id, series)
    status = finish(api, world.cora, upload_id).json()
    assert status["counts"]["accepted"] == 6 and status["timepoint_stored"] == {"series": 1, "instances": 6}
    second = open_upload(api, world.cora).json()["id"]  # the same files again: nothing new
    stow(api, world.cora, second, series[:2])
    status = finish(api, world.cora, second).json()
    assert status["counts"]["duplicate"] == 2 and status["timepoint_stored"] == {"series": 1, "instances": 6}


def bad_files(series) -> dict[str, bytes]:
    def variant(**changes) -> bytes:
        ds = pydicom.dcmread(io.BytesIO(series[0]))
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for name, value in changes.items():
            if value is None:
                delattr(ds, name)
            else:
                setattr(ds, name, value)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()

    return {
        "truncated": series[1][: len(series[1]) // 3],
        "not_dicom": b"Scanner export notes: series 2 of 3.\n" * 40,
        "burned_in_annotation": variant(BurnedInAnnotation="YES"),
        "other_patient": variant(PatientID="SOMEONE-ELSE", PatientName="OTHER^PERSON"),
    }


def test_bad_files_are_rejected_with_their_reason_and_nothing_else_is_lost(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:2])  # the subject's own images come first
    bad = bad_files(series)
    response = stow(api, world.cora, upload_id, [series[2], *bad.values(), series[3]])
    assert response.status_code == 202
    assert len(response.json()["00081198"]["Value"]) == len(bad)
    status = finish(api, world.cora, upload_id).json()
    assert status["counts"]["accepted"] == 4 and status["counts"]["rejected"] == len(bad)
    by_sha = {i["sha256"]: i for i in status["items"]}
    import hashlib

    for expected_code, data in bad.items():
        item = by_sha[hashlib.sha256(data).hexdigest()]
        assert item["state"] == "rejected"
        assert item["code"].startswith(expected_code.split("_")[0]) or item["code"] == expected_code, item
        assert len(item["reason"]) > 20
        assert "SOMEONE-ELSE" not in item["reason"] and "OTHER" not in item["reason"]
    assert Instance.objects.count() == 4
    assert status["timepoint_state"] == "uploaded"


def test_a_non_ct_mr_object_is_rejected_by_sop_class(world, api):
    from pydicom.data import get_testdata_file

    sr = Path(get_testdata_file("test-SR.dcm")).read_bytes()
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, [sr])
    item = UploadItem.objects.get()
    assert item.state == "rejected" and item.code == "sop_class_not_accepted"


def test_an_upload_where_everything_is_rejected_leaves_the_visit_expected(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    response = stow(api, world.cora, upload_id, [b"not a dicom file at all" * 10])
    assert response.status_code == 409
    assert finish(api, world.cora, upload_id).json()["timepoint_state"] == "expected"


def test_a_broken_multipart_body_is_refused_without_storing(world, api):
    upload_id = open_upload(api, world.cora).json()["id"]
    response = api.as_(world.cora).generic(
        "POST",
        reverse("stow-upload", args=["ALPHA", upload_id]),
        b"garbage",
        content_type='multipart/related; type="application/dicom"; boundary=abc',
    )
    assert response.status_code == 400 and UploadItem.objects.count() == 0
    response = api.as_(world.cora).generic(
        "POST", reverse("stow-upload", args=["ALPHA", upload_id]), b"x", content_type="application/dicom"
    )
    assert response.status_code == 415


def test_the_same_patient_in_two_trials_gets_unlinkable_uids(world, api, series):
    from trials import services
    from trials.ingest.services import upload_open, upload_receive
    from trials.models import Role

    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:1])
    omega_site = world.other.sites.get()
    services.membership_grant(
        actor=world.otto, trial=world.other, user=world.otto, role=Role.SITE_COORDINATOR, sites=[omega_site]
    )
    timepoint = Timepoint.objects.get(subject__trial=world.other)
    upload = upload_open(actor=world.otto, timepoint=timepoint)
    upload_receive(upload=upload, files=series[:1])  # processed at once: on_commit_now
    alpha, omega = Instance.objects.order_by("series__study__trial__code")
    assert alpha.sop_instance_uid != omega.sop_instance_uid
    assert alpha.series.study.study_instance_uid != omega.series.study.study_instance_uid


def test_uploads_are_audited_without_identifying_values(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:2])
    finish(api, world.cora, upload_id)
    actions = list(AuditEvent.objects.filter(object_type="trials.upload").values_list("action", flat=True))
    assert actions == ["upload.open", "upload.finish", "upload.complete"]
    assert not any("HONG" in str(e.summary) or "PID0001" in str(e.summary) for e in AuditEvent.objects.all())


@pytest.mark.parametrize(
    ("who", "status"), [("cora", 201), ("bruno", 404), ("alice", 403), ("quinn", 403), ("rhea", 404), ("otto", 404)]
)
def test_only_the_sites_coordinator_may_open_an_upload(world, api, who, status):
    assert open_upload(api, world.people[who]).status_code == status


def test_a_closed_trial_opens_no_upload_and_receives_no_file(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]  # opened before the trial closed
    Trial.objects.filter(pk=world.trial.pk).update(status=Trial.Status.CLOSED)
    response = stow(api, world.cora, upload_id, series[:1])
    assert response.status_code == 409 and "ALPHA is closed" in response.json()["error"]["message"]
    assert UploadItem.objects.count() == 0
    Upload.objects.all().delete()
    Timepoint.objects.update(state=Timepoint.State.EXPECTED)
    response = open_upload(api, world.cora)
    assert response.status_code == 409 and "ALPHA is closed" in response.json()["error"]["message"]
    assert not Upload.objects.exists()


@pytest.mark.parametrize(("who", "status"), [("bruno", 404), ("alice", 403), ("rhea", 404), ("otto", 404)])
def test_only_the_sites_coordinator_may_send_files(world, api, series, who, status):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.people[who], upload_id, series[:1]).status_code == status
    assert UploadItem.objects.count() == 0


@pytest.mark.parametrize(
    ("who", "status"), [("cora", 200), ("alice", 200), ("quinn", 200), ("bruno", 404), ("sam", 404)]
)
def test_upload_progress_is_visible_within_scope(world, api, who, status):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert api.as_(world.people[who]).get(reverse("api-upload", args=["ALPHA", upload_id])).status_code == status


def test_a_visit_that_is_ready_for_read_refuses_new_uploads(world, api):
    Timepoint.objects.filter(subject__code="ALPHA-SEO-001", visit__code="BL").update(state="ready")
    response = open_upload(api, world.cora)
    assert response.status_code == 409 and "Ready for read" in response.json()["error"]["message"]
    assert Upload.objects.count() == 0


def test_the_dates_of_two_visits_keep_their_interval(world, api):
    template = real_ct_template(large=False)
    bl = synthesize_ct_series(template, slices=1, seed="v1", study_date=date(2026, 1, 5))
    w6 = synthesize_ct_series(template, slices=1, seed="v2", study_date=date(2026, 2, 16))
    for visit, files in (("BL", bl), ("W6", w6)):
        upload_id = open_upload(api, world.cora, visit=visit).json()["id"]
        stow(api, world.cora, upload_id, files)
    baseline, week6 = Study.objects.order_by("timepoint__visit__order")
    assert (week6.study_date - baseline.study_date).days == 42
    assert baseline.study_date != date(2026, 1, 5)


def test_a_stray_file_sent_first_does_not_claim_the_subject(world, api, series):
    stray = bad_files(series)["other_patient"]
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, [stray, *series])
    items = {i.sha256: i for i in UploadItem.objects.all()}
    import hashlib

    stray_item = items[hashlib.sha256(stray).hexdigest()]
    assert stray_item.code == "other_patient", (stray_item.state, stray_item.reason)
    assert Instance.objects.count() == len(series)


def test_a_browser_session_can_stow_with_its_csrf_token(world, series):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(world.cora)
    browser.get(reverse("home"))  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    upload_id = browser.post(
        reverse("api-upload-open", args=["ALPHA", "ALPHA-SEO-001", "BL"]), HTTP_X_CSRFTOKEN=token
    ).json()["id"]
    body, content_type = multipart(series[:2])
    response = browser.generic(
        "POST",
        reverse("stow-upload", args=["ALPHA", upload_id]),
        body,
        content_type=content_type,
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content
    without = browser.generic(
        "POST", reverse("stow-upload", args=["ALPHA", upload_id]), body, content_type=content_type
    )
    assert without.status_code == 403


def test_a_trials_private_safelist_keeps_those_private_attributes_only(world, api, series):
    ds = pydicom.dcmread(io.BytesIO(series[0]))
    block = ds.private_block(0x0019, "ACME CT RECON", create=True)
    block.add_new(0x10, "DS", "1.5")  # kept: a reconstruction parameter the trial asked for
    block.add_new(0x11, "LO", "HONG GILDONG RECON")  # removed
    buffer = io.BytesIO()
    ds.save_as(buffer)
    world.trial.deid_private_safelist = [["ACME CT RECON", 0x10]]
    world.trial.save(update_fields=["deid_private_safelist"])
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, [buffer.getvalue()])
    stored = pydicom.dcmread(storages["images"].open(Instance.objects.get().storage_key))
    kept = stored.private_block(0x0019, "ACME CT RECON")
    assert kept[0x10].value == "1.5"
    assert 0x10 in kept and 0x11 not in kept


def test_de_identification_options_are_frozen_once_images_are_stored(world, api, series):
    from ctims.exceptions import ValidationFailed
    from trials import services

    services.trial_update(actor=world.alice, trial=world.trial, deid_retain_device_identity=True)
    upload_id = open_upload(api, world.cora).json()["id"]
    stow(api, world.cora, upload_id, series[:1])
    with pytest.raises(ValidationFailed, match="cannot change once images are stored"):
        services.trial_update(actor=world.alice, trial=world.trial, deid_retain_device_identity=False)
    response = api.as_(world.alice).patch(
        reverse("api-trial", args=["ALPHA"]), {"deid_clean_descriptors": False}, format="json"
    )
    assert response.status_code == 400 and "deid_clean_descriptors" in response.json()["error"]["fields"]


def test_the_image_store_writes_whole_files_once_on_every_backend(stores):
    images = store.image_storage()

    def interrupted(key):
        raise SystemExit("the process dies half-way through the write")

    store.FAULT_HOOKS["mid_write"] = interrupted
    try:
        with pytest.raises(SystemExit):
            store.store_instance("ALPHA/1/2/3.dcm", b"x" * 1000)
    finally:
        store.FAULT_HOOKS.clear()
    assert not images.exists("ALPHA/1/2/3.dcm")  # nothing, rather than part of it
    store.store_instance("ALPHA/1/2/3.dcm", b"x" * 1000)
    store.store_instance("ALPHA/1/2/3.dcm", b"x" * 1000)  # the same bytes: a retried task
    with pytest.raises(store.DifferentFileStored):
        store.store_instance("ALPHA/1/2/3.dcm", b"y" * 1000)
    with images.open("ALPHA/1/2/3.dcm", "rb") as f:
        assert f.read() == b"x" * 1000


def test_a_resend_mends_a_damaged_quarantine_copy_on_every_backend(stores):
    import hashlib

    data = b"raw upload bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    quarantine = store.quarantine_storage()
    quarantine.save(store.quarantine_key(7, sha), io.BytesIO(data[:-5]))  # a damaged copy under the right name
    assert store.quarantine_read_verified(7, sha) is None and not quarantine.exists(store.quarantine_key(7, sha))
    quarantine.save(store.quarantine_key(7, sha), io.BytesIO(data[:-5]))
    store.quarantine_put(7, sha, data, resent=True)
    assert store.quarantine_read_verified(7, sha) == data
    quarantine.delete(store.quarantine_key(7, sha))
    quarantine.save(store.quarantine_key(7, sha), io.BytesIO(data[:-5]))
    store.quarantine_put(7, sha, data)  # a first copy finds a damaged one under its name: also mended
    assert store.quarantine_read_verified(7, sha) == data


def test_what_cleaning_removed_is_recorded_on_the_instance_by_attribute_and_reason_never_the_value(
    world, api, series, stores
):
    ds = pydicom.dcmread(io.BytesIO(series[0]))
    ds.StudyDescription = "CT CHEST W CONTRAST 010-1234-5678"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    upload_id = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, upload_id, [buffer.getvalue(), series[1]]).status_code == 200
    cleaned = Instance.objects.get(instance_number=ds.InstanceNumber)
    assert cleaned.deid_record == {"cleaned": [["StudyDescription", "phone number"]], "pixels": ""}
    assert "010-1234-5678" not in str(cleaned.deid_record)
    stored = pydicom.dcmread(storages["images"].open(cleaned.storage_key))
    assert stored.StudyDescription.strip() == "CT CHEST W CONTRAST"
    assert Instance.objects.exclude(pk=cleaned.pk).get().deid_record is None  # nothing cleaned, nothing recorded
