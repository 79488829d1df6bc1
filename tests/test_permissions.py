"""One permission table for every trial-level page and API endpoint, run for every member of the cast.

Each row names an endpoint and the status each person gets; `anon` is someone not logged in (pages
redirect to the log-in page, the API answers 401). A member without the right gets 403; anything in
another trial (otto) or at another site (bruno on a Seoul subject) is 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.urls import reverse

CAST = ["alice", "cora", "bruno", "quinn", "rhea", "ada", "sam", "otto"]
MEMBERS = ["alice", "cora", "bruno", "quinn", "rhea", "ada", "sam"]


@dataclass
class Row:
    name: str
    method: str
    url: str  # a URL name; args are filled from the world
    args: tuple = ()
    data: dict = field(default_factory=dict)
    ok: int = 200
    allowed: tuple = ()  # who gets `ok`; every other member gets `denied`
    denied: int = 403
    overrides: dict = field(default_factory=dict)  # person -> status
    api: bool = True


def members_only(ok_for, **kw):
    return dict(allowed=tuple(ok_for), overrides={"otto": 404, **kw.pop("overrides", {})}, **kw)


ROWS = [
    # API
    Row("api trial list", "get", "api-trials", allowed=tuple(CAST)),
    Row(
        "api trial create",
        "post",
        "api-trials",
        data={"code": "NEW", "title": "New", "sponsor": "S", "protocol_number": "P"},
        ok=201,
        allowed=("alice", "otto"),
    ),
    Row("api trial detail", "get", "api-trial", ("ALPHA",), **members_only(MEMBERS)),
    Row("api trial update", "patch", "api-trial", ("ALPHA",), data={"title": "Renamed"}, **members_only(["alice"])),
    Row("api trial summary", "get", "api-trial-summary", ("ALPHA",), **members_only(MEMBERS)),
    Row("api sites", "get", "api-sites", ("ALPHA",), **members_only(MEMBERS)),
    Row(
        "api site create",
        "post",
        "api-sites",
        ("ALPHA",),
        data={"code": "DAE", "name": "Daegu", "country": "KR"},
        ok=201,
        **members_only(["alice"]),
    ),
    Row("api visits", "get", "api-visits", ("ALPHA",), **members_only(MEMBERS)),
    Row(
        "api visit create",
        "post",
        "api-visits",
        ("ALPHA",),
        data={"code": "W12", "label": "Week 12", "order": 3, "target_day": 84, "window_before": 7, "window_after": 7},
        ok=201,
        **members_only(["alice"]),
    ),
    Row("api protocols", "get", "api-protocols", ("ALPHA", "BL"), **members_only(MEMBERS)),
    Row(
        "api protocol create",
        "post",
        "api-protocols",
        ("ALPHA", "BL"),
        data={"modality": "CT", "body_region": "cap", "contrast": "required", "max_slice_thickness_mm": "5.0"},
        ok=201,
        **members_only(["alice"]),
    ),
    Row("api subjects", "get", "api-subjects", ("ALPHA",), **members_only(["alice", "cora", "bruno", "quinn"])),
    Row(
        "api subject enroll",
        "post",
        "api-subjects",
        ("ALPHA",),
        data={"site": "SEO"},
        ok=201,
        **members_only(["alice"]),
    ),
    Row(
        "api subject detail",
        "get",
        "api-subject",
        ("ALPHA", "ALPHA-SEO-001"),
        **members_only(["alice", "cora", "quinn"], overrides={"bruno": 404}),
    ),
    Row("api memberships", "get", "api-memberships", ("ALPHA",), **members_only(["alice"])),
    Row(
        "api membership grant",
        "post",
        "api-memberships",
        ("ALPHA",),
        data={"email": "new@example.org", "full_name": "New Person", "role": "reader"},
        ok=201,
        **members_only(["alice"]),
    ),
    Row("api tokens", "get", "api-tokens", ("ALPHA",), **members_only(MEMBERS)),
    Row("api audit", "get", "api-audit", ("ALPHA",), **members_only(["alice"])),
    # Pages
    Row("home page", "get", "home", allowed=tuple(CAST), api=False),
    Row("trial create page", "get", "trial-create", allowed=("alice", "otto"), api=False),
    Row("trial page", "get", "trial-detail", ("ALPHA",), api=False, **members_only(MEMBERS)),
    Row("trial edit page", "get", "trial-edit", ("ALPHA",), api=False, **members_only(["alice"])),
    Row("sites page", "get", "trial-sites", ("ALPHA",), api=False, **members_only(["alice"])),
    Row("schedule page", "get", "trial-schedule", ("ALPHA",), api=False, **members_only(["alice"])),
    Row(
        "subjects page",
        "get",
        "trial-subjects",
        ("ALPHA",),
        api=False,
        **members_only(["alice", "cora", "bruno", "quinn"]),
    ),
    Row(
        "subject page",
        "get",
        "subject-detail",
        ("ALPHA", "ALPHA-SEO-001"),
        api=False,
        **members_only(["alice", "cora", "quinn"], overrides={"bruno": 404}),
    ),
    Row("people page", "get", "trial-people", ("ALPHA",), api=False, **members_only(["alice"])),
    Row("tokens page", "get", "trial-tokens", ("ALPHA",), api=False, **members_only(MEMBERS)),
    Row("audit page", "get", "trial-audit", ("ALPHA",), api=False, **members_only(["alice"])),
    # Reads: results are for sponsors and trial admins only, and nobody else learns they exist.
    Row("api read results", "get", "api-read-results", ("ALPHA",), denied=404, **members_only(["alice", "sam"])),
    Row("reading worklist", "get", "read-worklist", allowed=tuple(CAST), api=False),
    Row("reading page", "get", "read-design", ("ALPHA",), api=False, **members_only(["alice"])),
    Row(
        "assign adjudicators",
        "post",
        "read-adjudicators-assign",
        ("ALPHA",),
        ok=302,
        api=False,
        **members_only(["alice"]),
    ),
    # No such assignment: the trial admin is sent back to the Reading page with the error, others never get there.
    Row(
        "give a reader's case",
        "post",
        "read-assignment-replace",
        ("ALPHA", 999999),
        data={"reader": 1},
        ok=302,
        api=False,
        **members_only(["alice"]),
    ),
    Row(
        "read results page", "get", "read-results", ("ALPHA",), api=False, denied=404, **members_only(["alice", "sam"])
    ),
    Row(
        "read results csv",
        "get",
        "read-results-csv",
        ("ALPHA",),
        api=False,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
    # Sponsor transfers: sponsors and trial admins only; anyone else (readers, coordinators, another trial's
    # people) is told nothing exists. Only the trial admin changes what transfers may carry.
    Row("api transfers", "get", "api-transfers", ("ALPHA",), denied=404, **members_only(["alice", "sam"])),
    Row(
        "api transfer request",
        "post",
        "api-transfers",
        ("ALPHA",),
        ok=202,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
    Row("transfers page", "get", "read-transfers", ("ALPHA",), api=False, denied=404, **members_only(["alice", "sam"])),
    Row(
        "request a transfer",
        "post",
        "read-transfers",
        ("ALPHA",),
        ok=302,
        api=False,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
    Row(
        "delivery settings",
        "post",
        "read-delivery-settings",
        ("ALPHA",),
        data={"real_dates": "on"},
        ok=302,
        api=False,
        denied=404,
        **members_only(["alice"]),
    ),
    # Reader quality statistics: sponsors and trial admins only; readers, coordinators and QC reviewers are told
    # nothing exists, as on the read results page.
    Row(
        "reader quality page",
        "get",
        "read-quality",
        ("ALPHA",),
        api=False,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
    Row(
        "reader quality chart",
        "get",
        "read-quality-chart",
        ("ALPHA", "adjudication-p-chart", "png"),
        api=False,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
    Row(
        "reader quality csv",
        "get",
        "read-quality-csv",
        ("ALPHA", "pairs"),
        api=False,
        denied=404,
        **members_only(["alice", "sam"]),
    ),
]


def expected(row: Row, who: str) -> int:
    if who in row.overrides:
        return row.overrides[who]
    return row.ok if who in row.allowed else row.denied


CASES = [(row, who) for row in ROWS for who in CAST + ["anon"]]


@pytest.mark.parametrize(("row", "who"), CASES, ids=[f"{r.name}-{w}" for r, w in CASES])
def test_permission_table(world, client, api, row: Row, who: str):
    url = reverse(row.url, args=row.args)
    if row.api:
        c = api if who == "anon" else api.as_(world.people[who])
        response = getattr(c, row.method)(url, row.data, format="json")
        want = 401 if who == "anon" else expected(row, who)
    else:
        if who != "anon":
            client.force_login(world.people[who])
        response = getattr(client, row.method)(url, row.data)
        want = 302 if who == "anon" else expected(row, who)
    assert response.status_code == want, f"{row.name} as {who}: {response.status_code} {response.content[:300]!r}"
    if who == "anon" and not row.api:
        assert response["Location"].startswith(reverse("login"))


def test_a_coordinator_lists_only_their_own_sites_subjects(world, api):
    response = api.as_(world.cora).get(reverse("api-subjects", args=["ALPHA"]))
    assert sorted(s["code"] for s in response.json()["results"]) == ["ALPHA-SEO-001", "ALPHA-SEO-002"]
    response = api.as_(world.bruno).get(reverse("api-subjects", args=["ALPHA"]))
    assert [s["code"] for s in response.json()["results"]] == ["ALPHA-BUS-001"]


def test_the_trial_list_holds_only_trials_the_person_is_in(world, api):
    codes = [t["code"] for t in api.as_(world.cora).get(reverse("api-trials")).json()["results"]]
    assert codes == ["ALPHA"]
    codes = [t["code"] for t in api.as_(world.otto).get(reverse("api-trials")).json()["results"]]
    assert codes == ["OMEGA"]


def test_a_sponsor_summary_carries_counts_and_nothing_identifying(world, api):
    data = api.as_(world.sam).get(reverse("api-trial-summary", args=["ALPHA"])).json()
    assert data["subjects"] == 3 and data["sites"] == 2
    assert data["visits"][0]["states"]["expected"] == 3
    text = str(data)
    assert "ALPHA-SEO" not in text and "Seoul" not in text


def test_no_response_carries_the_pseudonym_key(world, api):
    key_hex = bytes(world.trial.pseudonym_key).hex()
    for name in ("api-trial", "api-trial-summary", "api-audit"):
        body = api.as_(world.alice).get(reverse(name, args=["ALPHA"])).content
        assert b"pseudonym" not in body and key_hex.encode() not in body
