"""The audit trail reads in the reader's language, put into words at display time from the codes it stores; the
stored events (and so the chain) stay exactly as written."""

from __future__ import annotations

from django.urls import reverse
from django.utils import translation

from ctims.audit import audit_record, audit_verify
from ctims.audit_display import event_view
from ctims.models import AuditEvent
from trials.models import Timepoint


def _event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("seq")


def test_an_event_reads_in_korean_from_its_codes(world):
    event = _event("visit.create")
    with translation.override("ko"):
        view = event_view(event)
    assert view.action == "방문 일정에 방문 추가"
    assert view.object_type == "방문" and view.object_label == "Baseline"  # a visit's label is the trial's data
    assert ("라벨", "Baseline") in view.summary and ("목표일", "0") in view.summary
    assert event.action == "visit.create" and "label" in event.summary  # stored as written


def test_coded_values_read_as_words_and_generated_labels_as_kind_and_number(world, client):
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    from trials.services import timepoint_transition

    timepoint_transition(
        actor=world.alice, timepoint=timepoint, to="uploading", allowed_from=["expected"], reason="QC failed"
    )
    with translation.override("ko"):
        view = event_view(_event("timepoint.transition"))
        membership = event_view(_event("membership.grant"))
    assert ("이전", "예정") in view.summary and ("이후", "업로드 중") in view.summary
    assert ("사유", "QC 불합격") in view.summary
    assert membership.object_label.startswith("역할 ")  # "cora@… · Site coordinator · ALPHA" was stored
    assert ("역할", "의뢰자 열람자") in membership.summary  # the last grant: sam, sponsor viewer


def test_an_unknown_code_is_shown_as_it_is(world):
    event = audit_record(actor=world.alice, action="future.thing", obj=world.trial, summary={"odd_key": "x"})
    with translation.override("ko"):
        view = event_view(event)
    assert view.action == "future.thing" and view.summary == [("odd_key", "x")]


def test_the_page_in_korean_keeps_the_chain_verifiable(world, client):
    client.force_login(world.alice)  # a log-in is an event of its own; the page adds none
    before = list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "summary", "hash"))
    page = client.get(reverse("trial-audit", args=["ALPHA"]), HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "피험자 등록" in page and 'title="subject.enroll"' in page
    assert "subject.enroll</" not in page
    after = list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "summary", "hash"))
    assert before == after and audit_verify().intact


def test_the_system_is_named_in_the_readers_language(world, stores, on_commit_now):
    from tests.conftest import upload_files
    from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

    upload_files(world.cora, "ALPHA-SEO-001", synthesize_ct_series(real_ct_template(large=False), slices=1, seed="a"))
    with translation.override("ko"):
        view = event_view(_event("upload.complete"))
    assert view.actor == "시스템" and ("저장됨", "1") in view.summary
