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


def _schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_paginated_lists_are_described_as_pages_with_their_parameters(client):
    """A list answered as {count, next, previous, results} is published so, with its limit and offset."""
    schema = _schema(client)
    for path in (
        "/api/trials/",
        "/api/trials/{code}/sites/",
        "/api/trials/{code}/audit/",
        "/api/trials/{code}/transfers/",
    ):
        get = schema["paths"][path]["get"]
        body = get["responses"]["200"]["content"]["application/json"]["schema"]
        assert body["$ref"].startswith("#/components/schemas/Paginated"), path
        assert {"limit", "offset"} <= {p["name"] for p in get.get("parameters", [])}, path
    # the tokens list is not paginated: it stays an array
    tokens = schema["paths"]["/api/trials/{code}/tokens/"]["get"]["responses"]["200"]
    assert tokens["content"]["application/json"]["schema"]["type"] == "array"


def test_the_published_bounds_of_limit_and_offset_are_the_ones_the_api_keeps(world, client):
    """Each list publishes `limit` 1 to 2**31-1 (more than 1000 answer 1000) and `offset` 0 to 2**31-1; a value
    out of those bounds is refused (400), one at a bound is answered."""
    from rest_framework.test import APIClient

    schema = client.get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/trials/{code}/audit/"]["get"]["parameters"]}
    limit, offset = parameters["limit"]["schema"], parameters["offset"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 2**31 - 1, 100)
    assert (offset["minimum"], offset["maximum"], offset["default"]) == (0, 2**31 - 1, 0)
    assert parameters["limit"]["description"].endswith(" More than 1000 return 1000.")
    api = APIClient()
    api.force_login(world.alice)
    url = "/api/trials/ALPHA/audit/"
    for name, bounds in (("limit", limit), ("offset", offset)):
        assert api.get(url, {name: bounds["minimum"] - 1}).status_code == 400, name
        assert api.get(url, {name: bounds["maximum"] + 1}).status_code == 400, name
        assert api.get(url, {name: bounds["maximum"]}).status_code == 200, name
        assert api.get(url, {name: bounds["minimum"]}).status_code == 200, name


def test_every_operation_publishes_its_error_answers_in_the_one_error_shape(client):
    schema = _schema(client)
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            for code in (code for code in operation["responses"] if code.startswith("4")):
                body = operation["responses"][code]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}, (method, path, code)


# The operations whose service can refuse them for an object's state (ctims.exceptions.InvalidState, 409): a closed
# trial takes no visit, protocol, subject or upload; an upload closed, or of the other de-identification path, takes
# no records and gives no key; finishing an upload settles its visit, which may have moved; a transfer downloads
# once ready; a trial keeps an active trial admin.
CONFLICTS = {
    ("post", "/api/trials/{code}/visits/"),
    ("post", "/api/trials/{code}/visits/{visit_code}/protocols/"),
    ("post", "/api/trials/{code}/subjects/"),
    ("post", "/api/trials/{code}/subjects/{subject_code}/visits/{visit_code}/uploads/"),
    ("post", "/api/trials/{code}/uploads/{id}/finish/"),
    ("get", "/api/trials/{code}/uploads/{id}/subject-key/"),
    ("post", "/api/trials/{code}/uploads/{id}/records/"),
    ("get", "/api/trials/{code}/transfers/{number}/download/"),
    ("delete", "/api/trials/{code}/memberships/{id}/"),
}


def test_only_the_operations_an_objects_state_can_refuse_publish_409_each_saying_when(client):
    schema = _schema(client)
    published = {
        (method, path): operation["responses"]["409"]["description"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "409" in operation["responses"]
    }
    assert set(published) == CONFLICTS
    generic = "The object's state does not allow it now"
    assert all(
        description.startswith(generic) and len(description) > len(generic) + 5 for description in published.values()
    )


def test_every_query_parameter_an_api_view_reads_by_name_is_published(client):
    """The inbox read `?trial=` and the schema did not say so: a client generated from the schema could not narrow
    it. Every name an API view reads from its query string is published by an operation."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set()
    for module in ("trials/api/views.py", "trials/api/browser_views.py", "reads/api.py"):
        source = (root / module).read_text()
        read |= set(re.findall(r"query_params(?:\.get\(|\[)\"(\w+)\"", source))
    assert "trial" in read  # the scan finds what it looks for
    published = {
        parameter["name"]
        for operations in _schema(client)["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }
    assert read - published == set()
    inbox = _schema(client)["paths"]["/api/inbox/"]["get"]
    assert [p["name"] for p in inbox["parameters"] if p["in"] == "query"] == ["trial"]
