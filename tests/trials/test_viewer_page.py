"""The viewer page of a timepoint: who may open it, what it passes to the bundle, and what it never shows."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from tests.conftest import upload_files
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Study

SUBJECT = "ALPHA-SEO-001"


@pytest.fixture(autouse=True)
def on_commit_now(monkeypatch):
    """Each test runs inside one transaction: process what waits for a commit (the ingest tasks) at once."""
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())


pytestmark = pytest.mark.usefixtures("stores")


def upload(world, visit: str, seed: str, slices: int = 3) -> None:
    files = synthesize_ct_series(real_ct_template(large=False), slices=slices, seed=seed)
    upload_files(world.cora, SUBJECT, files, visit)


@pytest.fixture
def images(world):
    upload(world, "BL", "viewer-page-bl")
    upload(world, "W6", "viewer-page-w6")
    return world


def url(subject=SUBJECT, visit="BL", trial="ALPHA"):
    return reverse("timepoint-viewer", args=[trial, subject, visit])


def config(response) -> dict:
    match = re.search(r'<script id="viewer-config" type="application/json">(.*?)</script>', response.content.decode())
    return json.loads(match.group(1))


@pytest.mark.parametrize(
    ("person", "status"),
    [
        ("alice", 200),
        ("quinn", 200),
        ("cora", 200),
        ("bruno", 404),
        ("rhea", 404),
        ("ravi", 404),
        ("ada", 404),
        ("sam", 404),
        ("otto", 404),
    ],
)
def test_it_opens_for_those_who_see_the_subjects_images(images, client, person, status):
    client.force_login(images.people[person])
    assert client.get(url()).status_code == status


def test_it_requires_a_login(images, client):
    response = client.get(url())
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_coordinator_sees_only_her_sites_subjects(world, client):
    client.force_login(world.cora)
    assert client.get(url("ALPHA-BUS-001")).status_code == 404
    client.force_login(world.bruno)
    assert client.get(url("ALPHA-BUS-001")).status_code == 200


def test_an_unknown_visit_subject_or_trial_is_404(images, client):
    client.force_login(images.alice)
    assert client.get(url(visit="W99")).status_code == 404
    assert client.get(url(subject="ALPHA-SEO-999")).status_code == 404
    assert client.get(url(trial="NOPE")).status_code == 404


def test_it_only_answers_get(images, client):
    client.force_login(images.quinn)
    assert client.post(url()).status_code == 405


def test_it_passes_the_dicomweb_root_and_the_visits_with_their_studies(images, client):
    client.force_login(images.quinn)
    data = config(client.get(url(visit="W6")))
    assert data["root"] == "/dicomweb/trials/ALPHA"
    assert data["wasmBase"] == "/static/dist/viewer/"
    bl, w6 = (
        list(Study.objects.filter(timepoint__visit__code=v).values_list("study_instance_uid", flat=True))
        for v in ("BL", "W6")
    )
    assert data["timepoints"] == [
        {"visit": "BL", "label": "Baseline", "studies": bl, "current": False},
        {"visit": "W6", "label": "Week 6", "studies": w6, "current": True},
    ]


def test_it_offers_the_earlier_visit_to_compare_with(images, client):
    client.force_login(images.quinn)
    page = client.get(url(visit="W6")).content.decode()
    assert re.search(r'<option value="BL" selected>Baseline</option>', page)
    assert '<option value="W6">Week 6 (this visit)</option>' in page


def test_a_visit_without_images_says_so_and_loads_no_viewer(world, client):
    client.force_login(world.quinn)
    page = client.get(url()).content.decode()
    assert "No images have been stored for this visit yet." in page
    assert "viewer.js" not in page and "viewer-config" not in page


def test_it_shows_neither_the_site_nor_dates(images, client):
    client.force_login(images.alice)
    page = client.get(url()).content.decode()
    subject = images.subjects[SUBJECT]
    assert SUBJECT in page and "Baseline" in page
    besides_the_pseudonym = page.replace(SUBJECT, "")
    for hidden in (subject.site.code, subject.site.name, "Seoul", "HONG", "PID0001", "2026"):
        assert hidden not in besides_the_pseudonym
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b|\d\d/\d\d/\d{4}|<time\b", page)


def test_its_keys_help_says_what_escape_does_here_where_no_lesion_waits_for_a_measurement(images, client):
    """The keys' help (and the image's label, which says the same words) names a lesion's wait for its
    measurement only on a read's page (tests/e2e/test_viewer_keys.py): here nothing waits."""
    client.force_login(images.alice)
    for language, escape, lesion in (
        ("en", "Esc abandons a line being drawn or moved;", "lesion"),
        ("ko", "Esc", "병변"),
    ):
        page = client.get(url(), HTTP_ACCEPT_LANGUAGE=language).content.decode()
        keys = re.search(r'<span class="viewer-keys">(.*?)</span>', page, re.S).group(1)
        assert escape in keys and "Delete" in keys
        assert lesion not in keys
        assert f'{keys}"' in page  # the image's label ends with the same words


def test_it_has_no_inline_script_or_style_and_allows_webassembly_only(images, client):
    client.force_login(images.quinn)
    response = client.get(url())
    page = response.content.decode()
    for script in re.findall(r"<script\b[^>]*>", page):
        assert "src=" in script or 'type="application/json"' in script, script
    assert "<style" not in page and " style=" not in page and "onclick" not in page
    policy = {
        part.split()[0]: part.split()[1:] for part in response["Content-Security-Policy"].split(";") if part.strip()
    }
    assert policy["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


def test_only_this_page_may_compile_webassembly(images, client):
    client.force_login(images.quinn)
    response = client.get(reverse("subject-detail", args=["ALPHA", SUBJECT]))
    assert "wasm-unsafe-eval" not in response["Content-Security-Policy"]


def test_the_subject_page_links_each_visit_with_images_to_the_viewer(images, client):
    client.force_login(images.quinn)
    page = client.get(reverse("subject-detail", args=["ALPHA", SUBJECT])).content.decode()
    assert f'href="{url()}"' in page and f'href="{url(visit="W6")}"' in page


def test_the_subject_page_offers_no_viewer_for_a_visit_without_images(world, client):
    upload(world, "BL", "viewer-page-bl")
    client.force_login(world.cora)
    page = client.get(reverse("subject-detail", args=["ALPHA", SUBJECT])).content.decode()
    assert f'href="{url()}"' in page and f'href="{url(visit="W6")}"' not in page


def back_link(response) -> tuple[str, str]:
    match = re.search(r'<a id="viewer-back" class="[^"]*" href="([^"]+)">([^<]+)</a>', response.content.decode())
    return match.group(1), match.group(2)


def test_opened_from_qc_it_leads_back_to_the_qc_review(images, client):
    client.force_login(images.quinn)
    qc_page = reverse("qc-timepoint", args=["ALPHA", SUBJECT, "BL"])
    assert f'href="{url()}?from=qc"' in client.get(qc_page).content.decode()
    response = client.get(url(), {"from": "qc"})
    assert back_link(response) == (qc_page, "Back to the QC review")
    assert re.search(r'<a href="/trials/ALPHA/qc/" aria-current="page">', response.content.decode())


def test_without_where_it_came_from_it_leads_back_to_the_subject(images, client):
    client.force_login(images.quinn)
    subject_page = reverse("subject-detail", args=["ALPHA", SUBJECT])
    assert back_link(client.get(url())) == (subject_page, f"Back to subject {SUBJECT}")
    client.force_login(images.cora)  # not a QC reviewer: no way into QC
    assert back_link(client.get(url(), {"from": "qc"})) == (subject_page, f"Back to subject {SUBJECT}")


def test_opened_from_a_query_it_leads_back_to_that_query(images, client):
    from trials import qc_services
    from trials.models import Series, Timepoint

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    series = list(Series.objects.filter(study__timepoint=timepoint))
    query = qc_services.qc_fail(actor=images.quinn, timepoint=timepoint, series=series, reason="Blurred.")
    client.force_login(images.cora)
    query_page = reverse("query-detail", args=["ALPHA", query.pk])
    assert f'href="{url()}?query={query.pk}"' in client.get(query_page).content.decode()
    assert back_link(client.get(url(), {"query": query.pk})) == (query_page, f"Back to query {query.pk}")
    # A query of another visit, or none at all, is no way back.
    subject_page = reverse("subject-detail", args=["ALPHA", SUBJECT])
    assert back_link(client.get(url(visit="W6"), {"query": query.pk}))[0] == subject_page
    assert back_link(client.get(url(), {"query": query.pk + 1}))[0] == subject_page


@pytest.mark.parametrize("query", ["²", "1²", "9" * 30, "-1", "٣"])
def test_a_query_number_that_is_no_number_of_ours_leads_back_to_the_subject(images, client, query):
    """Found with ?query=² (a superscript two): str.isdigit() says yes and int() refuses it, so the page was a
    500; a number past any row's was a database error on PostgreSQL."""
    client.force_login(images.quinn)
    subject_page = reverse("subject-detail", args=["ALPHA", SUBJECT])
    assert back_link(client.get(url(), {"query": query}))[0] == subject_page
