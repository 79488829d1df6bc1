"""Reader quality statistics against values computed by hand on small fixed data (no database)."""

from __future__ import annotations

import pytest

from reads.quality.stats import (
    BaselineTarget,
    Decision,
    ProgressionCall,
    ReaderEvent,
    Settlement,
    acceptance_by_reader,
    adjudication_rate_by_month,
    adjudication_rate_by_pair,
    bland_altman,
    cohen_kappa,
    match_targets,
    monthly_by_reader,
    p_chart,
    progression_agreement,
    target_counts,
    wilson,
)

approx = pytest.approx


def test_kappa_of_readers_who_always_agree_is_one_with_no_uncertainty():
    k = cohen_kappa([("CR", "CR"), ("PD", "PD"), ("SD", "SD"), ("PD", "PD")])
    assert (k.n, k.agreed, k.percent) == (4, 4, 100.0)
    assert k.kappa == approx(1.0)
    assert (k.low, k.high) == (approx(1.0), approx(1.0))


def test_an_interval_resting_on_a_reader_who_gave_one_response_only_is_not_estimable():
    # A calls SD at both visits, B SD and PR: kappa 0, and the large-sample variance is 0 (a degenerate margin),
    # which drew "0.000 (0.000 - 0.000)" from two visits: no interval is better than a false certainty.
    k = cohen_kappa([("SD", "SD"), ("SD", "PR")])
    assert k.kappa == approx(0.0)
    assert k.se is None and (k.low, k.high) == (None, None)


def test_kappa_of_readers_who_never_agree_is_minus_one():
    k = cohen_kappa([("CR", "PD"), ("PD", "CR")])
    assert (k.agreed, k.percent) == (0, 0.0)
    assert k.kappa == approx(-1.0)
    assert k.low == -1.0


def test_kappa_is_undefined_when_every_call_is_the_same_category():
    k = cohen_kappa([("PD", "PD")] * 3)
    assert k.percent == 100.0
    assert k.kappa is None and k.low is None


def test_kappa_of_the_textbook_two_by_two_table():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15. po = 0.70, pe = 0.5*0.6 + 0.5*0.4 = 0.50,
    # kappa = 0.20/0.50 = 0.40. Fleiss-Cohen-Everitt: sum p_ij (w_ij - (c_i + r_j)(1 - kappa))^2 =
    # .4(.34)^2 + .3(.46)^2 + .1(.66)^2 + .2(.54)^2 = .2116; minus (kappa - pe(1 - kappa))^2 = .01: .2016;
    # over n(1 - pe)^2 = 12.5: var .016128, se .126996; 95% CI .40 -/+ 1.96 * .126996 = (.1511, .6489).
    pairs = [("CR", "CR")] * 20 + [("CR", "PD")] * 5 + [("PD", "CR")] * 10 + [("PD", "PD")] * 15
    k = cohen_kappa(pairs)
    assert (k.n, k.agreed, k.percent) == (50, 35, 70.0)
    assert k.kappa == approx(0.40)
    assert k.se == approx(0.126996, abs=1e-6)
    assert (k.low, k.high) == (approx(0.151093, abs=1e-5), approx(0.648907, abs=1e-5))


def test_weighted_kappa_gives_partial_credit_to_neighbouring_categories():
    # CR/PR, PR/CR, SD/SD over CR < PR < SD < PD with linear weights (1, 2/3, 1/3, 0): po = 7/9,
    # pe = (3 + 4 * 2/3 + 2 * 1/3) / 9 = 19/27, kappa_w = (21/27 - 19/27) / (8/27) = 0.25; unweighted 0.
    pairs = [("CR", "PR"), ("PR", "CR"), ("SD", "SD")]
    assert cohen_kappa(pairs, weights="linear").kappa == approx(0.25)
    assert cohen_kappa(pairs).kappa == approx(0.0)


def test_weighted_kappa_leaves_out_categories_outside_the_order():
    k = cohen_kappa([("CR", "CR"), ("PD", "PD"), ("NE", "PD")], weights="linear")
    assert k.n == 2 and k.kappa == approx(1.0)


def test_wilson_interval_of_three_out_of_four():
    p = wilson(3, 4)
    assert p.rate == 0.75
    assert (p.low, p.high) == (approx(0.30064, abs=1e-4), approx(0.95441, abs=1e-4))
    assert wilson(0, 0).rate is None


def test_progression_dates_same_visit_within_one_visit_earlier_and_later():
    none = ProgressionCall(None, None)
    pairs = [
        (none, none),
        (ProgressionCall(2, 42), ProgressionCall(2, 44)),
        (ProgressionCall(2, 40), ProgressionCall(3, 84)),
        (ProgressionCall(4, 126), ProgressionCall(2, 42)),
        (ProgressionCall(3, 84), none),
    ]
    a = progression_agreement(pairs)
    assert (a.n, a.neither, a.only_a, a.only_b, a.both) == (5, 1, 1, 0, 3)
    assert (a.same_visit, a.within_one_visit, a.a_earlier, a.a_later) == (1, 2, 1, 1)
    assert a.differences == (-44, -2, 84)
    assert a.median_difference == -2
    assert (a.agreement.k, a.agreement.n) == (2, 5)


def test_adjudication_rate_per_pair_and_month():
    r12, r13 = ("Radiologist 1", "Radiologist 2"), ("Radiologist 1", "Radiologist 3")
    s = [
        Settlement("2026-01", r12, True),
        Settlement("2026-01", r12, False),
        Settlement("2026-02", r12, False),
        Settlement("2026-02", r13, True),
    ]
    by_pair = adjudication_rate_by_pair(s)
    assert (by_pair[r12].k, by_pair[r12].n, by_pair[r13].k, by_pair[r13].n) == (1, 3, 1, 1)
    by_month = adjudication_rate_by_month(s)
    assert [(m, p.k, p.n) for m, p in by_month.items()] == [("2026-01", 1, 2), ("2026-02", 1, 2)]


def test_p_chart_marks_the_month_above_its_upper_limit():
    # 12 of 40 visits adjudicated: p-bar 0.30; n = 10 a month: 3 * sqrt(.3 * .7 / 10) = .43474, so the limits
    # are 0 (clipped) and .73474: March's 9/10 is outside, the others inside.
    months = {m: wilson(k, 10) for m, k in [("2026-01", 1), ("2026-02", 2), ("2026-03", 9), ("2026-04", 0)]}
    chart = p_chart(months)
    assert chart.centre == approx(0.30)
    assert [p.outside for p in chart.points] == [False, False, True, False]
    assert chart.points[2].upper == approx(0.734741, abs=1e-6)
    assert chart.points[2].lower == 0.0


def test_adjudicator_acceptance_of_each_reader():
    r = ("Radiologist 1", "Radiologist 2")
    decisions = [Decision("2026-01", r, "Radiologist 2"), Decision("2026-02", r, "Radiologist 2")]
    decisions.append(Decision("2026-02", r, "Radiologist 1"))
    rates = acceptance_by_reader(decisions)
    assert (rates["Radiologist 1"].k, rates["Radiologist 1"].n) == (1, 3)
    assert (rates["Radiologist 2"].k, rates["Radiologist 2"].n) == (2, 3)


def test_bland_altman_bias_and_limits_of_agreement():
    # differences -2, 1, 0, 2: bias 0.25; SD sqrt(8.75 / 3) = 1.707825; limits .25 -/+ 1.96 * 1.707825.
    ba = bland_altman([(10, 12), (20, 19), (30, 30), (15, 13)])
    assert ba.differences == (-2, 1, 0, 2)
    assert ba.means == (11, 19.5, 30, 14)
    assert ba.bias == approx(0.25)
    assert ba.sd == approx(1.707825, abs=1e-6)
    assert (ba.lower, ba.upper) == (approx(-3.097337, abs=1e-6), approx(3.597337, abs=1e-6))
    assert bland_altman([(10, 11)]).lower is None


def test_lesions_are_matched_by_location_then_by_closeness_on_the_same_image():
    a = [
        BaselineTarget("T01", "liver", False, "img1", (100, 100), 23.0),
        BaselineTarget("T02", "liver", False, "img1", (300, 300), 15.0),
        BaselineTarget("T03", "lung", False, "img2", (50, 50), 12.0),
        BaselineTarget("T04", "node", True, "img3", (10, 10), 16.0),
    ]
    b = [
        BaselineTarget("T01", "liver", False, "img1", (305, 298), 14.0),
        BaselineTarget("T02", "liver", False, "img1", (98, 103), 22.0),
        BaselineTarget("T03", "node", False, "img3", (10, 10), 16.0),  # not a node: not the same lesion
    ]
    pairs = match_targets(a, b)
    assert [(x.label, y.label) for x, y in pairs] == [("T01", "T02"), ("T02", "T01")]


def test_target_counts_per_reader():
    c = target_counts([2, 3, 2, 5])
    assert (c.subjects, c.mean, c.minimum, c.maximum) == (4, 3.0, 2, 5)
    assert c.distribution == ((2, 2), (3, 1), (5, 1))


def test_drift_is_each_readers_monthly_rate():
    events = [
        ReaderEvent("Radiologist 1", "2026-01", True),
        ReaderEvent("Radiologist 1", "2026-01", False),
        ReaderEvent("Radiologist 1", "2026-02", True),
        ReaderEvent("Radiologist 2", "2026-01", False),
    ]
    drift = monthly_by_reader(events)
    assert [(m, p.k, p.n) for m, p in drift["Radiologist 1"].items()] == [("2026-01", 1, 2), ("2026-02", 1, 1)]
    assert drift["Radiologist 2"]["2026-01"].rate == 0.0


def test_the_p_chart_file_and_its_csv_show_the_month_outside_the_limits():
    import csv
    import io

    from reads.quality import charts, report

    months = [("2026-01", 1), ("2026-02", 2), ("2026-03", 9), ("2026-04", 0)]
    pair = ("Radiologist 1", "Radiologist 2")
    settlements = [Settlement(m, pair, i < k) for m, k in months for i in range(10)]
    summary = report.summarise(report.QualityInput(trial="T", cutoff="", period=("", ""), settlements=settlements))
    rows = list(csv.DictReader(io.StringIO(report.table_csv(summary, "adjudication-p-chart").decode())))
    assert [(r["month"], r["adjudicated"], r["eligible"], r["outside"]) for r in rows] == [
        ("2026-01", "1", "10", "no"),
        ("2026-02", "2", "10", "no"),
        ("2026-03", "9", "10", "yes"),
        ("2026-04", "0", "10", "no"),
    ]
    assert {r["centre"] for r in rows} == {"0.300"} and rows[2]["ucl"] == "0.735"
    png = charts.render(summary, "adjudication-p-chart", "png")
    svg = charts.render(summary, "adjudication-p-chart", "svg")
    assert png.startswith(b"\x89PNG") and b"<svg" in svg
    assert b"<text" not in svg  # text is drawn as paths: the file does not depend on the reader's fonts
    assert charts.render(summary, "adjudication-p-chart", "svg") == svg


def test_the_transfer_summary_says_kappa_is_not_defined_when_every_call_is_the_same():
    """Both readers SD at every visit: 100% agreement, kappa undefined; the summary says so in words instead of
    "Cohen's kappa  (95% CI  to )"; with nothing compared it says there is nothing."""
    from reads.quality import report
    from tests.reads.test_quality import report_html

    same = report.QualityInput(
        trial="ALPHA",
        cutoff="",
        period=("", ""),
        visit_pairs={("Radiologist 1", "Radiologist 2"): [("SD", "SD"), ("SD", "SD")]},
    )
    html = " ".join(report_html(report.summarise(same)).split())
    assert "CI to" not in html and "( to )" not in html
    assert "Cohen's kappa not defined (every response the same)" in html
    empty = report.QualityInput(trial="ALPHA", cutoff="", period=("", ""))
    html = " ".join(report_html(report.summarise(empty)).split())
    assert "CI to" not in html and "agreement %" not in html
    assert "Visit responses compared: 0." in html


def test_every_colour_a_chart_draws_a_response_in_has_its_legend_entry_and_the_difference_names_its_readers():
    """A subject whose best response is non-CR/non-PD (non-target disease only) and a visit read NE: the swimmer
    legend listed only CR, PR, SD and PD, and the spider plot, which colours each subject by best response, had
    no legend at all; the Bland-Altman axis said "A - B" without saying who A and B are."""
    from reads.quality import charts, report

    courses = [
        report.SubjectCourse(
            "S-1", "NON_CR_NON_PD", None, (("W6", 42, None, "NON_CR_NON_PD"), ("W12", 84, None, "NE"))
        ),
        report.SubjectCourse("S-2", "PR", None, (("W6", 42, -35.0, "PR"),)),
        report.SubjectCourse("S-3", "PD", 84, (("W6", 42, -10.0, "SD"), ("W12", 84, 25.0, "PD"))),
    ]
    pair = ("Radiologist 1", "Radiologist 2")
    summary = report.summarise(
        report.QualityInput(
            trial="T", cutoff="", period=("", ""), courses=courses, lesion_pairs={pair: [(10.0, 11.0), (20.0, 19.0)]}
        )
    )

    def legend(figure) -> set[str]:
        (ax,) = figure.axes
        return {t.get_text() for t in ax.get_legend().get_texts()}

    assert {"NON_CR_NON_PD", "NE", "SD", "PR", "PD"} <= legend(charts.swimmer(summary))
    assert legend(charts.spider(summary)) == {"PR", "PD", "+20%", "-30%"}  # S-1 has no target lesion: no line, no entry
    (ax,) = charts.bland_altman(summary).axes
    assert "Radiologist 1" in ax.get_ylabel() and "Radiologist 2" in ax.get_ylabel()


def test_the_weighted_kappa_says_over_how_many_visits_it_was_computed():
    """Weighted kappa leaves out NE and non-CR/non-PD (they are outside CR < PR < SD < PD): the pairs table must
    say over how many visits it stands, not let it read as computed on every visit compared."""
    import csv
    import io

    from reads.quality import report

    pair = ("Radiologist 1", "Radiologist 2")
    visits = [("PR", "PR"), ("SD", "PD"), ("NE", "SD"), ("NON_CR_NON_PD", "NON_CR_NON_PD")]
    summary = report.summarise(
        report.QualityInput(
            trial="T", cutoff="", period=("", ""), visit_pairs={pair: visits}, best_response_pairs={pair: visits[:3]}
        )
    )
    (row,) = csv.DictReader(io.StringIO(report.table_csv(summary, "pairs").decode()))
    assert (row["visit_n"], row["visit_weighted_n"]) == ("4", "2")
    assert (row["bor_n"], row["bor_weighted_n"]) == ("3", "2")
    from tests.reads.test_quality import report_html

    assert "(2 visits rated CR, PR, SD or PD by both)" in report_html(summary)


def test_the_p_chart_legend_covers_no_month_and_a_month_at_0_or_100_percent_shows_whole():
    """The legend sat inside the plot's upper left, over the first months' upper limits, and a month at 0% was
    drawn half below the axis."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from reads.quality import charts, report

    pair = ("Radiologist 1", "Radiologist 2")
    months = [("2026-01", 1), ("2026-02", 2), ("2026-03", 9), ("2026-04", 0)]
    settlements = [Settlement(m, pair, i < k) for m, k in months for i in range(10)]
    summary = report.summarise(report.QualityInput(trial="T", cutoff="", period=("", ""), settlements=settlements))
    with rc_context(charts.RC):
        fig = charts.p_chart(summary)
        FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    (legend,) = fig.legends or [ax.get_legend()]
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    low, high = ax.get_ylim()
    assert low < 0 and high > 1
