"""The REST API: token clients narrowed to one trial and role, one error shape, the OpenAPI schema."""

from __future__ import annotations

from django.urls import reverse
from rest_framework.test import APIClient

from tests.test_api_schema_shapes import json_schema
from trials import services
from trials.models import Membership, Role, Subject


def token_client(user, trial, role, name="client") -> tuple[APIClient, str]:
    membership = Membership.objects.get(user=user, trial=trial, role=role)
    _, key = services.api_token_create(actor=user, membership=membership, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, key


def test_a_token_authenticates_a_machine_client(world):
    client, _ = token_client(world.cora, world.trial, Role.SITE_COORDINATOR)
    response = client.get(reverse("api-subjects", args=["ALPHA"]))
    assert response.status_code == 200
    assert {s["site"] for s in response.json()["results"]} == {"SEO"}


def test_a_token_is_narrowed_to_its_role(world):
    # A trial admin who is a sponsor viewer too (a reader could not be: test_role_segregation.py).
    services.membership_grant(actor=world.alice, trial=world.trial, user=world.alice, role=Role.SPONSOR_VIEWER)
    client, _ = token_client(world.alice, world.trial, Role.SPONSOR_VIEWER)
    assert client.get(reverse("api-subjects", args=["ALPHA"])).status_code == 403
    assert client.get(reverse("api-audit", args=["ALPHA"])).status_code == 403
    session = APIClient()
    session.force_login(world.alice)
    assert session.get(reverse("api-audit", args=["ALPHA"])).status_code == 200


def test_a_token_is_narrowed_to_its_trial(world):
    services.membership_grant(actor=world.otto, trial=world.other, user=world.alice, role=Role.READER)
    client, _ = token_client(world.alice, world.trial, Role.TRIAL_ADMIN)
    codes = [t["code"] for t in client.get(reverse("api-trials")).json()["results"]]
    assert codes == ["ALPHA"]
    assert client.get(reverse("api-trial", args=["OMEGA"])).status_code == 404


def test_a_token_cannot_create_trials_or_tokens(world):
    client, _ = token_client(world.alice, world.trial, Role.TRIAL_ADMIN)
    assert (
        client.post(
            reverse("api-trials"), {"code": "X", "title": "X", "sponsor": "S", "protocol_number": "P"}
        ).status_code
        == 403
    )
    assert client.post(reverse("api-tokens", args=["ALPHA"]), {"name": "x", "role": "trial_admin"}).status_code == 403


def test_a_revoked_token_no_longer_authenticates(world):
    client, _ = token_client(world.cora, world.trial, Role.SITE_COORDINATOR)
    token = Membership.objects.get(user=world.cora, trial=world.trial).tokens.get()
    services.api_token_revoke(actor=world.cora, token=token)
    response = client.get(reverse("api-trials"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_dies_with_its_membership(world):
    client, _ = token_client(world.rhea, world.trial, Role.READER)
    services.membership_revoke(actor=world.alice, membership=Membership.objects.get(user=world.rhea, trial=world.trial))
    assert client.get(reverse("api-trials")).status_code == 401


def test_tokens_are_stored_hashed_and_listed_without_the_key(world, api):
    _, key = token_client(world.cora, world.trial, Role.SITE_COORDINATOR)
    listing = api.as_(world.cora).get(reverse("api-tokens", args=["ALPHA"])).content.decode()
    assert key not in listing and key[6:14] in listing
    assert not Membership.objects.filter(tokens__key_hash__contains=key).exists()


def test_a_token_created_through_the_api_is_shown_once(world, api):
    response = api.as_(world.cora).post(reverse("api-tokens", args=["ALPHA"]), {"name": "PACS", "role": "coordinator"})
    assert response.status_code == 201 and response.json()["key"].startswith("ctims_")
    response = api.as_(world.cora).post(reverse("api-tokens", args=["ALPHA"]), {"name": "x", "role": "trial_admin"})
    assert response.status_code == 400 and "role" in response.json()["error"]["fields"]


def test_errors_share_one_shape_and_change_nothing(world, api):
    response = api.as_(world.alice).post(
        reverse("api-visits", args=["ALPHA"]),
        {"code": "W8", "label": "W8", "order": 3, "target_day": 45, "window_before": 7},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "overlaps" in error["message"] and "window_before" in error["fields"]
    assert not world.trial.visits.filter(code="W8").exists()


def test_a_visit_whose_sdtm_visit_name_another_has_is_refused_with_a_field_error(world, api):
    response = api.as_(world.alice).post(
        reverse("api-visits", args=["ALPHA"]),
        {"code": "W40", "label": "Week 40", "sdtm_name": "WEEK 6", "order": 8, "target_day": 280},
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"sdtm_name": ["Already the SDTM visit name of visit W6."]}
    assert not world.trial.visits.filter(code="W40").exists()


def test_a_subject_code_pattern_no_url_can_hold_is_refused_with_a_field_error(world, api):
    trial = {"code": "SLASH", "title": "T", "sponsor": "S", "protocol_number": "P"}
    response = api.as_(world.alice).post(reverse("api-trials"), {**trial, "subject_code_pattern": "{trial}/{n}"})
    assert response.status_code == 400 and "subject_code_pattern" in response.json()["error"]["fields"]
    assert api.as_(world.alice).post(reverse("api-trials"), trial).status_code == 201
    response = api.as_(world.alice).patch(
        reverse("api-trial", args=["SLASH"]), {"subject_code_pattern": "{n:c}"}, format="json"
    )
    assert response.status_code == 400 and "{n:c}" in response.json()["error"]["fields"]["subject_code_pattern"][0]


def test_serializer_errors_use_the_same_shape(world, api):
    response = api.as_(world.alice).post(reverse("api-sites", args=["ALPHA"]), {"code": "X"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "country"}


def test_a_protocols_slice_thickness_is_bounded_as_on_the_page(world, api):
    url = reverse("api-protocols", args=["ALPHA", "W6"])
    data = {"modality": "CT", "body_region": "cap", "contrast": "required"}
    response = api.as_(world.alice).post(url, {**data, "max_slice_thickness_mm": "0.09"})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["max_slice_thickness_mm"]
    assert api.as_(world.alice).post(url, {**data, "max_slice_thickness_mm": "0.1"}).status_code == 201


def test_an_audit_date_out_of_range_is_refused(world, api):
    for since in ("0001-01-01", "2026-13-40"):
        response = api.as_(world.alice).get(reverse("api-audit", args=["ALPHA"]), {"since": since})
        assert response.status_code == 400 and "since" in response.json()["error"]["fields"]
    response = api.as_(world.alice).get(reverse("api-audit", args=["ALPHA"]), {"until": "9999-12-31"})
    assert response.status_code == 400 and "until" in response.json()["error"]["fields"]


def test_a_list_fields_errors_name_the_item_in_words(world, api):
    response = api.as_(world.alice).patch(
        reverse("api-trial", args=["ALPHA"]), {"two_factor_roles": ["reader", "nonsense"]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == 'two_factor_roles: item 2: "nonsense" is not a valid choice.'
    assert error["fields"] == {"two_factor_roles": ['item 2: "nonsense" is not a valid choice.']}
    response = api.as_(world.alice).post(
        reverse("api-memberships", args=["ALPHA"]),
        {"email": "otto@example.org", "role": "coordinator", "sites": ["S" * 33]},
        format="json",
    )
    assert response.json()["error"]["message"] == "sites: item 1: Ensure this field has no more than 32 characters."


def test_enrolling_at_an_unknown_site_is_refused(world, api):
    count = Subject.objects.count()
    response = api.as_(world.alice).post(reverse("api-subjects", args=["ALPHA"]), {"site": "NOPE"})
    assert response.status_code == 400 and "NOPE" in response.json()["error"]["message"]
    assert Subject.objects.count() == count


def test_granting_a_site_of_another_trial_is_refused(world, api):
    response = api.as_(world.alice).post(
        reverse("api-memberships", args=["ALPHA"]),
        {"email": "otto@example.org", "role": "coordinator", "sites": ["ZZZ"]},
        format="json",
    )
    assert response.status_code == 400 and "ZZZ" in response.json()["error"]["message"]


def test_a_membership_can_be_revoked_through_the_api(world, api):
    membership = Membership.objects.get(user=world.rhea, trial=world.trial)
    response = api.as_(world.alice).delete(reverse("api-membership", args=["ALPHA", membership.pk]))
    assert response.status_code == 204
    assert api.as_(world.rhea).get(reverse("api-trial", args=["ALPHA"])).status_code == 404


def test_the_openapi_schema_and_docs_are_served_without_a_cdn(world, client):
    client.force_login(world.alice)
    schema = client.get(reverse("api-schema"))
    assert schema.status_code == 200 and b"/api/trials/{code}/subjects/" in schema.content
    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200 and b"cdn." not in docs.content and b"swagger-ui" in docs.content


def test_a_json_null_in_a_form_is_refused_for_the_trial_s_list_options(world):
    """A multipart or form body's "null" parses to None: refused as the JSON body's null is, not a 500."""
    client, _ = token_client(world.alice, world.trial, Role.TRIAL_ADMIN)
    for name in ("deid_private_safelist", "deid_kept_text_attributes"):
        response = client.patch(reverse("api-trial", args=["ALPHA"]), {name: "null"}, format="multipart")
        assert response.status_code == 400, name
        assert name in response.json()["error"]["fields"]


def test_a_site_s_country_that_is_not_two_letters_is_refused(world):
    client, _ = token_client(world.alice, world.trial, Role.TRIAL_ADMIN)
    for country in ("¹", "١", "12", "KOR"):
        response = client.post(reverse("api-sites", args=["ALPHA"]), {"code": "NEW", "name": "N", "country": country})
        assert response.status_code == 400, country
        assert "country" in response.json()["error"]["fields"]


def test_a_reader_s_trial_answers_match_the_published_schema(world):
    """A reader gets a trial's code and title only: the schema publishes that shape too, next to the full one."""
    import jsonschema

    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    components = json_schema(schema["components"]["schemas"], closed=False)

    def check(answer, path):
        body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(answer, {**json_schema(body, closed=False), "components": {"schemas": components}})

    for user, role in ((world.rhea, Role.READER), (world.alice, Role.TRIAL_ADMIN)):
        client, _ = token_client(user, world.trial, role)
        check(client.get(reverse("api-trial", args=["ALPHA"])).json(), "/api/trials/{code}/")
        check(client.get(reverse("api-trials")).json(), "/api/trials/")
        check(client.get(f"/api/trials/{world.trial.code}/summary/").json(), "/api/trials/{code}/summary/")
