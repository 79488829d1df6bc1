"""Pages of quality control and site queries."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from ctims.exceptions import InvalidState, ValidationFailed
from ctims.pagination import page_of

from .. import qc_services, selectors
from ..access import Actor
from ..forms import (
    QCFailForm,
    QCPassForm,
    QueryAnswerForm,
    QueryCloseForm,
    SeriesRelabelForm,
    add_service_errors,
    kind_label,
    region_text,
    why_text,
)
from ..inbox import waiting_query_ids
from ..ingest.services import UPLOADABLE_STATES
from ..models import QCFinding, Query, Series, Timepoint, Trial, UploadItem
from ._common import QC_STATES, _trial, _trial_page, scoped

QUERY_PAGE_SIZE = 50
QC_PAGE_SIZE = 50  # timepoints per page of the QC worklist

# --- quality control ------------------------------------------------------------------------------------------


@login_required
@require_GET
def qc_worklist(request, code):
    """The QC reviewer's worklist: timepoints waiting for QC or for a site's answer, oldest first."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        timepoints = selectors.qc_worklist(actor=actor, trial=trial)
    page = page_of(request, timepoints, QC_PAGE_SIZE)
    context = {"page": page, "timepoints": page.object_list}
    return _trial_page(request, actor, trial, "trials/qc_worklist.html", "qc-worklist", context)


def _qc_timepoint(request, code: str, subject_code: str, visit_code: str) -> tuple[Actor, Trial, Timepoint]:
    """The timepoint of a QC page or decision: QC reviewers only (else 403), a visible subject (else 404)."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "review_qc")
    with scoped():
        timepoint = selectors.timepoint_get(actor=actor, trial=trial, subject_code=subject_code, visit_code=visit_code)
    return actor, trial, timepoint


def _series_of(timepoint: Timepoint):
    return Series.objects.filter(study__timepoint=timepoint).order_by("series_number", "pk")


def _relabel_form(series: Series, data=None) -> SeriesRelabelForm | None:
    classification = getattr(series, "classification", None)
    if classification is None:
        return None
    # One form per series on the page: the ids differ, the field names stay plain.
    return SeriesRelabelForm(
        data,
        initial={"kind": classification.kind, "region": classification.region},
        modality=series.modality,
        current_region=classification.region,
        auto_id=f"id_s{series.pk}_%s",
    )


def _qc_page(request, actor, trial, timepoint, *, relabel=None, fail_form=None, pass_form=None):
    """The QC page, with a form that failed (a relabel as (series pk, form), the fail or pass form) bound."""
    data = selectors.qc_timepoint(timepoint=timepoint)
    rows = []
    for series in data["series"]:
        classification = getattr(series, "classification", None)
        form = relabel[1] if relabel and relabel[0] == series.pk else _relabel_form(series)
        rows.append(
            {
                "series": series,
                "classification": classification,
                "reasons": [why_text(reason) for reason in classification.reasons] if classification else [],
                "kind": kind_label(classification.kind) if classification else "",
                "region": region_text(classification.region) if classification else "",
                "confidence": round(classification.confidence * 100) if classification else None,
                "auto_differs": bool(
                    classification
                    and (classification.auto_kind, classification.auto_region)
                    != (classification.kind, classification.region)
                ),
                "auto": (
                    f"{kind_label(classification.auto_kind)} · {region_text(classification.auto_region)}"
                    if classification
                    else ""
                ),
                "form": form,
            }
        )
    reviewable = timepoint.state in qc_services.REVIEWABLE
    findings = data["findings"]
    context = {
        "subject": timepoint.subject,
        "visit": timepoint.visit,
        "timepoint": timepoint,
        "findings": findings,
        "n_blocking": sum(1 for f in findings if f.severity == QCFinding.Severity.BLOCKING),
        "checked": any(row["classification"] for row in rows),
        "series_rows": rows,
        "reviews": data["reviews"],
        "upload_history": selectors.upload_history(
            actor=actor, trial=trial, subject_code=timepoint.subject.code, visit_code=timepoint.visit.code
        ),
        "queries": data["queries"],
        "can_relabel": timepoint.state in QC_STATES,
        "reviewable": reviewable,
        "fail_form": fail_form or QCFailForm(series=_series_of(timepoint), auto_id="id_fail_%s"),
        "pass_form": pass_form or QCPassForm(auto_id="id_pass_%s"),
    }
    return _trial_page(request, actor, trial, "trials/qc_timepoint.html", "qc-worklist", context)


@login_required
@require_GET
def qc_timepoint(request, code, subject_code, visit_code):
    """One timepoint under QC: the automatic findings, the series as classified, and the reviewer's decisions."""
    actor, trial, timepoint = _qc_timepoint(request, code, subject_code, visit_code)
    return _qc_page(request, actor, trial, timepoint)


def _to_qc_page(trial: Trial, timepoint: Timepoint):
    return redirect(
        "qc-timepoint", code=trial.code, subject_code=timepoint.subject.code, visit_code=timepoint.visit.code
    )


@login_required
@require_POST
def qc_relabel(request, code, subject_code, visit_code, series_uid):
    """Correct a series' kind and region; the checks run again with the reviewer's label."""
    actor, trial, timepoint = _qc_timepoint(request, code, subject_code, visit_code)
    series = _series_of(timepoint).select_related("classification").filter(series_instance_uid=series_uid).first()
    if series is None:
        raise Http404(_("No such series."))
    form = _relabel_form(series, request.POST)
    if form is None:
        messages.error(request, _("This series has not been classified yet."))
        return _to_qc_page(trial, timepoint)
    if form.is_valid():
        try:
            qc_services.series_relabel(
                actor=request.user, series=series, kind=form.cleaned_data["kind"], region=form.cleaned_data["region"]
            )
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Series %(number)s is now labelled %(kind)s, %(region)s; the checks ran again.")
                % {
                    "number": series.series_number,
                    "kind": kind_label(form.cleaned_data["kind"]),
                    "region": region_text(form.cleaned_data["region"]),
                },
            )
            return _to_qc_page(trial, timepoint)
    return _qc_page(request, actor, trial, timepoint, relabel=(series.pk, form))


@login_required
@require_POST
def qc_fail(request, code, subject_code, visit_code):
    """Fail series of the timepoint with a reason: a query goes to the site."""
    actor, trial, timepoint = _qc_timepoint(request, code, subject_code, visit_code)
    form = QCFailForm(request.POST, series=_series_of(timepoint), auto_id="id_fail_%s")
    if form.is_valid():
        data = form.cleaned_data
        try:
            query = qc_services.qc_fail(
                actor=request.user,
                timepoint=timepoint,
                series=list(data["series"]),
                reason=data["reason"],
                due_date=data["due_date"],
            )
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Query %(query)s was sent to the site; %(timepoint)s waits for its answer.")
                % {"query": query.pk, "timepoint": timepoint},
            )
            return redirect("query-detail", code=trial.code, pk=query.pk)
    return _qc_page(request, actor, trial, timepoint, fail_form=form)


@login_required
@require_POST
def qc_pass(request, code, subject_code, visit_code):
    """Pass the timepoint: it becomes ready for read."""
    actor, trial, timepoint = _qc_timepoint(request, code, subject_code, visit_code)
    form = QCPassForm(request.POST, auto_id="id_pass_%s")
    if form.is_valid():
        try:
            qc_services.qc_pass(actor=request.user, timepoint=timepoint, comment=form.cleaned_data["comment"])
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("%(timepoint)s passed QC: it is ready for read.") % {"timepoint": timepoint})
            return _to_qc_page(trial, timepoint)
    return _qc_page(request, actor, trial, timepoint, pass_form=form)


# --- queries --------------------------------------------------------------------------------------------------


@login_required
@require_GET
def query_list(request, code):
    """The queries of the subjects the person may see: their sites' for coordinators, all for QC and admins."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        queries = selectors.query_list(actor=actor, trial=trial)
    state = request.GET.get("state", "")
    if state not in Query.State.values:
        state = ""
    counts = dict(queries.order_by().values_list("state").annotate(n=Count("pk")))
    if state:
        queries = queries.filter(state=state)
    queries = queries.annotate(last_message_at=Max("messages__at")).order_by(selectors.QUERY_ORDER, "due_date", "pk")
    page = Paginator(queries, QUERY_PAGE_SIZE).get_page(request.GET.get("page"))
    tabs = [("", _("All"), sum(counts.values()))] + [
        (value, label, counts.get(value, 0)) for value, label in Query.State.choices
    ]
    context = {
        "page": page,
        "state": state,
        "tabs": tabs,
        "waiting": waiting_query_ids(actor, trial),
    }
    return _trial_page(request, actor, trial, "trials/query_list.html", "query-list", context)


def _query(request, code: str, pk: int) -> tuple[Actor, Trial, Query]:
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        query = selectors.query_get(actor=actor, trial=trial, pk=pk)
    return actor, trial, query


def _answers(actor: Actor, trial: Trial, query: Query) -> bool:
    """Only the coordinators of the subject's site answer a query."""
    return query.timepoint.subject.site_id in actor.site_ids(trial, "upload_to_site")


def _query_page(request, actor, trial, query, *, answer_form=None, close_form=None):
    can_answer = _answers(actor, trial, query)
    reviews_qc = actor.has_trial_perm(trial, "review_qc")
    thread = list(query.messages.select_related("author", "upload"))
    upload_ids = {m.upload_id for m in thread if m.upload_id}
    upload_counts: dict[int, dict[str, int]] = {}
    for upload_id, state, n in (
        UploadItem.objects.filter(upload_id__in=upload_ids).values_list("upload_id", "state").annotate(n=Count("pk"))
    ):
        upload_counts.setdefault(upload_id, {})[state] = n
    timepoint = query.timepoint
    open_ = query.state != Query.State.CLOSED
    # Where a message's upload is shown: its visit's upload page for the site, the QC page for reviewers.
    at = {"code": trial.code, "subject_code": timepoint.subject.code, "visit_code": timepoint.visit.code}
    upload_url = (
        reverse("timepoint-upload", kwargs=at)
        if can_answer
        else reverse("qc-timepoint", kwargs=at)
        if reviews_qc
        else ""
    )
    context = {
        "upload_url": upload_url,
        "query": query,
        "timepoint": timepoint,
        "subject": timepoint.subject,
        "visit": timepoint.visit,
        "thread": [(m, upload_counts.get(m.upload_id, {})) for m in thread],
        "can_answer": can_answer and open_,
        "can_close": reviews_qc and open_,
        # Closed meanwhile: the refused closing note is shown back, to be kept elsewhere.
        "refused_close_form": close_form if close_form is not None and not open_ else None,
        "reviews_qc": reviews_qc,
        "can_upload": can_answer and open_ and timepoint.state in UPLOADABLE_STATES,
        "answer_form": answer_form or QueryAnswerForm(auto_id="id_answer_%s"),
        "close_form": close_form or QueryCloseForm(auto_id="id_close_%s"),
        "overdue": query.is_overdue,
        "can_view_images": selectors.sees_images(actor=actor, trial=trial, subject=timepoint.subject),
    }
    return _trial_page(request, actor, trial, "trials/query_detail.html", "query-list", context)


@login_required
@require_GET
def query_detail(request, code, pk):
    """A query's thread; the site's coordinators answer it, QC reviewers close it."""
    actor, trial, query = _query(request, code, pk)
    return _query_page(request, actor, trial, query)


@login_required
@require_POST
def query_answer(request, code, pk):
    actor, trial, query = _query(request, code, pk)
    if not _answers(actor, trial, query):
        raise PermissionDenied(_("Only the coordinators of the subject's site answer its queries."))
    form = QueryAnswerForm(request.POST, auto_id="id_answer_%s")
    if form.is_valid():
        try:
            qc_services.query_answer(actor=request.user, query=query, body=form.cleaned_data["body"])
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        except InvalidState as exc:
            # Closed meanwhile: the page no longer shows the form, so the refusal is a message.
            messages.error(request, exc.message)
            return redirect("query-detail", code=trial.code, pk=query.pk)
        else:
            messages.success(request, _("Your answer was sent to the core lab."))
            return redirect("query-detail", code=trial.code, pk=query.pk)
    return _query_page(request, actor, trial, query, answer_form=form)


@login_required
@require_POST
def query_close(request, code, pk):
    actor, trial, query = _query(request, code, pk)
    if not actor.has_trial_perm(trial, "review_qc"):
        raise PermissionDenied(_("Only QC reviewers close queries."))
    form = QueryCloseForm(request.POST, auto_id="id_close_%s")
    if form.is_valid():
        try:
            qc_services.query_close(actor=request.user, query=query, body=form.cleaned_data["body"])
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Query %(query)s is closed.") % {"query": query.pk})
            return _to_qc_page(trial, query.timepoint)
    return _query_page(request, actor, trial, query, close_form=form)
