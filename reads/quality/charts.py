"""The reader quality charts, drawn on the server with matplotlib (Agg, no display) from a `Summary`.

Each chart is drawn from the same table its CSV carries (`reads.quality.report.TABLES`), so what a sponsor
downloads as data is what the picture shows. Output is reproducible: the SVG's id salt and every file's
metadata (date, software) are fixed, so the same data gives the same bytes (tests and transfers rely on it).
Chart text is English; the page around it is translated.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from . import report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
COLOURS = {
    "CR": "#1b7837",
    "PR": "#5aae61",
    "SD": "#e0a526",
    "NON_CR_NON_PD": "#4575b4",
    "PD": "#d73027",
    "NE": "#999999",
    "": "#999999",
}
RC = {
    "svg.hashsalt": "ctims-reader-quality",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None, "Format": None, "Type": None},
}


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _line(**style):
    """A legend's entry: a line (or marker) drawn nowhere."""
    from matplotlib.lines import Line2D

    return Line2D([], [], **style)


def _in_order(responses) -> list[str]:
    """The responses drawn, in the order of `COLOURS` (best to worst, then not evaluable)."""
    return sorted(set(responses), key=lambda r: list(COLOURS).index(r) if r in COLOURS else len(COLOURS))


def _empty(ax, text: str = "No locked data yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def p_chart(summary: report.Summary) -> Figure:
    """The monthly adjudication rate with its centre line and 3-sigma limits; months outside are marked."""
    fig, ax = _figure()
    rows = report.p_chart_rows(summary)
    ax.set_title("Adjudication rate per month (p-chart)")
    if not rows:
        _empty(ax)
        return fig
    x = list(range(len(rows)))
    rate = [float(r["rate"]) for r in rows]
    # Each month's limits depend on its own n: a short dashed segment per month, not a line between months.
    for limit in ("ucl", "lcl"):
        ax.hlines([float(r[limit]) for r in rows], [i - 0.4 for i in x], [i + 0.4 for i in x], colors="#888888",
                  linestyles="--", label="3-sigma limits" if limit == "ucl" else None)  # fmt: skip
    ax.axhline(float(rows[0]["centre"]), color="#333333", label=f"centre {float(rows[0]['centre']):.1%}")
    ax.plot(x, rate, marker="o", color="#2166ac", label="adjudicated / eligible")
    outside = [(i, r) for i, r, row in zip(x, rate, rows, strict=True) if row["outside"] == "yes"]
    if outside:
        ax.scatter(*zip(*outside, strict=True), s=120, facecolors="none", edgecolors="#d73027", linewidths=2,
                   label="outside the limits", zorder=3)  # fmt: skip
    ax.set_xticks(x, [r["month"] for r in rows], rotation=45 if len(rows) > 6 else 0)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(-0.03, 1.03)  # a month at 0% or 100% shows whole
    ax.set_ylabel("proportion of visits adjudicated")
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    # Below the plot, where it covers no month's rate or limits.
    fig.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def waterfall(summary: report.Summary) -> Figure:
    """Best % change from baseline of the sum of diameters per subject, coloured by best overall response."""
    fig, ax = _figure()
    rows = report.waterfall_rows(summary)
    ax.set_title("Best change in sum of diameters (accepted assessment)")
    if not rows:
        _empty(ax)
        return fig
    x = list(range(len(rows)))
    ax.bar(x, [float(r["best_change_pct"]) for r in rows], color=[COLOURS.get(r["bor"], "#999999") for r in rows])
    ax.axhline(20, color="#d73027", linestyle="--", linewidth=1)
    ax.axhline(-30, color="#1b7837", linestyle="--", linewidth=1)
    ax.axhline(0, color="#333333", linewidth=0.8)
    ax.set_xticks(x, [r["subject"] for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("best % change from baseline")
    handles = [_line(color=COLOURS.get(b, "#999999"), linewidth=6, label=b) for b in _in_order(r["bor"] for r in rows)]
    handles += [
        _line(color="#d73027", linestyle="--", label="+20%"),
        _line(color="#1b7837", linestyle="--", label="-30%"),
    ]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper right")
    return fig


def spider(summary: report.Summary) -> Figure:
    """% change from baseline over days since baseline, one line per subject."""
    fig, ax = _figure()
    ax.set_title("Change in sum of diameters over time")
    courses = [c for c in summary.input.courses if any(p[2] is not None for p in c.points)]
    if not courses:
        _empty(ax)
        return fig
    for c in courses:
        points = [(0, 0.0)] + [(p[1], p[2]) for p in c.points if p[2] is not None]
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, color=COLOURS.get(c.best_response), linewidth=1)
    ax.axhline(20, color="#d73027", linestyle="--", linewidth=1)
    ax.axhline(-30, color="#1b7837", linestyle="--", linewidth=1)
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("% change from baseline")
    handles = [
        _line(color=COLOURS.get(b, "#999999"), marker="o", markersize=3, linewidth=1, label=b)
        for b in _in_order(c.best_response for c in courses)
    ]
    handles += [
        _line(color="#d73027", linestyle="--", label="+20%"),
        _line(color="#1b7837", linestyle="--", label="-30%"),
    ]
    ax.legend(handles=handles, title="best response", fontsize=8, title_fontsize=8, frameon=False, loc="best")
    return fig


def swimmer(summary: report.Summary) -> Figure:
    """Each subject's follow-up as a bar to the last visit, with each visit's response and progression."""
    courses = summary.input.courses
    fig, ax = _figure(height=max(2.4, 0.35 * len(courses) + 1.2))
    ax.set_title("Visits and responses over time (accepted assessment)")
    if not courses:
        _empty(ax)
        return fig
    for y, c in enumerate(courses):
        ax.barh(y, c.last_day, color="#d9d9d9", height=0.6)
        for _visit, day, _change, response in c.points:
            ax.scatter(day, y, color=COLOURS.get(response, "#999999"), s=30, zorder=3)
        if c.progression_day is not None:
            ax.scatter(c.progression_day, y, marker="x", color="#000000", s=50, zorder=4)
    ax.set_yticks(range(len(courses)), [c.subject for c in courses], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("days since baseline")
    drawn = _in_order(p[3] for c in courses for p in c.points)
    handles = [_line(marker="o", linestyle="", color=COLOURS.get(r, "#999999"), label=r) for r in drawn]
    handles.append(_line(marker="x", linestyle="", color="#000000", label="progression"))
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="lower right")
    return fig


def bland_altman(summary: report.Summary) -> Figure:
    """Differences between readers' baseline diameters of the same lesion against their mean."""
    fig, ax = _figure()
    ba = summary.measurement
    ax.set_title("Reader measurement agreement (Bland-Altman)")
    if ba.n == 0:
        _empty(ax, "No matched lesions yet")
        return fig
    ax.scatter(ba.means, ba.differences, color="#2166ac", s=20)
    ax.axhline(ba.bias, color="#333333", label=f"bias {ba.bias:.2f} mm")
    if ba.lower is not None:
        ax.axhline(ba.lower, color="#888888", linestyle="--", label=f"95% limits {ba.lower:.2f} to {ba.upper:.2f} mm")
        ax.axhline(ba.upper, color="#888888", linestyle="--")
    pairs = sorted(summary.input.lesion_pairs)
    first, second = pairs[0] if len(pairs) == 1 else ("first reader", "second reader of each pair")
    ax.set_xlabel("mean of the two readers (mm)")
    ax.set_ylabel(f"difference, {first} \u2212 {second} (mm)")
    ax.legend(fontsize=8, frameon=False)
    return fig


CHARTS = {
    "adjudication-p-chart": p_chart,
    "waterfall": waterfall,
    "spider": spider,
    "swimmer": swimmer,
    "bland-altman": bland_altman,
}


def render_formats(summary: report.Summary, name: str, formats=tuple(FORMATS)) -> dict[str, bytes]:
    """One chart drawn once and saved in each of `formats` (PNG, SVG): the same bytes for the same data."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {sorted(unknown)!r}")
    # matplotlib is imported at the first chart drawn, not with this module: it is about half a second of every
    # process's start-up (web, worker, manage.py), and most processes never draw a chart.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import rc_context

    out = {}
    with rc_context(RC):
        fig = CHARTS[name](summary)
        for fmt in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, metadata=METADATA[fmt])
            out[fmt] = buffer.getvalue()
    return out


def render(summary: report.Summary, name: str, fmt: str) -> bytes:
    """One chart as PNG or SVG bytes."""
    return render_formats(summary, name, (fmt,))[fmt]
