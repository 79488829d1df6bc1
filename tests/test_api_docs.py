"""The API's own front door: the docs page loads its script from a file, the strict policy stays elsewhere."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    parts = [part.strip().split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {words[0]: words[1:] for words in parts}


def test_the_docs_page_has_no_inline_script_and_keeps_the_strict_script_policy(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>" not in html and "<style>" not in html
    assert policy(response)["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_the_docs_initialiser_is_a_script_from_the_same_origin(client):
    response = client.get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()


def test_every_other_page_keeps_the_strict_policy(client):
    for path in ("/accounts/login/", "/api/"):
        strict = policy(client.get(path))
        assert strict["script-src"] == ["'self'"] and strict["style-src"] == ["'self'"]


def test_the_api_root_answers_with_its_schema_docs_and_entry_points(client):
    response = client.get("/api/")
    assert response.status_code == 200
    body = response.json()
    assert body["schema"].endswith("/api/schema/") and body["docs"].endswith("/api/docs/")
    assert body["trials"].endswith("/api/trials/")
    assert body["inbox"].endswith("/api/inbox/")
