"""One permission table for every trial-level page and API endpoint, run for every member of the cast.

Each row names an endpoint and the status each person gets; `anon` is someone not logged in (pages
redirect to the log-in page, the API answers 401). A member without the right gets 403; anything in
another trial (otto) or at another site (bruno on a Seoul subject) is 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.test import override_settings
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
    # The inbox is each person's own: anyone logged in gets theirs (tests/trials/test_inbox.py checks its scope).
    Row("api inbox", "get", "api-inbox", allowed=tuple(CAST)),
    Row("inbox page", "get", "inbox", allowed=tuple(CAST), api=False),
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
    # Readers and adjudicators: nothing of the schedule beyond what their worklist shows (issue 12).
    Row("api visits", "get", "api-visits", ("ALPHA",), **members_only(["alice", "cora", "bruno", "quinn", "sam"])),
    Row(
        "api visit create",
        "post",
        "api-visits",
        ("ALPHA",),
        data={"code": "W12", "label": "Week 12", "order": 3, "target_day": 84, "window_before": 7, "window_after": 7},
        ok=201,
        **members_only(["alice"]),
    ),
    Row(
        "api protocols",
        "get",
        "api-protocols",
        ("ALPHA", "BL"),
        **members_only(["alice", "cora", "bruno", "quinn", "sam"]),
    ),
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
        ok=202,  # an invitation, accepted later (issue 12)
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
    Row("audit export", "get", "trial-audit-export", ("ALPHA",), api=False, **members_only(["alice"])),
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
    # Whatever the answer, it is kept by no cache and sniffed by no browser (issue 12).
    assert "no-store" in response.get("Cache-Control", ""), f"{row.name} as {who}: {response.get('Cache-Control')}"
    assert response["X-Content-Type-Options"] == "nosniff"
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


def test_a_reader_or_adjudicator_learns_only_a_trials_code_and_title_from_any_trial_answer(world, api):
    """As the summary already said: the sponsor, protocol number, subject code pattern (which names the sites'
    codes' place), de-identification settings and two-factor roles are not theirs to read (found by asking)."""
    for person in (world.rhea, world.ada):
        listed = api.as_(person).get(reverse("api-trials")).json()["results"]
        one = api.as_(person).get(reverse("api-trial", args=["ALPHA"])).json()
        assert listed == [{"code": "ALPHA", "title": world.trial.title}] and one == listed[0]
    full = api.as_(world.sam).get(reverse("api-trial", args=["ALPHA"])).json()
    assert {"sponsor", "protocol_number", "subject_code_pattern"} <= full.keys()


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


# --- The read side: every scope holds (issue 12) ------------------------------------------------------------


@pytest.fixture
def reading(db, stores, on_commit_now):
    """ALPHA read twice: Baseline and Week 6 of ALPHA-SEO-001 ready, so each reader holds an open baseline task
    and a WAITING follow-up; an operator (a superuser with no trial role) looks on."""
    from reads.services import read_design_set
    from tests.conftest import build_world, make_user
    from tests.reads.flow import ready

    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double", show_visit_label=False)
    ready(w, "BL")
    ready(w, "W6", day=42)
    w.people["oscar"] = make_user("oscar", is_staff=True, is_superuser=True)
    return w


def _task_paths(task) -> list[str]:
    root = f"/dicomweb/tasks/{task.pk}"
    paths = [reverse("read-task", args=[task.pk]), f"{root}/studies", f"{root}/series"]
    if task.kind == "read":
        paths.append(reverse("read-draft", args=[task.pk]))
    return paths


def test_a_waiting_follow_up_answers_as_if_it_did_not_exist_yet(reading, client):
    from tests.reads.flow import task_of

    waiting = task_of(reading.rhea, "W6")
    assert waiting.state == "waiting"
    client.force_login(reading.rhea)
    for path in _task_paths(waiting):
        assert client.get(path).status_code == 404, path
    study = waiting.timepoint.studies.get()
    assert client.get(f"/dicomweb/tasks/{waiting.pk}/studies/{study.study_instance_uid}/metadata").status_code == 404
    put = client.put(reverse("read-draft", args=[waiting.pk]), "{}", content_type="application/json")
    assert put.status_code == 404
    # The open baseline task is the reader's as before.
    open_task = task_of(reading.rhea, "BL")
    for path in _task_paths(open_task):
        assert client.get(path).status_code == 200, path


def test_an_operator_with_no_trial_role_gets_404_on_every_read_side_path(reading, client):
    from tests.reads.flow import task_of

    client.force_login(reading.oscar)
    for task in (task_of(reading.rhea, "BL"), task_of(reading.ravi, "BL")):
        for path in _task_paths(task):
            assert client.get(path).status_code == 404, path
    assert client.get(reverse("trial-detail", args=["ALPHA"])).status_code == 404
    assert client.get(reverse("read-results", args=["ALPHA"])).status_code == 404
    assert client.get("/dicomweb/trials/ALPHA/studies").status_code == 404


def test_a_superuser_holds_only_the_rights_of_their_trial_roles(reading, client):
    """A superuser who is a reader in ALPHA is a reader there: no trial admin's pages."""
    from trials import services

    services.membership_grant(actor=reading.alice, trial=reading.trial, user=reading.oscar, role="reader")
    client.force_login(reading.oscar)
    assert client.get(reverse("trial-detail", args=["ALPHA"])).status_code == 200
    assert client.get(reverse("trial-edit", args=["ALPHA"])).status_code == 403
    assert client.get(reverse("trial-audit", args=["ALPHA"])).status_code == 403
    assert client.get(reverse("read-results", args=["ALPHA"])).status_code == 404


@pytest.mark.parametrize("who", ["rhea", "ada"])
@pytest.mark.parametrize("by_token", [False, True], ids=["session", "token"])
def test_readers_and_adjudicators_get_only_what_their_worklist_shows_from_the_summary(reading, api, who, by_token):
    from trials import services
    from trials.models import Membership

    person = reading.people[who]
    if by_token:
        membership = Membership.objects.get(user=person, trial=reading.trial)
        _token, key = services.api_token_create(actor=person, membership=membership, name="client")
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    else:
        api.as_(person)
    summary = api.get(reverse("api-trial-summary", args=["ALPHA"]))
    assert summary.status_code == 200
    data = summary.json()
    assert set(data) == {"code", "title"}, data
    visits = api.get(reverse("api-visits", args=["ALPHA"]))
    assert visits.status_code == 403, visits.content
    assert api.get(reverse("api-protocols", args=["ALPHA", "BL"])).status_code == 403
    assert api.get(reverse("api-sites", args=["ALPHA"])).json()["results"] == []


def test_the_trial_root_serves_a_trial_admin_only_the_sr_of_a_locked_result(reading, client):
    from reads.models import TimepointResult
    from tests.reads.flow import baseline_content, save_and_sign, task_of

    rhea_bl, ravi_bl = task_of(reading.rhea, "BL"), task_of(reading.ravi, "BL")
    save_and_sign(reading.rhea, rhea_bl, baseline_content(rhea_bl))
    client.force_login(reading.alice)

    def sr_series():
        answer = client.get("/dicomweb/trials/ALPHA/series", {"Modality": "SR"})
        return [] if answer.status_code == 204 else [s["0020000E"]["Value"][0] for s in answer.json()]

    assert sr_series() == []  # signed, but the visit's result is not locked
    save_and_sign(reading.ravi, ravi_bl, baseline_content(ravi_bl))
    result = TimepointResult.objects.get(timepoint=rhea_bl.timepoint)
    assert sr_series() == [result.read.sr_instance.series.series_instance_uid]
    other = [t for t in (rhea_bl, ravi_bl) if t.pk != result.read.task_id][0]
    other_sr = other.reads.get().sr_instance
    study, series = other_sr.series.study.study_instance_uid, other_sr.series.series_instance_uid
    metadata = client.get(f"/dicomweb/trials/ALPHA/studies/{study}/series/{series}/metadata")
    assert metadata.status_code == 404


def test_a_readers_task_root_images_are_kept_by_no_cache(reading, client):
    from tests.reads.flow import task_of
    from trials.models import Instance

    task = task_of(reading.rhea, "BL")
    instance = Instance.objects.filter(series__study__timepoint=task.timepoint).select_related("series__study").first()
    path = (
        f"studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    client.force_login(reading.rhea)
    for tail in ("/metadata", "/rendered", "/frames/1"):
        response = client.get(f"/dicomweb/tasks/{task.pk}/{path}{tail}", HTTP_ACCEPT="*/*")
        assert response.status_code == 200, (tail, response.status_code)
        assert response["Cache-Control"] == "no-store", tail


def _admin_form(client, trial, **changes) -> dict:
    url = reverse("admin:trials_trial_change", args=[trial.pk])
    form = {
        "title": trial.title,
        "sponsor": trial.sponsor,
        "protocol_number": trial.protocol_number,
        "status": trial.status,
        "subject_code_pattern": trial.subject_code_pattern,
        "deid_private_safelist": trial.deid_private_safelist,
        "_save": "Save",
    }
    for name in ("deid_retain_dates_modified", "deid_clean_descriptors", "deid_retain_device_identity"):
        if getattr(trial, name):
            form[name] = "on"
    form.update(changes)
    return client.post(url, form)


def test_the_operator_admin_changes_a_trial_only_through_its_service_and_audited(reading, client):
    """Images are stored in ALPHA: the de-identification options are read-only for operators too, and what they
    may change is changed by trial_update and audited."""
    from ctims.models import AuditEvent
    from trials.models import Trial

    trial = reading.trial
    client.force_login(reading.oscar)
    page = client.get(reverse("admin:trials_trial_change", args=[trial.pk]))
    assert page.status_code == 200 and b'name="deid_clean_descriptors"' not in page.content
    before = {n: getattr(trial, n) for n in ("deid_clean_descriptors", "deid_retain_device_identity")}
    response = _admin_form(
        client, trial, title="Alpha, renamed", deid_clean_descriptors="" if before["deid_clean_descriptors"] else "on"
    )
    assert response.status_code == 302, response.content[:500]
    trial = Trial.objects.get(pk=trial.pk)
    assert trial.title == "Alpha, renamed"
    assert {n: getattr(trial, n) for n in before} == before
    event = AuditEvent.objects.filter(action="trial.update", trial_id=trial.pk).last()
    assert event.actor == reading.oscar and event.summary["changes"] == {"title": ["Alpha study", "Alpha, renamed"]}


def test_an_operators_change_to_an_account_is_audited(world, client):
    from ctims.models import AuditEvent
    from tests.conftest import make_user

    oscar = make_user("oscar", is_staff=True, is_superuser=True)
    client.force_login(oscar)
    cora = world.cora
    response = client.post(
        reverse("admin:ctims_user_change", args=[cora.pk]),
        {
            "email": cora.email,
            "full_name": cora.full_name,
            "is_active": "on",
            "is_staff": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content[:800]
    event = AuditEvent.objects.filter(action="user.update").last()
    assert event.actor == oscar and "is_staff" in event.summary["fields"]


# --- Granting a role is an invitation (issue 12, finding 8) ---------------------------------------------------


def _grant(api, world, email, role="reader"):
    return api.as_(world.alice).post(
        reverse("api-memberships", args=["ALPHA"]),
        {"email": email, "full_name": "Whoever", "role": role},
        format="json",
    )


def _link(mail) -> str:
    import re

    return re.search(r"http://testserver(/\S+)", mail.body).group(1)


@override_settings(SITE_URL="http://testserver")
def test_granting_a_role_to_an_email_answers_alike_whether_or_not_the_account_exists(
    world, api, mailoutbox, on_commit_now
):
    from trials.models import Membership

    existing = _grant(api, world, "otto@example.org")  # otto has an account, in OMEGA
    unknown = _grant(api, world, "nobody@example.org")
    assert existing.status_code == unknown.status_code == 202, existing.content
    a, b = existing.json(), unknown.json()
    assert set(a) == set(b) and {k: v for k, v in a.items() if k not in ("email", "id", "expires_at")} == {
        k: v for k, v in b.items() if k not in ("email", "id", "expires_at")
    }
    assert "Otto" not in existing.content.decode()
    # Nothing was added: otto is still not in ALPHA, and no account was made for the unknown address.
    assert not Membership.objects.filter(user=world.otto, trial=world.trial).exists()
    assert api.as_(world.otto).get(reverse("api-trial", args=["ALPHA"])).status_code == 404
    assert not type(world.otto).objects.filter(email="nobody@example.org").exists()
    assert sorted(m.to[0] for m in mailoutbox) == ["nobody@example.org", "otto@example.org"]


@override_settings(SITE_URL="http://testserver")
def test_an_invited_person_with_an_account_accepts_by_logging_in(world, api, client, mailoutbox, on_commit_now):
    from trials.models import Membership

    _grant(api, world, "otto@example.org")
    link = _link(mailoutbox[0])
    page = client.get(link)  # not logged in: asked to log in first
    assert page.status_code == 200 and b"Log in" in page.content
    client.force_login(world.rhea)  # someone else's session cannot take it
    held = Membership.objects.filter(user=world.rhea).count()
    assert client.post(link).status_code == 403
    assert Membership.objects.filter(user=world.rhea).count() == held
    client.force_login(world.otto)
    assert client.post(link).status_code == 302
    assert Membership.objects.filter(user=world.otto, trial=world.trial, role="reader").exists()
    assert client.post(link).status_code == 404  # used once


@override_settings(SITE_URL="http://testserver")
def test_an_invited_person_without_an_account_chooses_a_password_and_is_in(
    world, api, client, mailoutbox, on_commit_now
):
    from trials.models import Membership

    _grant(api, world, "nora@example.org")
    link = _link(mailoutbox[0])
    assert b"password" in client.get(link).content
    response = client.post(
        link, {"full_name": "Nora Park", "new_password1": "Nora-Strong-2026!", "new_password2": "Nora-Strong-2026!"}
    )
    assert response.status_code == 302, response.content[:500]
    nora = type(world.otto).objects.get(email="nora@example.org")
    assert nora.full_name == "Nora Park" and nora.check_password("Nora-Strong-2026!")
    assert Membership.objects.filter(user=nora, trial=world.trial, role="reader").exists()


def test_an_invitation_link_that_does_not_exist_is_404(world, client):
    assert client.get("/trials/invitations/not-a-real-one/").status_code == 404


def test_an_upload_is_checked_from_the_trial_access_its_trial_was_read_with(world, api):
    """The upload API's hot path (each STOW body, each status poll): after the trial, an upload costs one query,
    and the rule is the upload list's (all subjects' for those who see all, else their sites'; writing: the
    subject's site's coordinators)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ctims.exceptions import NotFound, NotPermitted
    from tests.trials.durability import open_upload
    from trials import selectors
    from trials.access import Actor

    upload_id = open_upload(api, world.cora).json()["id"]

    def check(who: str, *, write: bool):
        actor = Actor(user=getattr(world, who))
        trial = selectors.trial_get(actor=actor, code="ALPHA")
        with CaptureQueriesContext(connection) as queries:
            try:
                return selectors.upload_get(actor=actor, trial=trial, pk=upload_id, write=write).pk, len(queries)
            except (NotFound, NotPermitted) as exc:
                return type(exc).__name__, len(queries)

    assert check("cora", write=True) == (upload_id, 1)
    assert check("alice", write=False) == (upload_id, 1)  # sees every subject
    assert check("quinn", write=False) == (upload_id, 1)
    assert check("quinn", write=True)[0] == "NotPermitted"  # sees it, may not add files
    assert check("bruno", write=False)[0] == "NotFound"  # another site's subject
    assert check("rhea", write=False)[0] == "NotFound"  # a reader sees no subjects


def test_an_upload_status_poll_reads_the_persons_permissions_on_the_trial_once(world, api):
    """The API's checks in one request share one reading of the person's permissions (the trial, then the upload)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.trials.durability import open_upload

    upload_id = open_upload(api, world.cora).json()["id"]
    with CaptureQueriesContext(connection) as queries:
        assert api.as_(world.cora).get(reverse("api-upload", args=["ALPHA", upload_id])).status_code == 200
    permission_reads = [q["sql"] for q in queries.captured_queries if "guardian_userobjectpermission" in q["sql"]]
    assert len(permission_reads) == 1, permission_reads
