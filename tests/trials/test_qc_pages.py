"""The QC and query pages: who may open and post what, and a visit's way from a failed series to "ready for read".

Images go through the real pipeline (quarantine, de-identification, index, checks); what waits for a commit
(the ingest tasks, the emails) runs inside `django_capture_on_commit_callbacks(execute=True)`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

import pydicom
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation
from pydicom.data import get_testdata_file

from ctims.models import AuditEvent
from tests.conftest import build_world, ct_protocol, upload_files
from trials import qc, qc_services
from trials.forms import KIND_LABELS
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import ImagingProtocol, Query, QueryMessage, Series, SeriesClassification, Timepoint

SUBJECT = "ALPHA-SEO-001"
SLICES = 20


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit():` runs what the block leaves for the commit (ingest tasks, emails) at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def series_files(seed: str = "qc-pages") -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=SLICES, seed=seed, study_date=date(2026, 3, 2))


def upload(commit, coordinator, files: list[bytes], subject: str = SUBJECT):
    with commit():
        upload_files(coordinator, subject, files)


def timepoint() -> Timepoint:
    return Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")


@pytest.fixture
def world(db, stores):
    w = build_world()
    ct_protocol(w)
    return w


@pytest.fixture
def gappy(world, commit):
    """ALPHA-SEO-001's baseline uploaded by cora with slices 9 to 11 of its one series missing."""
    files = series_files()
    upload(commit, world.cora, files[:8] + files[11:])
    return world


@pytest.fixture
def queried(gappy, commit):
    """quinn failed the gappy series: query open at Seoul."""
    with commit():
        qc_services.qc_fail(
            actor=gappy.quinn, timepoint=timepoint(), series=list(Series.objects.all()), reason="Slices are missing."
        )
    return gappy


def as_(client, world, who):
    client.logout()
    if who != "anon":
        client.force_login(world.people[who])
    return client


def qc_args():
    return ["ALPHA", SUBJECT, "BL"]


# --- the permission table -----------------------------------------------------------------------------------

CAST = ["alice", "cora", "bruno", "quinn", "rhea", "ada", "sam", "otto", "anon"]


@dataclass
class Row:
    name: str
    method: str
    url: str
    setup: str  # the fixture the row needs
    ok: int
    allowed: tuple
    overrides: dict = field(default_factory=dict)

    def expected(self, who: str) -> int:
        if who == "anon":
            return 302
        if who in self.overrides:
            return self.overrides[who]
        if who == "otto":
            return 404
        return self.ok if who in self.allowed else 403


def _args(row: Row) -> tuple[str, list]:
    if row.url in ("qc-worklist", "query-list"):
        return row.url, ["ALPHA"]
    if row.url.startswith("query-"):
        return row.url, ["ALPHA", Query.objects.get().pk]
    if row.url == "qc-relabel":
        return row.url, [*qc_args(), Series.objects.get().series_instance_uid]
    return row.url, qc_args()


def _data(row: Row) -> dict:
    return {
        "qc-relabel": {"kind": "ct.delayed", "region": "cap"},
        "qc-fail": {"reason": "Wrong phase.", "due_date": (timezone.localdate() + timedelta(days=7)).isoformat()},
        "qc-pass": {"comment": ""},
        "query-answer": {"body": "Sent again."},
        "query-close": {"body": ""},
    }.get(row.url, {})


QC_ONLY = ("quinn",)
ROWS = [
    Row("QC worklist", "get", "qc-worklist", "gappy", 200, QC_ONLY),
    Row("QC page", "get", "qc-timepoint", "gappy", 200, QC_ONLY),
    Row("relabel", "post", "qc-relabel", "gappy", 302, QC_ONLY),
    Row("fail", "post", "qc-fail", "gappy", 302, QC_ONLY),
    Row("pass", "post", "qc-pass", "gappy", 302, QC_ONLY),
    Row("query list", "get", "query-list", "queried", 200, ("alice", "cora", "bruno", "quinn")),
    Row("query thread", "get", "query-detail", "queried", 200, ("alice", "cora", "quinn"), {"bruno": 404}),
    Row("answer", "post", "query-answer", "queried", 302, ("cora",), {"bruno": 404}),
    Row("close", "post", "query-close", "queried", 302, ("quinn",), {"bruno": 404}),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_each_page_and_action_answers_each_person(row, client, request):
    """One world per row: those refused change nothing, so the one allowed to post goes last."""
    world = request.getfixturevalue(row.setup)
    name, args = _args(row)
    for who in sorted(CAST, key=lambda who: row.method == "post" and who in row.allowed):
        response = getattr(as_(client, world, who), row.method)(reverse(name, args=args), _data(row))
        assert response.status_code == row.expected(who), (who, response.content.decode()[:300])
        if who == "anon":
            assert response["Location"].startswith(reverse("login"))


def test_the_trial_nav_offers_qc_to_reviewers_and_queries_to_whoever_sees_subjects(world, client):
    qc_link, queries_link = reverse("qc-worklist", args=["ALPHA"]), reverse("query-list", args=["ALPHA"])
    for who, sees_qc, sees_queries in [
        ("quinn", True, True),
        ("alice", False, True),
        ("cora", False, True),
        ("rhea", False, False),
        ("sam", False, False),
    ]:
        page = as_(client, world, who).get(reverse("trial-detail", args=["ALPHA"])).content.decode()
        assert (f'href="{qc_link}"' in page) is sees_qc, who
        assert (f'href="{queries_link}"' in page) is sees_queries, who


def test_a_seoul_coordinator_sees_her_sites_queries_and_a_busan_one_sees_none(queried, client):
    page = as_(client, queried, "cora").get(reverse("query-list", args=["ALPHA"])).content.decode()
    assert SUBJECT in page and "QC failed" in page
    page = as_(client, queried, "bruno").get(reverse("query-list", args=["ALPHA"])).content.decode()
    assert SUBJECT not in page and "No queries yet." in page


# --- the life cycle -----------------------------------------------------------------------------------------


def test_a_failed_series_goes_to_the_site_and_comes_back_ready_for_read(gappy, client, commit, mailoutbox):
    world = gappy
    quinn = as_(client, world, "quinn")
    worklist = quinn.get(reverse("qc-worklist", args=["ALPHA"])).content.decode()
    assert SUBJECT in worklist and 'class="badge severity-blocking">1<' in worklist

    page = quinn.get(reverse("qc-timepoint", args=qc_args())).content.decode()
    assert "is missing slices" in page and "Blocking" in page
    assert "CT portal venous" in page and "chest-abdomen-pelvis" in page
    assert reverse("timepoint-viewer", args=qc_args()) in page
    assert timepoint().state == Timepoint.State.UPLOADED  # the decision is taken from here: no "start" step
    series = Series.objects.get()
    due = timezone.localdate() + timedelta(days=5)
    with commit():
        response = quinn.post(
            reverse("qc-fail", args=qc_args()),
            {
                "series": [series.pk],
                "reason": "Slices 9 to 11 are missing; please send the series again.",
                "due_date": due,
            },
        )
    query = Query.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("query-detail", args=["ALPHA", query.pk])
    assert query.state == Query.State.OPEN and query.due_date == due and query.series == series
    assert query.messages.get().body == "Slices 9 to 11 are missing; please send the series again."
    assert timepoint().state == Timepoint.State.QUERY_OPEN
    assert [m.to for m in mailoutbox] == [["cora@example.org"]]

    cora = as_(client, world, "cora")
    thread = cora.get(reverse("query-detail", args=["ALPHA", query.pk])).content.decode()
    assert "Slices 9 to 11 are missing" in thread and "Send answer" in thread and "Close query" not in thread
    assert reverse("timepoint-upload", args=qc_args()) in thread
    mailoutbox.clear()
    upload(commit, world.cora, series_files())  # the complete series: its upload answers the query
    query.refresh_from_db()
    assert query.state == Query.State.ANSWERED and query.messages.last().upload is not None
    assert timepoint().state == Timepoint.State.UPLOADED
    assert [m.to for m in mailoutbox] == [["quinn@example.org"]] and "answered" in mailoutbox[0].subject
    mailoutbox.clear()
    with commit():
        response = cora.post(reverse("query-answer", args=["ALPHA", query.pk]), {"body": "Sent the full series."})
    assert response.status_code == 302
    assert [m.to for m in mailoutbox] == [["quinn@example.org"]]

    quinn = as_(client, world, "quinn")
    thread = quinn.get(reverse("query-detail", args=["ALPHA", query.pk])).content.decode()
    assert "Sent the full series." in thread and "New images were uploaded" in thread
    assert f"{SLICES - 17} stored, 17 already stored, 0 rejected" in thread
    assert "Send answer" not in thread and "Close query" in thread

    response = quinn.post(reverse("qc-pass", args=qc_args()), {"comment": ""})
    assert response.status_code == 200 and "Close the open queries of this visit" in response.content.decode()
    assert timepoint().state == Timepoint.State.UPLOADED

    response = quinn.post(reverse("query-close", args=["ALPHA", query.pk]), {"body": "Complete now, thank you."})
    assert response.status_code == 302 and response["Location"] == reverse("qc-timepoint", args=qc_args())
    query.refresh_from_db()
    assert query.state == Query.State.CLOSED and query.messages.last().body == "Complete now, thank you."

    response = quinn.post(reverse("qc-pass", args=qc_args()), {"comment": "Complete."}, follow=True)
    assert timepoint().state == Timepoint.State.READY_FOR_READ
    page = response.content.decode()
    assert "passed QC: it is ready for read" in page and "Ready for read" in page and "Passed" in page
    assert {"qc.fail", "query.answer", "query.close", "qc.pass"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )


def test_an_upload_that_stores_nothing_new_leaves_the_query_open_and_the_visit_queried(queried, commit):
    """The site sent the same files again (or files that were all rejected): nothing the reviewer asked for
    arrived, so the query is not answered for the site and the visit stays Query open, not Uploaded."""
    files = series_files()
    upload(commit, queried.cora, files[:8])  # already stored, every one
    query = Query.objects.get()
    assert query.state == Query.State.OPEN and query.messages.count() == 1
    assert timepoint().state == Timepoint.State.QUERY_OPEN
    upload(commit, queried.cora, files[8:11])  # the missing slices: now the query is answered
    query.refresh_from_db()
    assert query.state == Query.State.ANSWERED and "(3 stored)" in query.messages.last().body
    assert timepoint().state == Timepoint.State.UPLOADED


def test_a_query_answered_in_words_can_be_closed_and_the_visit_passed(queried, client):
    query = Query.objects.get()
    as_(client, queried, "cora").post(reverse("query-answer", args=["ALPHA", query.pk]), {"body": "It is complete."})
    quinn = as_(client, queried, "quinn")
    quinn.post(reverse("query-close", args=["ALPHA", query.pk]), {"body": ""})
    quinn.post(reverse("qc-pass", args=qc_args()), {"comment": "Accepted as is."})
    assert timepoint().state == Timepoint.State.READY_FOR_READ


def test_a_re_upload_after_an_answer_in_words_is_linked_in_the_thread(queried, client, commit):
    query = Query.objects.get()
    as_(client, queried, "cora").post(reverse("query-answer", args=["ALPHA", query.pk]), {"body": "Sending again."})
    upload(commit, queried.cora, series_files())
    assert query.messages.last().upload is not None


def test_a_closed_query_is_read_only(queried, client):
    query = Query.objects.get()
    qc_services.query_close(actor=queried.quinn, query=query)
    for who in ("cora", "quinn"):
        thread = as_(client, queried, who).get(reverse("query-detail", args=["ALPHA", query.pk])).content.decode()
        assert "This query is closed" in thread and "Send answer" not in thread and "Close query" not in thread
        assert "Upload new images" not in thread
    response = as_(client, queried, "cora").post(
        reverse("query-answer", args=["ALPHA", query.pk]), {"body": "Late"}, follow=True
    )
    assert response.redirect_chain == [(reverse("query-detail", args=["ALPHA", query.pk]), 302)]
    assert "This query is closed." in response.content.decode()
    assert query.messages.count() == 1


def test_closing_a_closed_query_is_refused_and_keeps_the_note_in_the_form(queried, client):
    query = Query.objects.get()
    qc_services.query_close(actor=queried.quinn, query=query)  # another tab, another reviewer
    response = as_(client, queried, "quinn").post(
        reverse("query-close", args=["ALPHA", query.pk]), {"body": "Slices 9 to 11 are there now."}
    )
    page = response.content.decode()
    assert response.status_code == 200 and "This query was already closed" in page
    assert "Slices 9 to 11 are there now.</textarea>" in page and "is closed.</li>" not in page
    assert query.messages.count() == 1 and AuditEvent.objects.filter(action="query.close").count() == 1


def test_failing_without_a_reason_is_explained_on_the_form(gappy, client):
    response = as_(client, gappy, "quinn").post(
        reverse("qc-fail", args=qc_args()), {"reason": "", "due_date": timezone.localdate().isoformat()}
    )
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    response = as_(client, gappy, "quinn").post(
        reverse("qc-fail", args=qc_args()),
        {"reason": "Wrong phase", "due_date": (timezone.localdate() - timedelta(days=1)).isoformat()},
    )
    assert response.status_code == 200 and "The due date cannot be in the past." in response.content.decode()
    assert not Query.objects.exists() and timepoint().state == Timepoint.State.UPLOADED


def test_the_fail_form_proposes_a_due_date_a_week_ahead(gappy, client):
    page = as_(client, gappy, "quinn").get(reverse("qc-timepoint", args=qc_args())).content.decode()
    due = timezone.localdate() + timedelta(days=qc_services.DEFAULT_QUERY_DAYS)
    assert f'name="due_date" value="{due.isoformat()}"' in page


def test_a_relabel_changes_the_stored_kind_is_audited_and_shown(gappy, client):
    series = Series.objects.get()
    quinn = as_(client, gappy, "quinn")
    response = quinn.post(
        reverse("qc-relabel", args=[*qc_args(), series.series_instance_uid]), {"kind": "ct.delayed", "region": "cap"}
    )
    assert response.status_code == 302
    label = SeriesClassification.objects.get()
    assert (label.kind, label.region, label.auto_kind) == ("ct.delayed", "cap", "ct.portal_venous")
    assert label.corrected_by == gappy.quinn
    event = AuditEvent.objects.get(action="qc.relabel")
    assert event.summary["to"] == ["ct.delayed", "cap"] and event.actor_label.startswith("quinn")
    page = quinn.get(reverse("qc-timepoint", args=qc_args())).content.decode()
    assert "CT delayed" in page and "Corrected by Quinn" in page and "the rules said CT portal venous" in page


def test_an_unknown_kind_is_refused_on_the_series_form(gappy, client):
    series = Series.objects.get()
    response = as_(client, gappy, "quinn").post(
        reverse("qc-relabel", args=[*qc_args(), series.series_instance_uid]), {"kind": "ct.nonsense", "region": "cap"}
    )
    assert response.status_code == 200 and "Select a valid choice." in response.content.decode()
    assert SeriesClassification.objects.get().kind == "ct.portal_venous"
    assert not AuditEvent.objects.filter(action="qc.relabel").exists()


def test_a_ct_series_is_offered_and_given_only_ct_kinds(gappy, client):
    series = Series.objects.get()
    quinn = as_(client, gappy, "quinn")
    page = quinn.get(reverse("qc-timepoint", args=qc_args())).content.decode()
    assert 'value="ct.delayed"' in page and 'value="mr.t1"' not in page and 'value="localizer"' in page
    response = quinn.post(
        reverse("qc-relabel", args=[*qc_args(), series.series_instance_uid]), {"kind": "mr.t1", "region": "head"}
    )
    assert response.status_code == 200 and "Select a valid choice." in response.content.decode()
    assert SeriesClassification.objects.get().kind == "ct.portal_venous"
    assert not AuditEvent.objects.filter(action="qc.relabel").exists()


def test_a_series_of_another_visit_is_not_found(gappy, client, commit):
    bus_subject = next(code for code in gappy.subjects if "-BUS-" in code)
    upload(commit, gappy.bruno, series_files("qc-pages-bus"), subject=bus_subject)
    busan = Series.objects.get(study__subject__code=bus_subject)
    response = as_(client, gappy, "quinn").post(
        reverse("qc-relabel", args=[*qc_args(), busan.series_instance_uid]), {"kind": "ct.delayed", "region": "cap"}
    )
    assert response.status_code == 404


def test_every_series_kind_has_a_translatable_label():
    assert sorted(KIND_LABELS) == sorted(qc.KINDS.values())


# --- around the trial ---------------------------------------------------------------------------------------


def test_the_trial_admin_sees_overdue_queries_on_the_overview(queried, client):
    query = Query.objects.get()
    page = as_(client, queried, "alice").get(reverse("trial-detail", args=["ALPHA"])).content.decode()
    assert "Overdue queries" in page and "No query is past its due date." in page
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=3))
    page = as_(client, queried, "alice").get(reverse("trial-detail", args=["ALPHA"])).content.decode()
    assert reverse("query-detail", args=["ALPHA", query.pk]) in page and "3 days overdue" in page
    for who in ("quinn", "cora"):
        page = as_(client, queried, who).get(reverse("trial-detail", args=["ALPHA"])).content.decode()
        assert "Overdue queries" not in page


def test_an_overdue_query_is_red_in_the_list(queried, client):
    Query.objects.update(due_date=timezone.localdate() - timedelta(days=1))
    page = as_(client, queried, "cora").get(reverse("query-list", args=["ALPHA"])).content.decode()
    assert 'class="nowrap overdue"' in page and "overdue</span>" in page


def test_an_answered_query_past_its_due_date_is_not_marked_overdue(queried, client):
    qc_services.query_answer(actor=queried.cora, query=Query.objects.get(), body="They were never acquired.")
    Query.objects.update(due_date=timezone.localdate() - timedelta(days=3))
    query = Query.objects.get()
    for who, url in (
        ("cora", reverse("query-list", args=["ALPHA"])),
        ("quinn", reverse("query-list", args=["ALPHA"])),
        ("cora", reverse("query-detail", args=["ALPHA", query.pk])),
        ("quinn", reverse("qc-timepoint", args=qc_args())),
        ("alice", reverse("trial-detail", args=["ALPHA"])),
    ):
        page = as_(client, queried, who).get(url).content.decode()
        assert "overdue</span>" not in page and "days overdue" not in page, (who, url)


def test_the_subject_page_links_the_open_query_and_qc(queried, client):
    query = Query.objects.get()
    url = reverse("subject-detail", args=["ALPHA", SUBJECT])
    page = as_(client, queried, "cora").get(url).content.decode()
    assert reverse("query-detail", args=["ALPHA", query.pk]) in page
    assert reverse("qc-timepoint", args=qc_args()) not in page
    page = as_(client, queried, "quinn").get(url).content.decode()
    assert reverse("qc-timepoint", args=qc_args()) in page
    grid = as_(client, queried, "quinn").get(reverse("trial-subjects", args=["ALPHA"])).content.decode()
    assert reverse("qc-timepoint", args=qc_args()) in grid


def test_the_schedule_shows_and_sets_the_same_scanner_rule(world, client):
    alice = as_(client, world, "alice")
    response = alice.post(
        reverse("protocol-create", args=["ALPHA", "W6"]),
        {
            "modality": "CT",
            "body_region": "cap",
            "contrast": "required",
            "max_slice_thickness_mm": "5",
            "same_scanner_as_baseline": "on",
        },
    )
    assert response.status_code == 302
    assert ImagingProtocol.objects.get(visit__code="W6").same_scanner_as_baseline is True
    page = alice.get(reverse("trial-schedule", args=["ALPHA"])).content.decode()
    assert "Same scanner as baseline" in page and page.count('<span class="tag ok">required</span>') == 1


# --- reminders ----------------------------------------------------------------------------------------------


def test_send_query_reminders_emails_the_site_once_a_day(queried, commit, mailoutbox, capsys):
    query = Query.objects.get()
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=1))
    mailoutbox.clear()
    with commit():
        call_command("send_query_reminders")
    assert capsys.readouterr().out.strip() == "1 overdue query reminded."
    assert [m.to for m in mailoutbox] == [["cora@example.org"]] and "Overdue" in mailoutbox[0].subject
    with commit():
        call_command("send_query_reminders")
    assert capsys.readouterr().out.strip() == "0 overdue queries reminded." and len(mailoutbox) == 1

    Query.objects.filter(pk=query.pk).update(reminded_at=timezone.now() - timedelta(days=1))  # a day later
    with commit():
        call_command("send_query_reminders")
    assert len(mailoutbox) == 2
    assert QueryMessage.objects.filter(query=query).count() == 1  # reminders are emails, not thread messages


def test_the_qc_page_speaks_korean(gappy, client, settings):
    quinn = as_(client, gappy, "quinn")
    quinn.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    # The locale middleware leaves the request's language active in this thread: the next test gets English.
    with translation.override(settings.LANGUAGE_CODE):
        page = quinn.get(reverse("qc-timepoint", args=qc_args())).content.decode()
    assert "자동 검사 결과" in page and "CT 문맥기" in page and "흉부·복부·골반" in page and "합격: 판독 대기로" in page
    assert '<option value="abdomen_pelvis">복부·골반</option>' in page
    # The finding's whole sentence, with its series and slice positions, not only its code's sentence.
    assert "절편이 빠졌습니다" in page and "전체 시리즈를 보내 주세요" in page and "is missing" not in page


def test_qc_has_no_start_step_the_decision_is_taken_on_an_uploaded_visit(gappy, client):
    """ "Start review" changed nothing a decision needed (pass and fail worked without it): it is gone, so the
    states say what happened. Uploaded means waiting for QC; In QC means back with QC after its queries closed."""
    from django.urls import NoReverseMatch

    from trials import qc_services

    page = as_(client, gappy, "quinn").get(reverse("qc-timepoint", args=qc_args())).content.decode()
    assert "Start review" not in page and "/qc/start/" not in page
    assert "Pass: ready for read" in page and "Fail and send query" in page
    assert not hasattr(qc_services, "qc_start")
    with pytest.raises(NoReverseMatch):
        reverse("qc-start", args=qc_args())


def test_the_series_table_counts_the_frames_of_an_enhanced_image(world, client, commit):
    """An enhanced MR is one instance of ten frames (pydicom-data's emri_small): the QC page's Images column says
    10, as the viewer's series list does, not 1."""
    enhanced = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    enhanced.PatientID = SUBJECT
    buffer = io.BytesIO()
    enhanced.save_as(buffer, enforce_file_format=True)
    upload(commit, world.cora, [buffer.getvalue()])
    page = as_(client, world, "quinn").get(reverse("qc-timepoint", args=qc_args())).content.decode()
    row = re.search(r'<tr id="series-[^"]*" class="series-row">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="num">10</td>', row), row
