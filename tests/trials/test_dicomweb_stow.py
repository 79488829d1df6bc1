"""STOW-RS beyond the body: the answer in the media type the client accepts (PS3.18 10.5.3), where a store may be
sent (PS3.18 10.5.1: /studies and /studies/{study}), and a coordinator's reason for a file refused."""

from __future__ import annotations

import hashlib
import io
from xml.etree import ElementTree

import pydicom
import pytest
from django.urls import reverse
from pydicom.data import get_testdata_file
from pydicom.uid import CTImageStorage, generate_uid

from trials.deid import deidentify
from trials.deid.errors import DeidRejected
from trials.dicomweb import stow
from trials.dicomweb.dicom_xml import NAMESPACE
from trials.ingest import store
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, UploadItem

from .deid.factories import DEFAULT, SUBJECT, space
from .test_browser_deid_api import browser_trial, in_browser, key_of, send_records  # noqa: F401 - a fixture
from .test_browser_deid_api import open_upload as open_browser_upload
from .test_stow_multipart import BOUNDARY, body, open_upload, series, with_stores  # noqa: F401 - series: a fixture

XML = "application/dicom+xml"
MULTIPART = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'


def post(api, user, url: str, data: bytes, accept: str | None = None):
    extra = {"HTTP_ACCEPT": accept} if accept is not None else {}
    return api.as_(user).generic("POST", url, data, content_type=MULTIPART, **extra)


def upload_url(upload_id: int) -> str:
    return reverse("stow-upload", args=["ALPHA", upload_id])


@with_stores
def test_a_store_answers_in_xml_to_a_client_that_accepts_only_xml(world, api, series):  # noqa: F811
    """PS3.18 10.5.3: the Store answer is application/dicom+json or application/dicom+xml, as accepted; an
    XML-only client was refused with 406 and its files were not stored."""
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_url(upload_id), body(series[:2]), XML)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == XML
    root = ElementTree.fromstring(response.content)
    referenced = root.find(f"{{{NAMESPACE}}}DicomAttribute[@keyword='ReferencedSOPSequence']")
    assert len(referenced.findall(f"{{{NAMESPACE}}}Item")) == 2 and Instance.objects.count() == 2
    again = post(api, world.cora, upload_url(upload_id), body(series[2:]), f"application/dicom+json;q=0.5, {XML}")
    assert again.status_code == 200 and again["Content-Type"] == XML
    assert post(api, world.cora, upload_url(upload_id), body(series[2:]))["Content-Type"] == "application/dicom+json"


@with_stores
def test_a_refused_store_asked_for_in_xml_is_the_apis_one_error_shape(world, api):
    upload_id = open_upload(api, world.cora)
    response = api.as_(world.cora).generic(
        "POST",
        upload_url(upload_id),
        b"",
        content_type=f'multipart/related; type="image/png"; boundary="{BOUNDARY}"',
        HTTP_ACCEPT=XML,
    )
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json" and response.json()["error"]


def trial_root_stores(world, api, who, path: str):
    client = api.as_(world.people[who]) if who else api
    if not who:
        client.logout()
    return client.generic("POST", f"/dicomweb/trials/ALPHA/{path}", body([b"x"]), content_type=MULTIPART)


@pytest.mark.parametrize("path", ["studies", "studies/1.2.3"])
def test_a_store_on_the_trial_root_says_where_files_go_to_those_who_see_it(world, api, path):
    """PS3.18 10.5.1 stores on a root's /studies and /studies/{study}; a trial's files go into the upload session
    of a subject's visit, which the root does not name: 405 with Allow, and where to send them."""
    for who in ("cora", "alice"):
        response = trial_root_stores(world, api, who, path)
        assert response.status_code == 405, who
        assert response["Allow"] == "GET, HEAD, OPTIONS"
        assert "/dicomweb/trials/ALPHA/uploads/{upload id}/studies" in response.json()["error"]["message"]
    assert trial_root_stores(world, api, "", path).status_code == 401
    for who in ("rhea", "otto"):  # the trial root shows them nothing: it does not exist for them
        assert trial_root_stores(world, api, who, path).status_code == 404, who


def uncompressed_ybr_422() -> bytes:
    """pydicom's uncompressed YBR_FULL_422 colour image, made a CT of the subject's."""
    ds = pydicom.dcmread(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    ds.PatientName, ds.PatientID = "HONG^GILDONG", "PID0001"
    uid = lambda part: generate_uid(entropy_srcs=["ybr422", part])  # noqa: E731 - the same each run
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("instance")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


YBR_REASON = "stored uncompressed as YBR_FULL_422"


@with_stores
def test_an_uncompressed_ybr_full_422_image_is_refused_with_what_to_export_instead(world, api):
    """Its two chroma samples per pair of pixels were counted as three samples per pixel: the coordinator read
    "the file looks cut short" and sent the same file again."""
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, upload_url(upload_id), body([uncompressed_ybr_422()]))
    assert response.status_code == 409, response.content
    assert f"part 1 was rejected: ybr_full_422: The image's colour pixels are {YBR_REASON}" in response["Warning"]
    assert "RGB colour, or compressed (JPEG)" in response["Warning"]
    item = UploadItem.objects.get()
    assert (item.state, item.code) == ("rejected", "ybr_full_422")


def test_the_engine_refuses_it_alike_for_the_sites_browser():
    with pytest.raises(DeidRejected) as refused:
        deidentify(uncompressed_ybr_422(), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert refused.value.code == "ybr_full_422" and YBR_REASON in refused.value.reason


# -- a store on a study's path (PS3.18 10.5.1.1: /studies/{study}) -----------------------------------------------


def study_url(upload_id: int, study: str) -> str:
    return reverse("stow-upload-study", args=["ALPHA", upload_id, study])


def study_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def other_study() -> list[bytes]:
    """Another study of the same patient: what a site sends by mistake with the study it meant."""
    return synthesize_ct_series(real_ct_template(large=False), slices=2, seed="stow-other-study")


def failure_reasons(response) -> list[int]:
    return [item["00081197"]["Value"][0] for item in response.json().get("00081198", {}).get("Value", [])]


@with_stores
def test_a_store_on_a_studys_path_stores_only_that_studys_files_and_refuses_the_others_before_taking_them(
    world,
    api,
    series,  # noqa: F811
    other_study,
    caplog,
):
    """The coordinator's client sends files as they are and names their (original) study; a file of another
    study in the request was stored into the visit with the rest (there was no study path at all)."""
    upload_id = open_upload(api, world.cora)
    original = study_of(series[0])
    parts = [series[0], other_study[0], series[1], b"not a DICOM file", other_study[1]]
    caplog.set_level("INFO")
    response = post(api, world.cora, study_url(upload_id, original), body(parts))
    assert response.status_code == 202, response.content  # some stored, some failed
    answer = response.json()
    assert len(answer["00081199"]["Value"]) == 2 and Instance.objects.count() == 2
    # The refused parts are named by part number, as every failure, and carry no UID (they may be originals).
    assert failure_reasons(response) == [0xA900, 0xC000, 0xA900]
    assert [set(item) for item in answer["00081198"]["Value"]] == [{"00081197"}] * 3
    warning = response["Warning"]
    assert "part 2 is of another study than the request's path names: not stored" in warning
    assert "part 4 was not stored: not_dicom: The file is not a DICOM file." in warning
    assert "part 5 is of another study" in warning
    # Refused before anything of them was acknowledged or written to quarantine.
    taken = set(UploadItem.objects.filter(upload_id=upload_id).values_list("sha256", flat=True))
    assert taken == {hashlib.sha256(f).hexdigest() for f in series[:2]}
    quarantine = store.quarantine_storage()
    for refused in (other_study[0], b"not a DICOM file"):
        assert not quarantine.exists(store.quarantine_key(upload_id, hashlib.sha256(refused).hexdigest()))
    # Stored under the pseudonymous study, where the Retrieve URL points; no original UID in the answer or logs.
    [stored] = {i.series.study.study_instance_uid for i in Instance.objects.select_related("series__study")}
    assert stored != original and answer["00081190"]["Value"][0].endswith(f"/studies/{stored}")
    said = response.content.decode() + warning + caplog.text
    assert original not in said and study_of(other_study[0]) not in said

    # Only files of another study: none stored, a conflict (PS3.18 10.5.3: "Study Instance UID mismatch").
    refused = post(api, world.cora, study_url(upload_id, original), body(other_study))
    assert refused.status_code == 409 and failure_reasons(refused) == [0xA900, 0xA900]
    assert "00081199" not in refused.json() and Instance.objects.count() == 2
    assert original not in caplog.text  # Django logs a 4xx's path: the study is left out of it
    assert f"/uploads/{upload_id}/studies/{{study}}" in caplog.text
    # The study's own files on it: all stored.
    assert post(api, world.cora, study_url(upload_id, original), body(series[2:])).status_code == 200


@with_stores
def test_parts_refused_past_the_named_ones_are_counted_by_what_they_are(
    world,
    api,
    series,  # noqa: F811
    other_study,
    monkeypatch,
):
    monkeypatch.setattr(stow, "MAX_PART_WARNINGS", 1)
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, study_url(upload_id, study_of(series[0])), body([*other_study, b"x"]))
    assert response.status_code == 409
    warning = response["Warning"]
    assert "part 1 is of another study" in warning and "part 2" not in warning and "part 3" not in warning
    assert "1 more part(s) are of another study: not stored" in warning
    assert "1 more part(s) were not stored: not read" in warning


@with_stores
@pytest.mark.parametrize("study", ["1.2.abc", "1." + "2" * 64, "1..2"])
def test_a_study_path_that_names_no_uid_is_refused_before_the_body_is_read(world, api, series, study):  # noqa: F811
    upload_id = open_upload(api, world.cora)
    response = post(api, world.cora, study_url(upload_id, study), body(series[:1]))
    assert response.status_code == 400 and not UploadItem.objects.exists()
    assert study not in response.content.decode()


def test_a_study_path_of_an_upload_the_person_cannot_write_to_is_not_found(world, api):
    response = post(api, world.quinn, study_url(10**6, "1.2.3"), body([b"x"]))
    assert response.status_code == 404


@with_stores
def test_on_the_browser_path_the_study_is_the_pseudonymous_one_the_files_hold(
    world,
    api,
    browser_trial,  # noqa: F811
    series,  # noqa: F811
):
    """The site's browser de-identifies the files before they are sent: the study of the files it sends, and so
    the one its path names, is the pseudonymous study it wrote; the original one names no file it sends."""
    upload_id = open_browser_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    assert send_records(api, world.cora, upload_id, records).status_code == 200
    original, pseudonym = study_of(series[0]), study_of(outputs[0])
    assert original != pseudonym
    refused = post(api, world.cora, study_url(upload_id, original), body(outputs))
    assert refused.status_code == 409 and failure_reasons(refused) == [0xA900] * 3
    assert not UploadItem.objects.exists() and not Instance.objects.exists()
    response = post(api, world.cora, study_url(upload_id, pseudonym), body(outputs))
    assert response.status_code == 200, response.content
    assert response.json()["00081190"]["Value"][0].endswith(f"/studies/{pseudonym}")
    assert {i.series.study.study_instance_uid for i in Instance.objects.select_related("series__study")} == {pseudonym}


def test_gunicorns_access_log_leaves_the_study_of_a_store_path_out():
    """gunicorn logs each request's path (deploy/gunicorn.conf.py); on the server path a study's path names the
    site's original Study Instance UID. (nginx's log, deploy/nginx-ctims.conf, cuts it out by its own map.)"""
    import datetime
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from django.conf import settings
    from gunicorn.config import Config

    conf = runpy.run_path(str(Path(settings.BASE_DIR) / "deploy" / "gunicorn.conf.py"))
    logger = conf["AccessLogger"](Config())
    path = "/dicomweb/trials/ALPHA/uploads/3/studies/1.2.840.99.7"
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": path, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    response = SimpleNamespace(status="409 Conflict", headers=[], sent=0, response_length=0)
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(seconds=0.01))
    assert atoms["U"] == "/dicomweb/trials/ALPHA/uploads/3/studies/{study}" and "1.2.840" not in atoms["r"]
    other = "/dicomweb/trials/ALPHA/studies/2.25.9/series"  # a pseudonymous study's path stays as it is
    environ |= {"RAW_URI": other, "PATH_INFO": other}
    assert logger.atoms(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(seconds=0))["U"] == other
