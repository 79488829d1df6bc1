"""Subject-level RECIST 1.1 endpoints: best overall response (section 4.4, Table 3), date of progression
(section 4.3.3) and study days, on a table of subject histories.

A history is a list of (visit, day from baseline, overall response[, new lesions, new lesion ids]).
"""

from __future__ import annotations

import datetime as dt

import pytest

from reads.criteria.endpoints import (
    EndpointRules,
    VisitResponse,
    best_overall_response,
    days_from_baseline,
    progression,
    study_day,
    subject_endpoints,
)
from reads.criteria.recist11 import NewLesions, OverallResponse

CR, PR, SD, PD, NE, NN = "CR", "PR", "SD", "PD", "NE", "NON_CR_NON_PD"
EQ, UNEQ = NewLesions.EQUIVOCAL, NewLesions.UNEQUIVOCAL

UNCONFIRMED = EndpointRules(confirmation=False, sd_minimum_days=42, sd_window_days=7)
CONFIRMED = EndpointRules(confirmation=True, confirmation_days=28, sd_minimum_days=42, sd_window_days=7)


def history(*rows) -> list[VisitResponse]:
    out = []
    for row in rows:
        visit, day, response, *rest = row
        new, ids = (rest + [NewLesions.NONE, ()])[:2] if rest else (NewLesions.NONE, ())
        out.append(VisitResponse(visit, day, OverallResponse(response), new, tuple(ids)))
    return out


# (name, rules, history, best response, response start visit, progression visit)
TABLE = [
    # --- without confirmation: the best response as recorded -----------------------------------------------
    ("unconfirmed CR", UNCONFIRMED, [("W6", 42, PR), ("W12", 84, CR), ("W18", 126, PD)], CR, "W12", "W18"),
    ("unconfirmed single PR counts", UNCONFIRMED, [("W6", 42, PR), ("W12", 84, PD)], PR, "W6", "W12"),
    (
        "unconfirmed PR before the SD minimum still counts",
        UNCONFIRMED,
        [("W4", 28, PR), ("W8", 56, PD)],
        PR,
        "W4",
        "W8",
    ),
    ("SD minimum met", UNCONFIRMED, [("W6", 42, SD), ("W12", 84, SD)], SD, None, None),
    ("SD minimum met inside the window", UNCONFIRMED, [("W6", 35, SD)], SD, None, None),
    (
        "SD minimum missed, then PD: PD after too short SD",
        UNCONFIRMED,
        [("W4", 34, SD), ("W8", 56, PD)],
        PD,
        None,
        "W8",
    ),
    ("SD minimum missed, lost to follow-up: NE", UNCONFIRMED, [("W4", 34, SD)], NE, None, None),
    ("PD after SD that met the minimum", UNCONFIRMED, [("W6", 42, SD), ("W12", 84, PD)], SD, None, "W12"),
    ("PD at the first follow-up", UNCONFIRMED, [("W6", 42, PD), ("W12", 84, SD)], PD, None, "W6"),
    ("responses after progression do not count", UNCONFIRMED, [("W6", 42, PD), ("W12", 84, CR)], PD, None, "W6"),
    ("NE visits only", UNCONFIRMED, [("W6", 42, NE), ("W12", 84, NE)], NE, None, None),
    ("NE then SD after the minimum", UNCONFIRMED, [("W6", 42, NE), ("W12", 84, SD)], SD, None, None),
    ("NE then PD", UNCONFIRMED, [("W6", 42, NE), ("W12", 84, PD)], PD, None, "W12"),
    ("no follow-up at all", UNCONFIRMED, [], NE, None, None),
    # --- with confirmation (Table 3) ---------------------------------------------------------------------------
    ("CR, CR confirmed", CONFIRMED, [("W6", 42, CR), ("W12", 84, CR)], CR, "W6", None),
    ("CR, CR too soon to confirm: SD", CONFIRMED, [("W6", 42, CR), ("W8", 56, CR)], SD, None, None),
    ("CR, PR: a confirmed PR (footnote a)", CONFIRMED, [("W6", 42, CR), ("W12", 84, PR)], PR, "W6", None),
    ("CR, SD: SD (minimum met)", CONFIRMED, [("W6", 42, CR), ("W12", 84, SD)], SD, None, None),
    ("CR, PD: SD if the minimum was met", CONFIRMED, [("W6", 42, CR), ("W12", 84, PD)], SD, None, "W12"),
    ("CR, PD: PD if the minimum was not met", CONFIRMED, [("W4", 28, CR), ("W8", 56, PD)], PD, None, "W8"),
    ("CR, NE: SD if the minimum was met", CONFIRMED, [("W6", 42, CR), ("W12", 84, NE)], SD, None, None),
    ("CR, NE: NE if the minimum was not met", CONFIRMED, [("W4", 28, CR), ("W8", 56, NE)], NE, None, None),
    ("PR, CR: PR", CONFIRMED, [("W6", 42, PR), ("W12", 84, CR)], PR, "W6", None),
    ("PR, PR: PR", CONFIRMED, [("W6", 42, PR), ("W12", 84, PR)], PR, "W6", None),
    ("PR, SD: SD", CONFIRMED, [("W6", 42, PR), ("W12", 84, SD)], SD, None, None),
    ("PR, PD: SD if the minimum was met", CONFIRMED, [("W6", 42, PR), ("W12", 84, PD)], SD, None, "W12"),
    ("PR, PD: PD if the minimum was not met", CONFIRMED, [("W4", 28, PR), ("W8", 56, PD)], PD, None, "W8"),
    ("PR, NE: SD if the minimum was met", CONFIRMED, [("W6", 42, PR), ("W12", 84, NE)], SD, None, None),
    ("NE, NE: NE", CONFIRMED, [("W6", 42, NE), ("W12", 84, NE)], NE, None, None),
    (
        "an NE between PR and PR does not break the confirmation",
        CONFIRMED,
        [("W6", 42, PR), ("W9", 63, NE), ("W12", 84, PR)],
        PR,
        "W6",
        None,
    ),
    ("an SD between PR and PR breaks it", CONFIRMED, [("W6", 42, PR), ("W9", 63, SD), ("W12", 84, PR)], SD, None, None),
    (
        "confirmation found later in the series",
        CONFIRMED,
        [("W6", 42, SD), ("W12", 84, PR), ("W18", 126, PR), ("W24", 168, PD)],
        PR,
        "W12",
        "W24",
    ),
    (
        "a confirmation after progression does not count",
        CONFIRMED,
        [("W6", 42, PR), ("W8", 56, PD), ("W12", 84, PR)],
        SD,
        None,
        "W8",
    ),
    # --- equivocal new lesions (section 4.3.3) -----------------------------------------------------------------
    (
        "equivocal then confirmed: PD dates from the first sighting",
        UNCONFIRMED,
        [("W6", 42, SD, EQ, ["N01"]), ("W12", 84, PD, UNEQ, ["N01"])],
        PD,
        None,
        "W6",
    ),
    (
        "equivocal then confirmed after SD met its minimum",
        UNCONFIRMED,
        [("W6", 42, SD), ("W12", 84, SD, EQ, ["N01"]), ("W18", 126, PD, UNEQ, ["N01"])],
        SD,
        None,
        "W12",
    ),
    (
        "equivocal twice then confirmed: the first sighting",
        UNCONFIRMED,
        [("W6", 42, SD, EQ, ["N01"]), ("W12", 84, SD, EQ, ["N01"]), ("W18", 126, PD, UNEQ, ["N01"])],
        PD,
        None,
        "W6",
    ),
    (
        "a different unequivocal new lesion does not back-date",
        UNCONFIRMED,
        [("W6", 42, SD, EQ, ["N01"]), ("W12", 84, PD, UNEQ, ["N02"])],
        SD,
        None,
        "W12",
    ),
    (
        "an equivocal lesion that goes away never makes PD",
        UNCONFIRMED,
        [("W6", 42, SD, EQ, ["N01"]), ("W12", 84, SD)],
        SD,
        None,
        None,
    ),
    (
        "a back-dated PD removes the response at the equivocal visit",
        UNCONFIRMED,
        [("W6", 42, PR, EQ, ["N01"]), ("W12", 84, PD, UNEQ, ["N01"])],
        PD,
        None,
        "W6",
    ),
]


@pytest.mark.parametrize(
    ("rules", "rows", "best", "start", "progressed"),
    [pytest.param(*case[1:], id=case[0]) for case in TABLE],
)
def test_subject_histories(rules, rows, best, start, progressed):
    visits = history(*rows)
    endpoints = subject_endpoints(visits, rules=rules)
    assert endpoints.best_response == OverallResponse(best), endpoints.reasons
    assert (endpoints.response_start.visit if endpoints.response_start else None) == start
    assert (endpoints.progression.visit if endpoints.progression else None) == progressed
    assert best_overall_response(visits, rules=rules) == endpoints.best_response


def test_a_back_dated_progression_says_when_it_was_confirmed():
    prog = progression(history(("W6", 42, SD, EQ, ["N01"]), ("W12", 84, PD, UNEQ, ["N01", "N02"])))
    assert (prog.visit, prog.day, prog.confirmed_at, prog.back_dated) == ("W6", 42, "W12", True)
    assert "N01" in prog.reason and "N02" not in prog.reason


def test_non_target_only_disease_is_non_cr_non_pd_at_best_unless_cr():
    assert best_overall_response(history(("W6", 42, NN), ("W12", 84, PD)), has_targets=False) == OverallResponse(NN)
    assert best_overall_response(history(("W6", 42, CR), ("W12", 84, CR)), rules=CONFIRMED, has_targets=False) == (
        OverallResponse.CR
    )
    # An unconfirmed CR in non-target-only disease is non-CR/non-PD when the minimum is met, never PR.
    assert best_overall_response(history(("W6", 42, CR), ("W12", 84, NN)), rules=CONFIRMED, has_targets=False) == (
        OverallResponse(NN)
    )


def test_the_sd_minimum_is_the_design_minus_its_window():
    rules = EndpointRules(sd_minimum_days=56, sd_window_days=3)
    assert best_overall_response(history(("W8", 53, SD)), rules=rules) == OverallResponse.SD
    assert best_overall_response(history(("W8", 52, SD)), rules=rules) == OverallResponse.NE


def test_the_confirmation_interval_is_configurable():
    rows = history(("W6", 42, PR), ("W9", 63, PR))
    assert best_overall_response(rows, rules=CONFIRMED) == OverallResponse.SD
    assert best_overall_response(rows, rules=EndpointRules(confirmation=True, confirmation_days=21)) == (
        OverallResponse.PR
    )


def test_visits_must_follow_the_baseline_in_order():
    with pytest.raises(ValueError, match="increasing order"):
        subject_endpoints(history(("W12", 84, SD), ("W6", 42, SD)))
    with pytest.raises(ValueError, match="increasing order"):
        subject_endpoints(history(("BL", 0, SD)))


def test_rules_refuse_what_is_not_whole_days():
    with pytest.raises(ValueError):
        EndpointRules(confirmation_days=28.0)
    with pytest.raises(ValueError):
        EndpointRules(sd_window_days=-1)


def test_the_baseline_scan_is_study_day_1_and_there_is_no_day_0():
    baseline = dt.date(2031, 3, 2)  # a shifted date: intervals are what matter
    assert study_day(baseline, baseline) == 1
    assert study_day(dt.date(2031, 4, 13), baseline) == 43
    assert study_day(dt.date(2031, 3, 1), baseline) == -1
    assert days_from_baseline(dt.date(2031, 4, 13), baseline) == 42
    # Across a leap day the count stays exact.
    assert study_day(dt.date(2032, 3, 1), dt.date(2032, 2, 28)) == 3
