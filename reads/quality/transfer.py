"""The reader statistics report of a sponsor transfer: at the transfer's cut-off, every table as CSV, every chart
as PNG and SVG, and an HTML summary that shows the charts, under `reader-quality/` in the zip.

Reproducible like the rest of the transfer: the files depend only on what was locked by the cut-off (the charts'
bytes are fixed for the same data, the summary is written in English and carries no time of its own), so a second
transfer with nothing changed carries the same bytes.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils import translation

from . import charts, data, report

FOLDER = "reader-quality"


def transfer_files(transfer) -> dict[str, bytes]:
    """The report's files by path in the transfer's zip."""
    summary = report.summarise(data.quality_input(transfer.trial, cutoff=transfer.cutoff))
    files = {f"{FOLDER}/{name}.csv": report.table_csv(summary, name) for name in report.TABLES}
    for name in charts.CHARTS:
        for fmt, content in charts.render_formats(summary, name).items():
            files[f"{FOLDER}/{name}.{fmt}"] = content
    files[f"{FOLDER}/summary.html"] = summary_html(transfer.trial, summary).encode("utf-8")
    return files


def summary_html(trial, summary: report.Summary) -> str:
    """The report's HTML summary of `summary`, in English (a transfer's files carry no reader's language)."""
    with translation.override("en"):
        return render_to_string(
            "reads/quality_report.html",
            {
                "trial": trial,
                "summary": summary,
                "pairs": report.pair_rows(summary),
                "readers": report.reader_rows(summary),
                "months": report.p_chart_rows(summary),
                "drift": report.drift_rows(summary),
                "charts": list(charts.CHARTS),
            },
        )
