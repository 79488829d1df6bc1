"""The reader quality page, its charts (PNG, SVG) and their data (CSV): trial admins and sponsors only.

Everyone else gets 404 for the trial, as on the read results page (`results_trial_or_404`). Counts come from
locked results only; readers are named by their trial reader code, never by name or case label. A table's or a
chart's download is audited as a download of results; the page and the charts it shows are not.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.utils.translation import gettext_lazy as _

from trials.views._common import _trial_page

from .. import results
from ..models import ReadDesign
from ..views import results_trial_or_404, time_zone_label
from . import charts, data, report


class PeriodForm(forms.Form):
    """The period and cut-off the statistics cover (all empty: everything locked until now)."""

    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    cutoff = forms.DateTimeField(
        label=_("Cut-off"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text=_("Only what was signed and locked by then counts. Leave empty for now."),
    )

    # The years a trial's reads can be in: a date at the calendar's ends made the day after it overflow (500).
    YEARS = (1900, 2999)

    def clean(self):
        cleaned = super().clean()
        for name in ("start", "end", "cutoff"):
            value = cleaned.get(name)
            if value is not None and not self.YEARS[0] <= value.year <= self.YEARS[1]:
                self.add_error(
                    name,
                    _("Give a date between %(first)s and %(last)s.") % {"first": self.YEARS[0], "last": self.YEARS[1]},
                )
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            raise forms.ValidationError(_("The period ends before it starts."))
        return cleaned


def _summary(request, trial) -> tuple[PeriodForm, report.Summary | None]:
    """The period form and the statistics for its period; no statistics while the period is not valid (they would
    be every locked read's, shown as if they were the period's)."""
    form = PeriodForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return form, None
    period = form.cleaned_data if form.is_bound else {}
    gathered = data.quality_input(trial, cutoff=period.get("cutoff"), start=period.get("start"), end=period.get("end"))
    return form, report.summarise(gathered)


def _period(form: PeriodForm) -> dict:
    """The period a download covers (a valid form's), for its audit event; None for what was left empty."""
    cleaned = form.cleaned_data if form.is_bound else {}
    return {name: cleaned.get(name) for name in ("start", "end", "cutoff")}


def _invalid_period() -> HttpResponseBadRequest:
    return HttpResponseBadRequest(
        _("The period is not valid: correct it on the reader quality page."), content_type="text/plain; charset=utf-8"
    )


@login_required
def quality_page(request, code: str):
    """Agreement, adjudication, measurement variability and drift of the trial's readers, with the charts."""
    actor, trial = results_trial_or_404(request, code)
    form, summary = _summary(request, trial)
    design = ReadDesign.objects.filter(trial=trial).first()
    context = {
        "form": form,
        "summary": summary,
        "single_read": design is not None and design.readers_per_subject == 1,
        "query": request.GET.urlencode(),
        "time_zone": time_zone_label(),
        "pairs": report.pair_rows(summary) if summary else [],
        "readers": report.reader_rows(summary) if summary else [],
        "months": report.p_chart_rows(summary) if summary else [],
        "drift": report.drift_rows(summary) if summary else [],
        "charts": [
            ("adjudication-p-chart", _("Adjudication rate per month")),
            ("waterfall", _("Best change in sum of diameters")),
            ("spider", _("Change in sum of diameters over time")),
            ("swimmer", _("Visits and responses over time")),
            ("bland-altman", _("Reader measurement agreement")),
        ],
        "tables": [
            ("pairs", _("Reader pairs")),
            ("readers", _("Readers")),
            ("drift", _("Drift per month")),
        ],
    }
    return _trial_page(request, actor, trial, "reads/quality.html", "read-results", context)


@login_required
def quality_chart(request, code: str, name: str, fmt: str):
    """One chart as PNG or SVG (`?download=1` as an attachment)."""
    _actor, trial = results_trial_or_404(request, code)
    if name not in charts.CHARTS or fmt not in charts.FORMATS:
        raise Http404(_("No such chart."))
    form, summary = _summary(request, trial)
    if summary is None:
        return _invalid_period()
    response = HttpResponse(charts.render(summary, name, fmt), content_type=charts.FORMATS[fmt])
    if request.GET.get("download"):
        # Only the download is audited: the page shows each chart inline at every view of it.
        response["Content-Disposition"] = f'attachment; filename="{trial.code}-{name}.{fmt}"'
        results.results_download_record(
            actor=request.user, trial=trial, kind="quality_chart", chart=name, format=fmt, **_period(form)
        )
    return response


@login_required
def quality_csv(request, code: str, name: str):
    """A chart's or table's data as CSV."""
    _actor, trial = results_trial_or_404(request, code)
    if name not in report.TABLES:
        raise Http404(_("No such table."))
    form, summary = _summary(request, trial)
    if summary is None:
        return _invalid_period()
    content = report.table_csv(summary, name)
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{trial.code}-{name}.csv"'
    _columns, table_rows = report.TABLES[name]
    rows = len(table_rows(summary))
    results.results_download_record(
        actor=request.user, trial=trial, kind="quality_csv", table=name, **_period(form), rows=rows
    )
    return response
