"""The permission matrix, generated from the URL conf: every route times every member of the cast, in one world.

The cast spans two trials, ALPHA and OMEGA: ALPHA's trial admin, coordinators at two sites, a QC reviewer, two
readers (rhea holds an open baseline task and a WAITING follow-up), an adjudicator, a sponsor, OMEGA's trial
admin (otto), an operator with no trial role (oscar, a superuser), a reader whose role was revoked (vera),
scoped API tokens (alice's as trial admin, cora's as coordinator, rhea's as reader), and someone not logged
in. Each route has one row in ROWS saying what each of them gets; a route without a row fails
`test_every_route_has_a_row`. Every answer must also carry the security headers (no-store where personal,
CSP, nosniff).

One world is built once (per pytest-xdist worker) and read by a few thousand requests: the rows only read, or
write nothing because they are refused or aim at an object outside the trial. Each row is a test of its own (an
admin model's rows are one), so that the workers share the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest
from django.contrib.admin import site as admin_site
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

CAST = [
    "anon",
    "alice",
    "cora",
    "bruno",
    "quinn",
    "rhea",
    "ravi",
    "ada",
    "sam",
    "otto",
    "oscar",
    "vera",
    "tok_alice",
    "tok_cora",
    "tok_rhea",
]
TOKENS = {"tok_alice": ("alice", "trial_admin"), "tok_cora": ("cora", "coordinator"), "tok_rhea": ("rhea", "reader")}


def routes() -> list[tuple[str, str]]:
    """(route, name) of every URL pattern, resolvers walked."""

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{p.namespace}:" if p.namespace else ""
                yield from ((r, ns + n if n else n) for r, n in walk(p.url_patterns, prefix + str(p.pattern)))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p.name

    return list(walk(get_resolver().url_patterns))


# --- the world ------------------------------------------------------------------------------------------------


def build_matrix_world() -> dict:
    """ALPHA with images, reads, a locked result, a query, an upload, an invitation; OMEGA beside it. Returns the
    values the rows' paths are filled with, and the clients of the cast."""
    from django.core.files.storage import storages

    from reads import transfers
    from reads.models import ReaderAssignment, TimepointResult
    from reads.services import read_design_set
    from tests.conftest import authenticator_of, build_world, make_user, upload_files, verified_login
    from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
    from trials import qc_services, services
    from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
    from trials.models import ApiToken, Instance, Membership, Query, Timepoint, Upload

    storages._storages.clear()
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    # ALPHA-SEO-001: both readers sign the baseline and agree, so its result is locked with reader 1's SR.
    ready(w, "BL")
    for reader in (w.rhea, w.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    # ALPHA-SEO-002: baseline and week 6 ready, nothing signed: rhea's baseline is open, her week 6 WAITING.
    ready(w, "BL", subject="ALPHA-SEO-002")
    ready(w, "W6", day=42, subject="ALPHA-SEO-002")
    task_open = task_of(w.rhea, "BL", "ALPHA-SEO-002")
    task_waiting = task_of(w.rhea, "W6", "ALPHA-SEO-002")
    assert task_open.state == "open" and task_waiting.state == "waiting"
    # ALPHA-BUS-001: uploaded, failed by QC with a query to Busan.
    files = synthesize_ct_series(
        real_ct_template(large=False), slices=2, seed="matrix/bus", study_date=date(2026, 3, 2)
    )
    bus_bl = upload_files(w.bruno, "ALPHA-BUS-001", files)
    bus_bl = Timepoint.objects.get(pk=bus_bl.pk)
    query = qc_services.qc_fail(actor=w.quinn, timepoint=bus_bl, series=[], reason="Slices missing")
    # OMEGA: otto's query-less trial, with a token of his; vera was a reader of ALPHA and is no longer.
    otto_membership = Membership.objects.get(user=w.otto, trial=w.other)
    otto_token, _key = services.api_token_create(actor=w.otto, membership=otto_membership, name="omega")
    vera = make_user("vera")
    services.membership_grant(actor=w.alice, trial=w.trial, user=vera, role="reader")
    services.membership_revoke(actor=w.alice, membership=Membership.objects.get(user=vera, trial=w.trial))
    oscar = make_user("oscar", is_staff=True, is_superuser=True)
    _invitation, secret = services.invitation_create(
        actor=w.alice, trial=w.trial, email="new@example.org", full_name="New", role="reader"
    )
    other_invitation, _other_secret = services.invitation_create(
        actor=w.otto, trial=w.other, email="omega.new@example.org", full_name="New", role="reader"
    )
    instance = (
        Instance.objects.filter(series__study__timepoint=task_open.timepoint)
        .select_related("series__study")
        .order_by("pk")
        .first()
    )
    result = TimepointResult.objects.get(timepoint__subject__code="ALPHA-SEO-001", timepoint__visit__code="BL")
    transfer = transfers.transfer_request(actor=w.sam, trial=w.trial)
    people = {**w.people, "vera": vera, "oscar": oscar}
    keys = {}
    for name, (who, role) in TOKENS.items():
        membership = Membership.objects.get(user=people[who], trial=w.trial, role=role)
        keys[name] = services.api_token_create(actor=people[who], membership=membership, name=name)[1]
    values = {
        "code": "ALPHA",
        "subject": "ALPHA-SEO-002",
        "bus_subject": "ALPHA-BUS-001",
        "visit": "BL",
        "study": instance.series.study.study_instance_uid,
        "series": instance.series.series_instance_uid,
        "instance": instance.sop_instance_uid,
        "bus_series": bus_bl.studies.get().series.first().series_instance_uid,
        "task": task_open.pk,
        "waiting": task_waiting.pk,
        "result": result.pk,
        "transfer": transfer.number,
        "query": query.pk,
        "upload": Upload.objects.filter(timepoint=task_open.timepoint).get().pk,
        "bus_upload": Upload.objects.filter(timepoint=bus_bl).get().pk,
        "other_membership": otto_membership.pk,
        "other_token": otto_token.pk,
        "other_invitation": other_invitation.pk,
        "assignment": ReaderAssignment.objects.get(subject__code="ALPHA-SEO-002", reader=w.rhea).pk,
        "secret": secret,
        "other_query": Query.objects.exclude(pk=query.pk).values_list("pk", flat=True).first() or 999999,
        "user": w.cora.pk,
        "trial_pk": w.trial.pk,
        "token_pk": ApiToken.objects.filter(membership__user=w.cora).first().pk,
        "device": None,
    }
    clients = {"anon": Client()}
    for name in CAST:
        if name == "anon":
            continue
        if name in TOKENS:
            clients[name] = Client(HTTP_AUTHORIZATION=f"Bearer {keys[name]}")
        else:
            clients[name] = Client()
            verified_login(clients[name], people[name])
    values["device"] = authenticator_of(w.alice).pk
    return {"values": values, "clients": clients, "world": w}


# --- the table ------------------------------------------------------------------------------------------------

MEMBERS = ["alice", "cora", "bruno", "quinn", "rhea", "ravi", "ada", "sam"]
OUTSIDERS = ["otto", "oscar", "vera"]  # another trial's admin, an operator with no role, a revoked reader
GROUPS = {
    "members": MEMBERS,
    "outsiders": OUTSIDERS,
    "sessions": MEMBERS + OUTSIDERS,
    "tokens": list(TOKENS),
    "everyone": CAST,
}


def cells(default: int, **who: int) -> dict[str, int]:
    """An answer for each of the cast: `default`, then groups and people in the order given."""
    out = dict.fromkeys(CAST, default)
    for name, status in who.items():
        for person in GROUPS.get(name, [name]):
            out[person] = status
    return out


def page(*ok: str, denied: int = 403, **extra: int) -> dict[str, int]:
    """A page: `ok` get 200, other members `denied`, outsiders 404, anyone without a session the log-in page."""
    return cells(denied, anon=302, tokens=302, outsiders=404, **dict.fromkeys(ok, 200), **extra)


def as_tokens(answers: dict[str, int]) -> dict[str, int]:
    """A token answers like its holder in that role (alice as trial admin, cora as coordinator, rhea as reader)."""
    return {**answers, **{name: answers[holder] for name, (holder, _role) in TOKENS.items()}}


def api(*ok: str, denied: int = 403, status: int = 200, **extra: int) -> dict[str, int]:
    """An API endpoint: `ok` get `status`, other members `denied`, outsiders 404, no credentials 401."""
    people = {k: v for k, v in extra.items() if k not in TOKENS}
    tokens = {k: v for k, v in extra.items() if k in TOKENS}
    answers = cells(denied, anon=401, outsiders=404, **dict.fromkeys(ok, status), **people)
    return {**as_tokens(answers), **tokens}


ALL_IMAGES = ("alice", "quinn", "tok_alice")  # every study of the trial root
SEO_IMAGES = (*ALL_IMAGES, "cora", "tok_cora")  # Seoul's studies too


def trial_root(*, search: bool = False, study_level: int = 200, **extra: int) -> dict[str, int]:
    """The trial root: trial admins, QC reviewers and Seoul's coordinator see the Seoul study; Busan's coordinator
    searches the root (finding only Busan) but gets 404 on the Seoul study; everyone else 404 (401 without
    credentials)."""
    answers = cells(404, anon=401, **dict.fromkeys(SEO_IMAGES, study_level))
    if search:
        answers["bruno"] = study_level
    return {**answers, **extra}


def task_root(*, ok: int = 200, **extra: int) -> dict[str, int]:
    """rhea's open task's root: hers alone (tokens never reach a task root); 401 without credentials."""
    return {**cells(404, anon=401, rhea=ok), **extra}


def waiting_task_root() -> dict[str, int]:
    """rhea's WAITING task: it does not exist yet, for her either."""
    return cells(404, anon=401)


def admin_page(operator: int = 200) -> dict[str, int]:
    """The operators' admin: the operator (staff, both factors) gets `operator`; anyone else the admin log-in."""
    return {**cells(302), "oscar": operator}


@dataclass
class Row:
    name: str  # the URL name
    path: str  # filled from the world's values
    expect: dict[str, int]
    method: str = "get"
    data: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    note: str = ""


S = "studies/{study}"
SE = S + "/series/{series}"
IN = SE + "/instances/{instance}"
# DICOMweb suffix -> (path below the root, whether the trial root's answer is a search any coordinator gets)
DICOMWEB = {
    "studies": ("studies", True),
    "series": ("series", True),
    "instances": ("instances", True),
    "study": (S, False),
    "study-metadata": (S + "/metadata", False),
    "study-series": (S + "/series", False),
    "study-instances": (S + "/instances", False),
    "series-retrieve": (SE, False),
    "series-metadata": (SE + "/metadata", False),
    "series-thumbnail": (SE + "/thumbnail", False),
    "series-instances": (SE + "/instances", False),
    "instance": (IN, False),
    "instance-metadata": (IN + "/metadata", False),
    "instance-rendered": (IN + "/rendered", False),
    "study-rendered": (S + "/rendered", False),
    "series-rendered": (SE + "/rendered", False),
    "instance-thumbnail": (IN + "/thumbnail", False),
    "frames": (IN + "/frames/1", False),
    "frames-rendered": (IN + "/frames/1/rendered", False),
    "study-thumbnail": (S + "/thumbnail", False),
    "frames-thumbnail": (IN + "/frames/1/thumbnail", False),
    "bulkdata": (IN + "/bulkdata/7FE00010", False),
}
ACCEPT = {"HTTP_ACCEPT": "*/*"}

ROWS: list[Row] = [
    # Pages that belong to no trial
    Row("home", "/", page(*MEMBERS, otto=200, oscar=200, vera=200)),
    Row("inbox", "/inbox/", page(*MEMBERS, *OUTSIDERS)),  # everyone's own: what waits for them
    Row("health", "/health/", cells(200)),
    Row("login", "/accounts/login/", cells(302, anon=200, tokens=200)),  # logged in: sent on to the home page
    Row("logout", "/accounts/logout/", cells(405)),  # POST only
    Row("two-factor", "/accounts/two-factor/", page(*MEMBERS, *OUTSIDERS)),
    Row("two-factor-enrol", "/accounts/two-factor/enrol/", page(*MEMBERS, *OUTSIDERS)),
    Row("two-factor-recovery-codes", "/accounts/two-factor/recovery-codes/", cells(405, anon=302, tokens=302)),
    Row("password_change", "/accounts/password/change/", page(*MEMBERS, *OUTSIDERS)),
    Row("password_change_done", "/accounts/password/change/done/", page(*MEMBERS, *OUTSIDERS)),
    Row("password_reset", "/accounts/password/reset/", cells(200)),
    Row("password_reset_done", "/accounts/password/reset/sent/", cells(200)),
    Row("password_reset_confirm", "/accounts/password/set/MQ/not-a-token/", cells(200)),  # "this link no longer works"
    Row("password_reset_complete", "/accounts/password/set/done/", cells(200)),
    Row("set_language", "/i18n/setlang/", cells(302), method="post", data={"language": "en", "next": "/"}),
    Row("javascript-catalog", "/jsi18n/", cells(200)),
    Row("invitation", "/trials/invitations/{secret}/", cells(200)),  # the link is the credential
    # API
    # The schema describes the endpoints, not their data: public.
    Row("api-schema", "/api/schema/", cells(200)),
    Row("api-docs", "/api/docs/", cells(200)),
    Row("api-root", "/api/", cells(200)),
    Row("api-inbox", "/api/inbox/", api(*MEMBERS, *OUTSIDERS)),
    Row("api-inbox", "/api/inbox/?trial={code}", api(*MEMBERS), note="one trial: outsiders get 404"),
    Row("api-trials", "/api/trials/", api(*MEMBERS, otto=200, oscar=200, vera=200)),
    Row("api-trial", "/api/trials/{code}/", api(*MEMBERS)),
    Row("api-trial-summary", "/api/trials/{code}/summary/", api(*MEMBERS)),  # readers: code and title only
    Row("api-sites", "/api/trials/{code}/sites/", api(*MEMBERS)),  # readers: an empty list
    Row("api-visits", "/api/trials/{code}/visits/", api("alice", "cora", "bruno", "quinn", "sam")),
    Row("api-protocols", "/api/trials/{code}/visits/BL/protocols/", api("alice", "cora", "bruno", "quinn", "sam")),
    Row("api-subjects", "/api/trials/{code}/subjects/", api("alice", "cora", "bruno", "quinn")),
    Row("api-subject", "/api/trials/{code}/subjects/{subject}/", api("alice", "cora", "quinn", bruno=404)),
    Row("api-memberships", "/api/trials/{code}/memberships/", api("alice")),
    # Another trial's membership, token, query or upload through ALPHA's URLs: absent for everyone.
    Row("api-membership", "/api/trials/{code}/memberships/{other_membership}/", api(alice=404), method="delete"),
    Row("api-tokens", "/api/trials/{code}/tokens/", api(*MEMBERS)),
    Row("api-token", "/api/trials/{code}/tokens/{other_token}/", api(*MEMBERS, status=404), method="delete"),
    Row("api-audit", "/api/trials/{code}/audit/", api("alice")),
    Row(
        "api-upload-open",
        "/api/trials/{code}/subjects/{bus_subject}/visits/W6/uploads/",
        api("bruno", status=201, denied=404, alice=403, quinn=403),
        method="post",
        note="(Busan's coordinator; those who see the subject may not upload; others do not see it)",
    ),
    Row("api-upload", "/api/trials/{code}/uploads/{upload}/", api("alice", "cora", "quinn", denied=404)),
    Row(
        "api-upload-finish",
        "/api/trials/{code}/uploads/{upload}/finish/",
        api("cora", denied=404, alice=403, quinn=403),
        method="post",
    ),
    Row("api-read-results", "/api/trials/{code}/read-results/", api("alice", "sam", denied=404)),
    Row("api-read-result-sr", "/api/trials/{code}/read-results/{result}/sr/", api("alice", "sam", denied=404)),
    Row(
        "stow-upload",
        "/dicomweb/trials/{code}/uploads/{upload}/studies",
        api("cora", status=415, denied=404, alice=403, quinn=403),
        method="post",
        note="(an empty body is not multipart/related DICOM)",
    ),
    Row(
        "stow-upload-study",
        "/dicomweb/trials/{code}/uploads/{upload}/studies/1.2.3",
        api("cora", status=415, denied=404, alice=403, quinn=403),
        method="post",
        note="(a study's path: the same rights)",
    ),
    # Trial pages
    # Creating a trial is a global right (alice, otto) that operators hold; the creator becomes its trial admin.
    Row("trial-create", "/trials/new/", page("alice", otto=200, oscar=200, vera=403)),
    Row("trial-detail", "/trials/{code}/", page(*MEMBERS)),
    Row("trial-edit", "/trials/{code}/edit/", page("alice")),
    Row("trial-sites", "/trials/{code}/sites/", page("alice")),
    Row("trial-schedule", "/trials/{code}/schedule/", page("alice")),
    Row("protocol-create", "/trials/{code}/schedule/BL/protocols/", page("alice"), method="post"),
    Row("trial-subjects", "/trials/{code}/subjects/", page("alice", "cora", "bruno", "quinn")),
    Row("subject-detail", "/trials/{code}/subjects/{subject}/", page("alice", "cora", "quinn", bruno=404)),
    Row(
        "timepoint-upload",
        "/trials/{code}/subjects/{subject}/visits/BL/upload/",
        page("cora", denied=404, alice=403, quinn=403),
    ),
    Row(
        "timepoint-viewer",
        "/trials/{code}/subjects/{subject}/visits/BL/viewer/",
        page("alice", "cora", "quinn", denied=404),
    ),
    Row("qc-worklist", "/trials/{code}/qc/", page("quinn")),
    Row("qc-timepoint", "/trials/{code}/subjects/{bus_subject}/visits/BL/qc/", page("quinn")),
    # QC actions on Busan's visit, which waits for its query, with nothing filled in: the QC page again with the
    # refusal (start: a message and back).
    Row(
        "qc-relabel",
        "/trials/{code}/subjects/{bus_subject}/visits/BL/qc/series/{bus_series}/relabel/",
        page("quinn"),
        method="post",
    ),
    Row("qc-fail", "/trials/{code}/subjects/{bus_subject}/visits/BL/qc/fail/", page("quinn"), method="post"),
    Row("qc-pass", "/trials/{code}/subjects/{bus_subject}/visits/BL/qc/pass/", page("quinn"), method="post"),
    Row("query-list", "/trials/{code}/queries/", page("alice", "cora", "bruno", "quinn")),
    Row("query-detail", "/trials/{code}/queries/{query}/", page("alice", "bruno", "quinn", cora=404)),
    Row(
        "query-answer",
        "/trials/{code}/queries/{query}/answer/",
        page("bruno", cora=404),
        method="post",
        note="(an empty answer: the query again with the refusal)",
    ),
    # Readers and sponsors have no queries at all (403); the others do not find another trial's query (404).
    Row(
        "query-close",
        "/trials/{code}/queries/{other_query}/close/",
        page(**dict.fromkeys(("alice", "cora", "bruno", "quinn"), 404)),
        method="post",
    ),
    Row("trial-people", "/trials/{code}/people/", page("alice")),
    Row("membership-revoke", "/trials/{code}/people/{other_membership}/revoke/", page(alice=404), method="post"),
    Row(
        "invitation-withdraw",
        "/trials/{code}/people/invitations/{other_invitation}/withdraw/",
        page(alice=404),
        method="post",
    ),
    Row("trial-tokens", "/trials/{code}/tokens/", page(*MEMBERS)),
    Row("token-revoke", "/trials/{code}/tokens/{other_token}/revoke/", page(denied=404), method="post"),
    Row("trial-audit", "/trials/{code}/audit/", page("alice")),
    Row("trial-audit-export", "/trials/{code}/audit/export.csv", page("alice")),
    # Reads
    Row("read-worklist", "/reads/", page(*MEMBERS, *OUTSIDERS)),
    Row("read-task", "/reads/tasks/{task}/", page("rhea", denied=404)),
    Row("read-draft", "/reads/tasks/{task}/draft/", page("rhea", denied=404)),
    Row("read-sign", "/reads/tasks/{task}/sign/", page(rhea=400, denied=404), method="post", note="no draft yet"),
    Row("read-correct", "/reads/tasks/{task}/correct/", page(rhea=302, denied=404), method="post"),
    Row(
        "read-correction-discard",
        "/reads/tasks/{task}/correct/discard/",
        page(rhea=302, denied=404),
        method="post",
        note="nothing to discard: refused with a message",
    ),
    Row("read-adjudicate", "/reads/tasks/{task}/adjudicate/", page(denied=404), method="post"),
    Row("read-design", "/reads/trials/{code}/design/", page("alice")),
    Row("read-adjudicators-assign", "/reads/trials/{code}/adjudicators/", page(alice=302), method="post"),
    Row(
        "read-assignment-replace",
        "/reads/trials/{code}/assignments/{assignment}/replace/",
        page(alice=302),
        method="post",
        note="nobody chosen: refused with a message",
    ),
    Row("read-results", "/reads/trials/{code}/results/", page("alice", "sam", denied=404)),
    Row("read-results-csv", "/reads/trials/{code}/results.csv", page("alice", "sam", denied=404)),
    Row("read-lesions-csv", "/reads/trials/{code}/lesions.csv", page("alice", "sam", denied=404)),
    Row("read-result-sr", "/reads/trials/{code}/results/{result}/sr.dcm", page("alice", "sam", denied=404)),
    # Sponsor transfers and reader quality: the trial admin and the sponsor; the delivery setting the admin alone.
    Row("api-transfers", "/api/trials/{code}/transfers/", api("alice", "sam", denied=404)),
    Row("api-transfer", "/api/trials/{code}/transfers/{transfer}/", api("alice", "sam", denied=404)),
    Row("api-transfer-download", "/api/trials/{code}/transfers/{transfer}/download/", api("alice", "sam", denied=404)),
    Row("read-transfers", "/reads/trials/{code}/transfers/", page("alice", "sam", denied=404)),
    Row(
        "read-transfer-download",
        "/reads/trials/{code}/transfers/{transfer}/download/",
        page("alice", "sam", denied=404),
    ),
    Row(
        "read-delivery-settings",
        "/reads/trials/{code}/transfers/settings/",
        page(denied=404, alice=302),
        method="post",
        note="(saved, then back to the transfers page)",
    ),
    Row("read-quality", "/reads/trials/{code}/quality/", page("alice", "sam", denied=404)),
    Row("read-quality-csv", "/reads/trials/{code}/quality/pairs.csv", page("alice", "sam", denied=404)),
    Row("read-quality-chart", "/reads/trials/{code}/quality/waterfall.svg", page("alice", "sam", denied=404)),
    # The subject key and the browser's records: the subject's site's coordinator, for a browser-path upload only
    # (this one is a server-path upload: 409).
    Row(
        "api-upload-key",
        "/api/trials/{code}/uploads/{upload}/subject-key/",
        api(denied=404, cora=409, alice=403, quinn=403),
    ),
    Row(
        "api-upload-records",
        "/api/trials/{code}/uploads/{upload}/records/",
        api(denied=404, cora=400, alice=403, quinn=403),
        method="post",
        note="(no records given)",
    ),
    # Health and metrics: no log-in (metrics from loopback, as the test client is, or with METRICS_TOKEN).
    Row("healthz", "/healthz", cells(200)),
    Row("readyz", "/readyz", cells(200)),
    Row("metrics", "/metrics", cells(200)),
    # The waiting task, on every read-side path: absent.
    Row("read-task", "/reads/tasks/{waiting}/", page(denied=404), note="waiting"),
    Row("read-draft", "/reads/tasks/{waiting}/draft/", page(denied=404), note="waiting"),
]
for suffix, (tail, search) in DICOMWEB.items():
    ROWS.append(
        Row(f"dicomweb-trial-{suffix}", "/dicomweb/trials/{code}/" + tail, trial_root(search=search), headers=ACCEPT)
    )
    # (Whole instances too: a reader's are rebuilt with the attributes the root's allowlist names.)
    ROWS.append(Row(f"dicomweb-task-{suffix}", "/dicomweb/tasks/{task}/" + tail, task_root(ok=200), headers=ACCEPT))
    ROWS.append(
        Row(
            f"dicomweb-task-{suffix}",
            "/dicomweb/tasks/{waiting}/" + tail,
            waiting_task_root(),
            headers=ACCEPT,
            note="waiting",
        )
    )

# The operators' admin. What operators may add or delete there, model by model; everything else is read-only
# (or changes through its service: the trial). Anyone but an operator is sent to the admin's log-in.
# Authenticators and recovery codes are the person's own: operators only delete a lost one.
ADDABLE = {"auth.group", "ctims.user"}
DELETABLE = {  # never an account (21 CFR 11.100(a): a user ID is never freed for another person; deactivate it)
    "auth.group",
    "otp_totp.totpdevice",
    "otp_static.staticdevice",
    "axes.accessattempt",  # clears a lock-out, audited; the log-in logs are kept
}
ADMIN_ROWS: list[Row] = [
    Row("admin:index", "/operator/", admin_page()),
    Row("admin:login", "/operator/login/", {**cells(200), "oscar": 302}),  # oscar is in: sent to the index
    Row("admin:logout", "/operator/logout/", admin_page(405)),
    Row("admin:password_change", "/operator/password_change/", admin_page()),
    Row("admin:password_change_done", "/operator/password_change/done/", admin_page()),
    Row("admin:autocomplete", "/operator/autocomplete/", admin_page(403)),
    Row("admin:jsi18n", "/operator/jsi18n/", admin_page()),
    Row("admin:view_on_site", "/operator/r/1/1/", admin_page(404)),
    Row("operator/(?P<url>.*)$", "/operator/no-such-page/", admin_page(404)),
    Row("admin:auth_user_password_change", "/operator/ctims/user/{user}/password/", admin_page()),
    Row("admin:app_list", "/operator/trials/", admin_page()),
    # An authenticator's secret is nobody's to see, operators included (OTP_ADMIN_HIDE_SENSITIVE_DATA).
    Row("admin:otp_totp_totpdevice_config", "/operator/otp_totp/totpdevice/{device}/config/", admin_page(403)),
    Row("admin:otp_totp_totpdevice_qrcode", "/operator/otp_totp/totpdevice/{device}/qrcode/", admin_page(403)),
]


def admin_model_rows(model, pk: int | None) -> list[Row]:
    """Rows for one registered model's changelist, add, change, history, delete and short object URL; `pk` is
    one of its objects, or None where the world holds none."""
    label, base = model._meta.label_lower, f"/operator/{model._meta.app_label}/{model._meta.model_name}/"
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    found = pk is not None
    target = pk if found else 999999
    return [
        Row(f"{prefix}_changelist", base, admin_page()),
        Row(f"{prefix}_add", base + "add/", admin_page(200 if label in ADDABLE else 403)),
        Row(f"{prefix}_change", f"{base}{target}/change/", admin_page(200 if found else 302)),
        Row(f"{prefix}_history", f"{base}{target}/history/", admin_page(200 if found else 302)),
        # Deleting is refused before the object is looked up; a missing object sends the operator back.
        Row(
            f"{prefix}_delete",
            f"{base}{target}/delete/",
            admin_page((200 if found else 302) if label in DELETABLE else 403),
        ),
        Row(
            f"operator/{model._meta.app_label}/{model._meta.model_name}/<path:object_id>/",
            f"{base}{target}/",
            admin_page(302),
        ),
    ]


def admin_rows(objects: dict[str, int | None]) -> list[Row]:
    """Rows for every registered model (`objects`: model label -> one of its objects' keys, or None)."""
    return [
        row for model in admin_site._registry for row in admin_model_rows(model, objects.get(model._meta.label_lower))
    ]


def row_key(route: str, name: str | None) -> str:
    return name or route


def test_every_route_has_a_row():
    """A route added without saying who gets what fails here."""
    from django.apps import apps

    objects = {m._meta.label_lower: None for m in apps.get_models()}
    covered = {row.name for row in ROWS + ADMIN_ROWS + admin_rows(objects)}
    missing = sorted({row_key(route, name) for route, name in routes()} - covered)
    assert not missing, f"routes without a row in tests/test_matrix.py: {missing}"


# --- the run -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix_world(django_db_setup, django_db_blocker, tmp_path_factory):
    """One world for every cell, built in a transaction that is rolled back at the end."""
    from django.db import transaction
    from django.test.utils import override_settings

    storage = tmp_path_factory.mktemp("matrix")
    filesystem = "django.core.files.storage.FileSystemStorage"
    from django.conf import settings

    stores = settings.STORAGES | {
        "images": {"BACKEND": filesystem, "OPTIONS": {"location": storage / "images"}},
        "quarantine": {"BACKEND": filesystem, "OPTIONS": {"location": storage / "quarantine"}},
        "transfers": {"BACKEND": filesystem, "OPTIONS": {"location": storage / "transfers"}},
    }
    # Sessions in memory: a few thousand requests each load one, and the world's rows are all that is read.
    sessions = {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"}
    with django_db_blocker.unblock(), override_settings(STORAGES=stores, **sessions):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            from django.core.cache import cache

            cache.clear()  # the module's tests leave the cache alone (tests/conftest.py): it starts empty here
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())
                world = build_matrix_world()
            yield world
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            from django.core.files.storage import storages

            storages._storages.clear()


def _request(client: Client, row: Row, values: dict):
    path = row.path.format(**values)
    if row.method in ("post", "put", "delete"):
        return getattr(client, row.method)(path, row.data, **row.headers)
    return client.get(path, row.data, **row.headers)


def _check(rows: list[Row], matrix_world: dict) -> None:
    """Every cell of `rows`: the status stated in its row, and the security headers on whatever comes back."""
    from django.db import transaction

    values, clients = matrix_world["values"], matrix_world["clients"]
    wrong, headers = [], []
    for row in rows:
        for who in CAST:
            if row.method == "get":
                response = _request(clients[who], row, values)
            else:
                with transaction.atomic():
                    response = _request(clients[who], row, values)
                    transaction.set_rollback(True)  # a cell that wrote something leaves the world as it was
            want = row.expect[who]
            if response.status_code != want:
                wrong.append(f"{row.name} {row.note} as {who}: {response.status_code}, expected {want}")
            cache = response.get("Cache-Control", "")
            if "no-store" not in cache and not (
                row.name.startswith("dicomweb-trial-") and response.status_code in (200, 304)
            ):
                headers.append(f"{row.name} as {who}: Cache-Control {cache!r}")
            if response.get("X-Content-Type-Options") != "nosniff" or "Content-Security-Policy" not in response:
                headers.append(f"{row.name} as {who}: nosniff/CSP missing")
    assert not wrong, f"{len(wrong)} cells differ from the table:\n" + "\n".join(wrong)
    assert not headers, "\n".join(headers)


# One test a row (an admin model's six rows together): one test of a minute (4,800 requests) could end the run
# on one worker while the other waits; rows are spread over the workers, each building the world once.
_ROW_PARAMS = ROWS + ADMIN_ROWS
ADMIN_MODELS = {model._meta.label_lower: model for model in admin_site._registry}


@pytest.mark.django_db  # so that pytest-django sets up the test database the module's world is built in
@pytest.mark.parametrize("row", _ROW_PARAMS, ids=[row.name for row in _ROW_PARAMS])
def test_the_matrix(matrix_world, row):
    """Every cell of the row: the status stated in it, and the security headers on whatever comes back."""
    _check([row], matrix_world)


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(ADMIN_MODELS))
def test_the_matrix_admin(matrix_world, label):
    """Every cell of a registered model's rows in the operators' admin (its first object, if the world has one)."""
    model = ADMIN_MODELS[label]
    pk = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    _check(admin_model_rows(model, pk), matrix_world)


HUGE = "99999999999999999999999"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("alice", "/dicomweb/trials/{code}/studies?offset=" + HUGE),
        ("alice", "/dicomweb/trials/{code}/studies?limit=" + HUGE),
        ("alice", "/dicomweb/trials/{code}/series?SeriesNumber=" + HUGE),
        ("alice", "/dicomweb/trials/{code}/instances?InstanceNumber=" + HUGE),
        ("tok_cora", "/dicomweb/trials/{code}/studies?offset=" + HUGE),
        ("rhea", "/dicomweb/tasks/{task}/studies?offset=" + HUGE),
        ("rhea", "/dicomweb/tasks/{task}/instances?InstanceNumber=" + HUGE),
    ],
)
def test_dicomweb_integer_parameters_out_of_range_are_the_clients_error(matrix_world, who, path):
    """ROWS FOR ISSUE 14: DICOMweb's integer parameters are validated by the issue-14 change to trials/dicomweb
    (qido.py, views.py); these cells pass once it is merged. 400 with the API's error shape, never a 500."""
    client = matrix_world["clients"][who]
    client.raise_request_exception = False
    try:
        response = client.get(path.format(**matrix_world["values"]), HTTP_ACCEPT="application/dicom+json")
    finally:
        client.raise_request_exception = True
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid"
