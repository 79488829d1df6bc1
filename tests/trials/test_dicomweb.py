"""DICOMweb through the trial root: a real client (dicomweb-client) gets what was stored, scoped by role."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.core.files.storage import storages
from PIL import Image

from tests.conftest import build_world, upload_files
from trials import services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Membership, Role, Timepoint


@pytest.fixture
def stores(stores_on_both_backends):
    """Every test runs twice, on the file-system store and on S3 (moto)."""
    return stores_on_both_backends


def upload(world, subject_code: str, files: list[bytes], coordinator) -> Timepoint:
    return upload_files(coordinator, subject_code, files)


def with_images(world):
    template = real_ct_template(large=False)
    seoul = synthesize_ct_series(template, slices=5, seed="dw-seo")
    busan = synthesize_ct_series(template, slices=2, seed="dw-bus", patient_id="B1", patient_name="B^B")
    upload(world, "ALPHA-SEO-001", seoul, world.cora)
    upload(world, "ALPHA-BUS-001", busan, world.bruno)
    return seoul


@pytest.fixture
def images(db, stores, on_commit_now):
    world = build_world()
    with_images(world)
    return world


def study_of(subject_code: str) -> str:
    return Instance.objects.filter(series__study__subject__code=subject_code).first().series.study.study_instance_uid


ROOT = "/dicomweb/trials/ALPHA"


@pytest.mark.parametrize(
    ("who", "seoul", "busan"),
    [
        ("alice", 200, 200),
        ("quinn", 200, 200),
        ("cora", 200, 404),
        ("bruno", 404, 200),
        ("rhea", 404, 404),
        ("ada", 404, 404),
        ("sam", 404, 404),
        ("otto", 404, 404),
    ],
)
def test_the_trial_root_shows_each_role_its_scope(images, client, who, seoul, busan):
    client.force_login(images.people[who])
    for subject, expected in (("ALPHA-SEO-001", seoul), ("ALPHA-BUS-001", busan)):
        study = study_of(subject)
        assert client.get(f"{ROOT}/studies/{study}/series").status_code == expected
        assert client.get(f"{ROOT}/studies/{study}/metadata").status_code == expected
    listing = client.get(f"{ROOT}/studies")
    if seoul == busan == 404:
        assert listing.status_code == 404
    else:
        found = {s["00100020"]["Value"][0] for s in listing.json()}
        assert found == {c for c, e in (("ALPHA-SEO-001", seoul), ("ALPHA-BUS-001", busan)) if e == 200}


def test_anonymous_requests_are_asked_to_authenticate(images, client):
    response = client.get(f"{ROOT}/studies")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_qido_filters_and_paginates(images, client):
    client.force_login(images.alice)
    assert len(client.get(f"{ROOT}/series", {"Modality": "CT"}).json()) == 2
    assert client.get(f"{ROOT}/series", {"Modality": "MR"}).json() == []
    found = client.get(f"{ROOT}/series", {"SeriesDescription": "*pelvis*"}).json()
    assert sorted(s["00201209"]["Value"][0] for s in found) == [2, 5]
    study = study_of("ALPHA-SEO-001")
    instances = client.get(f"{ROOT}/studies/{study}/instances", {"limit": 2, "offset": 1}).json()
    assert [i["00200013"]["Value"][0] for i in instances] == [2, 3]
    assert client.get(f"{ROOT}/studies", {"StudyDate": "2026"}).status_code == 400


def test_instance_responses_carry_an_etag_and_answer_304(images, client):
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    url = f"{ROOT}/studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/metadata"
    first = client.get(url)
    assert first.status_code == 200 and "immutable" in first["Cache-Control"]
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_bulk_data_supports_range_requests(images, client):
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    url = f"{ROOT}/studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/bulkdata/7FE00010"
    whole = client.get(url)
    part = client.get(url, HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part["Content-Range"] == f"bytes 10-19/{len(whole.content)}"


def test_cors_is_answered_for_configured_viewer_origins(images, client, settings):
    settings.DICOMWEB_CORS_ORIGINS = ["https://viewer.example.org"]
    preflight = client.options(f"{ROOT}/studies", HTTP_ORIGIN="https://viewer.example.org")
    assert preflight["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    client.force_login(images.alice)
    other = client.get(f"{ROOT}/studies", HTTP_ORIGIN="https://evil.example.org")
    assert "Access-Control-Allow-Origin" not in other


def test_a_cross_origin_viewer_may_read_the_warning_and_content_location_headers(images, client, settings):
    """A viewer on another origin reads only the headers it is exposed to (Fetch standard): without Warning
    it could not see that a search was cut at the maximum, or which search keys were left out (PS3.18 8.6.2);
    without Content-Location, which bulk data a part holds."""
    settings.DICOMWEB_CORS_ORIGINS = ["https://viewer.example.org"]
    settings.DICOMWEB_MAX_RESULTS = 1
    client.force_login(images.alice)
    answer = client.get(f"{ROOT}/instances", HTTP_ORIGIN="https://viewer.example.org")
    assert "Warning" in answer
    exposed = {h.strip() for h in answer["Access-Control-Expose-Headers"].split(",")}
    assert {"Warning", "Content-Location", "ETag", "Content-Type"} <= exposed


def test_a_cross_origin_answer_keeps_varying_by_accept_and_authorization(images, client, settings):
    """A viewer on a configured origin: the answer's Vary was replaced by "Origin", so a browser that keeps the
    answer a year (immutable) could give the application/dicom bytes of a URL to its multipart request."""
    settings.DICOMWEB_CORS_ORIGINS = ["https://viewer.example.org"]
    client.force_login(images.alice)
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    url = f"{ROOT}/studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    for accept in ("application/dicom", 'multipart/related; type="application/dicom"'):
        answer = client.get(url, HTTP_ACCEPT=accept, HTTP_ORIGIN="https://viewer.example.org")
        assert answer.status_code == 200
        assert answer["Access-Control-Allow-Origin"] == "https://viewer.example.org"
        varies = {v.strip() for v in answer["Vary"].split(",")}
        assert {"Accept", "Authorization", "Origin"} <= varies, answer["Vary"]


# -- dicomweb-client against a live server ------------------------------------------------------------------


@pytest.fixture
def live_images(transactional_db, stores, live_server):
    world = build_world()
    seoul = with_images(world)
    membership = Membership.objects.get(user=world.quinn, trial=world.trial, role=Role.QC_REVIEWER)
    _, key = services.api_token_create(actor=world.quinn, membership=membership, name="dicomweb-client")
    return world, seoul, key


def test_dicomweb_client_gets_what_was_stored(live_images, live_server):
    from dicomweb_client.api import DICOMwebClient

    world, sources, key = live_images
    client = DICOMwebClient(url=f"{live_server.url}{ROOT}", headers={"Authorization": f"Bearer {key}"})
    studies = client.search_for_studies(search_filters={"PatientID": "ALPHA-SEO-001"})
    assert len(studies) == 1
    study = studies[0]["0020000D"]["Value"][0]
    [series_json] = client.search_for_series(study)
    series = series_json["0020000E"]["Value"][0]
    instances = client.search_for_instances(study, series)
    assert len(instances) == 5

    stored = {i.sop_instance_uid: i for i in Instance.objects.filter(series__series_instance_uid=series)}
    metadata = client.retrieve_series_metadata(study, series)
    assert {m["00080018"]["Value"][0] for m in metadata} == set(stored)
    assert all("BulkDataURI" in m["7FE00010"] for m in metadata)
    assert all(m["00100020"]["Value"] == ["ALPHA-SEO-001"] for m in metadata)

    sop = sorted(stored, key=lambda uid: stored[uid].instance_number)[0]
    ds = client.retrieve_instance(study, series, sop)
    original = storages["images"].open(stored[sop].storage_key).read()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    assert pydicom.dcmread(io.BytesIO(original)).PixelData == ds.PixelData
    assert ds.SOPInstanceUID == sop

    [frame] = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    assert frame == pydicom.dcmread(io.BytesIO(original)).PixelData

    png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    picture = np.asarray(Image.open(io.BytesIO(png)))
    assert picture.shape == (128, 128) and picture.std() > 0

    whole = client.retrieve_series(study, series)
    assert sorted(d.SOPInstanceUID for d in whole) == sorted(stored)


def test_raw_instance_bytes_are_the_stored_file(live_images, live_server):
    import requests

    world, _, key = live_images
    instance = Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").first()
    url = (
        f"{live_server.url}{ROOT}/studies/{instance.series.study.study_instance_uid}/series/"
        f"{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    )
    response = requests.get(
        url,
        headers={"Authorization": f"Bearer {key}", "Accept": 'multipart/related; type="application/dicom"'},
        timeout=30,
    )
    boundary = response.headers["Content-Type"].split("boundary=")[1].encode()
    part = response.content.split(b"--" + boundary)[1]
    body = part.split(b"\r\n\r\n", 1)[1][:-2]
    assert body == storages["images"].open(instance.storage_key).read()


def test_compressed_frames_come_as_stored_or_decoded_as_asked(images, client):
    from pathlib import Path

    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("MR_small_jp2klossless.dcm")).read_bytes()
    upload(images, "ALPHA-SEO-002", [source], images.cora)
    instance = Instance.objects.get(series__study__subject__code="ALPHA-SEO-002")
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"
    url = (
        f"{ROOT}/studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/1"
    )
    client.force_login(images.quinn)

    def only_part(response):
        boundary = response["Content-Type"].split("boundary=")[1].encode()
        head, body = response.content.split(b"--" + boundary)[1].split(b"\r\n\r\n", 1)
        return head.decode(), body[:-2]

    head, body = only_part(
        client.get(url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"; transfer-syntax=*')
    )
    assert "1.2.840.10008.1.2.4.90" in head and body[:4] == b"\xff\x4f\xff\x51"  # a JPEG 2000 codestream
    head, body = only_part(client.get(url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"'))
    original = pydicom.dcmread(io.BytesIO(source))
    assert "1.2.840.10008.1.2.1" in head
    assert np.array_equal(
        np.frombuffer(body, dtype="<i2" if original.PixelRepresentation else "<u2").reshape(64, 64),
        original.pixel_array,
    )
    refused = client.get(
        url, HTTP_ACCEPT='multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50'
    )
    assert refused.status_code == 406


def test_series_retrieval_streams_with_flat_memory(db, stores, client, on_commit_now):
    import tracemalloc

    world = build_world()
    files = synthesize_ct_series(real_ct_template(large=True), slices=40, seed="dw-stream")
    upload(world, "ALPHA-SEO-001", files, world.cora)
    series = Instance.objects.first().series
    client.force_login(world.quinn)
    response = client.get(
        f"{ROOT}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert response.streaming
    total = sum(len(f) for f in files)
    tracemalloc.start()
    received = sum(len(chunk) for chunk in response.streaming_content)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert received > total  # every file plus the multipart framing
    assert peak < total / 8, f"peak {peak / 1e6:.1f} MB while streaming {total / 1e6:.1f} MB"


def test_metadata_is_made_when_an_upload_completes(images):
    assert not Instance.objects.filter(metadata__isnull=True).exists()
    assert Instance.objects.first().metadata["00100020"]["Value"] == [
        Instance.objects.first().series.study.subject.code
    ]


def test_a_series_metadata_is_kept_in_a_few_statements_not_one_per_instance(images):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trials.dicomweb import wado

    Instance.objects.update(metadata=None)
    instances = list(Instance.objects.order_by("pk"))
    assert len(instances) == 7
    with CaptureQueriesContext(connection) as queries:
        assert wado.load_metadata(instances) == []
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1, updates
    for instance in Instance.objects.all():
        assert instance.metadata["00080018"]["Value"] == [instance.sop_instance_uid]
        assert instance.pixel_layout
