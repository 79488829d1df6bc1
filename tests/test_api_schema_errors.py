"""The schema publishes 400 and 404 only where an operation can answer them, and every one it publishes is provoked.

The rule, stated here apart from ctims.api_schema that applies it: an operation publishes 400 if it takes input a
client can get wrong (a request body, or a query parameter that is more than free text: a number, a date, a
non-empty string), 404 if its path names objects (a trial's code, an id), and the rare exception declares its
own (`not_found(...)`). 401 and 403 stay on every operation: every one needs a credential, and a
session without its second factor is refused 403 by any of them (ctims.middleware.TwoFactorMiddleware).
"""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from trials.ingest.services import upload_open
from trials.models import Membership, Timepoint

pytestmark = pytest.mark.django_db

FREE_TEXT_KEYS = {"type", "description", "title", "default", "example", "nullable"}

# The operations that answer an error the rule cannot see, each declaring it: the inbox's `?trial=` names a
# trial (404 for one the caller is not in).
DECLARED = {
    ("get", "/api/inbox/"): {"404"},
}


def _schema() -> dict:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def can_be_invalid(parameter: dict) -> bool:
    schema = parameter["schema"]
    return not (schema.get("type") == "string" and set(schema) <= FREE_TEXT_KEYS)


def expected_errors(method: str, path: str, operation: dict) -> set[str]:
    parameters = operation.get("parameters", [])
    errors = {"401", "403"}
    if "requestBody" in operation or any(p["in"] != "path" and can_be_invalid(p) for p in parameters):
        errors.add("400")
    if any(p["in"] == "path" for p in parameters):
        errors.add("404")
    return errors | DECLARED.get((method, path), set())


def published_errors(operation: dict) -> set[str]:
    return {code for code in operation["responses"] if code in {"400", "401", "403", "404"}}


def test_every_operation_publishes_exactly_the_errors_its_inputs_allow():
    schema = _schema()
    wrong = {
        (method, path): (sorted(published_errors(operation)), sorted(expected_errors(method, path, operation)))
        for method, path, operation in _operations(schema)
        if published_errors(operation) != expected_errors(method, path, operation)
    }
    assert wrong == {}


def test_the_rule_is_not_empty_either_way():
    """The schema has operations with and without each of 400 and 404 (the rule above decides something)."""
    schema = _schema()
    found = [published_errors(operation) for _method, _path, operation in _operations(schema)]
    for code in ("400", "404"):
        assert any(code in errors for errors in found) and any(code not in errors for errors in found), code


def test_an_operation_without_objects_in_its_path_publishes_no_404():
    schema = _schema()
    trials = schema["paths"]["/api/trials/"]
    assert "404" not in trials["get"]["responses"] and "404" not in trials["post"]["responses"]
    assert "400" in trials["get"]["responses"]  # ?limit and ?offset are numbers
    detail = schema["paths"]["/api/trials/{code}/"]["get"]["responses"]
    assert "404" in detail and "400" not in detail  # a trial by its code, and nothing else to get wrong


def test_each_derived_error_says_which_inputs_and_each_declared_one_says_when():
    schema = _schema()
    audit = schema["paths"]["/api/trials/{code}/audit/"]["get"]["responses"]
    assert "`since`" in audit["400"]["description"] and "`limit`" in audit["400"]["description"]
    assert "`action`" not in audit["400"]["description"]  # free text: see below
    upload = schema["paths"]["/api/trials/{code}/uploads/{id}/"]["get"]["responses"]
    assert "`code`" in upload["404"]["description"] and "`id`" in upload["404"]["description"]
    trials = schema["paths"]["/api/trials/"]["post"]["responses"]
    assert "request body" in trials["400"]["description"]
    for (method, path), codes in DECLARED.items():
        for code in codes:
            description = schema["paths"][path][method]["responses"][code]["description"]
            assert len(description) > 40, (method, path, code)
            body = schema["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}


def test_an_optional_text_filter_is_free_text_as_the_query_string_is_read(world):
    """`?action=` is read as no filter (DRF takes an optional field's empty query value as absent): the schema
    published `minLength: 1` for it, saying the empty value was refused, and so a 400 the operation never gives."""
    parameters = _schema()["paths"]["/api/trials/{code}/audit/"]["get"]["parameters"]
    for name in ("action", "actor", "object_type"):
        (parameter,) = [p for p in parameters if p["name"] == name]
        assert "minLength" not in parameter["schema"] and not can_be_invalid(parameter), name
    client = APIClient()
    client.force_login(world.alice)
    assert client.get("/api/trials/ALPHA/audit/", {"action": "", "actor": "", "object_type": ""}).status_code == 200


# --- every published 400 and 404, provoked through the API -------------------------------------------------------

# A value for each path parameter that names something in the world (the unknown one is swapped in per request).
KNOWN = {"code": "ALPHA", "visit_code": "BL", "subject_code": "ALPHA-SEO-001"}
UNKNOWN = {"code": "NOPE", "visit_code": "XX", "subject_code": "ALPHA-SEO-999"}


def _client_for(world, method: str, path: str) -> APIClient:
    """Who reaches the operation's input and lookups: the trial admin, or Seoul's coordinator for what only a
    site's coordinator does with an upload (opening one, its subject key and records; finishing one)."""
    client = APIClient()
    coordinator = path.endswith(("/uploads/", "/subject-key/", "/records/", "/finish/"))
    client.force_login(world.cora if coordinator else world.alice)
    return client


def _fill(path: str, values: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def _invalid_value(parameter: dict) -> str:
    schema = parameter["schema"]
    if schema.get("type") in ("integer", "number"):
        return "-1x"
    if schema.get("format") in ("date", "date-time"):
        return "not-a-date"
    raise AssertionError(f"no invalid value known for {parameter}")  # a new kind of parameter: teach this test


@pytest.fixture
def reachable(world):
    """The world, with an open upload of Seoul's coordinator (the id the upload operations are given)."""
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    return {**KNOWN, "id": upload_open(actor=world.cora, timepoint=timepoint).pk, "number": 1}


def _answer(client: APIClient, method: str, url: str, **kwargs):
    return getattr(client, method)(url, format="json", **kwargs)


def _derived(world, code: str):
    """Each operation publishing `code` by the rule (not a declared exception), with a client that may call it."""
    for method, path, operation in _operations(_schema()):
        if code in operation["responses"] and (method, path) not in DECLARED:
            yield method, path, operation, _client_for(world, method, path)


def test_every_derived_404_is_answered_for_an_unknown_trial_and_an_unknown_object(world, reachable):
    checked = 0
    for method, path, operation, client in _derived(world, "404"):
        names = re.findall(r"\{(\w+)\}", path)
        for name in names:
            values = {**reachable, name: UNKNOWN.get(name, 999999)}
            response = _answer(client, method, _fill(path, values), data={})
            assert response.status_code == 404, (method, path, name, response.status_code, response.content[:200])
            assert response.json()["error"]["code"] == "not_found"
            checked += 1
    assert checked > 30


def test_every_derived_400_is_answered_for_a_body_or_a_query_parameter_a_client_got_wrong(world, reachable):
    checked = 0
    for method, path, operation, client in _derived(world, "400"):
        url = _fill(path, reachable)
        provoked = []
        if "requestBody" in operation:
            provoked.append(_answer(client, method, url, data=["not", "an", "object"]))
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and can_be_invalid(parameter):
                provoked.append(getattr(client, method)(url, {parameter["name"]: _invalid_value(parameter)}))
        assert provoked, (method, path)
        for response in provoked:
            assert response.status_code == 400, (method, path, response.status_code, response.content[:200])
            assert response.json()["error"]["code"] == "invalid"
        checked += len(provoked)
    assert checked >= 25


def test_the_declared_exceptions_are_answered_too(world):
    client = APIClient()
    client.force_login(world.alice)
    assert client.get("/api/inbox/", {"trial": "NOPE"}).status_code == 404
    only_admin = Membership.objects.get(user=world.alice, trial=world.trial, role="trial_admin")
    response = client.delete(f"/api/trials/ALPHA/memberships/{only_admin.pk}/")
    # Refused for the trial's state, not for the request: 409, as the schema publishes (a conflict, never a 400).
    assert response.status_code == 409, response.content
    operation = _schema()["paths"]["/api/trials/{code}/memberships/{id}/"]["delete"]
    assert "409" in operation["responses"] and "400" not in operation["responses"]
    assert Membership.objects.filter(pk=only_admin.pk).exists()
