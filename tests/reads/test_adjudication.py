"""Adjudication as core labs run it: the read design chooses the trigger (a visit's response, or the subject-level
endpoints), and the adjudicator accepts one reader's whole series, which becomes the result at every visit."""

from __future__ import annotations

import pytest

from ctims.exceptions import ValidationFailed
from ctims.models import AuditEvent
from reads import results
from reads.models import Adjudication, Measurement, ReaderAssignment, TimepointResult
from reads.series import subject_series
from reads.services import read_design_set
from tests.conftest import PASSWORD
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials import services as trial_services
from trials.models import Subject, Timepoint

PR, SD, PD = ("15.0", "8.0"), ("22.0", "11.0"), ("30.0", "13.0")  # against a baseline sum of 35.0 mm


@pytest.fixture
def w12(world):
    trial_services.visit_create(
        actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84
    )
    return world


def _readers(world) -> dict[int, object]:
    return {a.slot: a.reader for a in ReaderAssignment.objects.filter(subject__code=SUBJECT, slot__in=(1, 2))}


def _read(world, visits: dict[str, dict[int, tuple]]):
    """Both readers read each visit in order; `visits` gives each slot's (T01, T02[, new]) at each follow-up."""
    ready(world, "BL")
    readers = _readers(world)
    for reader in readers.values():
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    for n, (visit, by_slot) in enumerate(visits.items(), start=1):
        ready(world, visit, day=42 * n)
        for slot, spec in by_slot.items():
            reader = readers[slot]
            task = task_of(reader, visit)
            t1, t2, *new = spec
            save_and_sign(reader, task, follow_up_content(task, t1, t2, new=new[0] if new else "none"))
    return readers


def _state(visit: str) -> str:
    return Timepoint.objects.get(subject__code=SUBJECT, visit__code=visit).state


def _decide(world, slot: int, reason="Reader's measurements follow the true long axes."):
    adjudication = Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True)
    return results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=str(slot),
        reason=reason,
        password=PASSWORD,
        meaning_confirmed=True,
    )


def test_reader_2_chosen_at_week_12_makes_every_visits_result_reader_2s(w12):
    world = w12
    readers = _read(world, {"W6": {1: SD, 2: SD}, "W12": {1: PR, 2: PD}})
    assert (_state("BL"), _state("W6"), _state("W12")) == ("locked", "locked", "in_adjudication")
    before = {r.timepoint.visit.code: r for r in TimepointResult.objects.filter(timepoint__subject__code=SUBJECT)}
    assert {r.read.task.assignment.slot for r in before.values()} == {1}  # agreement locked reader 1's reads

    _decide(world, 2)

    current = TimepointResult.objects.filter(timepoint__subject__code=SUBJECT).select_related(
        "read__task__assignment", "timepoint__visit"
    )
    assert sorted(r.timepoint.visit.code for r in current) == ["BL", "W12", "W6"]
    assert {r.read.task.assignment.reader for r in current} == {readers[2]}
    assert {r.source for r in current} == {"adjudication"}
    assert {r.timepoint.visit.code: r.overall_response for r in current} == {"BL": "", "W6": "SD", "W12": "PD"}
    # One set of lesion identities: every lesion of every result is reader 2's, T01 is one tracking UID.
    lesions = Measurement.objects.filter(read__in=[r.read for r in current]).select_related("lesion__assignment")
    assert {m.lesion.assignment.slot for m in lesions} == {2}
    assert len({m.lesion.tracking_uid for m in lesions if m.lesion.label == "T01"}) == 1
    # The locked visits followed the choice: their earlier results are kept as history, never changed.
    for visit in ("BL", "W6"):
        versions = TimepointResult.history.filter(timepoint__subject__code=SUBJECT, timepoint__visit__code=visit)
        assert versions.count() == 2
        old = before[visit]
        old.refresh_from_db()
        assert old.read.task.assignment.slot == 1 and old.superseded_by.read.task.assignment.slot == 2
    changes = AuditEvent.objects.filter(action="read_result.change").order_by("seq")
    assert [e.summary["visit"] for e in changes] == ["BL", "W6"]
    assert changes[1].summary["from_reader_slot"] == 1 and changes[1].summary["to_reader_slot"] == 2
    assert changes[1].summary["from_overall_response"] == "SD" and "adjudication" in changes[1].summary
    # The accepted series is reader 2's, and so are its endpoints.
    series = subject_series(Subject.objects.get(code=SUBJECT))
    assert series.result.evaluator == "RADIOLOGIST 2"
    assert series.result.endpoints.progression.visit == "W12"
    assert all(v.accepted for v in series.readers[2].visits) and not any(v.accepted for v in series.readers[1].visits)


def test_after_an_adjudication_agreeing_visits_lock_the_accepted_readers_read(w12):
    world = w12
    _read(world, {"W6": {1: PR, 2: SD}})
    _decide(world, 2)
    ready(world, "W12", day=84)
    for slot, reader in _readers(world).items():
        task = task_of(reader, "W12")
        save_and_sign(reader, task, follow_up_content(task, *PR))  # PR for both (against each one's nadir too)
    result = TimepointResult.objects.get(timepoint__subject__code=SUBJECT, timepoint__visit__code="W12")
    assert result.source == "agreement" and result.read.task.assignment.slot == 2


def test_the_reason_is_required(w12):
    world = w12
    _read(world, {"W6": {1: PR, 2: SD}})
    with pytest.raises(ValidationFailed, match="reason"):
        _decide(world, 2, reason="  ")


@pytest.mark.parametrize(
    ("trigger", "adjudicated_at"),
    [
        ("visit_response", "W6"),  # the visit responses differ at week 6 (PR vs SD)
        ("endpoints", "W12"),  # same best response (SD) until week 12, where the dates of progression differ
        ("progression_date", "W12"),
        ("best_response", None),  # the best response stays SD for both: never adjudicated
    ],
)
def test_the_design_chooses_what_triggers_an_adjudication(w12, trigger, adjudicated_at):
    world = w12
    read_design_set(actor=world.alice, trial=world.trial, adjudication_trigger=trigger, confirmation_required=True)
    # With confirmation, reader 1's single PR at week 6 is SD at best: both readers' best response is SD.
    _read(world, {"W6": {1: PR, 2: SD}, "W12": {1: PD, 2: SD}})
    states = {visit: _state(visit) for visit in ("W6", "W12")}
    if adjudicated_at is None:
        assert states == {"W6": "locked", "W12": "locked"}
        assert not Adjudication.objects.exists()
        return
    assert states[adjudicated_at] == "in_adjudication"
    assert Adjudication.objects.count() == 1
    opened = AuditEvent.objects.get(action="adjudication.open")
    assert opened.summary["visit"] == adjudicated_at
    expected_why = {
        "visit_response": ["overall_response"],
        "endpoints": ["progression_date"],
        "progression_date": ["progression_date"],
    }[trigger]
    assert opened.summary["why"] == expected_why


def test_the_subject_level_trigger_adjudicates_when_the_best_response_differs(w12):
    world = w12
    read_design_set(actor=world.alice, trial=world.trial, adjudication_trigger="endpoints")
    _read(world, {"W6": {1: PR, 2: SD}})  # no confirmation: PR against SD
    assert _state("W6") == "in_adjudication"
    assert AuditEvent.objects.get(action="adjudication.open").summary["why"] == ["best_response"]


def test_a_confirmed_equivocal_lesion_dates_each_readers_progression_back(w12):
    world = w12
    readers = _read(world, {"W6": {1: (*SD, "equivocal"), 2: SD}, "W12": {1: (*SD, "unequivocal"), 2: SD}})
    series = subject_series(Subject.objects.get(code=SUBJECT), locked_only=False)
    assert series.readers[1].endpoints.progression.visit == "W6"
    assert series.readers[1].endpoints.progression.confirmed_at == "W12"
    assert series.readers[2].endpoints.progression is None
    # Under the visit rule the back-dated progression is a disagreement about week 6's date of progression too.
    assert readers and _state("W12") == "in_adjudication"


def test_a_visit_both_readers_sign_while_the_case_waits_for_adjudication_follows_the_choice(w12):
    world = w12
    _read(world, {"W6": {1: PR, 2: SD}, "W12": {1: PR, 2: PR}})
    assert (_state("W6"), _state("W12")) == ("in_adjudication", "in_adjudication")
    joined = AuditEvent.objects.get(action="adjudication.extend")
    assert joined.summary["visit"] == "W12" and joined.summary["why"] == ["case_in_adjudication"]
    _decide(world, 2)
    current = TimepointResult.objects.filter(timepoint__subject__code=SUBJECT).select_related("read__task__assignment")
    assert {r.read.task.assignment.slot for r in current} == {2} and current.count() == 3


def test_the_adjudication_page_shows_both_readers_endpoints_and_what_the_choice_does(w12, client):
    world = w12
    _read(world, {"W6": {1: SD, 2: SD}, "W12": {1: PR, 2: PD}})
    task = Adjudication.objects.get().task
    client.force_login(world.ada)
    page = client.get(f"/reads/tasks/{task.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="adjudicate-endpoints"' in html
    endpoints = page.context["endpoints"]
    assert [e["slot"] for e in endpoints] == [1, 2]
    assert [e["best_response"] for e in endpoints] == ["PR", "SD"]
    assert [e["progression"] for e in endpoints] == ["", "Week 12"]
    assert "every visit" in html


def test_the_adjudicators_list_has_every_lesion_of_both_reads_those_on_no_image_too(w12, client):
    world = w12
    _read(world, {"W6": {1: PR, 2: PD}})
    task = Adjudication.objects.get().task
    client.force_login(world.ada)
    overlays = client.get(f"/reads/tasks/{task.pk}/").context["read_config"]["overlays"]
    listed = {(o["reader"], o["visit"], o["label"]) for o in overlays}
    visits = {o["visit"] for o in overlays}
    assert len(visits) == 2
    # Each reader's two targets and NT01 at both visits; at the follow-up NT01 was judged with no image.
    assert listed == {(slot, visit, label) for slot in (1, 2) for visit in visits for label in ("T01", "T02", "NT01")}
    unplaced = [o for o in overlays if o["image"] is None]
    assert {(o["reader"], o["label"], o["category"]) for o in unplaced} == {
        (1, "NT01", "non_target"),
        (2, "NT01", "non_target"),
    }


def test_a_series_at_a_cutoff_before_the_adjudication_shows_what_stood_then(w12):
    from django.utils import timezone

    from reads.series import trial_series

    world = w12
    _read(world, {"W6": {1: PR, 2: SD}})
    before = timezone.now()
    _decide(world, 2)
    then = {s.subject.code: s for s in trial_series(world.trial, cutoff=before)}[SUBJECT]
    now = {s.subject.code: s for s in trial_series(world.trial)}[SUBJECT]
    assert [v.visit_code for v in then.result.visits] == ["BL"]  # week 6 was not locked yet
    assert then.result.evaluator == "RADIOLOGIST 1" and now.result.evaluator == "RADIOLOGIST 2"
    assert [v.visit_code for v in now.result.visits] == ["BL", "W6"]


def test_the_adjudicator_reads_each_readers_endpoint_reasons_in_their_language(w12, client, settings):
    """The engine's subject-level reasons (why the best response, where progression dates from) are kept as
    templates and parameters and shown beside each reader's endpoints, in Korean to a Korean adjudicator."""
    import re

    from django.utils import translation

    world = w12
    _read(world, {"W6": {1: SD, 2: SD}, "W12": {1: PR, 2: PD}})
    task = Adjudication.objects.get().task
    client.force_login(world.ada)
    english = client.get(f"/reads/tasks/{task.pk}/").context["endpoints"]
    assert any(reason.startswith("First progression at") for reason in english[1]["reasons"])
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    with translation.override(settings.LANGUAGE_CODE):
        page = client.get(f"/reads/tasks/{task.pk}/")
    html = page.content.decode()
    for e in page.context["endpoints"]:
        assert e["reasons"]
        for reason in e["reasons"]:
            assert re.search("[가-힣]", reason) and reason in html, reason
            assert not re.search(r"\b(at|best|response|progression|day)\b", reason), reason
