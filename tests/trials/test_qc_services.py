"""QC services: the checks run after every upload, findings and labels are stored, and queries go to the site."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from ctims.exceptions import InvalidState, ValidationFailed
from ctims.models import AuditEvent
from tests.conftest import build_world, ct_protocol, upload_files
from tests.trials.test_dicomweb import upload
from trials import qc_services, selectors
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import QCFinding, Query, Series, SeriesClassification, Timepoint

BASELINE = date(2026, 3, 2)


@pytest.fixture
def world(db, stores, on_commit_now):
    w = build_world()
    ct_protocol(w, ("BL", "W6"))
    return w


def series_files(seed: str, *, day: int = 0, slices: int = 20) -> list[bytes]:
    return synthesize_ct_series(
        real_ct_template(large=False), slices=slices, seed=seed, study_date=BASELINE + timedelta(days=day)
    )


def timepoint(visit: str = "BL") -> Timepoint:
    return Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code=visit)


def test_the_checks_run_after_an_upload_and_find_missing_slices(world):
    files = series_files("qc-a")
    upload(world, "ALPHA-SEO-001", files[:8] + files[11:], world.cora)
    [finding] = QCFinding.objects.filter(timepoint=timepoint())
    assert finding.code == "missing_slices" and finding.severity == "blocking"
    assert "3 expected slices absent" in finding.message and finding.series is not None
    label = SeriesClassification.objects.get()
    assert (label.kind, label.region) == ("ct.portal_venous", "cap")
    assert AuditEvent.objects.filter(action="qc.run").exists()


def test_a_complete_compliant_series_has_no_findings(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-b"), world.cora)
    assert not QCFinding.objects.filter(timepoint=timepoint()).exists()


def test_a_follow_up_outside_its_window_is_blocking(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-c"), world.cora)
    w6 = upload_files(world.cora, "ALPHA-SEO-001", series_files("qc-c-week6", day=52), "W6")
    codes = {f.code: f for f in QCFinding.objects.filter(timepoint=w6)}
    assert "out_of_window" in codes and codes["out_of_window"].severity == "blocking"
    assert "52" in codes["out_of_window"].message


def test_a_reviewers_label_survives_a_new_run(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-d"), world.cora)
    series = Series.objects.get()
    qc_services.series_relabel(actor=world.quinn, series=series, kind="ct.delayed", region="cap")
    qc_services.qc_run(timepoint=timepoint())
    label = SeriesClassification.objects.get()
    assert label.kind == "ct.delayed" and label.auto_kind == "ct.portal_venous" and label.corrected_by == world.quinn
    with pytest.raises(ValidationFailed):
        qc_services.series_relabel(actor=world.quinn, series=series, kind="ct.nonsense", region="cap")


def test_a_series_cannot_be_given_a_kind_of_another_modality(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-d2"), world.cora)
    series = Series.objects.get()
    with pytest.raises(ValidationFailed, match="CT series") as refused:
        qc_services.series_relabel(actor=world.quinn, series=series, kind="mr.t1", region="head")
    assert "kind" in refused.value.fields
    assert SeriesClassification.objects.get().kind == "ct.portal_venous"
    qc_services.series_relabel(actor=world.quinn, series=series, kind="localizer", region="")
    assert SeriesClassification.objects.get().kind == "localizer"


def test_the_query_life_cycle_ends_ready_for_read(world, mailoutbox):
    files = series_files("qc-e")
    upload(world, "ALPHA-SEO-001", files[:8] + files[11:], world.cora)
    tp = timepoint()
    assert tp.state == "uploaded"  # QC decides from here: there is no start step
    query = qc_services.qc_fail(
        actor=world.quinn, timepoint=tp, series=list(Series.objects.all()), reason="Slices 9 to 11 are missing."
    )
    assert timepoint().state == "query_open" and query.state == "open"
    assert query.messages.get().body == "Slices 9 to 11 are missing."
    assert [m.to for m in mailoutbox] == [["cora@example.org"]] and "ALPHA-SEO-001" in mailoutbox[0].subject

    upload(world, "ALPHA-SEO-001", files, world.cora)  # the complete series again
    query.refresh_from_db()
    assert query.state == "answered" and query.messages.last().upload is not None
    assert timepoint().state == "uploaded"
    assert not QCFinding.objects.filter(timepoint=timepoint(), severity="blocking").exists()
    assert any(m.to == ["quinn@example.org"] for m in mailoutbox)

    with pytest.raises(InvalidState, match="Close the open queries"):
        qc_services.qc_pass(actor=world.quinn, timepoint=timepoint())
    qc_services.query_close(actor=world.quinn, query=query, body="Thank you.")
    assert qc_services.qc_pass(actor=world.quinn, timepoint=timepoint()).state == "ready"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"qc.fail", "query.answer", "query.close", "qc.pass"} <= actions


def test_a_closed_query_cannot_be_closed_again(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-e2"), world.cora)
    query = qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Wrong phase.")
    qc_services.query_close(actor=world.quinn, query=query, body="Resolved by phone.")
    with pytest.raises(InvalidState, match="already closed"):
        qc_services.query_close(actor=world.alice, query=query, body="Closing it too.")
    assert [m.body for m in query.messages.all()][-1] == "Resolved by phone."
    assert AuditEvent.objects.filter(action="query.close").count() == 1


def test_the_trail_keeps_the_words_entered_not_whether_there_were_any(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-e3"), world.cora)
    query = qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Wrong phase.")
    qc_services.query_answer(actor=world.cora, query=query, body="  It is portal venous.  ")
    qc_services.query_close(actor=world.quinn, query=query, body="Agreed.")
    qc_services.qc_pass(actor=world.quinn, timepoint=timepoint(), comment="Good images.")

    def summary(action):
        return AuditEvent.objects.get(action=action).summary

    assert summary("qc.fail")["reason"] == "Wrong phase."
    assert summary("query.answer")["message"] == "It is portal venous."
    assert summary("query.close")["message"] == "Agreed."
    assert summary("qc.pass")["comment"] == "Good images."


def test_failing_needs_a_reason_and_a_reviewable_visit(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-f"), world.cora)
    with pytest.raises(ValidationFailed, match="Say what is wrong"):
        qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason=" ")
    qc_services.qc_pass(actor=world.quinn, timepoint=timepoint())
    with pytest.raises(InvalidState):
        qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Too late")


def test_a_closed_trial_opens_no_query_and_its_findings_stay_readable(world):
    upload(world, "ALPHA-SEO-001", series_files("qc-f2"), world.cora)
    world.trial.status = "closed"
    world.trial.save(update_fields=["status"])
    with pytest.raises(InvalidState, match="ALPHA is closed"):
        qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Wrong phase.")
    assert not Query.objects.exists() and timepoint().state == "uploaded"


def test_overdue_queries_are_reminded_once_a_day(world, mailoutbox):
    upload(world, "ALPHA-SEO-001", series_files("qc-g"), world.cora)
    query = qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Wrong phase.")
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=2))
    mailoutbox.clear()
    assert qc_services.queries_remind_overdue() == 1
    assert qc_services.queries_remind_overdue() == 0
    assert len(mailoutbox) == 1 and "Overdue" in mailoutbox[0].subject


def test_a_query_the_site_answered_is_not_overdue_and_not_reminded(world, mailoutbox):
    upload(world, "ALPHA-SEO-001", series_files("qc-g2"), world.cora)
    query = qc_services.qc_fail(actor=world.quinn, timepoint=timepoint(), series=[], reason="Wrong phase.")
    qc_services.query_answer(actor=world.cora, query=query, body="It is the portal venous phase.")
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=2))
    query.refresh_from_db()
    mailoutbox.clear()
    assert query.state == "answered" and not query.is_overdue
    assert qc_services.queries_remind_overdue() == 0 and mailoutbox == []
    assert not selectors.queries_overdue(trial=world.trial).exists()


def test_the_visit_grid_shows_findings_to_the_site(world, client):
    files = series_files("qc-h")
    upload(world, "ALPHA-SEO-001", files[:8] + files[11:], world.cora)
    client.force_login(world.cora)
    page = client.get("/trials/ALPHA/subjects/").content.decode()
    assert "1 blocking finding" in page and "17 images" in page


def test_the_query_title_is_what_failed_and_each_reader_reads_its_heading_in_their_language(world):
    """A Korean reviewer fails the visit; the title keeps only the series (DICOM values), so the English-reading
    coordinator reads "QC failed: ..." and a Korean one "QC 불합격: ..."."""
    from django.utils import translation

    upload(world, "ALPHA-SEO-001", series_files("qc-t"), world.cora)
    series = Series.objects.get()
    with translation.override("ko"):
        query = qc_services.qc_fail(
            actor=world.quinn, timepoint=timepoint(), series=[series], reason="다시 보내 주세요."
        )
    assert query.title == f"{series.series_number} {series.description}".strip()
    assert query.heading == f"QC failed: {query.title}"
    with translation.override("ko"):
        assert query.heading == f"QC 불합격: {query.title}"
    # The classification's reasons are kept as templates too, and read in Korean on the page.
    from trials.forms import why_text

    reasons = SeriesClassification.objects.get().reasons
    assert all(isinstance(r, dict) and r["template"] and r["text"] for r in reasons)
    with translation.override("ko"):
        assert all(not any(word in why_text(r) for word in ("description", "region", "rule ")) for r in reasons)
