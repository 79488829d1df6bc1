"""The reader quality report as plain data: what `reads.quality.data` gathers (`QualityInput`), every statistic
computed from it (`Summary`), and the tables (rows of plain values) that the page shows, the CSV downloads carry
and the charts draw. No Django here: the same input always gives the same numbers and the same bytes.

Readers appear only by their trial reader code ("Radiologist 1"), subjects by their subject code in the
tumour-response charts (never the case label a reader knows a case by).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from ctims import safe_csv

from . import stats

PairKey = tuple[str, str]


@dataclass(frozen=True)
class SubjectCourse:
    """The accepted assessment of one subject: per follow-up (visit, study day since baseline, % change of the
    sum of diameters from baseline, overall response), its best overall response and day of progression."""

    subject: str
    best_response: str
    progression_day: int | None
    points: tuple[tuple[str, int, float | None, str], ...]

    @property
    def best_change(self) -> float | None:
        changes = [p[2] for p in self.points if p[2] is not None]
        return min(changes) if changes else None

    @property
    def last_day(self) -> int:
        return max((p[1] for p in self.points), default=0)


@dataclass(frozen=True)
class QualityInput:
    """Everything the statistics need, gathered from locked data up to `cutoff` within the period."""

    trial: str
    cutoff: str  # ISO time
    period: tuple[str, str]  # ("YYYY-MM-DD" or "", "YYYY-MM-DD" or "")
    visit_pairs: dict[PairKey, list[tuple[str, str]]] = field(default_factory=dict)
    best_response_pairs: dict[PairKey, list[tuple[str, str]]] = field(default_factory=dict)
    progression_pairs: dict[PairKey, list[tuple[stats.ProgressionCall, stats.ProgressionCall]]] = field(
        default_factory=dict
    )
    settlements: list[stats.Settlement] = field(default_factory=list)
    decisions: list[stats.Decision] = field(default_factory=list)
    lesion_pairs: dict[PairKey, list[tuple[float, float]]] = field(default_factory=dict)
    targets_chosen: dict[str, list[int]] = field(default_factory=dict)
    pd_calls: list[stats.ReaderEvent] = field(default_factory=list)
    courses: list[SubjectCourse] = field(default_factory=list)

    @property
    def pairs(self) -> list[PairKey]:
        keys = set(self.visit_pairs) | set(self.best_response_pairs) | set(self.lesion_pairs)
        keys |= {s.pair for s in self.settlements}
        return sorted(keys)


@dataclass(frozen=True)
class PairSummary:
    pair: PairKey
    visit: stats.Kappa
    visit_weighted: stats.Kappa
    best_response: stats.Kappa
    best_response_weighted: stats.Kappa
    progression: stats.ProgressionAgreement
    adjudication: stats.Proportion
    measurement: stats.BlandAltman


@dataclass(frozen=True)
class Summary:
    """Every statistic of the report: per reader pair, over the trial, per reader and per month."""

    input: QualityInput
    pairs: tuple[PairSummary, ...]
    trial_visit: stats.Kappa
    trial_best_response: stats.Kappa
    trial_adjudication: stats.Proportion
    monthly_adjudication: dict[str, stats.Proportion]
    p_chart: stats.PChart
    acceptance: dict[str, stats.Proportion]
    targets: dict[str, stats.TargetCount]
    pd_drift: dict[str, dict[str, stats.Proportion]]
    lost_drift: dict[str, dict[str, stats.Proportion]]
    measurement: stats.BlandAltman


def summarise(data: QualityInput) -> Summary:
    pairs = []
    for key in data.pairs:
        visits = data.visit_pairs.get(key, [])
        best = data.best_response_pairs.get(key, [])
        pairs.append(
            PairSummary(
                pair=key,
                visit=stats.cohen_kappa(visits),
                visit_weighted=stats.cohen_kappa(visits, weights="linear"),
                best_response=stats.cohen_kappa(best),
                best_response_weighted=stats.cohen_kappa(best, weights="linear"),
                progression=stats.progression_agreement(data.progression_pairs.get(key, [])),
                adjudication=stats.adjudication_rate_by_pair(data.settlements).get(key, stats.wilson(0, 0)),
                measurement=stats.bland_altman(data.lesion_pairs.get(key, [])),
            )
        )
    monthly = stats.adjudication_rate_by_month(data.settlements)
    lost = [stats.ReaderEvent(reader, d.month, d.chosen != reader) for d in data.decisions for reader in d.readers]
    return Summary(
        input=data,
        pairs=tuple(pairs),
        trial_visit=stats.cohen_kappa([p for v in data.visit_pairs.values() for p in v]),
        trial_best_response=stats.cohen_kappa([p for v in data.best_response_pairs.values() for p in v]),
        trial_adjudication=stats.wilson(sum(s.adjudicated for s in data.settlements), len(data.settlements)),
        monthly_adjudication=monthly,
        p_chart=stats.p_chart(monthly),
        acceptance=stats.acceptance_by_reader(data.decisions),
        targets={reader: stats.target_counts(c) for reader, c in sorted(data.targets_chosen.items())},
        pd_drift=stats.monthly_by_reader(data.pd_calls),
        lost_drift=stats.monthly_by_reader(lost),
        measurement=stats.bland_altman([p for v in data.lesion_pairs.values() for p in v]),
    )


# --- tables ------------------------------------------------------------------------------------------


def num(value, digits: int = 3) -> str:
    """A number as the tables write it: fixed digits, "" for none."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _kappa_cells(prefix: str, k: stats.Kappa) -> dict:
    return {
        f"{prefix}_n": k.n,
        f"{prefix}_agreement_pct": num(k.percent, 1),
        f"{prefix}_kappa": num(k.kappa),
        f"{prefix}_kappa_low": num(k.low),
        f"{prefix}_kappa_high": num(k.high),
    }


def _rate_cells(prefix: str, p: stats.Proportion) -> dict:
    return {
        f"{prefix}_k": p.k,
        f"{prefix}_n": p.n,
        f"{prefix}_rate": num(p.rate),
        f"{prefix}_low": num(p.low),
        f"{prefix}_high": num(p.high),
    }


def pair_rows(summary: Summary) -> list[dict]:
    """One row per reader pair: agreement, progression dates, adjudication and measurement."""
    rows = []
    for s in summary.pairs:
        pg = s.progression
        row = {"reader_a": s.pair[0], "reader_b": s.pair[1]}
        row |= _kappa_cells("visit", s.visit)
        # Weighted kappa counts only the ordered responses (CR < PR < SD < PD): its own n.
        row["visit_weighted_n"] = s.visit_weighted.n
        row["visit_weighted_kappa"] = num(s.visit_weighted.kappa)
        row |= _kappa_cells("bor", s.best_response)
        row["bor_weighted_n"] = s.best_response_weighted.n
        row["bor_weighted_kappa"] = num(s.best_response_weighted.kappa)
        row["pd_subjects"] = pg.n
        # Agreement on the date of progression: the same visit, or neither reader progressed.
        row |= _rate_cells("pd_agreement", pg.agreement)
        row |= {
            "pd_neither": pg.neither,
            "pd_only_a": pg.only_a,
            "pd_only_b": pg.only_b,
            "pd_both": pg.both,
            "pd_same_visit": pg.same_visit,
            "pd_within_one_visit": pg.within_one_visit,
            "pd_a_earlier": pg.a_earlier,
            "pd_a_later": pg.a_later,
            "pd_median_difference_days": num(pg.median_difference, 1),
        }
        row |= _rate_cells("adjudicated", s.adjudication)
        m = s.measurement
        row |= {
            "lesion_pairs": m.n,
            "ld_bias_mm": num(m.bias, 2),
            "ld_loa_low_mm": num(m.lower, 2),
            "ld_loa_high_mm": num(m.upper, 2),
        }
        rows.append(row)
    return rows


# The columns are the keys of a row, read once from a row of a one-visit report so they cannot drift apart.
PAIR_COLUMNS = list(
    pair_rows(
        summarise(
            QualityInput(trial="", cutoff="", period=("", ""), settlements=[stats.Settlement("", ("a", "b"), False)])
        )
    )[0]
)


def reader_rows(summary: Summary) -> list[dict]:
    """One row per reader: the adjudicator's acceptance and the target lesions chosen at baseline."""
    readers = sorted(set(summary.acceptance) | set(summary.targets) | set(summary.pd_drift))
    rows = []
    for reader in readers:
        t = summary.targets.get(reader, stats.target_counts([]))
        row = {"reader": reader}
        row |= _rate_cells("accepted", summary.acceptance.get(reader, stats.wilson(0, 0)))
        row |= {
            "baseline_subjects": t.subjects,
            "targets_mean": num(t.mean, 2),
            "targets_min": num(t.minimum),
            "targets_max": num(t.maximum),
        }
        rows.append(row)
    return rows


READER_COLUMNS = [
    "reader",
    "accepted_k",
    "accepted_n",
    "accepted_rate",
    "accepted_low",
    "accepted_high",
    "baseline_subjects",
    "targets_mean",
    "targets_min",
    "targets_max",
]


def p_chart_rows(summary: Summary) -> list[dict]:
    centre = summary.p_chart.centre
    return [
        {
            "month": p.month,
            "adjudicated": p.k,
            "eligible": p.n,
            "rate": num(p.p),
            "centre": num(centre),
            "lcl": num(p.lower),
            "ucl": num(p.upper),
            "outside": "yes" if p.outside else "no",
        }
        for p in summary.p_chart.points
    ]


P_CHART_COLUMNS = ["month", "adjudicated", "eligible", "rate", "centre", "lcl", "ucl", "outside"]


def drift_rows(summary: Summary) -> list[dict]:
    rows = []
    for kind, drift in (("pd_call", summary.pd_drift), ("adjudication_lost", summary.lost_drift)):
        for reader, months in drift.items():
            for month, p in months.items():
                rows.append({"measure": kind, "reader": reader, "month": month} | _rate_cells("", p))
    return [{k.lstrip("_"): v for k, v in row.items()} for row in rows]


DRIFT_COLUMNS = ["measure", "reader", "month", "k", "n", "rate", "low", "high"]


def waterfall_rows(summary: Summary) -> list[dict]:
    """Subjects by best % change of the sum of diameters (accepted assessment), best response beside."""
    courses = [c for c in summary.input.courses if c.best_change is not None]
    courses.sort(key=lambda c: (-c.best_change, c.subject))
    return [{"subject": c.subject, "best_change_pct": num(c.best_change, 1), "bor": c.best_response} for c in courses]


WATERFALL_COLUMNS = ["subject", "best_change_pct", "bor"]


def course_rows(summary: Summary) -> list[dict]:
    """Every follow-up of every subject's accepted assessment: the spider and swimmer plots' data."""
    return [
        {
            "subject": c.subject,
            "visit": visit,
            "day": day,
            "change_pct": num(change, 1),
            "response": response,
            "bor": c.best_response,
            "progression_day": num(c.progression_day),
        }
        for c in summary.input.courses
        for visit, day, change, response in c.points
    ]


COURSE_COLUMNS = ["subject", "visit", "day", "change_pct", "response", "bor", "progression_day"]


def bland_altman_rows(summary: Summary) -> list[dict]:
    rows = []
    for key, pairs in sorted(summary.input.lesion_pairs.items()):
        for a, b in pairs:
            rows.append(
                {
                    "reader_a": key[0],
                    "reader_b": key[1],
                    "a_mm": num(a, 1),
                    "b_mm": num(b, 1),
                    "mean_mm": num((a + b) / 2, 2),
                    "difference_mm": num(a - b, 1),
                }
            )
    return rows


BLAND_ALTMAN_COLUMNS = ["reader_a", "reader_b", "a_mm", "b_mm", "mean_mm", "difference_mm"]

TABLES = {
    "pairs": (PAIR_COLUMNS, pair_rows),
    "readers": (READER_COLUMNS, reader_rows),
    "adjudication-p-chart": (P_CHART_COLUMNS, p_chart_rows),
    "drift": (DRIFT_COLUMNS, drift_rows),
    "waterfall": (WATERFALL_COLUMNS, waterfall_rows),
    "spider": (COURSE_COLUMNS, course_rows),
    "swimmer": (COURSE_COLUMNS, course_rows),
    "bland-altman": (BLAND_ALTMAN_COLUMNS, bland_altman_rows),
}


def table_csv(summary: Summary, name: str) -> bytes:
    """One table of the report as CSV bytes (UTF-8, "\\n" line ends)."""
    columns, rows = TABLES[name]
    out = io.StringIO()
    writer = safe_csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(summary))
    return out.getvalue().encode("utf-8")
