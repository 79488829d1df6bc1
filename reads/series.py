"""A subject's assessment series: each reader's signed reads and the accepted result, visit by visit, with scan
dates, study days and the subject-level endpoints (best overall response, date of progression, start of response).

This is what leaves the system about a subject's reads (result pages, sponsor transfers). Dates are the study's
shifted dates (`Study.study_date`): intervals and study days are exact, the real calendar stays with the server.
Only signed reads are ever in a series; `locked_only` (the default) keeps only visits whose result is locked,
and `cutoff` only what was signed and locked by then.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Prefetch

from trials.models import Study, Subject, Timepoint, Trial

from .criteria.endpoints import Endpoints, VisitResponse, days_from_baseline, study_day, subject_endpoints
from .criteria.recist11 import NewLesions, OverallResponse
from .models import (
    Adjudication,
    Read,
    ReadDesign,
    ReaderAssignment,
    ReadTask,
    TimepointResult,
    evaluator_numbers_by_subject,
)
from .services import READER_SLOTS

RESULT = "result"


def evaluator_name(number: int | None) -> str:
    """How a series' author is named outside the system (SDTM's EVALID): the reader code of the evaluator
    number (`ReaderAssignment.evaluator_number`), never a person."""
    return f"RADIOLOGIST {number}" if number else ""


@dataclass(frozen=True)
class VisitAssessment:
    """One visit in a series: the signed read that stands for it, its scan date and its study day.

    `day` is whole days since the series' baseline scan (0 at baseline), `study_day` the SDTM study day
    (baseline = 1); both None when a scan date is missing. `overall_response` is "" at baseline.
    `new_lesion_ids` are the tracking UIDs of the new lesions recorded at the visit.
    """

    timepoint: Timepoint
    read: Read
    baseline: bool
    scan_date: dt.date | None
    day: int | None
    study_day: int | None
    overall_response: str
    new_lesions: str
    new_lesion_ids: tuple[str, ...]
    result: TimepointResult | None  # the visit's locked result, whichever read it holds

    @property
    def visit_code(self) -> str:
        return self.timepoint.visit.code

    @property
    def accepted(self) -> bool:
        """This read is the visit's locked result."""
        return self.result is not None and self.result.read_id == self.read.pk


@dataclass(frozen=True)
class AssessmentSeries:
    """One reader's series (`slot` 1 or 2, the assignment's) or the accepted result series (`slot` None) of one
    subject. A reader's series is one assignment's: a reader who took a slot over has a series of their own."""

    slot: int | None
    assignment: ReaderAssignment | None
    visits: tuple[VisitAssessment, ...]
    endpoints: Endpoints | None  # None without a baseline, or when a follow-up has no scan date

    @property
    def number(self) -> int | None:
        """The evaluator number of the reader whose reads the series holds (None if they are several readers')."""
        if self.assignment is not None:
            return self.assignment.evaluator_number
        numbers = {v.read.task.assignment.evaluator_number for v in self.visits}
        return numbers.pop() if len(numbers) == 1 else None

    @property
    def evaluator(self) -> str:
        """RADIOLOGIST 1, 2, ... for a reader; for the result, the reader whose reads it holds ("" if several)."""
        return evaluator_name(self.number)

    @property
    def progression_visit(self) -> VisitAssessment | None:
        if self.endpoints is None or self.endpoints.progression is None:
            return None
        return next(v for v in self.visits if v.visit_code == self.endpoints.progression.visit)


@dataclass(frozen=True)
class SubjectSeries:
    """Everything about one subject's reads: each reader's series (readers as at the cut-off), the series of the
    readers retired from the case by then who had signed reads of its locked visits, the result series,
    adjudications."""

    subject: Subject
    readers: dict[int, AssessmentSeries]
    result: AssessmentSeries
    adjudications: tuple[Adjudication, ...]
    retired: tuple[AssessmentSeries, ...] = ()

    @property
    def evaluators(self) -> list[AssessmentSeries]:
        """Every reader's series, retired or not, by evaluator number: all the signed reads delivered."""
        return sorted([*self.readers.values(), *self.retired], key=lambda s: s.number)

    @property
    def accepted(self) -> AssessmentSeries:
        """The series that stands for the subject, whose endpoints (best overall response, progression) and course
        are the accepted ones: the result series when it holds one reader's reads.

        When it holds a retired reader's reads (visits locked before the replacement) and the reads of the reader
        who took over, read the case again from baseline and settled a later visit, the newcomer's series: its
        later visits are measured against its own baseline and nadir, and it was compared as a whole when that
        visit locked; the two readers' reads together make no course anyone assessed."""
        result = self.result
        if result.number is not None or not result.visits:
            return result
        latest = result.visits[-1].read.task.assignment.evaluator_number
        covered = {v.timepoint.pk for v in result.visits}
        for series in self.evaluators:
            if series.number == latest and covered <= {v.timepoint.pk for v in series.visits}:
                return series
        return result


def _scan_dates(timepoints: list[Timepoint]) -> dict[tuple[int, str], dt.date]:
    """(timepoint, study UID) -> shifted study date, with (timepoint, "") the visit's earliest."""
    out: dict[tuple[int, str], dt.date] = {}
    studies = Study.objects.filter(timepoint__in=timepoints, study_date__isnull=False).order_by("study_date")
    for study in studies:
        out[(study.timepoint_id, study.study_instance_uid)] = study.study_date
        out.setdefault((study.timepoint_id, ""), study.study_date)
    return out


def _read_study(read: Read) -> str:
    for key in ("targets", "non_targets", "new"):
        for entry in read.content.get(key, []):
            if entry.get("image"):
                return entry["image"]["study"]
    return ""


def _new_lesion_ids(read: Read) -> tuple[str, ...]:
    labels = {entry["label"] for entry in read.content.get("new", [])}
    if not labels:
        return ()
    return tuple(sorted(lesion.tracking_uid for lesion in read.task.assignment.lesions.all() if lesion.label in labels))


def _series(
    slot: int | None,
    assignment: ReaderAssignment | None,
    reads: list[tuple[Timepoint, Read]],
    results: dict[int, TimepointResult],
    dates: dict,
    design: ReadDesign,
) -> AssessmentSeries:
    visits: list[VisitAssessment] = []
    baseline_date = None
    for n, (timepoint, read) in enumerate(reads):
        scan = dates.get((timepoint.pk, _read_study(read))) or dates.get((timepoint.pk, ""))
        if n == 0:
            baseline_date = scan
        known = scan is not None and baseline_date is not None
        assessment = read.assessment or {}
        visits.append(
            VisitAssessment(
                timepoint=timepoint,
                read=read,
                baseline=n == 0,
                scan_date=scan,
                day=days_from_baseline(scan, baseline_date) if known else None,
                study_day=study_day(scan, baseline_date) if known else None,
                overall_response=read.overall_response or "",
                new_lesions=assessment.get("new_lesions") or "NONE",
                new_lesion_ids=_new_lesion_ids(read),
                result=results.get(timepoint.pk),
            )
        )
    endpoints = None
    follow_ups = visits[1:]
    days = [v.day for v in follow_ups]
    # Endpoints need every follow-up read and dated after the one before it (the engine refuses anything else).
    # Scans without dates, or dated out of order (a re-scan recorded with the baseline's date), leave the
    # subject without endpoints: the visits' responses decide, as without dates.
    chronological = all(d is not None for d in days) and all(b > a for a, b in zip([0, *days], days, strict=False))
    if visits and chronological and all(v.overall_response for v in follow_ups):
        has_targets = bool(visits[0].read.content.get("targets"))
        endpoints = subject_endpoints(
            [
                VisitResponse(
                    visit=v.visit_code,
                    day=v.day,
                    response=OverallResponse(v.overall_response),
                    new_lesions=NewLesions(v.new_lesions),
                    new_lesion_ids=v.new_lesion_ids,
                )
                for v in follow_ups
            ],
            rules=design.endpoint_rules,
            has_targets=has_targets,
        )
    return AssessmentSeries(slot=slot, assignment=assignment, visits=tuple(visits), endpoints=endpoints)


def standing_results(
    subjects: list[Subject], *, cutoff: dt.datetime | None = None, up_to_order: int | None = None
) -> dict[int, TimepointResult]:
    """{timepoint id: the result that stood} now, or at `cutoff`: the latest version locked by then (an
    adjudication may since have replaced it with the accepted reader's read)."""
    versions = TimepointResult.history.filter(timepoint__subject__in=subjects)
    if cutoff is not None:
        versions = versions.filter(locked_at__lte=cutoff)
    if up_to_order is not None:
        versions = versions.filter(timepoint__visit__order__lte=up_to_order)
    out: dict[int, TimepointResult] = {}
    for result in versions.select_related("read__task__assignment", "timepoint__visit", "adjudication").order_by(
        "locked_at", "pk"
    ):
        out[result.timepoint_id] = result
    return out


def _retired_by(assignment: ReaderAssignment, at: dt.datetime | None) -> bool:
    return assignment.retired_at is not None and (at is None or assignment.retired_at <= at)


def readers_at(
    subject: Subject, cutoff: dt.datetime | None, assignments: list[ReaderAssignment] | None = None
) -> list[ReaderAssignment]:
    """The subject's readers (slots 1 and 2) as they stood at `cutoff` (now, when None): a reader retired from the
    case after the cut-off still holds the slot for it, and the one who took it over since does not yet.
    `assignments`: the subject's reader assignments, if already loaded."""
    if assignments is None:
        assignments = list(subject.reader_assignments.filter(slot__in=READER_SLOTS))
    held: dict[int, ReaderAssignment] = {}
    for assignment in sorted(assignments, key=lambda a: (a.assigned_at, a.pk)):
        if assignment.slot in READER_SLOTS and not _retired_by(assignment, cutoff):
            held.setdefault(assignment.slot, assignment)
    return [held[slot] for slot in sorted(held)]


def _latest_signed(task: ReadTask, cutoff: dt.datetime | None) -> Read | None:
    reads = [r for r in task.reads.all() if r.state == Read.State.SIGNED and (cutoff is None or r.signed_at <= cutoff)]
    return max(reads, key=lambda r: r.version, default=None)


def subject_series(
    subject: Subject,
    *,
    locked_only: bool = True,
    cutoff: dt.datetime | None = None,
    up_to_order: int | None = None,
) -> SubjectSeries:
    """The subject's assessment series: its readers' (slots 1 and 2, as at `cutoff`) and the accepted result's."""
    return trial_series(
        subject.trial, subjects=[subject], locked_only=locked_only, cutoff=cutoff, up_to_order=up_to_order
    )[0]


def trial_series(
    trial: Trial,
    *,
    subjects: list[Subject] | None = None,
    locked_only: bool = True,
    cutoff: dt.datetime | None = None,
    up_to_order: int | None = None,
) -> list[SubjectSeries]:
    """Every subject's assessment series in the trial (or of `subjects`), ordered by subject code; with
    `up_to_order`, only the visits up to that one (the endpoints as they stood then)."""
    design = ReadDesign.objects.get(trial=trial)
    if subjects is None:
        subjects = list(Subject.objects.filter(trial=trial).order_by("code"))
    results = standing_results(subjects, cutoff=cutoff, up_to_order=up_to_order)
    timepoints = list(Timepoint.objects.filter(subject__in=subjects).select_related("visit", "subject"))
    dates = _scan_dates(timepoints)
    tasks = (
        ReadTask.objects.filter(timepoint__subject__in=subjects, kind=ReadTask.Kind.READ)
        .exclude(state=ReadTask.State.WITHDRAWN)
        .filter(**({} if up_to_order is None else {"timepoint__visit__order__lte": up_to_order}))
        .select_related("timepoint__visit", "assignment")
        .prefetch_related(
            # Each read with its signature: deliveries show who signed it, when and meaning what (11.50).
            Prefetch("reads", queryset=Read.objects.select_related("signature").order_by("version")),
            "assignment__lesions",
        )
        .order_by("timepoint__visit__order")
    )
    assignments, numbers = evaluator_numbers_by_subject(
        ReaderAssignment.objects.filter(subject__in=subjects, slot__in=READER_SLOTS)
    )
    by_assignment: dict[int, list[tuple[Timepoint, Read]]] = {}
    loaded: dict[int, Read] = {}
    for task in tasks:
        if task.assignment_id in numbers:
            task.assignment._evaluator_number = numbers[task.assignment_id]
        for read in task.reads.all():
            read.task = task  # the prefetched task, with its assignment and lesions
            loaded[read.pk] = read
        if locked_only and task.timepoint_id not in results:
            continue
        read = _latest_signed(task, cutoff)
        if read is not None:
            by_assignment.setdefault(task.assignment_id, []).append((task.timepoint, read))
    adjudications = Adjudication.objects.filter(subject__in=subjects, signature__isnull=False).select_related(
        "signature"
    )
    if cutoff is not None:
        adjudications = adjudications.filter(decided_at__lte=cutoff)
    out = []
    for subject in subjects:
        held = assignments.get(subject.pk, [])
        readers = {}
        for assignment in readers_at(subject, cutoff, held):
            readers[assignment.slot] = _series(
                assignment.slot, assignment, by_assignment.get(assignment.pk, []), results, dates, design
            )
        # A reader retired from the case by the cut-off keeps what they signed on record, under their own
        # evaluator number: the results locked with their reads stand on them.
        retired = tuple(
            _series(assignment.slot, assignment, by_assignment[assignment.pk], results, dates, design)
            for assignment in sorted(held, key=lambda a: a.evaluator_number)
            if _retired_by(assignment, cutoff) and by_assignment.get(assignment.pk)
        )
        accepted = sorted(
            (r for r in results.values() if r.timepoint.subject_id == subject.pk),
            key=lambda r: r.timepoint.visit.order,
        )
        result_reads = [(r.timepoint, loaded.get(r.read_id, r.read)) for r in accepted]
        out.append(
            SubjectSeries(
                subject=subject,
                readers=readers,
                result=_series(None, None, result_reads, results, dates, design),
                adjudications=tuple(a for a in adjudications.order_by("decided_at") if a.subject_id == subject.pk),
                retired=retired,
            )
        )
    return out
