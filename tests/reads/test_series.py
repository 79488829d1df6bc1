"""A subject's assessment series: each reader's signed reads and the accepted result, with shifted scan dates,
study days and the subject-level endpoints, locked data only unless asked."""

from __future__ import annotations

import datetime as dt

from reads.criteria.recist11 import OverallResponse
from reads.series import subject_series, trial_series
from reads.services import read_design_set
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials.models import Subject


def _read_visits(world, w6: dict):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    ready(world, "W6", day=42)
    for reader, (t1, t2) in w6.items():
        task = task_of(reader, "W6")
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    return Subject.objects.get(code=SUBJECT)


def test_agreeing_readers_give_each_series_its_dates_study_days_and_best_response(world):
    subject = _read_visits(world, {world.rhea: ("22.0", "11.0"), world.ravi: ("21.0", "12.0")})
    series = subject_series(subject)

    assert set(series.readers) == {1, 2}
    for slot, s in [*series.readers.items(), (None, series.result)]:
        assert [v.visit_code for v in s.visits] == ["BL", "W6"], slot
        baseline, w6 = s.visits
        assert baseline.baseline and baseline.study_day == 1 and baseline.day == 0
        assert (w6.day, w6.study_day, w6.overall_response) == (42, 43, "SD")
        assert w6.scan_date - baseline.scan_date == dt.timedelta(days=42)
        assert s.endpoints.best_response == OverallResponse.SD
        assert s.endpoints.progression is None
    # The scan dates are the study's shifted dates, not the scanner's.
    assert series.result.visits[0].scan_date != dt.date(2026, 3, 2)
    assert series.readers[1].evaluator == "RADIOLOGIST 1" and series.readers[2].evaluator == "RADIOLOGIST 2"
    # Agreement locks reader 1's reads: they are the accepted ones, in both series.
    assert series.result.evaluator == "RADIOLOGIST 1"
    assert all(v.accepted for v in series.readers[1].visits)
    assert not any(v.accepted for v in series.readers[2].visits)


def test_a_visit_waiting_for_adjudication_is_in_no_series_unless_asked(world):
    subject = _read_visits(world, {world.rhea: ("15.0", "8.0"), world.ravi: ("22.0", "11.0")})
    locked = subject_series(subject)
    assert [v.visit_code for v in locked.readers[1].visits] == ["BL"]
    assert [v.visit_code for v in locked.result.visits] == ["BL"]
    assert locked.result.endpoints.best_response == OverallResponse.NE  # nothing after baseline is locked

    everything = subject_series(subject, locked_only=False)
    by_reader = {s.assignment.reader: s for s in everything.readers.values()}
    assert [v.overall_response for v in by_reader[world.rhea].visits] == ["", "PR"]
    assert [v.overall_response for v in by_reader[world.ravi].visits] == ["", "SD"]
    assert by_reader[world.rhea].endpoints.best_response == OverallResponse.PR
    assert by_reader[world.ravi].endpoints.best_response == OverallResponse.SD


def test_the_design_sets_the_rules_of_the_best_response(world):
    read_design_set(actor=world.alice, trial=world.trial, confirmation_required=True)
    subject = _read_visits(world, {world.rhea: ("15.0", "8.0"), world.ravi: ("22.0", "11.0")})
    [rhea] = [
        s for s in subject_series(subject, locked_only=False).readers.values() if s.assignment.reader == world.rhea
    ]
    # An unconfirmed PR at day 42 meets the SD minimum (day 35) and no more.
    assert [v.overall_response for v in rhea.visits] == ["", "PR"]
    assert rhea.endpoints.best_response == OverallResponse.SD


def test_a_cutoff_keeps_what_was_locked_by_then(world):
    _read_visits(world, {world.rhea: ("22.0", "11.0"), world.ravi: ("21.0", "12.0")})
    before = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    by_code = {s.subject.code: s for s in trial_series(world.trial, cutoff=before)}
    assert by_code[SUBJECT].result.visits == () and by_code[SUBJECT].readers[1].visits == ()
    by_code = {s.subject.code: s for s in trial_series(world.trial)}
    assert list(by_code) == sorted(by_code) and len(by_code[SUBJECT].result.visits) == 2
    assert by_code["ALPHA-BUS-001"].readers == {} and by_code["ALPHA-BUS-001"].result.visits == ()
