"""The coordinator's upload page: who may open it, what it hands the browser, and where it is offered."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from tests.trials.test_ingest import multipart
from trials.ingest.services import upload_open
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Timepoint, Upload
from trials.services import timepoint_transition

URL = reverse("timepoint-upload", args=["ALPHA", "ALPHA-SEO-001", "BL"])


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(response) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(response.content.decode())
    return parser.tags


def uploader(response) -> dict:
    return next(attrs for tag, attrs in tags(response) if attrs.get("id") == "uploader")


def timepoint(subject="ALPHA-SEO-001", visit="BL") -> Timepoint:
    return Timepoint.objects.get(subject__code=subject, visit__code=visit)


@pytest.mark.parametrize(
    "who, status",
    [("cora", 200), ("bruno", 404), ("alice", 403), ("rhea", 404), ("quinn", 403), ("sam", 404), ("otto", 404)],
)
def test_only_the_sites_coordinator_opens_the_upload_page(world, client, who, status):
    client.force_login(world.people[who])
    assert client.get(URL).status_code == status


def test_someone_not_logged_in_is_sent_to_the_log_in_page(world, client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_page_only_reads(world, client):
    client.force_login(world.cora)
    assert client.post(URL).status_code == 405
    client.get(URL)
    assert not Upload.objects.exists() and timepoint().state == Timepoint.State.EXPECTED


def test_the_page_names_the_subject_and_visit_and_hands_the_browser_its_api_routes(world, client):
    client.force_login(world.cora)
    response = client.get(URL)
    text = response.content.decode()
    assert "ALPHA-SEO-001" in text and "Baseline" in text and "state-expected" in text
    attrs = uploader(response)
    assert attrs["data-open-url"] == reverse("api-upload-open", args=["ALPHA", "ALPHA-SEO-001", "BL"])
    assert attrs["data-status-url"] == reverse("api-upload", args=["ALPHA", 0])
    assert attrs["data-finish-url"] == reverse("api-upload-finish", args=["ALPHA", 0])
    assert attrs["data-resume-url"] == "" and json.loads(attrs["data-received"]) == []
    assert json.loads(attrs["data-state-labels"])["uploaded"] == "Uploaded"


def test_the_page_carries_no_inline_script_or_style(world, client):
    client.force_login(world.cora)
    response = client.get(URL)
    found = tags(response)
    scripts = [attrs for tag, attrs in found if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    assert {"type": "module", "src": "/static/js/uploader.js"} in scripts
    assert reverse("javascript-catalog") in [attrs["src"] for attrs in scripts]
    assert not [tag for tag, attrs in found if "style" in attrs or tag == "style"]
    assert not re.search(r"\son[a-z]+=", response.content.decode())  # no inline event handlers either
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_an_interrupted_upload_is_offered_for_resumption(world, client):
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    client.force_login(world.cora)
    assert uploader(client.get(URL))["data-resume-url"] == reverse("api-upload", args=["ALPHA", upload.pk])


def test_files_an_earlier_upload_settled_are_handed_to_the_browser(world, client, api, stores, monkeypatch):
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
    files = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="upload-page")
    other = synthesize_ct_series(
        real_ct_template(large=False), slices=1, seed="other", patient_name="OTHER^ONE", patient_id="X9"
    )
    upload_id = api.as_(world.cora).post(reverse("api-upload-open", args=["ALPHA", "ALPHA-SEO-001", "BL"])).json()["id"]
    body, content_type = multipart(files + other)
    api.as_(world.cora).generic("POST", reverse("stow-upload", args=["ALPHA", upload_id]), body, content_type)
    api.as_(world.cora).post(reverse("api-upload-finish", args=["ALPHA", upload_id]))
    client.force_login(world.cora)
    response = client.get(URL)
    received = {item["state"] for item in json.loads(uploader(response)["data-received"])}
    assert received == {"accepted", "rejected"} and len(json.loads(uploader(response)["data-received"])) == 3
    assert uploader(response)["data-resume-url"] == ""
    assert "1 series / 2 images" in response.content.decode()
    grid = client.get(reverse("trial-subjects", args=["ALPHA"])).content.decode()
    assert "1 series / 2 images" in grid


def test_a_visit_past_upload_says_so_and_offers_no_uploader(world, client):
    tp = timepoint()
    for state in ("uploading", "uploaded", "in_qc", "ready"):
        tp = timepoint_transition(actor=world.alice, timepoint=tp, to=state, allowed_from=[tp.state])
    client.force_login(world.cora)
    response = client.get(URL)
    assert response.status_code == 200 and 'id="uploader"' not in response.content.decode()
    assert "no longer accepts uploads" in response.content.decode()
    detail = client.get(reverse("subject-detail", args=["ALPHA", "ALPHA-SEO-001"])).content.decode()
    assert URL not in detail


def upload_links(client, user, url) -> set[str]:
    client.force_login(user)
    html = client.get(url).content.decode()
    return set(re.findall(r'href="(/trials/ALPHA/subjects/[^"]+/upload/)"', html))


def test_the_upload_link_appears_only_for_the_sites_coordinator(world, client):
    seo, bus = "ALPHA-SEO-001", "ALPHA-BUS-001"
    detail = reverse("subject-detail", args=["ALPHA", seo])
    grid = reverse("trial-subjects", args=["ALPHA"])
    seo_links = {reverse("timepoint-upload", args=["ALPHA", seo, v]) for v in ("BL", "W6")}
    assert upload_links(client, world.cora, detail) == seo_links
    assert upload_links(client, world.alice, detail) == set()
    assert upload_links(client, world.quinn, detail) == set()
    grid_links = upload_links(client, world.cora, grid)
    assert seo_links <= grid_links and all("-SEO-" in link for link in grid_links)
    assert upload_links(client, world.alice, grid) == set()
    assert upload_links(client, world.bruno, grid) == {
        reverse("timepoint-upload", args=["ALPHA", bus, v]) for v in ("BL", "W6")
    }
