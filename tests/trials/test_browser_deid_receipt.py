"""Files the site's browser de-identified are settled in the request that brings them: no quarantine copy,
no processing task, and nothing acknowledged that is not stored and indexed (or rejected with its reason).

Every test runs on the file system and on S3 (moto).
"""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from django.core.files.storage import FileSystemStorage

from tests.trials.durability import assert_end_state, refuse_the_index_row_of_one_file, storage_keys
from trials.deid.pseudonym import PseudonymSpace
from trials.ingest import services, store
from trials.ingest.services import upload_batch_process, upload_finish, upload_receive
from trials.models import Instance, Upload, UploadItem

from .test_browser_deid_api import browser_trial, in_browser, key_of, open_upload, series, stow_with_records

__all__ = ["browser_trial", "series"]  # fixtures of the browser path, shared
pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")


@pytest.fixture
def stores(stores_on_both_backends):
    return stores_on_both_backends


@pytest.fixture
def faults():
    yield store.FAULT_HOOKS
    store.FAULT_HOOKS.clear()


@pytest.fixture
def sent(world, api, browser_trial, series):
    """An open browser-path upload of ALPHA-SEO-001, and its four files as the site's browser makes them."""
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    return upload_id, outputs, records


def refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"{what} for a file the browser de-identified")

    return refused


def test_de_identified_files_are_settled_in_their_request_without_a_raw_copy_or_a_task(
    world, api, series, sent, monkeypatch
):
    upload_id, outputs, records = sent
    monkeypatch.setattr(store, "quarantine_put", refuse("a quarantine copy"))
    monkeypatch.setattr(services, "_enqueue_on_commit", lambda ids: ids and refuse("a processing task")())
    original = series[3]  # sent as it is, with a record: re-verification rejects it
    records[3] = {**records[3], "sha256": hashlib.sha256(original).hexdigest()}
    space = PseudonymSpace(bytes.fromhex(key_of(api, world.cora, upload_id).json()["subject_key"]))
    records[3]["key_check"] = space.key_check(records[3]["sha256"])
    response = stow_with_records(api, world.cora, upload_id, records, [*outputs[:3], original])

    # PS3.18 10.5.3: some stored, one failed, none waiting; the answer says which is which.
    assert response.status_code == 202, response.content
    body = response.json()
    assert len(body["00081199"]["Value"]) == 3 and len(body["00081198"]["Value"]) == 1
    states = {i.sha256: (i.state, i.code) for i in UploadItem.objects.all()}
    assert states == {
        **{hashlib.sha256(o).hexdigest(): ("accepted", "") for o in outputs[:3]},
        hashlib.sha256(original).hexdigest(): ("rejected", "not_deidentified"),
    }
    stored = {i.sha256 for i in Instance.objects.all()}
    assert stored == {hashlib.sha256(o).hexdigest() for o in outputs[:3]}
    assert storage_keys(store.quarantine_storage()) == []
    upload_finish(actor=world.cora, upload=Upload.objects.get(pk=upload_id))
    assert_end_state()


def test_a_request_that_dies_before_its_commit_acknowledges_nothing_and_its_resend_is_stored_once(
    world, api, sent, faults
):
    upload_id, outputs, records = sent
    linked = []

    def die(key):
        linked.append(key)
        if len(linked) == 3:
            raise SystemExit("the web process dies while the request links its stored files")

    # Where a stored file gets its final name: the link of its durable temporary file, or S3's one PUT.
    faults["before_link" if isinstance(store.image_storage(), FileSystemStorage) else "mid_write"] = die
    with pytest.raises(SystemExit):
        stow_with_records(api, world.cora, upload_id, records, outputs)
    faults.clear()
    assert not UploadItem.objects.exists()  # never acknowledged
    assert storage_keys(store.image_storage()) == []  # the two files linked before the death went with the rows
    response = stow_with_records(api, world.cora, upload_id, records, outputs)  # the site sends them again
    assert response.status_code == 200, response.content
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted"] * 4
    assert Instance.objects.count() == 4
    assert_end_state()


def test_a_file_a_killed_request_left_under_its_final_name_is_taken_by_the_resend(world, api, sent):
    """A request killed after the link and before its commit leaves the stored file and no row: the same bytes
    sent again are indexed under it."""
    upload_id, outputs, records = sent
    ds = pydicom.dcmread(io.BytesIO(outputs[0]), stop_before_pixels=True)
    key = store.instance_key(world.trial.code, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    store.store_instance(key, outputs[0])  # what the killed request left behind
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    assert Instance.objects.get(storage_key=key).sha256 == hashlib.sha256(outputs[0]).hexdigest()
    assert_end_state()


def test_a_file_whose_index_row_the_database_refuses_is_rejected_alone_at_receipt(world, api, sent, monkeypatch):
    upload_id, outputs, records = sent
    refuse_the_index_row_of_one_file(monkeypatch)
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 202, response.content
    states = sorted(UploadItem.objects.values_list("state", "code"))
    assert states == [("accepted", ""), ("accepted", ""), ("accepted", ""), ("rejected", "unreadable")]
    assert "could not be indexed" in UploadItem.objects.get(state="rejected").reason
    upload_finish(actor=world.cora, upload=Upload.objects.get(pk=upload_id))
    assert_end_state()


def test_a_file_waiting_in_quarantine_from_before_is_settled_by_its_resend_and_its_copy_deleted(world, api, sent):
    """A browser-path file received before files were settled at receipt waits with a quarantine copy; sent
    again, the request settles it and deletes the copy, and its late task finds nothing left to do."""
    upload_id, outputs, records = sent
    upload = Upload.objects.get(pk=upload_id)
    sha = hashlib.sha256(outputs[0]).hexdigest()
    store.quarantine_put(upload.pk, sha, outputs[0])
    waiting = UploadItem.objects.create(upload=upload, sha256=sha, size=len(outputs[0]))
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    waiting.refresh_from_db()
    assert waiting.state == "accepted" and waiting.instance is not None
    assert storage_keys(store.quarantine_storage()) == []
    upload_batch_process(item_ids=[waiting.pk])  # the task queued for it when it first arrived
    assert Instance.objects.count() == 4
    assert_end_state()


def test_a_file_sent_again_after_it_was_settled_is_acknowledged_once(world, api, sent):
    upload_id, outputs, records = sent
    assert stow_with_records(api, world.cora, upload_id, records, outputs[:2]).status_code == 200
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 4
    assert UploadItem.objects.count() == 4 and Instance.objects.count() == 4
    items = upload_receive(upload=Upload.objects.get(pk=upload_id), files=outputs[:1])
    assert [i.state for i in items] == ["accepted"]
    assert_end_state()
