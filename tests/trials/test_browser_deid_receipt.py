"""Files the site's browser de-identified are settled in the request that brings them: no quarantine copy,
no processing task, and nothing acknowledged that is not stored and indexed (or rejected with its reason).

Every test runs on the file system and on S3 (moto).
"""

from __future__ import annotations

import hashlib
import io
import threading

import pydicom
import pytest
from django.db import connection

from tests.conftest import build_world
from tests.trials.durability import assert_end_state, refuse_the_index_row_of_one_file, storage_keys
from trials.deid.pseudonym import PseudonymSpace
from trials.dicomweb import wado
from trials.ingest import services, store
from trials.ingest.services import upload_batch_process, upload_finish, upload_receive
from trials.models import BrowserDeidRecord, Instance, Trial, Upload, UploadItem

from .test_browser_deid_api import (
    browser_trial,
    in_browser,
    key_of,
    open_upload,
    send_records,
    series,
    stow_with_records,
)

__all__ = ["browser_trial", "series"]  # fixtures of the browser path, shared
pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")


@pytest.fixture
def stores(stores_on_both_backends):
    return stores_on_both_backends


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
    world, api, sent, monkeypatch
):
    upload_id, outputs, records = sent
    real, stored = store.store_instance, []

    def dies_at_the_third(key, data, **staged):
        if len(stored) == 2:
            raise SystemExit("the web process dies while the request stores its files, before its commit")
        real(key, data, **staged)
        stored.append(key)

    monkeypatch.setattr(store, "store_instance", dies_at_the_third)
    with pytest.raises(SystemExit):
        stow_with_records(api, world.cora, upload_id, records, outputs)
    monkeypatch.setattr(store, "store_instance", real)
    assert len(stored) == 2
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


def test_two_requests_bringing_the_same_files_at_once_store_and_acknowledge_each_once(
    transactional_db, stores, series, api, monkeypatch
):
    """The page resends a batch whose first request is still running: both have re-verified and written the
    files before either commits; the first stores them, the second acknowledges them as they are."""
    world = build_world()
    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    assert send_records(api, world.cora, upload_id, records).status_code == 200
    second_written, first = threading.Event(), []
    real_settle, real_store = store.StagedWrites.settle, store.store_instance

    def settle(self):
        real_settle(self)
        if threading.current_thread().name == "second":
            second_written.set()

    def hold_the_first(key, data, **staged):
        if threading.current_thread().name == "first" and not first:
            first.append(key)
            assert second_written.wait(60), "the second request never wrote its files"
        real_store(key, data, **staged)

    monkeypatch.setattr(store.StagedWrites, "settle", settle)
    monkeypatch.setattr(store, "store_instance", hold_the_first)
    answers, errors = {}, []

    def request():
        try:
            upload = Upload.objects.select_related("timepoint__subject__trial").get(pk=upload_id)
            answers[threading.current_thread().name] = upload_receive(upload=upload, files=outputs)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, name=name) for name in ("first", "second")]
    threads[0].start()
    while not first and threads[0].is_alive():
        threads[0].join(0.01)  # until the first request is inside its transaction, holding its rows
    threads[1].start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert first, "the first request never stored a file"
    for name in ("first", "second"):
        assert sorted(i.state for i in answers[name]) == ["accepted"] * 4, name
    assert UploadItem.objects.count() == 4 and Instance.objects.count() == 4
    assert_end_state()


def test_a_waiting_file_whose_index_row_the_database_refuses_is_rejected_not_left_waiting(
    world, api, sent, monkeypatch
):
    upload_id, outputs, records = sent
    upload = Upload.objects.get(pk=upload_id)
    sha = hashlib.sha256(outputs[0]).hexdigest()
    UploadItem.objects.create(upload=upload, sha256=sha, size=len(outputs[0]), state=UploadItem.State.RESEND)
    refuse_the_index_row_of_one_file(monkeypatch)
    response = stow_with_records(api, world.cora, upload_id, records[:1], outputs[:1])
    assert response.status_code == 409, response.content
    item = UploadItem.objects.get(sha256=sha)
    assert (item.state, item.code) == ("rejected", "unreadable")
    upload_finish(actor=world.cora, upload=upload)
    assert_end_state()


def test_a_file_rejected_in_its_request_is_named_by_its_part_and_reason_never_by_its_uids(world, api, series, sent):
    """PS3.18 Table I.1-1 asks a Failed SOP Sequence item for the instance's UIDs, but a rejected file's may be
    the originals (here a file sent as it was, with a record that passes the key check): the server cannot tell
    a pseudonym from an original, so it never echoes them. The client learns which file failed and why from
    the Warning header (its part number in the request and the reason the upload status shows), and the
    Failure Reason is the code of Table I.2-2 that fits."""
    upload_id, outputs, records = sent
    original = series[3]
    records[3] = {**records[3], "sha256": hashlib.sha256(original).hexdigest()}
    space = PseudonymSpace(bytes.fromhex(key_of(api, world.cora, upload_id).json()["subject_key"]))
    records[3]["key_check"] = space.key_check(records[3]["sha256"])
    response = stow_with_records(api, world.cora, upload_id, records, [*outputs[:2], original, outputs[2]])

    assert response.status_code == 202, response.content
    [failed] = response.json()["00081198"]["Value"]
    assert failed == {"00081197": {"vr": "US", "Value": [0xC000]}}
    # Part 1 holds the records; the original is the fourth part.
    assert '"part 4 was rejected: not_deidentified: This file was not de-identified' in response["Warning"]
    sent_uids = pydicom.dcmread(io.BytesIO(original))
    for uid in (sent_uids.SOPInstanceUID, sent_uids.StudyInstanceUID, sent_uids.SeriesInstanceUID):
        assert uid.encode() not in response.content and uid not in response["Warning"]


def test_each_stored_files_dicom_json_is_made_in_its_request_as_its_first_read_makes_it(world, api, sent):
    """QC, when the upload is finished, and the first viewer then find each instance's metadata instead of reading
    its file back from the store (the step the coordinator waited for at the end)."""
    upload_id, outputs, records = sent
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    instances = list(Instance.objects.order_by("pk"))
    assert len(instances) == 4 and all(i.metadata is not None and i.pixel_layout is not None for i in instances)
    for instance in instances:
        kept = (instance.metadata, instance.pixel_layout)
        instance.metadata = instance.pixel_layout = None
        wado._make_metadata(instance)  # what a first read makes of the stored file
        assert (instance.metadata, instance.pixel_layout) == kept


def test_each_files_dicom_json_comes_from_its_re_verification_without_parsing_its_bytes_again(
    world, api, sent, monkeypatch
):
    """The re-verification has read the whole file already: the DICOM JSON and frame layout are made from that
    read (a second parse of the bytes for them was as much server time as the re-verification's own)."""
    upload_id, outputs, records = sent
    monkeypatch.setattr(services, "metadata_from_bytes", refuse("a second parse for the DICOM JSON"))
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    instances = list(Instance.objects.order_by("pk"))
    assert len(instances) == 4
    for instance in instances:
        kept = (instance.metadata, instance.pixel_layout)
        instance.metadata = instance.pixel_layout = None
        wado._make_metadata(instance)  # what a first read makes of the stored file
        assert (instance.metadata, instance.pixel_layout) == kept


def test_the_stow_answer_reads_back_no_instances_dicom_json(world, api, sent):
    """The answer names each stored instance by its UIDs: reading back the DICOM JSON just written with each
    (tens of kilobytes an instance) cost the server as much as the rest of the answer."""
    from django.test.utils import CaptureQueriesContext

    upload_id, outputs, records = sent
    with CaptureQueriesContext(connection) as queries:
        response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 4
    answer = [
        q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and "trials_uploaditem" in q["sql"]
    ]
    assert any('"trials_instance"."sop_instance_uid"' in sql for sql in answer)  # the answer's read of its items
    assert not [sql for sql in answer if '"trials_instance"."metadata"' in sql]


def test_a_file_whose_dicom_json_cannot_be_made_in_its_request_is_stored_all_the_same(world, api, sent, monkeypatch):
    upload_id, outputs, records = sent

    def fails(ds):
        raise TypeError("a value the JSON writer does not take")

    monkeypatch.setattr(wado, "dataset_json", fails)
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    assert sorted(UploadItem.objects.values_list("state", flat=True)) == ["accepted"] * 4
    assert list(Instance.objects.values_list("metadata", flat=True)) == [None] * 4  # made at its first read


def test_a_request_writes_its_files_records_rows_instances_and_dicom_json_in_one_transaction(world, api, sent):
    """Each write transaction of a request waits for the database's write lock and its flush to disk: the records
    that come with the files, their rows, the instances and their DICOM JSON are written together (a request
    that dies before that commit leaves none of them)."""
    upload_id, outputs, records = sent
    writes = []

    def note(execute, sql, params, many, context):
        words = [*sql.split(None, 3), "", ""]
        table = {"INSERT": words[2], "UPDATE": words[1], "DELETE": words[2]}.get(words[0].upper(), "").strip('"')
        if table.startswith("trials_"):
            writes.append((table, next((sid for sid in connection.savepoint_ids if sid), None)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(note):
        response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    tables = {table for table, _ in writes}
    assert {"trials_browserdeidrecord", "trials_uploaditem", "trials_instance"} <= tables
    assert len({where for _, where in writes}) == 1 and None not in dict(writes).values(), (
        writes
    )  # (a savepoint in a test)
    assert BrowserDeidRecord.objects.count() == 4
    assert all(i.metadata is not None and i.pixel_layout is not None for i in Instance.objects.all())
