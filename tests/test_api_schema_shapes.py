"""What the API answers is what its schema publishes: each answer's status is one the operation publishes, and a
JSON body has the published shape, with no field the schema does not name.

Every read (GET) is asked by people of each kind of role (trial admin, site coordinator, reader, sponsor), so
that their 200s, 403s, 404s and 409s are all checked; every write once, as the person who may make it.
"""

from __future__ import annotations

import re

import jsonschema
import pytest
from rest_framework.test import APIClient

from trials.models import Membership, Timepoint

pytestmark = pytest.mark.django_db


def json_schema(node, *, closed: bool = True):
    """An OpenAPI 3.0 schema in JSON Schema's words ("nullable"); with `closed`, every object closed to
    unpublished fields."""
    if isinstance(node, list):
        return [json_schema(item, closed=closed) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: json_schema(value, closed=closed) for key, value in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    if closed and "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node


class Published:
    """The schema, and a check of an answer against the operation that gave it."""

    def __init__(self):
        self.schema = APIClient().get("/api/schema/", {"format": "json"}).json()
        self.components = json_schema(self.schema["components"]["schemas"])
        self.checked: list[tuple[str, str, int]] = []

    def check(self, method: str, path: str, response) -> None:
        where = (method, path, response.status_code)
        responses = self.schema["paths"][path][method]["responses"]
        published = responses.get(str(response.status_code))
        assert published is not None, (*where, sorted(responses), response.content[:200])
        content = published.get("content", {})
        media_type = response.get("Content-Type", "").split(";")[0]
        if response.streaming:  # a file: its media type is published
            assert b"".join(response.streaming_content), where
            assert media_type in content, (*where, media_type, sorted(content))
        elif not response.content:
            assert not content, where
        elif media_type == "application/json":
            assert "application/json" in content, (*where, "a JSON body the schema does not publish")
            body = json_schema(content["application/json"]["schema"])
            jsonschema.validate(response.json(), {**body, "components": {"schemas": self.components}})
        else:
            assert media_type in content, (*where, media_type, sorted(content))
        self.checked.append(where)


@pytest.fixture
def trial_with_results(world, stores, on_commit_now):
    """ALPHA read by both readers at Seoul's first baseline (a locked result), a transfer of it, an upload open
    at Seoul's second subject, and a token of alice's."""
    from reads import transfers
    from reads.models import TimepointResult
    from reads.services import read_design_set
    from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
    from trials import services
    from trials.ingest.services import upload_open

    read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    membership = Membership.objects.get(user=world.alice, trial=world.trial, role="trial_admin")
    return {
        "code": "ALPHA",
        "visit_code": "BL",
        "subject_code": "ALPHA-SEO-002",
        "number": transfers.transfer_request(actor=world.sam, trial=world.trial).number,
        "/uploads/": upload_open(
            actor=world.cora, timepoint=Timepoint.objects.get(subject__code="ALPHA-SEO-002", visit__code="BL")
        ).pk,
        "/read-results/": TimepointResult.objects.get().pk,
        "/tokens/": services.api_token_create(actor=world.alice, membership=membership, name="reads")[0].pk,
    }


def test_every_read_answers_as_published_for_each_kind_of_role(world, trial_with_results):
    published = Published()
    values = trial_with_results
    clients = {}
    for name in ("alice", "cora", "rhea", "sam"):
        clients[name] = APIClient()
        clients[name].force_login(world.people[name])
    for path, operations in published.schema["paths"].items():
        if "get" not in operations:
            continue
        object_id = next((value for key, value in values.items() if key.startswith("/") and key in path), None)
        url = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), object_id)), path)
        for client in clients.values():
            published.check("get", path, client.get(url))
    statuses = {status for _method, _path, status in published.checked}
    assert {200, 403, 404, 409} <= statuses


def test_every_write_answers_as_published(world, stores, on_commit_now):
    published = Published()
    alice, cora = APIClient(), APIClient()
    alice.force_login(world.alice)
    cora.force_login(world.cora)

    def write(client, method, path, data=None, **values):
        url = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "ALPHA")), path)
        response = getattr(client, method)(url, data, format="json")
        published.check(method, path, response)
        return response

    write(alice, "post", "/api/trials/", {"code": "NEW", "title": "T", "sponsor": "S", "protocol_number": "P"})
    write(alice, "patch", "/api/trials/{code}/", {"deid_paths": "either"})
    write(alice, "post", "/api/trials/{code}/sites/", {"code": "NEW", "name": "New", "country": "KR"})
    write(alice, "post", "/api/trials/{code}/visits/", {"code": "W12", "label": "W12", "order": 3, "target_day": 84})
    protocol = {"modality": "CT", "body_region": "cap", "contrast": "required", "max_slice_thickness_mm": "5"}
    write(alice, "post", "/api/trials/{code}/visits/{visit_code}/protocols/", protocol, visit_code="BL")
    write(alice, "post", "/api/trials/{code}/subjects/", {"site": "SEO"})
    write(alice, "post", "/api/trials/{code}/memberships/", {"email": "new@example.org", "role": "reader"})
    token = write(alice, "post", "/api/trials/{code}/tokens/", {"name": "t", "role": "trial_admin"}).json()["id"]
    write(alice, "delete", "/api/trials/{code}/tokens/{id}/", id=token)
    rhea = Membership.objects.get(user=world.rhea, trial=world.trial).pk
    write(alice, "delete", "/api/trials/{code}/memberships/{id}/", id=rhea)
    write(alice, "post", "/api/trials/{code}/transfers/", {})
    opened = write(
        cora,
        "post",
        "/api/trials/{code}/subjects/{subject_code}/visits/{visit_code}/uploads/",
        {"deid_path": "browser"},
        subject_code="ALPHA-SEO-001",
        visit_code="BL",
    ).json()["id"]
    write(cora, "get", "/api/trials/{code}/uploads/{id}/subject-key/", id=opened)
    write(cora, "post", "/api/trials/{code}/uploads/{id}/finish/", id=opened)
    write(cora, "post", "/api/trials/{code}/uploads/{id}/finish/", id=opened)  # again: the same answer
    assert len(published.checked) == 15


def test_the_browser_records_answer_is_published(world):
    from trials import services

    services.trial_update(actor=world.alice, trial=world.trial, deid_paths="either")
    cora = APIClient()
    cora.force_login(world.cora)
    opened = cora.post(
        "/api/trials/ALPHA/subjects/ALPHA-SEO-001/visits/BL/uploads/", {"deid_path": "browser"}, format="json"
    )
    assert opened.status_code == 201
    response = cora.post(f"/api/trials/ALPHA/uploads/{opened.json()['id']}/records/", {"records": []}, format="json")
    assert response.status_code == 200
    Published().check("post", "/api/trials/{code}/uploads/{id}/records/", response)
