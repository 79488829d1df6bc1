"""RECIST 1.1 response assessment as pure functions over frozen dataclasses.

Reference: Eisenhauer EA et al., "New response evaluation criteria in solid tumours:
revised RECIST guideline (version 1.1)", Eur J Cancer 45 (2009) 228-247, and the
EORTC RECIST working group's published questions & clarifications.

Units and arithmetic
--------------------
Every length is an ``int`` in **tenths of a millimetre** (23.0 mm == 230). Floats are
rejected. Thresholds are evaluated with integer cross-multiplication and reported as
:class:`fractions.Fraction`, so 23.0 mm -> 16.1 mm is exactly -30 % (a PR), never
-29.999... %.

Public API
----------
* :class:`TargetLesion`, :class:`TargetMeasurement`, :class:`NonTargetObservation`,
  :class:`Timepoint` - the reader's input.
* :func:`validate_baseline` - protocol checks on the baseline target selection.
* :func:`sum_of_diameters` - the RECIST "sum of diameters" of one timepoint.
* :func:`assess` - the response of one follow-up timepoint (:class:`Assessment`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction


def gettext_noop(message: str) -> str:
    """Marks a reason's template for the translation catalogue (makemessages); this library stays Django-free."""
    return message


class Reason(str):
    """One line of an assessment's explanation: English text, with the template and parameters it was made from
    so that a page can put it in its reader's language (reads.assessment). Parameters are numbers in mm or %,
    lesion labels and visit names: never words to translate."""

    template: str
    params: dict[str, str]

    def __new__(cls, template: str, **params: str) -> Reason:
        reason = super().__new__(cls, template % params if params else template)
        reason.template, reason.params = template, params
        return reason


__all__ = [
    "MAX_TARGETS",
    "MAX_TARGETS_PER_ORGAN",
    "MIN_NODAL_SHORT_AXIS",
    "MIN_NON_NODAL_LONG_AXIS",
    "NODE_NORMAL_BELOW",
    "NODE_ORGAN",
    "TOO_SMALL_DEFAULT",
    "Assessment",
    "InvalidBaseline",
    "MeasurementStatus",
    "NewLesions",
    "NonTargetObservation",
    "NonTargetResponse",
    "NonTargetStatus",
    "OverallResponse",
    "Problem",
    "TargetLesion",
    "TargetMeasurement",
    "TargetResponse",
    "Timepoint",
    "assess",
    "equivocal_first_seen",
    "measurable_from",
    "percent_text",
    "sum_of_diameters",
    "validate_baseline",
]

# --- constants (tenths of a millimetre) -------------------------------------------------

MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
MIN_NON_NODAL_LONG_AXIS = 100  # 10 mm: measurable non-nodal lesion (CT, slice <= 5 mm)
MIN_NODAL_SHORT_AXIS = 150  # 15 mm: pathological, measurable lymph node
NODE_NORMAL_BELOW = 100  # a node with short axis < 10 mm is normal (CR-compatible)
TOO_SMALL_DEFAULT = 50  # 5 mm default for a lesion present but too small to measure
PD_ABSOLUTE_MIN = 50  # PD also needs an absolute increase of at least 5 mm
NODE_ORGAN = "lymph node"  # all nodes, whatever the station, are ONE organ


# --- vocabulary ----------------------------------------------------------------------------


class MeasurementStatus(StrEnum):
    """What the reader recorded for one target lesion at one timepoint."""

    MEASURED = "MEASURED"  # a real caliper measurement is given
    TOO_SMALL = "TOO_SMALL"  # present but too small to measure: counts 5 mm
    DISAPPEARED = "DISAPPEARED"  # no longer visible: counts 0 (a node: its short axis if given)
    NOT_EVALUABLE = "NOT_EVALUABLE"  # not assessable (not imaged, artefact...)


class NonTargetStatus(StrEnum):
    """The reader's qualitative call on one non-target lesion at one timepoint."""

    PRESENT = "PRESENT"  # still there, no unequivocal progression
    ABSENT = "ABSENT"  # disappeared; for a node: returned to normal size (< 10 mm short axis)
    UNEQUIVOCAL_PROGRESSION = "UNEQUIVOCAL_PROGRESSION"
    NOT_EVALUABLE = "NOT_EVALUABLE"


class NewLesions(StrEnum):
    """Whether the timepoint shows new lesions."""

    NONE = "NONE"
    EQUIVOCAL = "EQUIVOCAL"  # not PD now; if confirmed later, PD dates back to this scan
    UNEQUIVOCAL = "UNEQUIVOCAL"  # PD whatever the rest


class TargetResponse(StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NOT_APPLICABLE = "NOT_APPLICABLE"  # no target lesions at baseline


class NonTargetResponse(StrEnum):
    CR = "CR"
    NON_CR_NON_PD = "NON_CR_NON_PD"
    PD = "PD"
    NE = "NE"
    NOT_APPLICABLE = "NOT_APPLICABLE"  # no non-target lesions at baseline


class OverallResponse(StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "NON_CR_NON_PD"  # only for non-target-only disease (Table 5)


# --- input data ----------------------------------------------------------------------------


def _check_length(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in tenths of a millimetre, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


@dataclass(frozen=True)
class TargetLesion:
    """A target lesion chosen at baseline; ``tracking_id`` follows it across timepoints.

    ``label`` is what readers see ("T01"); ``organ`` is free text (compared case-insensitively)
    and is ignored for nodes, which all count as one organ ("lymph node"). ``slice_thickness`` is the
    thickness of the slice the lesion is measured on at baseline, in tenths of a millimetre (None: not
    known): above 5 mm, a non-nodal lesion is measurable from twice the slice thickness (section 3.1.1).
    """

    tracking_id: str
    label: str
    organ: str
    is_node: bool = False
    slice_thickness: int | None = None

    def __post_init__(self) -> None:
        _check_length("slice_thickness", self.slice_thickness)


@dataclass(frozen=True)
class TargetMeasurement:
    """One target lesion's reading at one timepoint; axes in tenths of a millimetre.

    Non-nodal targets are followed by their ``long_axis``, nodes by their ``short_axis``.
    """

    tracking_id: str
    long_axis: int | None = None
    short_axis: int | None = None
    status: MeasurementStatus = MeasurementStatus.MEASURED

    def __post_init__(self) -> None:
        _check_length("long_axis", self.long_axis)
        _check_length("short_axis", self.short_axis)
        object.__setattr__(self, "status", MeasurementStatus(self.status))


@dataclass(frozen=True)
class NonTargetObservation:
    """One non-target lesion's qualitative status at one timepoint."""

    tracking_id: str
    status: NonTargetStatus

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", NonTargetStatus(self.status))


@dataclass(frozen=True)
class Timepoint:
    """Everything one reader recorded for one imaging visit of one subject.

    The baseline timepoint lists every target and non-target lesion; follow-ups should
    report each of them again (a missing one is treated as not evaluable). ``new_lesion_ids``
    name the new lesions so that an equivocal one confirmed later is recognised (section 4.3.3).
    """

    visit: str
    day: int
    targets: tuple[TargetMeasurement, ...] = ()
    non_targets: tuple[NonTargetObservation, ...] = ()
    new_lesions: NewLesions = NewLesions.NONE
    # The new lesions recorded, each by an id it keeps from visit to visit (an equivocal lesion seen again).
    new_lesion_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "non_targets", tuple(self.non_targets))
        object.__setattr__(self, "new_lesions", NewLesions(self.new_lesions))
        object.__setattr__(self, "new_lesion_ids", tuple(self.new_lesion_ids))
        for kind, ids in (
            ("target", [m.tracking_id for m in self.targets]),
            ("non-target", [o.tracking_id for o in self.non_targets]),
        ):
            if len(ids) != len(set(ids)):
                raise ValueError(f"{self.visit}: a {kind} lesion is reported twice")


@dataclass(frozen=True)
class Problem:
    """A baseline protocol problem: a stable ``code`` for software, a ``message`` for people (a :class:`Reason`:
    English, with the template and parameters a page puts in its reader's language)."""

    code: str
    message: str
    tracking_id: str | None = None


class InvalidBaseline(ValueError):
    """Raised by :func:`assess` when the baseline fails :func:`validate_baseline`."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in self.problems))


@dataclass(frozen=True)
class Assessment:
    """The RECIST 1.1 response of one follow-up timepoint.

    ``sum`` is None when a target is not evaluable; ``nadir_sum`` is the smallest computable
    sum on study, baseline included. Changes are exact fractions (-3/10 == -30 %) and None
    when undefined (no targets, no current sum, or a nadir of 0 for ``change_from_nadir``).
    """

    sum: int | None
    baseline_sum: int | None
    nadir_sum: int | None
    change_from_baseline: Fraction | None
    change_from_nadir: Fraction | None
    increase_over_nadir: int | None
    target_response: TargetResponse
    non_target_response: NonTargetResponse
    new_lesions: NewLesions
    overall_response: OverallResponse
    reasons: tuple[str, ...]
    progression_dates_from: str | None = None


# --- baseline validation -------------------------------------------------------------------


def _mm(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10} mm"


def measurable_from(lesion: TargetLesion) -> int:
    """The smallest measurable baseline size of a target, in tenths of a millimetre, on the axis it is followed by:
    a node's short axis 15 mm; a non-nodal lesion's long axis 10 mm, or twice the slice thickness when the slice
    is thicker than 5 mm (RECIST 1.1 section 3.1.1)."""
    if lesion.is_node:
        return MIN_NODAL_SHORT_AXIS
    return max(MIN_NON_NODAL_LONG_AXIS, 2 * (lesion.slice_thickness or 0))


def _organ_key(lesion: TargetLesion) -> str:
    return NODE_ORGAN if lesion.is_node else " ".join(lesion.organ.split()).casefold()


def validate_baseline(targets: Sequence[TargetLesion], measurements: Iterable[TargetMeasurement]) -> list[Problem]:
    """Check a baseline target selection against RECIST 1.1; an empty list means it is valid.

    Codes: DUPLICATE_TARGET, TOO_MANY_TARGETS, TOO_MANY_IN_ORGAN, MISSING_MEASUREMENT,
    UNKNOWN_LESION, NOT_MEASURED, MISSING_AXIS, NON_NODAL_TOO_SMALL, NODE_TOO_SMALL.
    """
    problems: list[Problem] = []
    by_id: dict[str, TargetLesion] = {}
    for lesion in targets:
        if lesion.tracking_id in by_id:
            problems.append(
                Problem(
                    "DUPLICATE_TARGET",
                    Reason(gettext_noop("Target %(label)s is listed twice."), label=lesion.label),
                    lesion.tracking_id,
                )
            )
        by_id[lesion.tracking_id] = lesion

    if len(by_id) > MAX_TARGETS:
        problems.append(
            Problem(
                "TOO_MANY_TARGETS",
                Reason(
                    gettext_noop("%(count)s target lesions were chosen; RECIST 1.1 allows at most %(maximum)s."),
                    count=str(len(by_id)),
                    maximum=str(MAX_TARGETS),
                ),
            )
        )

    per_organ: dict[str, list[TargetLesion]] = {}
    for lesion in by_id.values():
        per_organ.setdefault(_organ_key(lesion), []).append(lesion)
    for organ, lesions in per_organ.items():
        if len(lesions) > MAX_TARGETS_PER_ORGAN:
            labels = ", ".join(sorted(lesion.label for lesion in lesions))
            if organ == NODE_ORGAN:
                template = gettext_noop(
                    "%(count)s targets (%(labels)s) are lymph nodes (all lymph nodes count as one organ, whatever "
                    "the station); at most %(maximum)s per organ."
                )
                reason = Reason(template, count=str(len(lesions)), labels=labels, maximum=str(MAX_TARGETS_PER_ORGAN))
            else:
                # The organ as the reader named it (the first target's own spelling), for a page to show.
                template = gettext_noop(
                    "%(count)s targets (%(labels)s) are in %(organ)s; at most %(maximum)s per organ."
                )
                reason = Reason(
                    template,
                    count=str(len(lesions)),
                    labels=labels,
                    organ=lesions[0].organ,
                    maximum=str(MAX_TARGETS_PER_ORGAN),
                )
            problems.append(Problem("TOO_MANY_IN_ORGAN", reason))

    seen: set[str] = set()
    for m in measurements:
        lesion = by_id.get(m.tracking_id)
        if lesion is None:
            problems.append(
                Problem(
                    "UNKNOWN_LESION",
                    Reason(gettext_noop("A measurement refers to unknown lesion %(label)s."), label=m.tracking_id),
                    m.tracking_id,
                )
            )
            continue
        seen.add(m.tracking_id)
        if m.status != MeasurementStatus.MEASURED:
            problems.append(
                Problem(
                    "NOT_MEASURED",
                    Reason(
                        gettext_noop("Target %(label)s must be measured at baseline, not %(status)s."),
                        label=lesion.label,
                        status=m.status.value,
                    ),
                    m.tracking_id,
                )
            )
            continue
        axis, minimum = (
            (m.short_axis, MIN_NODAL_SHORT_AXIS) if lesion.is_node else (m.long_axis, measurable_from(lesion))
        )
        if axis is None:
            template = (
                gettext_noop("Target %(label)s has no short axis at baseline.")
                if lesion.is_node
                else gettext_noop("Target %(label)s has no long axis at baseline.")
            )
            problems.append(Problem("MISSING_AXIS", Reason(template, label=lesion.label), m.tracking_id))
        elif axis < minimum:
            if lesion.is_node:
                code, template = (
                    "NODE_TOO_SMALL",
                    gettext_noop(
                        "Target %(label)s (lymph node) has a short axis of %(size)s; it must be at least %(minimum)s "
                        "to be measurable."
                    ),
                )
            elif minimum > MIN_NON_NODAL_LONG_AXIS:
                code, template = (
                    "NON_NODAL_TOO_SMALL",
                    gettext_noop(
                        "Target %(label)s (non-nodal lesion) has a long axis of %(size)s; it must be at least "
                        "%(minimum)s (twice the %(thickness)s slice thickness) to be measurable."
                    ),
                )
            else:
                code, template = (
                    "NON_NODAL_TOO_SMALL",
                    gettext_noop(
                        "Target %(label)s (non-nodal lesion) has a long axis of %(size)s; it must be at least "
                        "%(minimum)s to be measurable."
                    ),
                )
            params = {"label": lesion.label, "size": _mm(axis), "minimum": _mm(minimum)}
            if "%(thickness)s" in template:
                params["thickness"] = _mm(lesion.slice_thickness)
            problems.append(Problem(code, Reason(template, **params), m.tracking_id))
    for tid, lesion in by_id.items():
        if tid not in seen:
            problems.append(
                Problem(
                    "MISSING_MEASUREMENT",
                    Reason(gettext_noop("Target %(label)s has no baseline measurement."), label=lesion.label),
                    tid,
                )
            )
    return problems


# --- sums ------------------------------------------------------------------------------------


def _contribution(lesion: TargetLesion, m: TargetMeasurement | None) -> int | None:
    """Tenths contributed by one target; None when it cannot be evaluated."""
    if m is None or m.status == MeasurementStatus.NOT_EVALUABLE:
        return None
    if m.status == MeasurementStatus.TOO_SMALL:
        return TOO_SMALL_DEFAULT
    if m.status == MeasurementStatus.DISAPPEARED:
        # A node never truly vanishes: if its short axis was recorded it still counts.
        return (m.short_axis or 0) if lesion.is_node else 0
    return m.short_axis if lesion.is_node else m.long_axis  # None if the needed axis is missing


def _is_cr_compatible(lesion: TargetLesion, m: TargetMeasurement) -> bool:
    if lesion.is_node:  # node: short axis < 10 mm (TOO_SMALL means 5 mm)
        value = _contribution(lesion, m)
        return value is not None and value < NODE_NORMAL_BELOW
    return m.status == MeasurementStatus.DISAPPEARED or (m.status == MeasurementStatus.MEASURED and m.long_axis == 0)


def _contributions(lesions: Sequence[TargetLesion], tp: Timepoint) -> list[tuple[TargetLesion, int | None]]:
    by_id = {m.tracking_id: m for m in tp.targets}
    known = {lesion.tracking_id for lesion in lesions}
    unknown = sorted(set(by_id) - known)
    if unknown:
        raise ValueError(f"{tp.visit}: measurements for lesions that are not baseline targets: {', '.join(unknown)}")
    return [(lesion, _contribution(lesion, by_id.get(lesion.tracking_id))) for lesion in lesions]


def sum_of_diameters(lesions: Sequence[TargetLesion], timepoint: Timepoint) -> int | None:
    """The RECIST sum of diameters in tenths of a mm, or None if any target is not evaluable.

    Long axis for non-nodal targets, short axis for nodes; TOO_SMALL counts 5 mm;
    DISAPPEARED counts 0 (a node: its recorded short axis, if any). Pure integer addition.
    """
    total = 0
    for _lesion, value in _contributions(lesions, timepoint):
        if value is None:
            return None
        total += value
    return total


# --- response --------------------------------------------------------------------------------


def _is_pd(total: int, nadir: int) -> bool:
    # >= 20 % over nadir (total >= 6/5 nadir, cross-multiplied) AND >= 5 mm absolute.
    return total * 5 >= nadir * 6 and total - nadir >= PD_ABSOLUTE_MIN


def _is_pr(total: int, baseline: int) -> bool:
    # <= 70 % of baseline, i.e. at least a 30 % decrease.
    return total * 10 <= baseline * 7


def percent_text(change: Fraction) -> str:
    """A relative change as the percentage people read ("-29.9"), truncated towards zero to one decimal.

    Rounding could carry a change across a threshold: 200.0 -> 140.1 mm is -29.95 %, stable disease, and
    must not read "-30.0". The thresholds (-30 %, +20 %) have one decimal, so a change truncated towards
    zero stays on the side of the threshold the engine decided on.
    """
    tenths_of_percent = int(abs(change) * 1000)  # int() of a Fraction truncates: exact, never rounds up
    sign = "-" if change < 0 else "+"
    return f"{sign}{tenths_of_percent // 10}.{tenths_of_percent % 10}"


def _pct(change: Fraction) -> str:
    return percent_text(change) + "%"


def _target_response(lesions, baseline_sum, nadir, current, reasons, after_cr) -> tuple[TargetResponse, int | None]:
    if not lesions:
        reasons.append(Reason(gettext_noop("No target lesions at baseline: target response is not applicable.")))
        return TargetResponse.NOT_APPLICABLE, None
    parts = _contributions(lesions, current)
    missing = [lesion.label for lesion, value in parts if value is None]
    evaluable_sum = sum(value for _lesion, value in parts if value is not None)
    if after_cr is not None:
        # RECIST 1.1 section 4.3.2 ("lesions that disappear and reappear"): once the subject reached CR, a
        # lesion that is back is progression, whatever its size and however it was recorded.
        by_id = {m.tracking_id: m for m in current.targets}
        back = [
            lesion.label
            for lesion, value in parts
            if value is not None and not _is_cr_compatible(lesion, by_id[lesion.tracking_id])
        ]
        if back:
            reasons.append(
                Reason(
                    gettext_noop(
                        "Target(s) %(labels)s reappeared after the complete response at %(visit)s (non-nodal: "
                        "visible again at any size; node: back to 10 mm short axis or more): target PD."
                    ),
                    labels=", ".join(back),
                    visit=after_cr,
                )
            )
            return TargetResponse.PD, None if missing else evaluable_sum
    if missing:
        if _is_pd(evaluable_sum, nadir):
            reasons.append(
                Reason(
                    gettext_noop(
                        "Target(s) %(labels)s not evaluable, but the evaluable targets alone sum to %(sum)s, at "
                        "least 20%% and 5 mm above the nadir of %(nadir)s: target PD."
                    ),
                    labels=", ".join(missing),
                    sum=_mm(evaluable_sum),
                    nadir=_mm(nadir),
                )
            )
            return TargetResponse.PD, None
        reasons.append(
            Reason(
                gettext_noop(
                    "Target(s) %(labels)s not evaluable and the evaluable ones do not show progression: "
                    "target response NE."
                ),
                labels=", ".join(missing),
            )
        )
        return TargetResponse.NE, None

    total = evaluable_sum
    by_id = {m.tracking_id: m for m in current.targets}
    if all(_is_cr_compatible(lesion, by_id[lesion.tracking_id]) for lesion in lesions):
        if total:
            template = gettext_noop(
                "Every non-nodal target disappeared and every target node is under 10 mm short axis: target CR "
                "(sum %(sum)s is from normal-sized nodes)."
            )
            reasons.append(Reason(template, sum=_mm(total)))
        else:
            template = gettext_noop(
                "Every non-nodal target disappeared and every target node is under 10 mm short axis: target CR."
            )
            reasons.append(Reason(template))
        return TargetResponse.CR, total
    if _is_pd(total, nadir):
        if nadir:
            template = gettext_noop(
                "Sum %(sum)s is %(change)s and %(increase)s above the nadir of %(nadir)s (>= 20%% and >= 5 mm): "
                "target PD."
            )
            change = _pct(Fraction(total - nadir, nadir))
            reasons.append(
                Reason(template, sum=_mm(total), change=change, increase=_mm(total - nadir), nadir=_mm(nadir))
            )
        else:
            template = gettext_noop(
                "Sum %(sum)s is up and %(increase)s above the nadir of %(nadir)s (>= 20%% and >= 5 mm): target PD."
            )
            reasons.append(Reason(template, sum=_mm(total), increase=_mm(total - nadir), nadir=_mm(nadir)))
        return TargetResponse.PD, total
    if total * 5 >= nadir * 6:
        reasons.append(
            Reason(
                gettext_noop(
                    "Sum rose at least 20%% over the nadir of %(nadir)s but only by %(increase)s (< 5 mm absolute): "
                    "not PD."
                ),
                nadir=_mm(nadir),
                increase=_mm(total - nadir),
            )
        )
    if _is_pr(total, baseline_sum):
        reasons.append(
            Reason(
                gettext_noop(
                    "Sum %(sum)s is %(change)s from the baseline of %(baseline)s (at least a 30%% decrease): target PR."
                ),
                sum=_mm(total),
                change=_pct(Fraction(total - baseline_sum, baseline_sum)),
                baseline=_mm(baseline_sum),
            )
        )
        return TargetResponse.PR, total
    reasons.append(
        Reason(
            gettext_noop(
                "Sum %(sum)s is %(change)s from baseline %(baseline)s and not PD against nadir %(nadir)s: target SD."
            ),
            sum=_mm(total),
            change=_pct(Fraction(total - baseline_sum, baseline_sum)),
            baseline=_mm(baseline_sum),
            nadir=_mm(nadir),
        )
    )
    return TargetResponse.SD, total


def _non_target_response(
    baseline: Timepoint, current: Timepoint, reasons: list[str], after_cr: str | None
) -> NonTargetResponse:
    expected = [o.tracking_id for o in baseline.non_targets]
    if not expected:
        return NonTargetResponse.NOT_APPLICABLE
    observed = {o.tracking_id: o.status for o in current.non_targets}
    unknown = sorted(set(observed) - set(expected))
    if unknown:
        raise ValueError(
            f"{current.visit}: observations for non-target lesions absent at baseline: {', '.join(unknown)}"
        )
    statuses = [observed.get(tid, NonTargetStatus.NOT_EVALUABLE) for tid in expected]
    if NonTargetStatus.UNEQUIVOCAL_PROGRESSION in statuses:
        reasons.append(Reason(gettext_noop("Unequivocal progression of non-target disease: non-target PD.")))
        return NonTargetResponse.PD
    if after_cr is not None and NonTargetStatus.PRESENT in statuses:
        reasons.append(
            Reason(
                gettext_noop(
                    "A non-target lesion is visible again after the complete response at %(visit)s: non-target PD."
                ),
                visit=after_cr,
            )
        )
        return NonTargetResponse.PD
    if all(s == NonTargetStatus.ABSENT for s in statuses):
        reasons.append(Reason(gettext_noop("All non-target lesions disappeared (nodes normal-sized): non-target CR.")))
        return NonTargetResponse.CR
    if NonTargetStatus.NOT_EVALUABLE in statuses:
        reasons.append(Reason(gettext_noop("A non-target lesion was not evaluable (or not reported): non-target NE.")))
        return NonTargetResponse.NE
    reasons.append(
        Reason(gettext_noop("Non-target disease persists without unequivocal progression: non-target non-CR/non-PD."))
    )
    return NonTargetResponse.NON_CR_NON_PD


def _overall(target: TargetResponse, non_target: NonTargetResponse, new: NewLesions) -> OverallResponse:
    T, N, O = TargetResponse, NonTargetResponse, OverallResponse  # noqa: N806, E741
    if target == T.PD or non_target == N.PD or new == NewLesions.UNEQUIVOCAL:
        return O.PD
    if target == T.NOT_APPLICABLE:  # Table 5: non-target disease only
        return {N.CR: O.CR, N.NON_CR_NON_PD: O.NON_CR_NON_PD, N.NE: O.NE, N.NOT_APPLICABLE: O.NE}[non_target]
    # Table 4: targets (+/- non-targets); no non-targets at all behaves like non-target CR.
    if target == T.CR:
        return O.CR if non_target in (N.CR, N.NOT_APPLICABLE) else O.PR
    return {T.PR: O.PR, T.SD: O.SD, T.NE: O.NE}[target]


def equivocal_first_seen(
    earlier: Iterable[tuple[str, NewLesions, Sequence[str]]], confirmed: Iterable[str]
) -> tuple[str, tuple[str, ...]] | None:
    """The first of the ``earlier`` visits (visit, new-lesion call, new lesion ids; oldest first) where one of
    the ``confirmed`` new lesions was recorded as equivocal, with those lesions' ids; None if there is none.

    RECIST 1.1 section 4.3.3: "If the repeat scan confirms there is definitely a new lesion, then progression
    should be declared using the date of the initial scan."
    """
    confirmed = set(confirmed)
    for visit, call, ids in earlier:
        seen = confirmed & set(ids)
        if call == NewLesions.EQUIVOCAL and seen:
            return visit, tuple(sorted(seen))
    return None


def _assess_one(
    baseline: Timepoint,
    earlier: Sequence[Timepoint],
    current: Timepoint,
    lesions: tuple[TargetLesion, ...],
    after_cr: str | None,
) -> Assessment:
    reasons: list[Reason] = []
    baseline_sum = nadir = None
    if lesions:
        baseline_sum = sum_of_diameters(lesions, baseline)
        assert baseline_sum is not None  # guaranteed by validate_baseline
        nadir = baseline_sum
        nadir_visit = baseline.visit
        for tp in earlier:
            s = sum_of_diameters(lesions, tp)
            if s is not None and s < nadir:
                nadir, nadir_visit = s, tp.visit
        reasons.append(
            Reason(
                gettext_noop("Baseline sum %(baseline)s; nadir %(nadir)s at %(visit)s."),
                baseline=_mm(baseline_sum),
                nadir=_mm(nadir),
                visit=nadir_visit,
            )
        )

    target, total = _target_response(lesions, baseline_sum, nadir, current, reasons, after_cr)
    non_target = _non_target_response(baseline, current, reasons, after_cr)
    if current.new_lesions == NewLesions.UNEQUIVOCAL:
        reasons.append(Reason(gettext_noop("Unequivocal new lesion(s): overall PD.")))
    elif current.new_lesions == NewLesions.EQUIVOCAL:
        reasons.append(
            Reason(
                gettext_noop(
                    "Equivocal new lesion(s) do not make PD; if confirmed later, PD dates from this timepoint."
                )
            )
        )
    overall = _overall(target, non_target, current.new_lesions)
    if target == TargetResponse.NOT_APPLICABLE and non_target == NonTargetResponse.NOT_APPLICABLE:
        reasons.append(Reason(gettext_noop("No target or non-target disease at baseline.")))
    reasons.append(Reason(gettext_noop("Overall response %(response)s."), response=overall.value))

    dates_from = None
    if overall == OverallResponse.PD:
        dates_from = current.visit
        if current.new_lesions == NewLesions.UNEQUIVOCAL:
            first = equivocal_first_seen(
                ((tp.visit, tp.new_lesions, tp.new_lesion_ids) for tp in earlier), current.new_lesion_ids
            )
            if first is not None:
                dates_from = first[0]
                reasons.append(
                    Reason(
                        gettext_noop(
                            "New lesion(s) %(labels)s first seen as equivocal at %(visit)s and confirmed now: "
                            "progression dates from %(visit)s."
                        ),
                        labels=", ".join(first[1]),
                        visit=first[0],
                    )
                )

    change_baseline = change_nadir = increase = None
    if total is not None:
        change_baseline = Fraction(total - baseline_sum, baseline_sum)
        increase = total - nadir
        change_nadir = Fraction(increase, nadir) if nadir else None
    return Assessment(
        sum=total,
        baseline_sum=baseline_sum,
        nadir_sum=nadir,
        change_from_baseline=change_baseline,
        change_from_nadir=change_nadir,
        increase_over_nadir=increase,
        target_response=target,
        non_target_response=non_target,
        new_lesions=current.new_lesions,
        overall_response=overall,
        reasons=tuple(reasons),
        progression_dates_from=dates_from,
    )


def assess(
    baseline: Timepoint,
    history: Sequence[Timepoint],
    current: Timepoint,
    *,
    lesions: Sequence[TargetLesion],
) -> Assessment:
    """Assess one follow-up timepoint of one subject under RECIST 1.1.

    ``lesions`` are the baseline target lesions (they say which targets are nodes);
    ``history`` holds the earlier follow-ups in order, and feeds the nadir with every
    timepoint whose sum is computable. The earlier follow-ups are assessed too: once one of
    them is a complete response, any lesion back at this one is progression (section 4.3.2).
    Raises :class:`InvalidBaseline` if the baseline breaks the protocol rules, ``ValueError``
    for data that refers to unknown lesions.
    """
    lesions = tuple(lesions)
    problems = validate_baseline(lesions, baseline.targets)
    if problems:
        raise InvalidBaseline(problems)
    history = tuple(history)
    after_cr = None
    for n, tp in enumerate(history):
        if after_cr is None and _assess_one(baseline, history[:n], tp, lesions, None).overall_response == (
            OverallResponse.CR
        ):
            after_cr = tp.visit
    return _assess_one(baseline, history, current, lesions, after_cr)
