"""STOW-RS beyond the body: the answer in the media type the client accepts (PS3.18 10.5.3), and where a store
may be sent (PS3.18 10.5.1: /studies and /studies/{study})."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from django.urls import reverse

from trials.dicomweb.dicom_xml import NAMESPACE
from trials.models import Instance

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
