"""The lean path of frames and bulk data: token clients skip the session middleware, their permissions are kept
for a short, stated time, and a frame is a byte range of the stored file."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import build_world
from tests.trials.test_dicomweb import ROOT, with_images
from trials import services
from trials.dicomweb import views
from trials.models import ApiToken, Instance, Membership, Role

FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@pytest.fixture
def token_world(db, stores, on_commit_now):
    world = build_world()
    with_images(world)
    membership = Membership.objects.get(user=world.quinn, trial=world.trial, role=Role.QC_REVIEWER)
    token, key = services.api_token_create(actor=world.quinn, membership=membership, name="viewer")
    views._token_scopes.clear()
    yield world, token, key
    views._token_scopes.clear()


def frame_urls() -> list[str]:
    return [
        f"{ROOT}/studies/{i.series.study.study_instance_uid}/series/{i.series.series_instance_uid}"
        f"/instances/{i.sop_instance_uid}/frames/1"
        for i in Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").select_related("series__study")
    ]


def frame_url() -> str:
    return frame_urls()[0]


def test_a_token_client_skips_the_session_and_locale_middleware(token_world, client):
    world, _, key = token_world
    url = frame_url()
    by_token = client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert by_token.status_code == 200
    assert "Accept-Language" not in by_token["Vary"] and "sessionid" not in by_token.cookies
    client.force_login(world.quinn)
    by_session = client.get(url, HTTP_ACCEPT=FRAMES)
    assert by_session.status_code == 200 and "Accept-Language" in by_session["Vary"]
    # The same security headers on both paths (the lean one skips django-csp's middleware, not its policy).
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Cache-Control"):
        assert by_token[header] == by_session[header], header
    assert by_session.content.split(b"\r\n\r\n", 1)[1][:64] == by_token.content.split(b"\r\n\r\n", 1)[1][:64]


def test_a_bad_token_is_still_refused_on_the_lean_path(token_world, client):
    answer = client.get(frame_url(), HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION="Bearer ctims_not-a-token")
    assert answer.status_code == 401


def test_a_token_clients_next_frames_cost_a_query_per_instance_while_its_permissions_are_kept(
    token_world, client, settings
):
    settings.DICOMWEB_ACCESS_CACHE_SECONDS = 5
    _, _, key = token_world
    first, second = frame_urls()[:2]
    assert client.get(first, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get(second, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert len(queries) == 1, [q["sql"] for q in queries]  # the instance row; its frame layout is indexed
    again = first  # the instance again: its row and permissions are kept
    with CaptureQueriesContext(connection) as queries:
        assert client.get(again, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_revoked_token_is_refused_once_its_kept_permissions_expire(token_world, client, settings, monkeypatch):
    settings.DICOMWEB_ACCESS_CACHE_SECONDS = 5
    _, token, key = token_world
    url = frame_url()
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    later = views._token_scopes.clock() + 6
    monkeypatch.setattr(views._token_scopes, "clock", lambda: later)
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_without_the_cache_a_revoked_token_is_refused_at_once(token_world, client):
    _, token, key = token_world
    url = frame_url()
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_the_frame_layout_is_indexed_when_the_upload_completes(token_world):
    assert not Instance.objects.filter(pixel_layout__isnull=True).exists()
    layout = Instance.objects.first().pixel_layout
    assert layout["frames"] == 1 and layout["frame_bytes"] > 0


def test_a_kept_scope_does_not_keep_what_a_request_loaded_onto_an_instance(token_world, client, settings):
    settings.DICOMWEB_ACCESS_CACHE_SECONDS = 5
    _, _, key = token_world
    url = frame_url()
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    metadata = client.get(url.replace("/frames/1", "/metadata"), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert metadata.status_code == 200
    [kept] = views._instance_rows.rows.values()
    assert "metadata" not in kept.__dict__ or kept.metadata is None


def test_a_token_clients_next_visit_reads_its_permissions_again_but_no_instance_row(
    token_world, client, settings, monkeypatch
):
    settings.DICOMWEB_ACCESS_CACHE_SECONDS = 5
    _, _, key = token_world
    urls = frame_urls()
    for url in urls:
        assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    later = views._token_scopes.clock() + 6
    monkeypatch.setattr(views._token_scopes, "clock", lambda: later)
    with CaptureQueriesContext(connection) as queries:
        for url in urls:
            assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert len(urls) > 1 and not [q for q in queries if "trials_instance" in q["sql"]]
    assert 0 < len(queries) < len(urls) + 1  # the token and its permissions, once


def test_a_kept_instance_row_is_still_refused_to_a_token_that_may_not_see_it(token_world, client, settings):
    """Rows are kept by the process, whoever asked first; each request's own scope still decides."""
    settings.DICOMWEB_ACCESS_CACHE_SECONDS = 5
    world, _, key = token_world
    url = frame_url()
    assert client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert views._instance_rows.rows
    busan = Membership.objects.get(user=world.bruno, trial=world.trial)  # a coordinator of another site
    _, other_key = services.api_token_create(actor=world.bruno, membership=busan, name="elsewhere")
    answer = client.get(url, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert answer.status_code == 404
    wrong_series = url.replace("/series/", "/series/9", 1)
    assert client.get(wrong_series, HTTP_ACCEPT=FRAMES, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404
