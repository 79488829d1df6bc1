"""Protocol compliance of one timepoint's series: findings with a severity and a sentence a coordinator can act on.

Messages name a series only by its number and description; details hold numbers only. Nothing else from the
headers (manufacturer, model, station, protocol name, contrast agent) is ever echoed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from .classify import (
    DEFAULT_RULES,
    Classification,
    RuleSet,
    Why,
    classify_series,
    gettext_noop,
    region_parts,
)
from .geometry import POSITION_TOLERANCE_MM, SPACING_TOLERANCE, analyse, missing_instance_numbers
from .series import SeriesInfo


class Severity(StrEnum):
    BLOCKING = "blocking"  # the timepoint cannot be read until it is resolved
    WARNING = "warning"  # a QC reviewer looks and decides


# Every finding code, and what it means; codes are stable (stored by the Django side, used in queries). A page
# in another language than English says a finding by its code's sentence (QCFinding.message_display).
CODES: dict[str, str] = {
    "no_images": gettext_noop("No images were received for the visit."),
    "modality_missing": gettext_noop("The protocol's modality has no series."),
    "region_missing": gettext_noop("The series of the protocol's modality do not cover its body region."),
    "region_unknown": gettext_noop(
        "The body region of some series cannot be read, so the protocol's region is unconfirmed."
    ),
    "contrast_missing": gettext_noop("The protocol requires contrast and no series shows it."),
    "contrast_unexpected": gettext_noop("The protocol asks for no contrast and a series shows it."),
    "slice_thickness_exceeded": gettext_noop("A series' slices are thicker than the protocol's maximum."),
    "slice_thickness_unknown": gettext_noop("A series does not state its slice thickness."),
    "missing_slices": gettext_noop("Slice positions have gaps: images are missing."),
    "inconsistent_spacing": gettext_noop("The spacing between neighbouring slices varies."),
    "duplicate_positions": gettext_noop("Several images lie at one slice position."),
    "mixed_orientation": gettext_noop("A series mixes slice orientations."),
    "instance_numbers_not_contiguous": gettext_noop("Instance numbers have gaps while the positions show none."),
    "out_of_window": gettext_noop("The scan day is outside the visit window."),
    "scan_day_unknown": gettext_noop("The scan day is unknown, so the visit window cannot be checked."),
    "scanner_changed": gettext_noop("The scanner differs from the subject's baseline."),
    "protocol_changed": gettext_noop("The acquisition protocol differs from the subject's baseline."),
}

CONTRAST_CHOICES = ("required", "none", "either")
# The slice planes (trials.qc.geometry.plane_name), said as a word of the catalogue in a finding.
PLANE_WORDS = (gettext_noop("axial"), gettext_noop("coronal"), gettext_noop("sagittal"), gettext_noop("oblique"))
_THICKNESS_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class Finding:
    """One QC finding on a timepoint (series_uid None) or on one of its series."""

    code: str
    severity: Severity
    message: str
    series_uid: str | None = None
    details: dict[str, int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"Unknown finding code {self.code!r}.")
        object.__setattr__(self, "severity", Severity(self.severity))
        for key, value in self.details.items():
            # Numbers only: a detail can never carry a name, an ID or free text from the headers.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Finding detail {key!r} must be a number.")

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "series_uid": self.series_uid,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class ProtocolInfo:
    """What one visit's imaging must contain (one ImagingProtocol row), with the visit's window.

    `window` is (earliest_day, latest_day) from baseline day 0, inclusive; None skips the window check.
    `visit_label` names the visit in messages ("Week 6").
    """

    modality: str
    body_region: str
    contrast: str = "either"
    max_slice_thickness_mm: float = 5.0
    window: tuple[int, int] | None = None
    target_day: int | None = None
    same_scanner_as_baseline: bool = False
    visit_label: str = ""

    def __post_init__(self) -> None:
        if self.modality not in ("CT", "MR"):
            raise ValueError("A protocol's modality is CT or MR.")
        region_parts(self.body_region)
        if not self.body_region:
            raise ValueError("A protocol needs a body region.")
        if self.contrast not in CONTRAST_CHOICES:
            raise ValueError(f"A protocol's contrast is one of {', '.join(CONTRAST_CHOICES)}.")
        if isinstance(self.max_slice_thickness_mm, Decimal | int):
            object.__setattr__(self, "max_slice_thickness_mm", float(self.max_slice_thickness_mm))
        if self.window is not None:
            earliest, latest = (int(day) for day in self.window)
            if earliest > latest:
                raise ValueError("A visit window starts before it ends.")
            object.__setattr__(self, "window", (earliest, latest))

    @property
    def parts(self) -> frozenset[str]:
        return region_parts(self.body_region)

    def describe(self) -> Why:
        """ "CT chest-abdomen-pelvis with contrast"."""
        template = {
            "required": gettext_noop("%(modality)s %(region)s with contrast"),
            "none": gettext_noop("%(modality)s %(region)s without contrast"),
            "either": gettext_noop("%(modality)s %(region)s"),
        }[self.contrast]
        return Why(template, modality=self.modality, region=self.body_region)


def check_timepoint(
    protocols: list[ProtocolInfo],
    series: list[SeriesInfo],
    *,
    classifications: dict[str, Classification] | None = None,
    baseline: list[SeriesInfo] | None = None,
    rules: RuleSet = DEFAULT_RULES,
) -> list[Finding]:
    """Check a timepoint's series against its visit's protocols; blocking findings first.

    `classifications` (by series UID) replace the rules' answer, e.g. a QC reviewer's corrected label.
    `baseline` is the subject's baseline series, compared when a protocol asks for the same scanner.
    Localizers and single-image series take no part in compliance.
    """
    if not any(s.instances for s in series):
        return [
            Finding(
                "no_images",
                Severity.BLOCKING,
                "No images have been received for this visit; please upload the scans the protocol asks for.",
            )
        ]
    given = classifications or {}
    labels = {s.series_uid: given.get(s.series_uid) or classify_series(s, rules) for s in series}
    checked = [s for s in series if _takes_part(s, labels[s.series_uid])]

    findings: list[Finding] = []
    for protocol in protocols:
        findings += _protocol_findings(protocol, checked, labels)
    modalities = {p.modality for p in protocols}
    for s in checked:
        applicable = _applicable(protocols, s, labels[s.series_uid])
        findings += _thickness_findings(s, applicable, checked, labels)
        findings += _geometry_findings(s, relevant=not protocols or s.modality in modalities)
    findings += _window_findings(protocols, checked)
    if baseline:
        baseline_labels = {b.series_uid: classify_series(b, rules) for b in baseline}
        findings += _baseline_findings(
            protocols, checked, [b for b in baseline if _takes_part(b, baseline_labels[b.series_uid])]
        )

    unique: dict[tuple, Finding] = {}
    for finding in findings:
        unique.setdefault((finding.code, finding.series_uid, finding.message), finding)
    numbers = {s.series_uid: s.series_number for s in series}

    def order(f: Finding) -> tuple:
        number = numbers.get(f.series_uid) if f.series_uid else None
        return (f.severity != Severity.BLOCKING, f.series_uid is not None, number is None, number or 0, f.code)

    return sorted(unique.values(), key=order)


# -- which series count ----------------------------------------------------------------------------------------


def _takes_part(series: SeriesInfo, label: Classification) -> bool:
    """Localizers and single images (scouts, screen captures, dose pages) are not checked against the protocol."""
    return label.kind != "localizer" and series.image_count >= 2


def _overlaps(label: Classification, parts: frozenset[str]) -> bool:
    """Whether a series may cover some of the parts: a series of unknown region may."""
    return not label.region or bool(region_parts(label.region) & parts)


def _applicable(protocols: Iterable[ProtocolInfo], s: SeriesInfo, label: Classification) -> list[ProtocolInfo]:
    return [p for p in protocols if p.modality == s.modality and _overlaps(label, p.parts)]


def _has_contrast(s: SeriesInfo, label: Classification) -> bool:
    return label.contrast if label.contrast is not None else s.has_contrast_agent


def _thickness(s: SeriesInfo) -> float | None:
    values = [i.slice_thickness for i in s.instances if i.slice_thickness is not None]
    return max(values) if values else s.slice_thickness


# -- protocol: modality, region, contrast ---------------------------------------------------------------------


def _protocol_findings(p: ProtocolInfo, checked: list[SeriesInfo], labels: dict[str, Classification]) -> list[Finding]:
    same = [s for s in checked if s.modality == p.modality]
    if not same:
        others = sorted({s.modality for s in checked if s.modality})
        if others:
            message = Why(
                gettext_noop(
                    "No %(modality)s series was received for this visit (only %(others)s series arrived); the "
                    "protocol asks for %(protocol)s. Please upload the %(modality)s scan."
                ),
                modality=p.modality,
                others=" and ".join(others),
                protocol=p.describe(),
            )
        else:
            message = Why(
                gettext_noop(
                    "No %(modality)s series was received for this visit; the protocol asks for %(protocol)s. "
                    "Please upload the %(modality)s scan."
                ),
                modality=p.modality,
                protocol=p.describe(),
            )
        return [
            Finding(
                "modality_missing",
                Severity.BLOCKING,
                message,
                details={"series_received": len(checked)},
            )
        ]
    findings = []
    covered = frozenset().union(*(region_parts(labels[s.series_uid].region) for s in same))
    missing = p.parts - covered
    unknown = [s for s in same if not labels[s.series_uid].region]
    if missing and unknown:
        findings.append(
            Finding(
                "region_unknown",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "The body region of %(series)s cannot be read from the headers, so QC cannot confirm the "
                        "%(missing)s the protocol asks for; a QC reviewer should check the images and set the region."
                    ),
                    series=_names(unknown),
                    missing=_parts_words(missing),
                ),
                series_uid=unknown[0].series_uid if len(unknown) == 1 else None,
                details={"series_without_region": len(unknown)},
            )
        )
    elif missing:
        findings.append(
            Finding(
                "region_missing",
                Severity.BLOCKING,
                Why(
                    gettext_noop(
                        "The %(modality)s series received cover the %(covered)s but not the %(missing)s; the "
                        "protocol asks for %(protocol)s. Please upload the series covering the %(missing)s."
                    ),
                    modality=p.modality,
                    covered=_parts_words(covered),
                    missing=_parts_words(missing),
                    protocol=p.describe(),
                ),
                details={"series_checked": len(same), "parts_missing": len(missing)},
            )
        )

    relevant = [s for s in same if _overlaps(labels[s.series_uid], p.parts)]
    if p.contrast == "required" and relevant and not any(_has_contrast(s, labels[s.series_uid]) for s in relevant):
        findings.append(
            Finding(
                "contrast_missing",
                Severity.BLOCKING,
                Why(
                    gettext_noop(
                        "No %(modality)s series of the %(region)s shows contrast, but the protocol asks for "
                        "%(protocol)s; please upload the contrast-enhanced series, or reply why contrast was not given."
                    ),
                    modality=p.modality,
                    region=p.body_region,
                    protocol=p.describe(),
                ),
                details={"series_checked": len(relevant)},
            )
        )
    if p.contrast == "none":
        for s in relevant:
            if _has_contrast(s, labels[s.series_uid]):
                findings.append(
                    Finding(
                        "contrast_unexpected",
                        Severity.WARNING,
                        Why(
                            gettext_noop(
                                "%(series)s appears to be contrast-enhanced, but the protocol asks for %(protocol)s; "
                                "please confirm whether contrast was given."
                            ),
                            series=_name(s),
                            protocol=p.describe(),
                        ),
                        series_uid=s.series_uid,
                    )
                )
    return findings


# -- per series: thickness and slice geometry -----------------------------------------------------------------


def _thickness_findings(
    s: SeriesInfo, applicable: list[ProtocolInfo], checked: list[SeriesInfo], labels: dict[str, Classification]
) -> list[Finding]:
    if not applicable:
        return []
    limit = min(p.max_slice_thickness_mm for p in applicable)
    thickness = _thickness(s)
    if thickness is None:
        return [
            Finding(
                "slice_thickness_unknown",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s does not state its slice thickness, so it cannot be checked against the "
                        "protocol's %(limit)s mm maximum; please confirm the slice thickness."
                    ),
                    series=_name(s),
                    limit=_mm(limit),
                ),
                series_uid=s.series_uid,
                details={"max_slice_thickness_mm": limit},
            )
        ]
    if thickness <= limit + _THICKNESS_TOLERANCE_MM:
        return []
    label = labels[s.series_uid]
    # A thick extra reconstruction next to a thin one of the same kind is harmless: the thin one is read.
    thin = [
        o
        for o in checked
        if o is not s
        and o.modality == s.modality
        and labels[o.series_uid].kind == label.kind
        and labels[o.series_uid].region == label.region
        and (_thickness(o) or math.inf) <= limit + _THICKNESS_TOLERANCE_MM
    ]
    details = {"slice_thickness_mm": thickness, "max_slice_thickness_mm": limit}
    if thin:
        return [
            Finding(
                "slice_thickness_exceeded",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s has %(thickness)s mm slices, thicker than the %(limit)s mm the protocol allows; "
                        "%(thin)s of the same kind is within the limit, so nothing more is needed for this one."
                    ),
                    series=_name(s),
                    thickness=_mm(thickness),
                    limit=_mm(limit),
                    thin=_name(thin[0]),
                ),
                series_uid=s.series_uid,
                details=details,
            )
        ]
    return [
        Finding(
            "slice_thickness_exceeded",
            Severity.BLOCKING,
            Why(
                gettext_noop(
                    "%(series)s has %(thickness)s mm slices, thicker than the %(limit)s mm the protocol allows; "
                    "please send a reconstruction of %(limit)s mm or thinner."
                ),
                series=_name(s),
                thickness=_mm(thickness),
                limit=_mm(limit),
            ),
            series_uid=s.series_uid,
            details=details,
        )
    ]


def _geometry_findings(s: SeriesInfo, *, relevant: bool) -> list[Finding]:
    stack = analyse(s.instances)
    findings = []
    name = _name(s)
    if stack.orientation_groups > 1:
        findings.append(
            Finding(
                "mixed_orientation",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s mixes %(orientations)s slice orientations; only its %(images)s %(plane)s images "
                        "were checked for missing slices. Please send each orientation as its own series."
                    ),
                    series=name,
                    orientations=stack.orientation_groups,
                    images=stack.images,
                    plane=Why(stack.plane),
                ),
                series_uid=s.series_uid,
                details={"orientations": stack.orientation_groups, "images_checked": stack.images},
            )
        )
    if stack.duplicates:
        findings.append(
            Finding(
                "duplicate_positions",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s has %(count)s image at slice positions already taken by another image; please "
                        "check that the series was not sent twice or mixed with another acquisition."
                    )
                    if stack.duplicates == 1
                    else gettext_noop(
                        "%(series)s has %(count)s images at slice positions already taken by another image; please "
                        "check that the series was not sent twice or mixed with another acquisition."
                    ),
                    series=name,
                    count=stack.duplicates,
                ),
                series_uid=s.series_uid,
                details={"duplicate_images": stack.duplicates},
            )
        )
    if stack.gaps:
        first = stack.gaps[0]
        missing = stack.missing
        where = {"series": name, "start": _position(first.start_mm), "end": _position(first.end_mm)}
        if len(stack.gaps) == 1 and missing == 1:
            template = gettext_noop(
                "%(series)s is missing slices between positions %(start)s and %(end)s mm (%(missing)s expected slice "
                "absent); please send the complete series."
            )
        elif len(stack.gaps) == 1:
            template = gettext_noop(
                "%(series)s is missing slices between positions %(start)s and %(end)s mm (%(missing)s expected "
                "slices absent); please send the complete series."
            )
        else:
            template = gettext_noop(
                "%(series)s is missing %(missing)s slices in %(gaps)s places, the first between positions %(start)s "
                "and %(end)s mm; please send the complete series."
            )
        findings.append(
            Finding(
                "missing_slices",
                Severity.BLOCKING if relevant else Severity.WARNING,
                Why(template, **where, missing=missing, gaps=len(stack.gaps)),
                series_uid=s.series_uid,
                details={
                    "missing_slices": missing,
                    "gaps": len(stack.gaps),
                    "first_gap_start_mm": round(first.start_mm, 2),
                    "first_gap_end_mm": round(first.end_mm, 2),
                    "spacing_mm": round(stack.spacing_mm or 0.0, 3),
                    "slices_present": len(stack.positions),
                },
            )
        )
    if (
        stack.spacing_mm
        and stack.spacing_variation > SPACING_TOLERANCE
        and (stack.largest_step_mm or 0) - (stack.smallest_step_mm or 0) > POSITION_TOLERANCE_MM
    ):
        findings.append(
            Finding(
                "inconsistent_spacing",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s has uneven slice spacing (%(smallest)s to %(largest)s mm between neighbouring "
                        "slices); please check that it is one complete, regular reconstruction."
                    ),
                    series=name,
                    smallest=_mm(stack.smallest_step_mm),
                    largest=_mm(stack.largest_step_mm),
                ),
                series_uid=s.series_uid,
                details={
                    "smallest_step_mm": round(stack.smallest_step_mm or 0.0, 3),
                    "largest_step_mm": round(stack.largest_step_mm or 0.0, 3),
                    "spacing_mm": round(stack.spacing_mm, 3),
                },
            )
        )
    absent = missing_instance_numbers(s.instances)
    if absent and not stack.gaps:
        numbers = [i.instance_number for i in s.instances if i.instance_number is not None]
        positions = Why(
            gettext_noop("though the slice positions show no gap")
            if stack.positions
            else gettext_noop("and the headers give no slice positions to tell whether images are missing")
        )
        findings.append(
            Finding(
                "instance_numbers_not_contiguous",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "%(series)s skips %(absent)s instance number between %(first)s and %(last)s, %(positions)s; "
                        "please check that no images were left out."
                    )
                    if absent == 1
                    else gettext_noop(
                        "%(series)s skips %(absent)s instance numbers between %(first)s and %(last)s, %(positions)s; "
                        "please check that no images were left out."
                    ),
                    series=name,
                    absent=absent,
                    first=min(numbers),
                    last=max(numbers),
                    positions=positions,
                ),
                series_uid=s.series_uid,
                details={
                    "instance_numbers_absent": absent,
                    "first_instance": min(numbers),
                    "last_instance": max(numbers),
                },
            )
        )
    return findings


# -- the visit window ----------------------------------------------------------------------------------------


def _window_findings(protocols: list[ProtocolInfo], checked: list[SeriesInfo]) -> list[Finding]:
    outside: dict[tuple[int, ProtocolInfo], list[SeriesInfo]] = {}
    undated: list[SeriesInfo] = []
    for s in checked:
        windowed = [p for p in protocols if p.window is not None]
        candidates = [p for p in windowed if p.modality == s.modality] or windowed
        if not candidates:
            continue
        p = candidates[0]
        earliest, latest = p.window  # type: ignore[misc]
        if s.study_day is None:
            undated.append(s)
        elif not earliest <= s.study_day <= latest:
            outside.setdefault((s.study_day, p), []).append(s)
    findings = []
    for (day, p), affected in sorted(outside.items(), key=lambda kv: kv[0][0]):
        earliest, latest = p.window  # type: ignore[misc]
        details = {
            "study_day": day,
            "earliest_day": earliest,
            "latest_day": latest,
            "days_outside": earliest - day if day < earliest else day - latest,
            "series_count": len(affected),
        }
        if p.target_day is not None:
            details["target_day"] = p.target_day
        findings.append(
            Finding(
                "out_of_window",
                Severity.BLOCKING,
                Why(
                    gettext_noop(
                        "The scan is on day %(day)s from baseline; %(visit)s accepts days %(earliest)s to %(latest)s. "
                        "Please check the scan date, or reply with the reason for the deviation."
                    ),
                    day=day,
                    visit=p.visit_label or Why(gettext_noop("this visit")),
                    earliest=earliest,
                    latest=latest,
                ),
                series_uid=affected[0].series_uid if len(affected) == 1 and len(checked) > 1 else None,
                details=details,
            )
        )
    if undated:
        findings.append(
            Finding(
                "scan_day_unknown",
                Severity.WARNING,
                Why(
                    gettext_noop(
                        "The scan date of %(series)s is missing, so the visit window cannot be checked; please "
                        "confirm the date of the scan."
                    ),
                    series=_names(undated),
                ),
                series_uid=undated[0].series_uid if len(undated) == 1 else None,
                details={"series_count": len(undated)},
            )
        )
    return findings


# -- the subject's baseline ----------------------------------------------------------------------------------


def _baseline_findings(
    protocols: list[ProtocolInfo], checked: list[SeriesInfo], baseline: list[SeriesInfo]
) -> list[Finding]:
    findings = []
    for modality in sorted({p.modality for p in protocols if p.same_scanner_as_baseline}):
        before = [b for b in baseline if b.modality == modality]
        if not before:
            continue
        now = [s for s in checked if s.modality == modality]
        changed = [s for s in now if not any(_same_scanner(s, b) for b in before)]
        if changed:
            unit_only = all(any(_same_model(s, b) for b in before) for s in changed)
            what = Why(
                gettext_noop("a different scanner (of the same model)")
                if unit_only
                else gettext_noop("a different scanner model")
            )
            findings.append(
                Finding(
                    "scanner_changed",
                    Severity.WARNING,
                    Why(
                        gettext_noop(
                            "%(series)s was acquired on %(what)s than the subject's baseline %(modality)s; the trial "
                            "asks for the same scanner at every visit. Please confirm the scanner used, or reply with "
                            "the reason for the change."
                        )
                        if len(changed) == 1
                        else gettext_noop(
                            "%(series)s were acquired on %(what)s than the subject's baseline %(modality)s; the trial "
                            "asks for the same scanner at every visit. Please confirm the scanner used, or reply with "
                            "the reason for the change."
                        ),
                        series=_names(changed),
                        what=what,
                        modality=modality,
                    ),
                    series_uid=changed[0].series_uid if len(changed) == 1 else None,
                    details={"series_changed": len(changed), "baseline_series": len(before)},
                )
            )
        protocols_before = {_norm(b.protocol_name) for b in before if _norm(b.protocol_name)}
        if protocols_before:
            differ = [s for s in now if _norm(s.protocol_name) and _norm(s.protocol_name) not in protocols_before]
            if differ:
                findings.append(
                    Finding(
                        "protocol_changed",
                        Severity.WARNING,
                        Why(
                            gettext_noop(
                                "%(series)s was acquired with a different scanner protocol than the subject's baseline "
                                "%(modality)s; the trial asks for the same protocol at every visit. Please confirm the "
                                "protocol used, or reply with the reason for the change."
                            )
                            if len(differ) == 1
                            else gettext_noop(
                                "%(series)s were acquired with a different scanner protocol than the subject's "
                                "baseline %(modality)s; the trial asks for the same protocol at every visit. Please "
                                "confirm the protocol used, or reply with the reason for the change."
                            ),
                            series=_names(differ),
                            modality=modality,
                        ),
                        series_uid=differ[0].series_uid if len(differ) == 1 else None,
                        details={"series_changed": len(differ), "baseline_series": len(before)},
                    )
                )
    return findings


def _norm(text: str) -> str:
    return " ".join(text.upper().split())


def _same_model(a: SeriesInfo, b: SeriesInfo) -> bool:
    """Same manufacturer and model where both are known; unknown counts as the same (nothing to compare)."""
    for x, y in ((a.manufacturer, b.manufacturer), (a.model_name, b.model_name)):
        if _norm(x) and _norm(y) and _norm(x) != _norm(y):
            return False
    return True


def _same_scanner(a: SeriesInfo, b: SeriesInfo) -> bool:
    # Station names survive de-identification only when the trial retains device identity.
    if _norm(a.station_name) and _norm(b.station_name) and _norm(a.station_name) != _norm(b.station_name):
        return False
    return _same_model(a, b)


# -- words ----------------------------------------------------------------------------------------------------


def _clean_description(text: str) -> str:
    printable = "".join(ch for ch in text if ch.isprintable())
    words = " ".join(printable.split())
    return words if len(words) <= 64 else words[:63] + "…"


def _name(s: SeriesInfo) -> Why:
    """How messages refer to a series, and the only way: "Series 3 (AX 5mm)"."""
    description = _clean_description(s.description)
    if s.series_number is not None:
        if description:
            return Why(
                gettext_noop("Series %(number)s (%(description)s)"), number=s.series_number, description=description
            )
        return Why(gettext_noop("Series %(number)s"), number=s.series_number)
    if description:
        return Why(gettext_noop("The series “%(description)s”"), description=description)
    return Why(gettext_noop("A series without number or description"))


def _names(series: list[SeriesInfo]) -> Why:
    if len(series) == 1:
        return _name(series[0])
    numbers = [str(s.series_number) for s in series if s.series_number is not None]
    if len(numbers) == len(series):
        return Why(gettext_noop("Series %(numbers)s and %(last)s"), numbers=numbers[:-1], last=numbers[-1])
    return Why(gettext_noop("%(count)s series"), count=len(series))


def _parts_words(parts: Iterable[str]) -> Why:
    """Body parts in words, head to toe ("abdomen and pelvis"); each word is the catalogue's (msgid "chest")."""
    ordered = [Why(p) for p in ("head", "neck", "chest", "abdomen", "pelvis") if p in set(parts)]
    if len(ordered) <= 1:
        return ordered[0] if ordered else Why("")
    return Why(gettext_noop("%(parts)s and %(last)s"), parts=ordered[:-1], last=ordered[-1])


def _mm(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "?"


def _position(value: float) -> str:
    # A typographic minus, as coordinators read it in the viewer.
    return f"{value:.1f}".replace("-", "−")
