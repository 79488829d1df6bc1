"""RECIST 1.1 engine: table-driven rule cases, baseline validation, exact-arithmetic property test.

All lengths are tenths of a millimetre (230 == 23.0 mm).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction

import pytest

from reads.criteria.recist11 import (
    Assessment,
    InvalidBaseline,
    MeasurementStatus,
    NewLesions,
    NonTargetObservation,
    NonTargetResponse,
    NonTargetStatus,
    OverallResponse,
    TargetLesion,
    TargetMeasurement,
    TargetResponse,
    Timepoint,
    assess,
    percent_text,
    sum_of_diameters,
    validate_baseline,
)

MS, NT, TR, NR, OR, NL = (
    MeasurementStatus,
    NonTargetStatus,
    TargetResponse,
    NonTargetResponse,
    OverallResponse,
    NewLesions,
)

LIVER = TargetLesion("t1", "T01", "liver")
LUNG = TargetLesion("t2", "T02", "lung")
NODE = TargetLesion("n1", "T03", "mediastinum", is_node=True)
NODE2 = TargetLesion("n2", "T04", "axilla", is_node=True)

TWO = (LIVER, LUNG)
TS, GONE, NE = "TOO_SMALL", "DISAPPEARED", "NOT_EVALUABLE"


def measure(lesion: TargetLesion, spec) -> TargetMeasurement:
    """spec: int (the followed axis), TS / GONE / NE, or ("GONE", short_axis) for a node."""
    if isinstance(spec, tuple):
        status, value = spec
        return TargetMeasurement(lesion.tracking_id, short_axis=value, status=MS(status))
    if isinstance(spec, str):
        return TargetMeasurement(lesion.tracking_id, status=MS(spec))
    if lesion.is_node:
        return TargetMeasurement(lesion.tracking_id, long_axis=spec + 20, short_axis=spec)
    return TargetMeasurement(lesion.tracking_id, long_axis=spec, short_axis=spec // 2)


def timepoint(visit, day, lesions, specs, non_targets=(), new=NL.NONE) -> Timepoint:
    targets = tuple(measure(lesion, spec) for lesion, spec in zip(lesions, specs, strict=True) if spec is not None)
    nts = tuple(NonTargetObservation(f"nt{i}", NT(s)) for i, s in enumerate(non_targets, start=1))
    return Timepoint(visit, day, targets, nts, new)


@dataclass
class Case:
    lesions: tuple
    base: tuple
    cur: tuple
    target: TargetResponse
    overall: OverallResponse
    history: list = field(default_factory=list)
    nt_base: tuple = ()
    nt_cur: tuple = ()
    new: NewLesions = NL.NONE
    non_target: NonTargetResponse | None = None
    sum: int | None | str = "skip"
    nadir: int | None | str = "skip"
    nt_history: tuple | None = None  # the non-targets at every earlier follow-up (default: as at baseline)


CASES = {
    # --- PD: >= 20 % over nadir AND >= 5 mm absolute ---------------------------------------
    "pd_nadir_below_baseline_then_plus20pct_and_5mm": Case(
        TWO, (150, 150), (125, 125), TR.PD, OR.PD, history=[(100, 100)], sum=250, nadir=200
    ),
    "plus20pct_but_under_5mm_absolute_is_sd": Case((LIVER,), (200,), (240,), TR.SD, OR.SD, sum=240, nadir=200),
    "pd_boundary_exactly_20pct_and_5mm": Case((LIVER,), (250,), (300,), TR.PD, OR.PD),
    "just_under_20pct_is_sd": Case((LIVER,), (250,), (299,), TR.SD, OR.SD),
    "nadir_includes_baseline_without_history": Case(TWO, (125, 125), (150, 150), TR.PD, OR.PD, nadir=250),
    "nadir_taken_over_history": Case(
        (LIVER,), (300,), (250,), TR.PD, OR.PD, history=[(250,), (200,), (230,)], nadir=200
    ),
    "nadir_skips_history_with_non_evaluable_target": Case(
        TWO, (200, 200), (150, 150), TR.SD, OR.SD, history=[(NE, 10)], nadir=400
    ),
    "nadir_skips_history_with_missing_target": Case(
        TWO, (200, 200), (150, 150), TR.SD, OR.SD, history=[(None, 10)], nadir=400
    ),
    "reappearance_after_cr_5mm_over_zero_nadir_is_pd": Case(
        (LIVER,), (150,), (TS,), TR.PD, OR.PD, history=[(GONE,)], nadir=0, sum=50
    ),
    # --- reappearance after CR is PD, however it was recorded (RECIST 1.1 section 4.3.2 / EORTC Q&A) ---------
    "target_back_at_3mm_measured_after_cr_is_pd": Case(
        (LIVER,), (150,), (30,), TR.PD, OR.PD, history=[(GONE,)], nadir=0, sum=30
    ),
    "target_back_measured_after_cr_among_others_is_pd": Case(
        TWO, (150, 150), (GONE, 40), TR.PD, OR.PD, history=[(GONE, GONE)]
    ),
    "target_node_back_to_10mm_after_cr_is_pd": Case(
        (LIVER, NODE), (200, 200), (GONE, 100), TR.PD, OR.PD, history=[(GONE, 80)], sum=100
    ),
    "target_node_at_9_9mm_after_cr_stays_cr": Case(
        (LIVER, NODE), (200, 200), (GONE, 99), TR.CR, OR.CR, history=[(GONE, 80)]
    ),
    "non_target_visible_again_after_cr_is_pd": Case(
        TWO,
        (100, 100),
        (GONE, GONE),
        TR.CR,
        OR.PD,
        history=[(GONE, GONE)],
        nt_base=("PRESENT",),
        nt_history=("ABSENT",),
        nt_cur=("PRESENT",),
        non_target=NR.PD,
    ),
    "non_target_not_evaluable_after_cr_is_not_reappearance": Case(
        TWO,
        (100, 100),
        (GONE, GONE),
        TR.CR,
        OR.PR,
        history=[(GONE, GONE)],
        nt_base=("PRESENT",),
        nt_history=("ABSENT",),
        nt_cur=("NOT_EVALUABLE",),
        non_target=NR.NE,
    ),
    "reappearance_after_pr_only_adds_to_the_sum": Case(
        TWO, (200, 200), (30, GONE), TR.PR, OR.PR, history=[(GONE, 100)], sum=30
    ),
    "reappearance_after_target_cr_but_overall_pr_only_adds_to_the_sum": Case(
        TWO,
        (200, 200),
        (30, GONE),
        TR.PR,
        OR.PR,
        history=[(GONE, GONE)],
        nt_base=("PRESENT",),
        nt_cur=("PRESENT",),
    ),
    # --- PR: >= 30 % decrease from baseline --------------------------------------------------
    "exact_30pct_decrease_23_0_to_16_1_mm_is_pr": Case((LIVER,), (230,), (161,), TR.PR, OR.PR, sum=161),
    "decrease_29_9pct_is_sd": Case((LIVER,), (1000,), (701,), TR.SD, OR.SD),
    "pr_continues_against_baseline_despite_small_rise_from_nadir": Case(
        (LIVER,), (1650,), (650,), TR.PR, OR.PR, history=[(630,)]
    ),
    # --- too small / disappeared -------------------------------------------------------------
    "too_small_counts_5mm_default": Case(TWO, (100, 100), (TS, 20), TR.PR, OR.PR, sum=70),
    "too_small_non_nodal_is_not_cr": Case((LIVER,), (100,), (TS,), TR.PR, OR.PR, sum=50),
    "all_non_nodal_disappeared_is_cr_sum_zero": Case(TWO, (100, 120), (GONE, GONE), TR.CR, OR.CR, sum=0),
    # --- nodes ------------------------------------------------------------------------------
    "node_shrinks_to_9mm_and_non_nodal_gone_is_cr_with_positive_sum": Case(
        (LIVER, NODE), (200, 200), (GONE, 90), TR.CR, OR.CR, sum=90
    ),
    "node_at_10mm_is_not_cr_but_pr": Case((LIVER, NODE), (200, 200), (GONE, 100), TR.PR, OR.PR, sum=100),
    "disappeared_node_still_contributes_recorded_short_axis": Case(
        (NODE,), (150,), ((GONE, 60),), TR.CR, OR.CR, sum=60
    ),
    "too_small_node_counts_5mm_and_is_normal": Case((NODE, NODE2), (150, 160), (TS, 80), TR.CR, OR.CR, sum=130),
    "node_only_cr_with_non_target_absent": Case(
        (NODE,), (150,), (90,), TR.CR, OR.CR, nt_base=("PRESENT",), nt_cur=("ABSENT",), non_target=NR.CR
    ),
    # --- not evaluable ----------------------------------------------------------------------
    "target_not_evaluable_gives_ne": Case(TWO, (100, 100), (NE, 50), TR.NE, OR.NE, sum=None),
    "target_missing_at_follow_up_gives_ne": Case(TWO, (100, 100), (None, 50), TR.NE, OR.NE, sum=None),
    "ne_overridden_by_pd_on_evaluable_targets": Case(TWO, (100, 100), (NE, 250), TR.PD, OR.PD, sum=None),
    "ne_kept_when_evaluable_targets_not_pd": Case(TWO, (100, 100), (NE, 200), TR.NE, OR.NE),
    # --- new lesions ------------------------------------------------------------------------
    "new_unequivocal_lesion_is_pd_despite_target_cr": Case(
        TWO, (100, 100), (GONE, GONE), TR.CR, OR.PD, new=NL.UNEQUIVOCAL
    ),
    "new_unequivocal_lesion_is_pd_despite_target_pr": Case((LIVER,), (230,), (100,), TR.PR, OR.PD, new=NL.UNEQUIVOCAL),
    "equivocal_new_lesion_is_not_pd": Case((LIVER,), (230,), (100,), TR.PR, OR.PR, new=NL.EQUIVOCAL),
    # --- non-target disease -----------------------------------------------------------------
    "non_target_only_persisting_is_non_cr_non_pd_never_sd": Case(
        (),
        (),
        (),
        TR.NOT_APPLICABLE,
        OR.NON_CR_NON_PD,
        nt_base=("PRESENT",),
        nt_cur=("PRESENT",),
        non_target=NR.NON_CR_NON_PD,
        sum=None,
        nadir=None,
    ),
    "non_target_only_all_absent_is_cr": Case(
        (),
        (),
        (),
        TR.NOT_APPLICABLE,
        OR.CR,
        nt_base=("PRESENT", "PRESENT"),
        nt_cur=("ABSENT", "ABSENT"),
        non_target=NR.CR,
    ),
    "non_target_only_not_evaluable_is_ne": Case(
        (),
        (),
        (),
        TR.NOT_APPLICABLE,
        OR.NE,
        nt_base=("PRESENT", "PRESENT"),
        nt_cur=("PRESENT", "NOT_EVALUABLE"),
        non_target=NR.NE,
    ),
    "non_target_only_with_new_lesion_is_pd": Case(
        (), (), (), TR.NOT_APPLICABLE, OR.PD, nt_base=("PRESENT",), nt_cur=("PRESENT",), new=NL.UNEQUIVOCAL
    ),
    "non_target_unequivocal_progression_is_pd_despite_target_pr": Case(
        (LIVER,),
        (230,),
        (100,),
        TR.PR,
        OR.PD,
        nt_base=("PRESENT", "PRESENT"),
        nt_cur=("NOT_EVALUABLE", "UNEQUIVOCAL_PROGRESSION"),
        non_target=NR.PD,
    ),
    "non_target_missing_at_follow_up_is_ne": Case(
        (LIVER,), (230,), (200,), TR.SD, OR.SD, nt_base=("PRESENT", "PRESENT"), nt_cur=("PRESENT",), non_target=NR.NE
    ),
    "no_baseline_disease_at_all_is_ne": Case((), (), (), TR.NOT_APPLICABLE, OR.NE, non_target=NR.NOT_APPLICABLE),
    # --- Table 4 combinations -----------------------------------------------------------------
    "target_cr_with_non_target_present_is_pr": Case(
        TWO,
        (100, 100),
        (GONE, GONE),
        TR.CR,
        OR.PR,
        nt_base=("PRESENT",),
        nt_cur=("PRESENT",),
        non_target=NR.NON_CR_NON_PD,
    ),
    "target_cr_with_non_target_ne_is_pr": Case(
        TWO, (100, 100), (GONE, GONE), TR.CR, OR.PR, nt_base=("PRESENT",), nt_cur=("NOT_EVALUABLE",), non_target=NR.NE
    ),
    "target_cr_with_non_target_cr_is_cr": Case(
        TWO, (100, 100), (GONE, GONE), TR.CR, OR.CR, nt_base=("PRESENT",), nt_cur=("ABSENT",), non_target=NR.CR
    ),
    "target_pr_with_non_target_ne_is_pr": Case(
        (LIVER,), (230,), (100,), TR.PR, OR.PR, nt_base=("PRESENT",), nt_cur=("NOT_EVALUABLE",)
    ),
    "target_sd_with_non_target_ne_is_sd": Case(
        (LIVER,), (230,), (200,), TR.SD, OR.SD, nt_base=("PRESENT",), nt_cur=("NOT_EVALUABLE",)
    ),
    "target_ne_with_non_target_non_pd_is_ne": Case(
        TWO, (100, 100), (NE, 100), TR.NE, OR.NE, nt_base=("PRESENT",), nt_cur=("PRESENT",)
    ),
    "target_ne_with_non_target_pd_is_pd": Case(
        TWO, (100, 100), (NE, 100), TR.NE, OR.PD, nt_base=("PRESENT",), nt_cur=("UNEQUIVOCAL_PROGRESSION",)
    ),
}


def run(case: Case) -> Assessment:
    baseline = timepoint("BL", 0, case.lesions, case.base, case.nt_base)
    nt_history = case.nt_base if case.nt_history is None else case.nt_history
    history = [
        timepoint(f"W{6 * (i + 1)}", 42 * (i + 1), case.lesions, specs, nt_history)
        for i, specs in enumerate(case.history)
    ]
    current = timepoint("NOW", 400, case.lesions, case.cur, case.nt_cur, case.new)
    return assess(baseline, history, current, lesions=case.lesions)


@pytest.mark.parametrize("name", list(CASES))
def test_rule(name):
    case = CASES[name]
    result = run(case)
    assert result.target_response == case.target, result.reasons
    assert result.overall_response == case.overall, result.reasons
    if case.non_target is not None:
        assert result.non_target_response == case.non_target, result.reasons
    if case.sum != "skip":
        assert result.sum == case.sum
    if case.nadir != "skip":
        assert result.nadir_sum == case.nadir
    assert result.new_lesions == case.new
    assert result.reasons and all(isinstance(r, str) and r.endswith(".") for r in result.reasons)


def test_exact_thirty_percent_is_an_exact_fraction():
    result = run(CASES["exact_30pct_decrease_23_0_to_16_1_mm_is_pr"])
    assert result.change_from_baseline == Fraction(-3, 10)
    assert result.change_from_nadir == Fraction(-3, 10)
    assert result.increase_over_nadir == -69


def test_pd_reports_change_and_absolute_increase_over_nadir():
    result = run(CASES["pd_nadir_below_baseline_then_plus20pct_and_5mm"])
    assert (result.baseline_sum, result.nadir_sum, result.sum) == (300, 200, 250)
    assert result.change_from_nadir == Fraction(1, 4)
    assert result.increase_over_nadir == 50
    assert result.change_from_baseline == Fraction(-1, 6)


def test_zero_nadir_gives_no_relative_change():
    result = run(CASES["reappearance_after_cr_5mm_over_zero_nadir_is_pd"])
    assert result.change_from_nadir is None
    assert result.increase_over_nadir == 50


# --- percentages never round across a threshold ------------------------------------------------


def test_a_decrease_short_of_30_percent_never_reads_minus_30():
    result = run(Case((LIVER,), (2000,), (1401,), TR.SD, OR.SD))
    assert result.target_response == TR.SD
    text = " ".join(result.reasons)
    assert "-29.9%" in text and "-30.0%" not in text
    assert percent_text(result.change_from_baseline) == "-29.9"


def test_an_increase_short_of_20_percent_never_reads_plus_20():
    result = run(Case((LIVER,), (2000,), (2399,), TR.SD, OR.SD))
    assert result.target_response == TR.SD
    text = " ".join(result.reasons)
    assert "+19.9%" in text and "+20.0%" not in text
    assert percent_text(result.change_from_nadir) == "+19.9"


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (Fraction(-3, 10), "-30.0"),
        (Fraction(-2995, 10000), "-29.9"),
        (Fraction(-3005, 10000), "-30.0"),
        (Fraction(1, 5), "+20.0"),
        (Fraction(1995, 10000), "+19.9"),
        (Fraction(0), "+0.0"),
        (Fraction(-1, 3000), "-0.0"),
        (Fraction(1, 4), "+25.0"),
    ],
)
def test_percent_text_truncates_towards_zero(change, text):
    assert percent_text(change) == text


def test_the_percentage_a_reader_signs_agrees_with_the_response():
    from reads.assessment import assess_follow_up
    from reads.content import parse_content

    def content(mm):
        return parse_content({"targets": [{"label": "T01", "site": "10200004", "status": "measured", "long_mm": mm}]})

    shown = assess_follow_up(content("140.1"), baseline=content("200.0"), history=[])
    assert (shown["target_response"], shown["change_from_baseline"]) == ("SD", "-29.9")
    shown = assess_follow_up(content("239.9"), baseline=content("200.0"), history=[])
    assert (shown["target_response"], shown["change_from_nadir"]) == ("SD", "+19.9")


# --- equivocal new lesions (section 4.3.3) -------------------------------------------------------


def test_a_confirmed_equivocal_new_lesion_dates_progression_from_its_first_sighting():
    baseline = timepoint("BL", 0, (LIVER,), (200,))
    w6 = Timepoint("W6", 42, (measure(LIVER, 200),), new_lesions=NL.EQUIVOCAL, new_lesion_ids=("N01",))
    w12 = Timepoint("W12", 84, (measure(LIVER, 200),), new_lesions=NL.UNEQUIVOCAL, new_lesion_ids=("N01",))
    assert assess(baseline, [], w6, lesions=(LIVER,)).progression_dates_from is None
    result = assess(baseline, [w6], w12, lesions=(LIVER,))
    assert result.overall_response == OR.PD and result.progression_dates_from == "W6"
    assert any("N01" in r and "W6" in r for r in result.reasons), result.reasons


def test_an_unrelated_new_lesion_dates_progression_from_its_own_visit():
    baseline = timepoint("BL", 0, (LIVER,), (200,))
    w6 = Timepoint("W6", 42, (measure(LIVER, 200),), new_lesions=NL.EQUIVOCAL, new_lesion_ids=("N01",))
    w12 = Timepoint("W12", 84, (measure(LIVER, 200),), new_lesions=NL.UNEQUIVOCAL, new_lesion_ids=("N02",))
    result = assess(baseline, [w6], w12, lesions=(LIVER,))
    assert result.overall_response == OR.PD and result.progression_dates_from == "W12"


# --- baseline validation --------------------------------------------------------------------


def codes(lesions, specs):
    return sorted(p.code for p in validate_baseline(lesions, timepoint("BL", 0, lesions, specs).targets))


def test_valid_baseline_at_the_thresholds_has_no_problems():
    assert codes((LIVER, LUNG, NODE), (100, 200, 150)) == []


def test_six_targets_is_too_many():
    lesions = tuple(
        TargetLesion(f"x{i}", f"T0{i}", organ)
        for i, organ in enumerate(["liver", "lung", "kidney", "spleen", "adrenal", "bone"], start=1)
    )
    assert codes(lesions, (200,) * 6) == ["TOO_MANY_TARGETS"]


def test_three_targets_in_one_organ():
    lesions = tuple(
        TargetLesion(f"x{i}", f"T0{i}", organ) for i, organ in enumerate(["liver", "Liver", " liver "], start=1)
    )
    problems = validate_baseline(lesions, timepoint("BL", 0, lesions, (200,) * 3).targets)
    assert [p.code for p in problems] == ["TOO_MANY_IN_ORGAN"]
    assert "liver" in problems[0].message


def test_three_nodes_in_different_stations_count_as_one_organ():
    lesions = tuple(
        TargetLesion(f"x{i}", f"T0{i}", station, is_node=True)
        for i, station in enumerate(["mediastinum", "axilla", "retroperitoneum"], start=1)
    )
    problems = validate_baseline(lesions, timepoint("BL", 0, lesions, (200,) * 3).targets)
    assert [p.code for p in problems] == ["TOO_MANY_IN_ORGAN"]
    assert "lymph node" in problems[0].message


def test_nine_mm_non_nodal_target_is_not_measurable():
    problems = validate_baseline((LIVER,), timepoint("BL", 0, (LIVER,), (90,)).targets)
    assert [(p.code, p.tracking_id) for p in problems] == [("NON_NODAL_TOO_SMALL", "t1")]
    assert "9.0 mm" in problems[0].message


def test_fourteen_mm_node_is_not_measurable():
    problems = validate_baseline((NODE,), timepoint("BL", 0, (NODE,), (140,)).targets)
    assert [(p.code, p.tracking_id) for p in problems] == [("NODE_TOO_SMALL", "n1")]
    assert "14.0 mm" in problems[0].message


def test_baseline_targets_must_be_measured():
    assert codes(TWO, (TS, NE)) == ["NOT_MEASURED", "NOT_MEASURED"]
    assert codes(TWO, (100, None)) == ["MISSING_MEASUREMENT"]
    only_long = TargetMeasurement("n1", long_axis=300)
    assert [p.code for p in validate_baseline((NODE,), [only_long])] == ["MISSING_AXIS"]


def test_assess_refuses_an_invalid_baseline():
    baseline = timepoint("BL", 0, (LIVER,), (90,))
    with pytest.raises(InvalidBaseline) as err:
        assess(baseline, [], timepoint("W6", 42, (LIVER,), (80,)), lesions=(LIVER,))
    assert [p.code for p in err.value.problems] == ["NON_NODAL_TOO_SMALL"]


def test_follow_up_measurement_of_unknown_lesion_is_rejected():
    baseline = timepoint("BL", 0, (LIVER,), (200,))
    stray = Timepoint("W6", 42, (TargetMeasurement("t1", 200), TargetMeasurement("zz", 100)))
    with pytest.raises(ValueError, match="zz"):
        assess(baseline, [], stray, lesions=(LIVER,))


def test_floats_are_rejected_as_lengths():
    with pytest.raises(TypeError):
        TargetMeasurement("t1", long_axis=23.0)
    with pytest.raises(TypeError):
        TargetMeasurement("n1", short_axis=True)


# --- property: arithmetic is exact -----------------------------------------------------------


def test_property_sums_and_changes_are_exact_never_float():
    rng = random.Random(20090101)
    pool = [LIVER, LUNG, NODE, NODE2]
    for _ in range(500):
        lesions = tuple(rng.sample(pool, rng.randint(1, 4)))
        base = tuple(rng.randint(150, 600) for _ in lesions)

        def follow_up(lesions=lesions):
            return tuple(
                rng.choice([rng.randint(0, 700), rng.randint(0, 700), rng.randint(0, 700), TS, GONE, NE])
                for _ in lesions
            )

        history = [follow_up() for _ in range(rng.randint(0, 3))]
        cur = follow_up()
        result = run(Case(lesions, base, cur, TR.SD, OR.SD, history=history))

        for value in (result.sum, result.baseline_sum, result.nadir_sum, result.increase_over_nadir):
            assert value is None or type(value) is int
        for value in (result.change_from_baseline, result.change_from_nadir):
            assert value is None or type(value) is Fraction

        # Independent reference computed with Fractions only.
        tps = [timepoint("BL", 0, lesions, base)] + [timepoint("H", 1, lesions, h) for h in history]
        sums = [s for s in (sum_of_diameters(lesions, tp) for tp in tps) if s is not None]
        assert result.baseline_sum == sum_of_diameters(lesions, tps[0]) == sum(base)
        assert result.nadir_sum == min(sums)
        if result.sum is None:
            assert result.target_response in (TR.NE, TR.PD)
            continue
        nadir, total = result.nadir_sum, result.sum

        def cr_compatible(spec, lesion):
            if lesion.is_node:
                return spec in (TS, GONE) or (isinstance(spec, int) and spec < 100)
            return spec == GONE or spec == 0

        earlier_cr = any(all(cr_compatible(s, les) for s, les in zip(h, lesions, strict=True)) for h in history)
        reappeared = earlier_cr and not all(cr_compatible(s, les) for s, les in zip(cur, lesions, strict=True))
        is_pd = reappeared or (total - nadir >= 50 and Fraction(total) >= Fraction(6, 5) * nadir)
        is_pr = Fraction(total, result.baseline_sum) <= Fraction(7, 10)
        if result.target_response == TR.CR:
            continue
        expected = TR.PD if is_pd else TR.PR if is_pr else TR.SD
        assert result.target_response == expected, (lesions, base, history, cur, result.reasons)
