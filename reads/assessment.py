"""A read's RECIST 1.1 assessment: the reader's content turned into the criteria engine's input and back.

Pure functions over `reads.content.Content`; no database. The engine (`reads.criteria.recist11`) does the
arithmetic; this module adds what the engine cannot know: that every tracked lesion was reported, that a
measured lesion was drawn on an image, that the recorded new lesions match the new-lesion call.
"""

from __future__ import annotations

from fractions import Fraction

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .content import Content, Entry, mm_text
from .criteria import recist11 as r
from .sites import BY_CODE

RESPONSE_LABELS = {
    "CR": gettext_lazy("Complete response"),
    "PR": gettext_lazy("Partial response"),
    "SD": gettext_lazy("Stable disease"),
    "PD": gettext_lazy("Progressive disease"),
    "NE": gettext_lazy("Not evaluable"),
    "NON_CR_NON_PD": gettext_lazy("Non-CR/non-PD"),
    "NOT_APPLICABLE": gettext_lazy("Not applicable"),
}


STATUS_LABELS = {  # a target's status, as the read page names it (the engine's parameter is its value)
    "MEASURED": gettext_lazy("Measured"),
    "TOO_SMALL": gettext_lazy("Too small to measure"),
    "DISAPPEARED": gettext_lazy("Disappeared"),
    "NOT_EVALUABLE": gettext_lazy("Not evaluable"),
}


def response_label(value: str | None) -> str:
    return str(RESPONSE_LABELS.get(value, _("Baseline") if value is None else value))


def _problem(code: str, message: str, label: str | None = None) -> dict:
    return {"code": code, "message": message, "label": label}


def _pct(change: Fraction | None) -> str | None:
    return None if change is None else r.percent_text(change)


def target_lesions(baseline: Content, slice_thickness: dict[str, int] | None = None) -> list[r.TargetLesion]:
    """The baseline's targets as the engine's lesions. Nodes are one organ whatever the station; other organs are
    told apart by their site code. `slice_thickness` gives, by SOP Instance UID, the thickness (tenths of a mm) of
    the slices the targets are measured on, which sets the smallest measurable non-nodal lesion."""
    slice_thickness = slice_thickness or {}
    return [
        r.TargetLesion(
            tracking_id=e.label,
            label=e.label,
            organ=e.site,
            is_node=e.is_node,
            slice_thickness=slice_thickness.get(e.image.sop) if e.image else None,
        )
        for e in baseline.targets
    ]


def _measurement(entry: Entry) -> r.TargetMeasurement:
    return r.TargetMeasurement(
        tracking_id=entry.label,
        long_axis=entry.long_axis,
        short_axis=entry.short_axis,
        status=r.MeasurementStatus(entry.status.upper()),
    )


def engine_timepoint(content: Content, visit: str, day: int = 0) -> r.Timepoint:
    return r.Timepoint(
        visit=visit,
        day=day,
        targets=tuple(_measurement(e) for e in content.targets),
        non_targets=tuple(
            r.NonTargetObservation(tracking_id=e.label, status=r.NonTargetStatus(e.status.upper()))
            for e in content.non_targets
        ),
        new_lesions=r.NewLesions(content.new_lesions.upper()),
        new_lesion_ids=tuple(e.label for e in content.new),  # a reader's new lesion keeps its label (N01)
    )


def _common_problems(content: Content) -> list[dict]:
    problems = []
    for e in content.entries():
        if not e.site:
            problems.append(_problem("NO_SITE", _("Name the location of %(label)s.") % {"label": e.label}, e.label))
    for e in content.targets:
        if e.status != "measured":
            # A lesion that cannot be measured has no drawn length: the SR would give it beside a status that
            # denies it, and the sum counts the default (5 mm), 0 or nothing instead. A node no longer seen as
            # abnormal keeps its short axis (the engine counts it), and only that.
            kept = e.long_axis if (e.is_node and e.status == "disappeared") or e.long_axis is not None else e.short_axis
            if kept is not None:
                problems.append(
                    _problem(
                        "LENGTH_NOT_MEASURED",
                        _(
                            '%(label)s is marked "%(status)s" but a %(length)s mm measurement is drawn for it: delete '
                            'the drawing, or mark it "Measured".'
                        )
                        % {"label": e.label, "status": STATUS_LABELS[e.status.upper()], "length": mm_text(kept)},
                        e.label,
                    )
                )
            continue
        needed = e.short_axis if e.is_node else e.long_axis
        if e.long_axis is not None and e.short_axis is not None and e.short_axis > e.long_axis:
            # The short axis is the longest diameter perpendicular to the long axis: never the longer of the two.
            problems.append(
                _problem(
                    "SHORT_AXIS_LONGER",
                    _(
                        "The short axis of %(label)s (%(short)s mm) is longer than its long axis (%(long)s mm): "
                        "measure it again, the long axis along the lesion's longest diameter."
                    )
                    % {"label": e.label, "short": mm_text(e.short_axis), "long": mm_text(e.long_axis)},
                    e.label,
                )
            )
        if needed is None:
            axis = _("short axis") if e.is_node else _("long axis")
            problems.append(
                _problem(
                    "MISSING_AXIS", _("Measure the %(axis)s of %(label)s.") % {"axis": axis, "label": e.label}, e.label
                )
            )
        elif e.image is None or (e.long_points is None and e.short_points is None):
            problems.append(
                _problem(
                    "NOT_DRAWN", _("Draw the measurement of %(label)s on the image.") % {"label": e.label}, e.label
                )
            )
    if content.new_lesions == "none" and content.new:
        problems.append(
            _problem("NEW_LESIONS_CALL", _("New lesions are listed: say whether they are equivocal or unequivocal."))
        )
    if content.new_lesions != "none" and not content.new:
        problems.append(_problem("NEW_LESIONS_LIST", _("List the new lesions and where they are.")))
    studies = {image.study for image in content.images()}
    if len(studies) > 1:
        problems.append(_problem("SEVERAL_STUDIES", _("All measurements of one read must be on images of one study.")))
    return problems


def assess_baseline(content: Content, slice_thickness: dict[str, int] | None = None) -> dict:
    """The baseline's sum of diameters and what keeps it from being signed; `slice_thickness` as for
    `target_lesions`."""
    problems = _common_problems(content)
    if content.new_lesions != "none" or content.new:
        problems.append(_problem("NEW_AT_BASELINE", _("There are no new lesions at baseline.")))
    if any(e.status != "present" for e in content.non_targets):
        problems.append(_problem("NON_TARGET_AT_BASELINE", _("At baseline a non-target lesion is present.")))
    lesions = target_lesions(content, slice_thickness)
    measurements = [_measurement(e) for e in content.targets]
    for p in r.validate_baseline(lesions, measurements):
        if p.code == "MISSING_AXIS" and any(
            x["code"] == "MISSING_AXIS" and x["label"] == p.tracking_id for x in problems
        ):
            continue
        problems.append(_problem(p.code, reason_display(p.message), p.tracking_id))
    if not content.targets and not content.non_targets:
        problems.append(_problem("NO_DISEASE", _("Record at least one target or non-target lesion.")))
    total = None
    if not problems and lesions:
        total = r.sum_of_diameters(lesions, engine_timepoint(content, "baseline"))
    return _assessment_json(
        baseline=True,
        sum_mm=mm_text(total),
        baseline_sum_mm=mm_text(total),
        response_display=response_label(None),
        problems=problems,
    )


def assess_follow_up(
    content: Content, *, baseline: Content, history: list[Content], names: list[str] | None = None
) -> dict:
    """The response of a follow-up, against this reader's baseline and earlier follow-ups (oldest first).

    New lesions seen at an earlier follow-up may be listed again under "new" with their label: an equivocal
    one confirmed now dates the progression from the visit where it was first seen. `names` are what the
    reader calls the earlier follow-ups (default "follow-up 1", ...).
    """
    problems = _common_problems(content)
    reported = {e.label for e in content.targets + content.non_targets}
    baseline_targets = {e.label for e in baseline.targets}
    baseline_non_targets = {e.label for e in baseline.non_targets}
    for label in sorted(baseline_targets | baseline_non_targets):
        if label not in reported:
            problems.append(_problem("NOT_REPORTED", _("Report %(label)s at this visit.") % {"label": label}, label))
    for e in content.targets:
        if e.label not in baseline_targets:
            problems.append(
                _problem("NOT_A_TARGET", _("%(label)s is not a baseline target lesion.") % {"label": e.label}, e.label)
            )
    for e in content.non_targets:
        if e.label not in baseline_non_targets:
            problems.append(
                _problem(
                    "NOT_A_NON_TARGET",
                    _("%(label)s is not a baseline non-target lesion.") % {"label": e.label},
                    e.label,
                )
            )
    for e in content.new:
        if e.label in baseline_targets | baseline_non_targets:
            problems.append(_problem("NOT_NEW", _("%(label)s was seen at baseline.") % {"label": e.label}, e.label))
    if any(p["code"] in {"NOT_A_TARGET", "NOT_A_NON_TARGET"} for p in problems):
        return _follow_up_json(None, problems)
    lesions = target_lesions(baseline)
    result = r.assess(
        engine_timepoint(baseline, "baseline"),
        [engine_timepoint(c, names[n] if names else f"follow-up {n + 1}") for n, c in enumerate(history)],
        engine_timepoint(content, "this visit"),
        lesions=lesions,
    )
    return _follow_up_json(result, problems)


def new_lesions_assessed(assessment: dict | None) -> str:
    """A read's assessment of new lesions as every output gives it (results page and CSV, API, transfer tables):
    RECIST 1.1 assesses new lesions at follow-ups only (section 4.3.1: a new lesion is one not seen at baseline),
    so a baseline has none to give: "". A baseline signed before this was settled keeps "NONE" in its stored,
    signed assessment; it is not an assessment either, and is given as "" all the same."""
    if not assessment or assessment.get("baseline"):
        return ""
    return assessment.get("new_lesions") or ""


def _assessment_json(**values) -> dict:
    """The assessment as the read page and the signature get it: every key, None where nothing was computed."""
    empty = dict.fromkeys(
        (
            "sum_mm",
            "baseline_sum_mm",
            "nadir_mm",
            "change_from_baseline",
            "change_from_nadir",
            "target_response",
            "non_target_response",
            "new_lesions",
            "overall_response",
            "progression_dates_from",
        )
    )
    return {
        "baseline": False,
        **empty,
        "response_display": "",
        "reasons": [],
        "reason_codes": [],
        "problems": [],
        **values,
    }


def _follow_up_json(result: r.Assessment | None, problems: list[dict]) -> dict:
    if result is None:
        return _assessment_json(problems=problems)
    return _assessment_json(
        sum_mm=mm_text(result.sum),
        baseline_sum_mm=mm_text(result.baseline_sum),
        nadir_mm=mm_text(result.nadir_sum),
        change_from_baseline=_pct(result.change_from_baseline),
        change_from_nadir=_pct(result.change_from_nadir),
        target_response=result.target_response.value,
        non_target_response=result.non_target_response.value,
        new_lesions=result.new_lesions.value,
        overall_response=result.overall_response.value,
        progression_dates_from=result.progression_dates_from,
        response_display=response_label(result.overall_response.value),
        reasons=list(result.reasons),
        reason_codes=[{"template": reason.template, "params": reason.params} for reason in result.reasons],
        problems=problems,
    )


def _reason_param(key: str, value: str) -> str:
    if key in ("response", "best"):
        return response_label(value)
    if key == "organ" and value in BY_CODE:  # target_lesions names organs by their site code
        return str(BY_CODE[value].label)
    if key == "status" and value in STATUS_LABELS:
        return str(STATUS_LABELS[value])
    if key == "visit" and value == "baseline":  # the engine's name for the baseline (engine_timepoint)
        return response_label(None)
    return value


def _reason_text(code: dict) -> str:
    params = {k: _reason_param(k, v) for k, v in code.get("params", {}).items()}
    return _(code["template"]) % params if params else _(code["template"])


def reason_display(reason: r.Reason) -> str:
    """One of the engine's reasons (an assessment's or a subject's endpoints') in the active language."""
    return _reason_text({"template": reason.template, "params": reason.params})


def assessment_display(assessment: dict | None) -> dict | None:
    """A stored assessment as a page shows it, in its reader's language: the response in words and the engine's
    explanation lines put together from their templates and parameters. The stored text stays the English it was
    computed in (an assessment from before templates were kept shows its lines translated where they are fixed
    sentences, as they are otherwise)."""
    if not assessment:
        return assessment
    shown = dict(assessment)
    if assessment.get("response_display"):
        shown["response_display"] = response_label(
            None if assessment.get("baseline") else assessment.get("overall_response")
        )
    codes = assessment.get("reason_codes")
    if codes:
        shown["reasons"] = [_reason_text(code) for code in codes]
    else:
        shown["reasons"] = [_(reason) for reason in assessment.get("reasons", [])]
    return shown
