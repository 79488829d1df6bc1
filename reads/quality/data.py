"""The selector of the reader quality report: locked results, signed reads, adjudications and baseline lesions of
a trial, read from the database into the plain `QualityInput` that `reads.quality.report` computes on.

Built on `reads.series.trial_series` (each reader's and the accepted series per subject, with their endpoints as
`reads.criteria.endpoints` computes them): no response is computed again here. Only locked data counts: the
series keep locked visits only, and only what was signed and locked by the cut-off.

Months are the trial's display time zone's calendar months of when a thing happened: a visit's first lock (its
settlement by agreement or adjudication), an adjudication's signature, a reader's signature on a follow-up.
The period (first and last day, both optional) keeps what happened within it; subject-level comparisons
(best overall response, date of progression, baseline lesions) keep the subjects with a visit settled in it.

Readers are paired as they were compared: a visit's responses and its settlement count for the two readers who
held the case when it was first locked, an adjudication for the two it was between, the subject-level endpoints
and baseline lesions for the two compared last. A reader retired from a case (another took their place and read
it again) keeps what they signed, and the newcomer's re-reads of visits settled before are compared with nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from trials.models import Trial

from ..models import ReadDesign, ReaderAssignment, TimepointResult
from ..series import readers_at, trial_series
from . import stats
from .report import QualityInput, SubjectCourse

READER_SLOTS = (1, 2)


def reader_codes(trial: Trial) -> dict[int, str]:
    """{user id: "Radiologist N"}: the trial's readers numbered in the order they were first given a case."""
    codes: dict[int, str] = {}
    first = ReaderAssignment.objects.filter(subject__trial=trial, slot__in=READER_SLOTS).order_by("assigned_at", "pk")
    for reader_id in first.values_list("reader_id", flat=True):
        if reader_id not in codes:
            codes[reader_id] = f"Radiologist {len(codes) + 1}"
    return codes


def month(at: dt.datetime) -> str:
    return timezone.localtime(at).strftime("%Y-%m")


def _mm(text) -> float | None:
    return float(Decimal(text)) if text not in (None, "") else None


def _baseline_targets(visit) -> list[stats.BaselineTarget]:
    out = []
    for entry in visit.read.content.get("targets", []):
        if entry.get("status") != "measured":
            continue
        points = entry.get("long_points") or None
        centre = None
        if points and len(points) == 2:
            (c1, r1), (c2, r2) = points
            centre = ((c1 + c2) / 2, (r1 + r2) / 2)
        node = bool(entry.get("is_node"))
        out.append(
            stats.BaselineTarget(
                label=entry["label"],
                site=entry.get("site") or "",
                node=node,
                image=(entry.get("image") or {}).get("sop", ""),
                centre=centre,
                diameter_mm=_mm(entry.get("short_mm") if node else entry.get("long_mm")),
            )
        )
    return out


def _course(subject: str, series) -> SubjectCourse | None:
    """The accepted series as % change of the sum of diameters from baseline, visit by visit."""
    visits = series.visits
    if not visits or not visits[0].baseline or series.endpoints is None:
        return None
    base = _mm((visits[0].read.assessment or {}).get("sum_mm"))
    points = []
    for v in visits[1:]:
        total = _mm((v.read.assessment or {}).get("sum_mm"))
        change = 100 * (total - base) / base if base and total is not None else None
        points.append((v.visit_code, v.day, change, v.overall_response))
    ep = series.endpoints
    return SubjectCourse(
        subject=subject,
        best_response=ep.best_response.value,
        progression_day=ep.progression.day if ep.progression else None,
        points=tuple(points),
    )


def quality_input(
    trial: Trial, *, cutoff: dt.datetime | None = None, start: dt.date | None = None, end: dt.date | None = None
) -> QualityInput:
    """Gather the trial's locked reads up to `cutoff` (default: now) within [start, end] into plain data."""
    cutoff = cutoff or timezone.now()
    tz = timezone.get_current_timezone()
    if end is not None:
        cutoff = min(cutoff, dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz))
    begin = dt.datetime.combine(start, dt.time(), tzinfo=tz) if start else None

    def in_period(at: dt.datetime | None) -> bool:
        return at is not None and at <= cutoff and (begin is None or at >= begin)

    data = QualityInput(
        trial=trial.code,
        cutoff=cutoff.isoformat(),
        period=(start.isoformat() if start else "", end.isoformat() if end else ""),
    )
    if not ReadDesign.objects.filter(trial=trial).exists():
        return data
    codes = reader_codes(trial)
    assignments: dict[int, list[ReaderAssignment]] = {}
    for assignment in ReaderAssignment.objects.filter(subject__trial=trial, slot__in=READER_SLOTS):
        assignments.setdefault(assignment.subject_id, []).append(assignment)
    first_locks = {
        r.timepoint_id: r
        for r in TimepointResult.history.filter(
            timepoint__subject__trial=trial, supersedes__isnull=True, locked_at__lte=cutoff
        )
    }
    for subject in trial_series(trial, cutoff=cutoff):
        settled = [first_locks[v.timepoint.pk] for v in subject.result.visits if v.timepoint.pk in first_locks]
        in_range = any(in_period(r.locked_at) for r in settled)
        # Every reader's series, a reader retired from the case included: what each signed counts as theirs.
        series = {s.assignment.pk: s for s in subject.evaluators if s.assignment is not None}
        code = {pk: codes.get(s.assignment.reader_id, "") for pk, s in series.items()}
        for pk, s in series.items():
            for v in s.visits[1:]:
                if in_period(v.read.signed_at):
                    data.pd_calls.append(
                        stats.ReaderEvent(code[pk], month(v.read.signed_at), v.overall_response == "PD")
                    )
            if in_range and s.visits and s.visits[0].baseline:
                data.targets_chosen.setdefault(code[pk], []).append(len(s.visits[0].read.content.get("targets", [])))
        if in_range and subject.accepted.endpoints is not None:
            course = _course(subject.subject.code, subject.accepted)
            if course is not None:
                data.courses.append(course)
        held = assignments.get(subject.subject.pk, [])

        def compared_at(at, held=held, series=series, code=code, subject=subject):
            """The two readers' series compared at `at` (who held the slots then) and their codes, in code order;
            None if the case had not two readers with signed reads then."""
            holders = readers_at(subject.subject, at, held)
            if {h.slot for h in holders} != set(READER_SLOTS) or any(h.pk not in series for h in holders):
                return None
            a, b = sorted(holders, key=lambda h: int(code[h.pk].rsplit(" ", 1)[-1] or 0))
            return series[a.pk], series[b.pk], (code[a.pk], code[b.pk])

        for result in settled:
            double = result.source in (TimepointResult.Source.AGREEMENT, TimepointResult.Source.ADJUDICATION)
            compared = compared_at(result.locked_at)
            if double and compared and in_period(result.locked_at):
                adjudicated = result.source == TimepointResult.Source.ADJUDICATION
                data.settlements.append(stats.Settlement(month(result.locked_at), compared[2], adjudicated))
            # The visit's responses as the two readers who settled it called them.
            if compared is None or not in_period(result.locked_at):
                continue
            a, b, pair = compared
            va = next((v for v in a.visits if v.timepoint.pk == result.timepoint_id), None)
            vb = next((v for v in b.visits if v.timepoint.pk == result.timepoint_id), None)
            if va and vb and not va.baseline and va.overall_response and vb.overall_response:
                data.visit_pairs.setdefault(pair, []).append((va.overall_response, vb.overall_response))
        for adjudication in subject.adjudications:
            compared = compared_at(adjudication.decided_at)
            if compared and adjudication.chosen_slot in READER_SLOTS and in_period(adjudication.decided_at):
                a, b, pair = compared
                chosen = next(s for s in (a, b) if s.assignment.slot == adjudication.chosen_slot)
                data.decisions.append(stats.Decision(month(adjudication.decided_at), pair, code[chosen.assignment.pk]))
        if not in_range or not settled:
            continue
        # The subject-level endpoints of the two readers compared last (their whole series was compared then).
        last = max([r.locked_at for r in settled] + [a.decided_at for a in subject.adjudications])
        compared = compared_at(last)
        if compared is None:
            continue
        a, b, pair = compared
        if a.endpoints is not None and b.endpoints is not None:
            data.best_response_pairs.setdefault(pair, []).append(
                (a.endpoints.best_response.value, b.endpoints.best_response.value)
            )
            data.progression_pairs.setdefault(pair, []).append((_progression_call(a), _progression_call(b)))
        if a.visits and b.visits and a.visits[0].baseline and b.visits[0].baseline:
            matched = stats.match_targets(_baseline_targets(a.visits[0]), _baseline_targets(b.visits[0]))
            data.lesion_pairs.setdefault(pair, []).extend(
                (x.diameter_mm, y.diameter_mm)
                for x, y in matched
                if x.diameter_mm is not None and y.diameter_mm is not None
            )
    data.courses.sort(key=lambda c: c.subject)
    return data


def _progression_call(series) -> stats.ProgressionCall:
    visit = series.progression_visit
    if visit is None:
        return stats.ProgressionCall(None, None)
    return stats.ProgressionCall(visit.timepoint.visit.order, series.endpoints.progression.day)
