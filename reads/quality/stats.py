"""Reader quality statistics as plain functions over plain data: no Django, no database.

Everything here takes tuples of small frozen records (built by `reads.quality.data` from locked results) and
returns frozen records; the page, the charts and the sponsor transfer's report all read the same numbers.

References
----------
* Cohen J. "A coefficient of agreement for nominal scales." Educ Psychol Meas 20 (1960) 37-46 (kappa).
* Cohen J. "Weighted kappa." Psychol Bull 70 (1968) 213-220 (weights over ordered categories).
* Fleiss JL, Cohen J, Everitt BS. "Large sample standard errors of kappa and weighted kappa." Psychol Bull 72
  (1969) 323-327: the standard error used for the 95% confidence interval (one formula for both, the identity
  weights giving the unweighted kappa).
* Wilson EB. "Probable inference, the law of succession, and statistical inference." JASA 22 (1927) 209-212
  (the interval of a proportion: it stays inside [0, 1] and behaves at 0 and n).
* Bland JM, Altman DG. "Statistical methods for assessing agreement between two methods of clinical
  measurement." Lancet 1 (1986) 307-310 (bias and 95% limits of agreement: mean difference +/- 1.96 SD).
* Montgomery DC. "Introduction to Statistical Quality Control", the p-chart: centre line p-bar = total events /
  total units, limits p-bar +/- 3 sqrt(p-bar (1 - p-bar) / n_i) for a month of n_i units, clipped to [0, 1].

numpy carries the arithmetic on the agreement tables; scipy/statsmodels would add two heavy dependencies for
formulas a few lines long, so the formulas are here with their references and tests against hand-computed values.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
ORDINAL = ("CR", "PR", "SD", "PD")  # the ordered categories of weighted kappa (best to worst)
NOMINAL = ("CR", "PR", "SD", "NON_CR_NON_PD", "PD", "NE")


# --- proportions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """`k` events out of `n` with the Wilson 95% interval; `rate`, `low` and `high` are None when n is 0."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None


def wilson(k: int, n: int, z: float = Z95) -> Proportion:
    """The proportion k/n with its Wilson score interval."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(k, n, None, None, None)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Proportion(k, n, p, max(0.0, centre - half), min(1.0, centre + half))


# --- kappa ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kappa:
    """Agreement of two raters on `n` items: percent agreement, kappa (None when undefined: every item in one
    category), its standard error and 95% interval (clipped to [-1, 1]; None when not estimable: a reader gave
    one response only); `weights` is "" for Cohen's kappa,
    "linear" or "quadratic" for a weighted kappa over `categories` in their order."""

    n: int
    agreed: int
    percent: float | None
    kappa: float | None
    se: float | None
    low: float | None
    high: float | None
    weights: str
    categories: tuple[str, ...]


def _weights(k: int, kind: str) -> np.ndarray:
    i, j = np.indices((k, k))
    if kind == "":
        return (i == j).astype(float)
    if k == 1:
        return np.ones((1, 1))
    distance = np.abs(i - j) / (k - 1)
    if kind == "linear":
        return 1 - distance
    if kind == "quadratic":
        return 1 - distance**2
    raise ValueError(f"weights must be '', 'linear' or 'quadratic', got {kind!r}")


def cohen_kappa(
    pairs: Sequence[tuple[str, str]], *, categories: Sequence[str] | None = None, weights: str = ""
) -> Kappa:
    """Cohen's kappa of rater A against rater B on `pairs` of (A's category, B's category).

    Unweighted (`weights=""`) over the categories seen (or `categories`); weighted over `categories` in their
    order, where a pair with a category outside them is left out (for RECIST: CR < PR < SD < PD, without NE and
    non-CR/non-PD). Kappa = (po - pe) / (1 - pe) with po and pe the observed and chance-expected (weighted)
    agreement; the standard error is Fleiss, Cohen and Everitt's (1969) large-sample one.
    """
    if weights and categories is None:
        categories = ORDINAL
    if categories is None:
        seen = {c for pair in pairs for c in pair}
        categories = tuple(c for c in NOMINAL if c in seen) + tuple(sorted(seen - set(NOMINAL)))
    categories = tuple(categories)
    index = {c: n for n, c in enumerate(categories)}
    used = [(a, b) for a, b in pairs if a in index and b in index]
    if not weights and len(used) != len(pairs):
        raise ValueError("every category must be listed for an unweighted kappa")
    n = len(used)
    agreed = sum(1 for a, b in used if a == b)
    if n == 0:
        return Kappa(0, 0, None, None, None, None, None, weights, categories)
    k = len(categories)
    table = np.zeros((k, k))
    for a, b in used:
        table[index[a], index[b]] += 1
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    w = _weights(k, weights)
    po = float((w * p).sum())
    pe = float((w * np.outer(rows, cols)).sum())
    percent = 100 * agreed / n
    if math.isclose(pe, 1.0):
        return Kappa(n, agreed, percent, None, None, None, None, weights, categories)
    kappa = (po - pe) / (1 - pe)
    row_means = w @ cols  # w-bar_i. = sum_j p_.j w_ij
    col_means = rows @ w  # w-bar_.j = sum_i p_i. w_ij
    spread = (p * (w - (row_means[:, None] + col_means[None, :]) * (1 - kappa)) ** 2).sum()
    variance = (spread - (kappa - pe * (1 - kappa)) ** 2) / (n * (1 - pe) ** 2)
    se = math.sqrt(max(float(variance), 0.0))
    if math.isclose(float(rows.max()), 1.0) or math.isclose(float(cols.max()), 1.0):
        # A degenerate margin (one reader gave a single response): the large-sample variance collapses (to 0 for
        # Cohen's kappa, however few the items), a certainty the data do not give. Kappa stands; no interval.
        return Kappa(n, agreed, percent, kappa, None, None, None, weights, categories)
    return Kappa(
        n,
        agreed,
        percent,
        kappa,
        se,
        max(-1.0, kappa - Z95 * se),
        min(1.0, kappa + Z95 * se),
        weights,
        categories,
    )


# --- date of progression -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressionCall:
    """One reader's date of progression for a subject: the visit's order in the schedule and its day since
    baseline; both None when the reader has not called progression."""

    order: int | None
    day: int | None


@dataclass(frozen=True)
class ProgressionAgreement:
    """How two readers' dates of progression compare over `n` subjects.

    `neither`: no reader called PD; `only_a`/`only_b`: one did; `both`: both did, of which `same_visit`,
    `within_one_visit` (same visit or the next/previous one), `a_earlier` and `a_later`. `differences` are
    A's day minus B's day for every subject where both progressed (sorted). `agreement` counts the subjects
    with the same date or neither progressing.
    """

    n: int
    neither: int
    only_a: int
    only_b: int
    both: int
    same_visit: int
    within_one_visit: int
    a_earlier: int
    a_later: int
    differences: tuple[int, ...]
    agreement: Proportion

    @property
    def median_difference(self) -> float | None:
        return float(np.median(self.differences)) if self.differences else None

    @property
    def mean_difference(self) -> float | None:
        return float(np.mean(self.differences)) if self.differences else None


def progression_agreement(pairs: Sequence[tuple[ProgressionCall, ProgressionCall]]) -> ProgressionAgreement:
    """Compare A's and B's dates of progression, subject by subject."""
    neither = only_a = only_b = same = within = earlier = later = 0
    differences = []
    for a, b in pairs:
        if a.order is None and b.order is None:
            neither += 1
        elif b.order is None:
            only_a += 1
        elif a.order is None:
            only_b += 1
        else:
            same += a.order == b.order
            within += abs(a.order - b.order) <= 1
            earlier += a.order < b.order
            later += a.order > b.order
            if a.day is not None and b.day is not None:
                differences.append(a.day - b.day)
    both = len(pairs) - neither - only_a - only_b
    return ProgressionAgreement(
        n=len(pairs),
        neither=neither,
        only_a=only_a,
        only_b=only_b,
        both=both,
        same_visit=same,
        within_one_visit=within,
        a_earlier=earlier,
        a_later=later,
        differences=tuple(sorted(differences)),
        agreement=wilson(same + neither, len(pairs)),
    )


# --- adjudication ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """One double-read visit as it was first settled: by the readers' agreement or by adjudication.

    `month` is "YYYY-MM" of that first lock; `pair` the two readers' codes, in order."""

    month: str
    pair: tuple[str, str]
    adjudicated: bool


def rate_by(items: Iterable, key, event) -> dict:
    """{key(item): Proportion of items where event(item)}, keys sorted."""
    counts: dict = defaultdict(lambda: [0, 0])
    for item in items:
        c = counts[key(item)]
        c[0] += bool(event(item))
        c[1] += 1
    return {k: wilson(*counts[k]) for k in sorted(counts)}


def adjudication_rate_by_pair(settlements: Sequence[Settlement]) -> dict[tuple[str, str], Proportion]:
    return rate_by(settlements, lambda s: s.pair, lambda s: s.adjudicated)


def adjudication_rate_by_month(settlements: Sequence[Settlement]) -> dict[str, Proportion]:
    return rate_by(settlements, lambda s: s.month, lambda s: s.adjudicated)


@dataclass(frozen=True)
class PChartPoint:
    month: str
    k: int
    n: int
    p: float
    lower: float
    upper: float
    outside: bool


@dataclass(frozen=True)
class PChart:
    """A p-chart: the centre line (the pooled rate) and per month its rate and 3-sigma limits."""

    centre: float | None
    points: tuple[PChartPoint, ...]


def p_chart(monthly: dict[str, Proportion], sigmas: float = 3.0) -> PChart:
    """The p-chart of a monthly rate: centre p-bar = sum k / sum n; a month is outside when its rate is
    above its upper or below its lower limit (limits depend on the month's n)."""
    months = [(m, p) for m, p in sorted(monthly.items()) if p.n > 0]
    total = sum(p.n for _m, p in months)
    if total == 0:
        return PChart(None, ())
    centre = sum(p.k for _m, p in months) / total
    points = []
    for month, prop in months:
        half = sigmas * math.sqrt(centre * (1 - centre) / prop.n)
        lower, upper = max(0.0, centre - half), min(1.0, centre + half)
        rate = prop.k / prop.n
        points.append(PChartPoint(month, prop.k, prop.n, rate, lower, upper, rate > upper or rate < lower))
    return PChart(centre, tuple(points))


@dataclass(frozen=True)
class Decision:
    """One signed adjudication: the month it was decided, the two readers and the one whose series it accepted."""

    month: str
    readers: tuple[str, str]
    chosen: str


def acceptance_by_reader(decisions: Sequence[Decision]) -> dict[str, Proportion]:
    """How often the adjudicator accepted each reader, of the adjudications the reader was in."""
    involved = [(reader, d) for d in decisions for reader in d.readers]
    return rate_by(involved, lambda x: x[0], lambda x: x[1].chosen == x[0])


# --- measurement variability -------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineTarget:
    """One reader's target lesion at baseline: its label, location code, node or not, the image it was measured
    on, the centre of its long axis (image column/row) and the long axis (short axis for a node) in mm."""

    label: str
    site: str
    node: bool
    image: str
    centre: tuple[float, float] | None
    diameter_mm: float | None


def match_targets(
    a: Sequence[BaselineTarget], b: Sequence[BaselineTarget]
) -> list[tuple[BaselineTarget, BaselineTarget]]:
    """Pair A's and B's baseline target lesions that are the same lesion: same location and kind (node or not),
    then the closest on the same image, then any left at the same location in label order. Each lesion is in
    at most one pair; pairs come in A's label order."""

    def cost(x: BaselineTarget, y: BaselineTarget) -> tuple:
        same_image = bool(x.image) and x.image == y.image
        if same_image and x.centre and y.centre:
            return (0, math.dist(x.centre, y.centre), x.label, y.label)
        return (1, 0.0, x.label, y.label)

    candidates = sorted(
        ((cost(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b) if x.site == y.site and x.node == y.node),
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _cost, i, j in candidates:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((a[i], b[j]))
    return sorted(pairs, key=lambda pair: pair[0].label)


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman agreement of paired measurements (A, B in mm): differences A - B, their mean (the bias),
    standard deviation and the 95% limits of agreement bias +/- 1.96 SD (None with fewer than two pairs)."""

    n: int
    means: tuple[float, ...]
    differences: tuple[float, ...]
    bias: float | None
    sd: float | None
    lower: float | None
    upper: float | None


def bland_altman(pairs: Sequence[tuple[float, float]]) -> BlandAltman:
    values = np.array(pairs, dtype=float).reshape(-1, 2)
    diffs = values[:, 0] - values[:, 1]
    means = values.mean(axis=1)
    n = len(diffs)
    bias = float(diffs.mean()) if n else None
    sd = float(diffs.std(ddof=1)) if n > 1 else None
    lower = bias - 1.96 * sd if sd is not None else None
    upper = bias + 1.96 * sd if sd is not None else None
    return BlandAltman(n, tuple(means.tolist()), tuple(diffs.tolist()), bias, sd, lower, upper)


@dataclass(frozen=True)
class TargetCount:
    """How many target lesions a reader chose at baseline over `subjects` subjects."""

    subjects: int
    mean: float | None
    minimum: int | None
    maximum: int | None
    distribution: tuple[tuple[int, int], ...]  # (number of targets, subjects)


def target_counts(counts: Sequence[int]) -> TargetCount:
    if not counts:
        return TargetCount(0, None, None, None, ())
    return TargetCount(
        len(counts), float(np.mean(counts)), min(counts), max(counts), tuple(sorted(Counter(counts).items()))
    )


# --- drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderEvent:
    """One thing a reader did in a month that either is or is not the event counted (a follow-up read called PD;
    an adjudication the reader was in and lost)."""

    reader: str
    month: str
    event: bool


def monthly_by_reader(events: Sequence[ReaderEvent]) -> dict[str, dict[str, Proportion]]:
    """{reader: {month: Proportion}} in reader and month order."""
    out: dict[str, dict[str, Proportion]] = {}
    for (reader, month), prop in rate_by(events, lambda e: (e.reader, e.month), lambda e: e.event).items():
        out.setdefault(reader, {})[month] = prop
    return out
