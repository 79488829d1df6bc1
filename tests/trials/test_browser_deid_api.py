"""The browser path through the API: the subject key, the records, and ingest re-verifying what arrives."""

from __future__ import annotations

import hashlib
import io
import json

import jsonschema
import pydicom
import pytest
from django.core.files.storage import storages
from django.urls import reverse

from ctims.models import AuditEvent
from trials.deid import deidentify
from trials.deid.pseudonym import PseudonymSpace, subject_key
from trials.ingest.browser import deid_options_payload
from trials.ingest.services import trial_deid_options
from trials.ingest.subject_keys import subject_space
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Trial, Upload, UploadItem

from .test_browser_deid_identity import _entry
from .test_ingest import finish, stow

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")
SUBJECT = "ALPHA-SEO-001"


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=4, seed="browser-api")


@pytest.fixture
def browser_trial(world):
    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    world.trial.refresh_from_db()
    return world.trial


def open_upload(api, user, *, deid_path="browser", subject=SUBJECT):
    url = reverse("api-upload-open", args=["ALPHA", subject, "BL"])
    return api.as_(user).post(url, {"deid_path": deid_path}, format="json")


def key_of(api, user, upload_id):
    return api.as_(user).get(reverse("api-upload-key", args=["ALPHA", upload_id]))


def in_browser(key: dict, files: list[bytes]) -> tuple[list[bytes], list[dict]]:
    """What the upload page's worker does: the same engine, with the subject key from the endpoint."""
    entry = _entry()
    entry.configure(key["subject_key"], key["subject"], json.dumps(key["options"]))
    outputs, records = [], []
    for data in files:
        out, record = entry.run(data)
        outputs.append(out)
        records.append(json.loads(record))
    return outputs, records


def send_records(api, user, upload_id, records):
    body = {"records": [{k: r[k] for k in ("sha256", "key_check", "patient_hash", "actions")} for r in records]}
    return api.as_(user).post(reverse("api-upload-records", args=["ALPHA", upload_id]), body, format="json")


def test_a_coordinator_gets_the_subject_key_of_their_open_upload_and_never_the_trial_key(world, api, browser_trial):
    upload_id = open_upload(api, world.cora).json()["id"]
    response = key_of(api, world.cora, upload_id)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    body = response.json()
    trial_key = bytes(browser_trial.pseudonym_key)
    assert body["subject_key"] == subject_key(trial_key, SUBJECT).hex()
    assert trial_key.hex() not in response.content.decode()
    assert body["options"] == deid_options_payload(trial_deid_options(browser_trial))
    event = AuditEvent.objects.filter(action="upload.subject_key").get()
    assert body["subject_key"] not in json.dumps(event.summary) and trial_key.hex() not in json.dumps(event.summary)


@pytest.mark.parametrize(("who", "status"), [("bruno", 404), ("alice", 403), ("rhea", 404), ("otto", 404)])
def test_no_one_else_gets_the_subject_key(world, api, browser_trial, who, status):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert key_of(api, getattr(world, who), upload_id).status_code == status


def test_an_anonymous_request_gets_no_key(world, api, browser_trial, client):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert client.get(reverse("api-upload-key", args=["ALPHA", upload_id])).status_code in (401, 403)


def test_no_key_once_the_upload_is_closed_or_for_an_upload_sending_files_as_they_are(world, api, browser_trial):
    upload_id = open_upload(api, world.cora).json()["id"]
    finish(api, world.cora, upload_id)
    assert key_of(api, world.cora, upload_id).status_code == 409
    server_upload = open_upload(api, world.cora, deid_path="server").json()
    assert server_upload["deid_path"] == "server"
    assert key_of(api, world.cora, server_upload["id"]).status_code == 409


def test_a_trial_that_de_identifies_on_the_server_refuses_the_browser_path(world, api):
    response = open_upload(api, world.cora)
    assert response.status_code == 409 and "server" in response.json()["error"]["message"]


def test_a_browser_only_trial_refuses_files_sent_as_they_are(world, api):
    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.BROWSER)
    assert open_upload(api, world.cora, deid_path="server").status_code == 409
    assert open_upload(api, world.cora, deid_path="browser").status_code == 201


def test_a_trial_with_the_old_scheme_cannot_allow_the_browser_path(world, api):
    Trial.objects.filter(pk=world.trial.pk).update(pseudonym_scheme=Trial.PseudonymScheme.TRIAL)
    response = api.as_(world.alice).patch(reverse("api-trial", args=["ALPHA"]), {"deid_paths": "either"}, format="json")
    assert response.status_code == 400 and "deid_paths" in response.json()["error"]["fields"]


def test_files_de_identified_in_the_browser_are_stored_as_the_server_path_stores_them(
    world, api, browser_trial, series
):
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    assert send_records(api, world.cora, upload_id, records).status_code == 200
    assert stow(api, world.cora, upload_id, outputs).status_code == 200
    status = finish(api, world.cora, upload_id).json()
    assert status["counts"]["accepted"] == 4 and status["timepoint_state"] == "uploaded", status
    stored = {(i.sop_instance_uid, i.sha256) for i in Instance.objects.all()}

    space, options = subject_space(browser_trial, SUBJECT), trial_deid_options(browser_trial)
    server = [deidentify(f, space=space, subject_code=SUBJECT, options=options) for f in series]
    assert stored == {(r.sop_instance_uid, hashlib.sha256(r.data).hexdigest()) for r in server}
    instance = Instance.objects.first()
    assert storages["images"].open(instance.storage_key).read() in outputs
    subject = world.subjects[SUBJECT]
    subject.refresh_from_db()
    patient = str(pydicom.dcmread(io.BytesIO(series[0])).PatientID)
    assert subject.source_patient_hash == PseudonymSpace(
        subject_key(bytes(browser_trial.pseudonym_key), SUBJECT)
    ).patient_hash(patient)


def test_an_original_sent_on_the_browser_path_is_rejected_and_never_stored(world, api, browser_trial, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    key = key_of(api, world.cora, upload_id).json()
    space = PseudonymSpace(bytes.fromhex(key["subject_key"]))
    sha = hashlib.sha256(series[0]).hexdigest()
    record = {"sha256": sha, "key_check": space.key_check(sha), "patient_hash": "", "actions": {}}
    send_records(api, world.cora, upload_id, [record])
    stow(api, world.cora, upload_id, series[:2])
    finish(api, world.cora, upload_id)
    items = {i.sha256: i for i in UploadItem.objects.all()}
    assert items[sha].code == "not_deidentified"
    assert items[hashlib.sha256(series[1]).hexdigest()].code == "no_browser_record"
    assert not Instance.objects.exists()


def test_a_file_of_another_subject_is_rejected_by_its_key_check(world, api, browser_trial, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    other = dict(key_of(api, world.cora, upload_id).json())
    other["subject_key"] = subject_key(bytes(browser_trial.pseudonym_key), "ALPHA-SEO-002").hex()
    outputs, records = in_browser(other, series[:1])
    send_records(api, world.cora, upload_id, records)
    stow(api, world.cora, upload_id, outputs)
    finish(api, world.cora, upload_id)
    assert UploadItem.objects.get().code == "wrong_subject_key"


@pytest.mark.parametrize(
    "actions",
    [
        None,
        {"removed": "3"},
        {"removed\x00": 1},  # PostgreSQL's JSON holds no NUL: this was a server error
        {"HONG GILDONG": 1},  # a record holds counts of the engine's actions, never a value
        {"removed": 1, "unheard_of": 2},
    ],
)
def test_malformed_records_are_refused(world, api, browser_trial, actions):
    upload_id = open_upload(api, world.cora).json()["id"]
    bad = {"sha256": "x" * 64, "key_check": "0" * 64}
    if actions is not None:
        bad = {"sha256": "a" * 64, "key_check": "0" * 64, "actions": actions}
    response = api.as_(world.cora).post(
        reverse("api-upload-records", args=["ALPHA", upload_id]), {"records": [bad]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "A de-identification record is malformed."
    assert Upload.objects.get(pk=upload_id).browser_records.count() == 0


def published_record_schema() -> dict:
    """The schema the API publishes for one record the browser sends (POST .../records/)."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    body = schema["paths"]["/api/trials/{code}/uploads/{id}/records/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    return schema["components"]["schemas"][ref]["properties"]["records"]["items"]


def test_the_records_the_browser_makes_are_what_the_schema_publishes(world, api, browser_trial, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    _outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series[:2])
    sent = [{k: r[k] for k in ("sha256", "key_check", "patient_hash", "actions")} for r in records]
    published = published_record_schema()
    for record in sent:
        jsonschema.validate(record, published)
    answer = send_records(api, world.cora, upload_id, records)
    assert answer.status_code == 200
    assert answer.json() == {"received": 2}


@pytest.mark.parametrize(
    "record",
    [
        {"sha256": "x" * 64, "key_check": "0" * 64},
        {"sha256": "a" * 64},
        {"sha256": "a" * 64, "key_check": "0" * 64, "patient_hash": "A" * 64},
        {"sha256": "a" * 64, "key_check": "0" * 64, "actions": {"removed": "3"}},
        {"sha256": "a" * 64, "key_check": "0" * 64, "actions": {"HONG GILDONG": 1}},
    ],
)
def test_a_record_the_schema_refuses_the_api_refuses(world, api, browser_trial, record):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, published_record_schema())
    upload_id = open_upload(api, world.cora).json()["id"]
    response = api.as_(world.cora).post(
        reverse("api-upload-records", args=["ALPHA", upload_id]), {"records": [record]}, format="json"
    )
    assert response.status_code == 400


def test_no_page_answer_or_log_carries_the_trial_key_and_the_page_not_even_the_subject_key(
    world, api, browser_trial, series, caplog, client
):
    caplog.set_level("DEBUG")
    trial_key = bytes(browser_trial.pseudonym_key).hex()
    subject_hex = subject_key(bytes(browser_trial.pseudonym_key), SUBJECT).hex()
    upload = open_upload(api, world.cora).json()
    outputs, records = in_browser(key_of(api, world.cora, upload["id"]).json(), series[:2])
    answers = [
        send_records(api, world.cora, upload["id"], records).content,
        stow(api, world.cora, upload["id"], outputs).content,
        finish(api, world.cora, upload["id"]).content,
        api.as_(world.cora).get(reverse("api-upload", args=["ALPHA", upload["id"]])).content,
        api.as_(world.alice).get(reverse("api-trial", args=["ALPHA"])).content,
    ]
    client.force_login(world.cora)
    page = client.get(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "W6"])).content.decode()
    assert 'data-deid-paths="either"' in page and "dist/deid/worker.js" in page
    for text in [*(a.decode() for a in answers), page, caplog.text]:
        assert trial_key not in text and subject_hex not in text
    assert trial_key not in json.dumps(list(AuditEvent.objects.values_list("summary", flat=True)))


def test_a_trial_made_browser_only_mid_upload_closes_the_session_that_sent_files_as_they_were(
    world, api, browser_trial, series
):
    first = open_upload(api, world.cora, deid_path="server").json()
    stow(api, world.cora, first["id"], series[:1])
    Trial.objects.filter(pk=browser_trial.pk).update(deid_paths=Trial.DeidPaths.BROWSER)
    second = open_upload(api, world.cora).json()
    assert second["id"] != first["id"] and second["deid_path"] == "browser"
    assert Upload.objects.get(pk=first["id"]).state == Upload.State.COMPLETE


def test_a_resumed_session_keeps_the_path_its_files_were_sent_by(world, api, browser_trial, series):
    first = open_upload(api, world.cora, deid_path="server").json()
    stow(api, world.cora, first["id"], series[:1])
    again = open_upload(api, world.cora).json()
    assert again["id"] == first["id"] and again["deid_path"] == "server"


def test_the_trial_admin_chooses_where_images_are_de_identified_on_the_edit_page(world, client):
    client.force_login(world.alice)
    url = reverse("trial-edit", args=["ALPHA"])
    assert 'name="deid_paths"' in client.get(url).content.decode()
    form = {
        "title": "Alpha study",
        "sponsor": "Acme Pharma",
        "protocol_number": "AC-1",
        "status": "setup",
        "subject_code_pattern": world.trial.subject_code_pattern,
        "deid_retain_dates_modified": "on",
        "deid_clean_descriptors": "on",
        "deid_paths": "browser",
        "deid_burned_in_text": "reject",
    }
    assert client.post(url, form).status_code == 302
    assert Trial.objects.get(code="ALPHA").deid_paths == Trial.DeidPaths.BROWSER


RECORDS_TYPE = "application/vnd.ctims.deid-records+json"


def stow_with_records(api, user, upload_id, records, files):
    """One STOW request as the upload page sends it: the files' records in a leading part, then the files."""
    boundary = "ctims-records-test"
    body = {"records": [{k: r[k] for k in ("sha256", "key_check", "patient_hash", "actions")} for r in records]}
    parts = [f"--{boundary}\r\nContent-Type: {RECORDS_TYPE}\r\n\r\n".encode() + json.dumps(body).encode() + b"\r\n"]
    parts += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n" for f in files]
    return api.as_(user).generic(
        "POST",
        reverse("stow-upload", args=["ALPHA", upload_id]),
        b"".join(parts) + f"--{boundary}--\r\n".encode(),
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        HTTP_ACCEPT="application/dicom+json",
    )


def test_records_sent_in_the_stow_request_itself_let_its_files_be_stored(world, api, browser_trial, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    assert Upload.objects.get(pk=upload_id).browser_records.count() == 4
    status = finish(api, world.cora, upload_id).json()
    assert status["counts"]["accepted"] == 4 and status["timepoint_state"] == "uploaded", status


def test_malformed_records_in_a_stow_request_refuse_it_whole(world, api, browser_trial, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series[:1])
    response = stow_with_records(api, world.cora, upload_id, [{**records[0], "key_check": "nope"}], outputs)
    assert response.status_code == 400 and response.json()["error"]["code"]
    assert not UploadItem.objects.exists() and Upload.objects.get(pk=upload_id).browser_records.count() == 0


def test_records_in_a_stow_request_of_an_upload_sending_files_as_they_are_are_refused(
    world, api, browser_trial, series
):
    upload_id = open_upload(api, world.cora, deid_path="server").json()["id"]
    response = stow_with_records(api, world.cora, upload_id, [], series[:1])
    assert response.status_code == 409 and not UploadItem.objects.exists()


def test_a_session_sending_files_as_they_are_takes_none_once_the_trial_is_browser_only(
    world, api, browser_trial, series
):
    """The trial admin makes the trial browser-only while a session that sends files as they are is still open
    (a page left open, a script): files sent to it are refused, never received raw, until a session of the
    browser path takes them. The page's next open closed such a session; a request straight to it still landed."""
    first = open_upload(api, world.cora, deid_path="server").json()
    assert stow(api, world.cora, first["id"], series[:1]).status_code == 200
    Trial.objects.filter(pk=browser_trial.pk).update(deid_paths=Trial.DeidPaths.BROWSER)
    response = stow(api, world.cora, first["id"], series[1:2])
    assert response.status_code == 409
    assert "only images de-identified in the site's browser" in response.json()["error"]["message"]
    assert UploadItem.objects.filter(upload_id=first["id"]).count() == 1


def test_a_browser_session_gets_no_key_and_takes_no_file_once_the_trial_de_identifies_on_the_server(
    world, api, browser_trial, series
):
    """The trial admin chooses server-side de-identification while a browser session is open: it no longer hands
    out the subject key nor takes files, and the page's next open starts a session that sends files as they are
    (it resumed the browser session, whose raw files would all have been rejected for want of a record)."""
    upload_id = open_upload(api, world.cora).json()["id"]
    key = key_of(api, world.cora, upload_id).json()
    outputs, records = in_browser(key, series[:2])
    assert stow_with_records(api, world.cora, upload_id, records[:1], outputs[:1]).status_code == 200
    Trial.objects.filter(pk=browser_trial.pk).update(deid_paths=Trial.DeidPaths.SERVER)

    assert key_of(api, world.cora, upload_id).status_code == 409
    assert send_records(api, world.cora, upload_id, records[1:]).status_code == 409
    assert stow_with_records(api, world.cora, upload_id, records[1:], outputs[1:]).status_code == 409
    assert UploadItem.objects.filter(upload_id=upload_id).count() == 1

    again = open_upload(api, world.cora, deid_path="server").json()
    assert again["id"] != upload_id and again["deid_path"] == "server"
    assert Upload.objects.get(pk=upload_id).state == Upload.State.COMPLETE


def test_files_sent_into_a_closed_browser_upload_are_refused_with_what_to_do(world, api, browser_trial, series):
    """Another tab of the coordinator finished the session: the next request's records part is refused as the
    files after it would be (start a new upload), not as a request for the subject key."""
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    assert stow_with_records(api, world.cora, upload_id, records[:1], outputs[:1]).status_code == 200
    finish(api, world.cora, upload_id)
    response = stow_with_records(api, world.cora, upload_id, records[1:], outputs[1:])
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "This upload is closed; start a new upload to send more files."
    assert Upload.objects.get(pk=upload_id).items.count() == 1


def test_finishing_an_upload_that_received_no_file_cancels_it_and_answers_the_visits_state(
    world, api, browser_trial, series
):
    """The page opens a session for the subject key and finds nothing to send: the finish answers "cancelled"
    with the visit as it was before the session opened, and no subject key is given for it any more."""
    upload_id = open_upload(api, world.cora).json()["id"]
    assert key_of(api, world.cora, upload_id).status_code == 200
    answer = finish(api, world.cora, upload_id).json()
    assert answer["state"] == "cancelled" and answer["timepoint_state"] == "expected"
    assert answer["counts"]["total"] == 0
    assert key_of(api, world.cora, upload_id).status_code == 409
