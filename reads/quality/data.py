"""The selector of the reader quality report: locked results, signed reads, adjudications and baseline lesions of
a trial, read from the database into the plain `QualityInput` that `reads.quality.report` computes on.

Built on `reads.series.trial_series` (each reader's and the accepted series per subject, with their endpoints as
`reads.criteria.endpoints` computes them): no response is computed again here. Only locked data counts: the
series keep locked visits only, and only what was signed and locked by the cut-off.

Months are the trial's display time zone's calendar months of when a thing happened: a visit's first lock (its
settlement by agreement or adjudication), an adjudication's signature, a reader's signature on a follow-up.
The period (first and last day, both optional) keeps what happened within it; subject-level comparisons
(best overall response, date of progression, baseline lesions) keep the subjects with a visit settled in it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from trials.models import Trial

from ..models import ReadDesign, ReaderAssignment, TimepointResult
from ..series import trial_series
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
    first_locks = {
        r.timepoint_id: r
        for r in TimepointResult.history.filter(
            timepoint__subject__trial=trial, supersedes__isnull=True, locked_at__lte=cutoff
        )
    }
    for subject in trial_series(trial, cutoff=cutoff):
        settled = [first_locks[v.timepoint.pk] for v in subject.result.visits if v.timepoint.pk in first_locks]
        in_range = any(in_period(r.locked_at) for r in settled)
        readers = {slot: s for slot, s in subject.readers.items() if s.assignment is not None}
        code = {slot: codes.get(s.assignment.reader_id, "") for slot, s in readers.items()}
        for slot, s in readers.items():
            for v in s.visits[1:]:
                if in_period(v.read.signed_at):
                    data.pd_calls.append(
                        stats.ReaderEvent(code[slot], month(v.read.signed_at), v.overall_response == "PD")
                    )
            if in_range and s.visits and s.visits[0].baseline:
                data.targets_chosen.setdefault(code[slot], []).append(len(s.visits[0].read.content.get("targets", [])))
        if in_range and subject.result.endpoints is not None:
            course = _course(subject.subject.code, subject.result)
            if course is not None:
                data.courses.append(course)
        if set(readers) != set(READER_SLOTS):
            continue
        a_slot, b_slot = sorted(READER_SLOTS, key=lambda slot: int(code[slot].rsplit(" ", 1)[-1] or 0))
        a, b = readers[a_slot], readers[b_slot]
        pair = (code[a_slot], code[b_slot])
        for result in settled:
            double = result.source in (TimepointResult.Source.AGREEMENT, TimepointResult.Source.ADJUDICATION)
            if double and in_period(result.locked_at):
                adjudicated = result.source == TimepointResult.Source.ADJUDICATION
                data.settlements.append(stats.Settlement(month(result.locked_at), pair, adjudicated))
        b_visits = {v.visit_code: v for v in b.visits}
        for va in a.visits[1:]:
            vb = b_visits.get(va.visit_code)
            first = first_locks.get(va.timepoint.pk)
            if vb and va.overall_response and vb.overall_response and first and in_period(first.locked_at):
                data.visit_pairs.setdefault(pair, []).append((va.overall_response, vb.overall_response))
        for adjudication in subject.adjudications:
            if adjudication.chosen_slot in READER_SLOTS and in_period(adjudication.decided_at):
                chosen = code[adjudication.chosen_slot]
                data.decisions.append(stats.Decision(month(adjudication.decided_at), pair, chosen))
        if not in_range:
            continue
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
