"""A NUL byte in a request's path or query string is answered 400 before anything reads it.

No value of this system holds one (PostgreSQL's text cannot), so none can be meant; found by sending random
search keys to the DICOMweb root, where each NUL was a server error (the database refused the query).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from trials import services
from trials.models import Membership, Role

QUERIES = {
    "QIDO-RS search": ("/dicomweb/trials/ALPHA/studies", {"PatientID": "PID\x00"}),
    "QIDO-RS search key": ("/dicomweb/trials/ALPHA/series", {"Modality\x00": "CT"}),
    "API list": ("/api/inbox/", {"trial": "ALPHA\x00"}),
    "page": ("/trials/ALPHA/queries/", {"state": "open\x00"}),
}


@pytest.mark.parametrize("case", QUERIES)
def test_a_nul_in_the_query_string_is_a_400_with_a_reason(world, client, case):
    client.force_login(world.alice)
    path, params = QUERIES[case]
    answer = client.get(path, params)
    assert answer.status_code == 400, answer.content[:300]
    if path.startswith(("/api/", "/dicomweb/")):
        assert answer.json()["error"] == {
            "code": "invalid",
            "message": "The request holds a NUL byte, which no value here can.",
        }
    else:
        assert b"NUL byte" in answer.content


@pytest.mark.parametrize(
    "path",
    ["/trials/ALPHA%00/", "/trials/ALPHA/subjects/ALPHA-SEO-001%00/", "/dicomweb/trials/ALPHA/studies/1.2%00/series"],
)
def test_a_nul_in_the_path_is_a_400(world, client, path):
    client.force_login(world.alice)
    assert client.get(path).status_code == 400


def test_a_token_client_gets_the_same_answer(world, client):
    membership = Membership.objects.get(user=world.quinn, trial=world.trial, role=Role.QC_REVIEWER)
    _, key = services.api_token_create(actor=world.quinn, membership=membership, name="nul")
    answer = client.get("/dicomweb/trials/ALPHA/studies", {"PatientID": "\x00"}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid"


def test_an_ordinary_search_is_answered(world, client):
    client.force_login(world.alice)
    assert client.get("/dicomweb/trials/ALPHA/studies", {"PatientID": "PID*"}).status_code == 200
    assert client.get(reverse("query-list", args=["ALPHA"]), {"state": "open"}).status_code == 200
