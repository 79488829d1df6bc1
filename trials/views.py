"""Server-rendered pages of trials.

Each page finds the trial through ``selectors.trial_get`` (404 outside the person's trials, 403 without the
right), reads through selectors, changes through services, and answers a successful POST with a redirect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import Http404
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ctims.exceptions import InvalidState, NotFound, NotPermitted, ValidationFailed

from . import qc_services, selectors, services
from .access import Actor
from .forms import (
    AuditFilterForm,
    MembershipGrantForm,
    ProtocolCreateForm,
    QCFailForm,
    QCPassForm,
    QueryAnswerForm,
    QueryCloseForm,
    SeriesRelabelForm,
    SiteCreateForm,
    SubjectEnrollForm,
    TokenCreateForm,
    TrialCreateForm,
    TrialEditForm,
    VisitCreateForm,
    add_service_errors,
    kind_label,
    region_text,
)
from .ingest.services import UPLOADABLE_STATES
from .models import Instance, QCFinding, Query, Series, Timepoint, Trial, Upload, UploadItem

AUDIT_PAGE_SIZE = 50
QUERY_PAGE_SIZE = 50
# Where a QC reviewer still has work on a timepoint: the worklist's states.
QC_STATES = (Timepoint.State.UPLOADED, Timepoint.State.IN_QC, Timepoint.State.QUERY_OPEN)


@login_required
def home(request):
    """The trials the person holds a role in, with their roles."""
    trials = selectors.trial_list(actor=Actor.from_request(request))
    roles: dict[int, list[str]] = {}
    for m in request.user.memberships.filter(trial__in=trials):
        roles.setdefault(m.trial_id, []).append(m.get_role_display())
    return render(
        request,
        "home.html",
        {
            "trials": [(t, roles.get(t.pk, [])) for t in trials],
            "can_create_trial": request.user.has_perm("trials.add_trial"),
        },
    )


# --- access -------------------------------------------------------------------------------------------------


@contextmanager
def scoped() -> Iterator[None]:
    """Answer a selector's NotFound with 404 and NotPermitted with 403, the same way on every page."""
    try:
        yield
    except NotFound as exc:
        raise Http404(exc.message) from None
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from None


def _trial(actor: Actor, code: str, perm: str = "view_trial") -> Trial:
    with scoped():
        return selectors.trial_get(actor=actor, code=code, perm=perm)


def _posted(request):
    """The submitted data on a POST (even an empty one, so that its errors show), None on a GET."""
    return request.POST if request.method == "POST" else None


def _sees_subjects(actor: Actor, trial: Trial) -> bool:
    return actor.has_trial_perm(trial, "view_all_subjects") or actor.sites(trial, "view_site_subjects").exists()


def _require_subject_access(actor: Actor, trial: Trial) -> None:
    if not _sees_subjects(actor, trial):
        raise PermissionDenied(_("Your role in this trial does not include seeing subjects."))


def _trial_page(request, actor: Actor, trial: Trial, template: str, current: str, context: dict | None = None):
    """Render a page inside a trial, with the trial's navigation limited to what the person's roles allow."""
    manages = actor.has_trial_perm(trial, "manage_trial")
    links = [
        ("trial-detail", _("Overview"), True),
        ("trial-subjects", _("Subjects"), _sees_subjects(actor, trial)),
        ("qc-worklist", _("QC"), actor.has_trial_perm(trial, "review_qc")),
        ("query-list", _("Queries"), _sees_subjects(actor, trial)),
        ("trial-schedule", _("Schedule"), manages),
        ("trial-sites", _("Sites"), manages),
        ("trial-people", _("People"), manages),
        ("trial-audit", _("Audit trail"), actor.has_trial_perm(trial, "view_audit")),
        ("trial-tokens", _("API tokens"), True),
    ]
    my_roles = [m.get_role_display() for m in request.user.memberships.filter(trial=trial)]
    base = {
        "trial": trial,
        "trial_nav": [{"name": name, "label": label, "current": name == current} for name, label, ok in links if ok],
        "my_roles": my_roles,
    }
    return render(request, template, base | (context or {}))


# --- trials -------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_create(request):
    if not request.user.has_perm("trials.add_trial"):
        raise PermissionDenied(_("You may not create trials."))
    form = TrialCreateForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            trial = services.trial_create(
                actor=request.user,
                code=data["code"],
                title=data["title"],
                sponsor=data["sponsor"],
                protocol_number=data["protocol_number"],
                status=data["status"],
                subject_code_pattern=data["subject_code_pattern"] or None,
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Trial %(code)s was created. You are its trial admin.") % {"code": trial.code})
            return redirect("trial-detail", code=trial.code)
    return render(request, "trials/trial_form.html", {"form": form})


@login_required
def trial_detail(request, code):
    """What the trial's overview shows depends on the roles the person holds in it."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    manages = actor.has_trial_perm(trial, "manage_trial")
    sees_all = actor.has_trial_perm(trial, "view_all_subjects")
    sees_results = actor.has_trial_perm(trial, "view_results")
    my_sites = list(actor.sites(trial, "view_site_subjects").annotate(subject_count=Count("subjects")))
    context = {
        "manages": manages,
        "sees_all_subjects": sees_all,
        "my_sites": my_sites,
        # Readers and adjudicators see the trial's code, title and their role: nothing about subjects or sites.
        "show_facts": manages or sees_all or sees_results or bool(my_sites),
        "states": Timepoint.State.choices,
    }
    if manages or sees_all or sees_results:
        summary = selectors.trial_summary(trial=trial)
        context["summary"] = summary
        context["summary_rows"] = [
            (visit, [counts[state] for state in Timepoint.State.values]) for visit, counts in summary.states_by_visit
        ]
    if manages:
        context["people_count"] = selectors.membership_list(trial=trial).values("user").distinct().count()
        today = timezone.localdate()
        context["overdue_queries"] = [(q, (today - q.due_date).days) for q in selectors.queries_overdue(trial=trial)]
    return _trial_page(request, actor, trial, "trials/trial_detail.html", "trial-detail", context)


@login_required
@require_http_methods(["GET", "POST"])
def trial_edit(request, code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    initial = {name: getattr(trial, name) for name in services.TRIAL_EDITABLE}
    enrolled = trial.subjects.exists()
    form = TrialEditForm(
        _posted(request), initial=initial, subjects_enrolled=enrolled, images_stored=trial.studies.exists()
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.trial_update(actor=request.user, trial=trial, **form.cleaned_data)
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("The trial's details were saved."))
            return redirect("trial-detail", code=trial.code)
    return _trial_page(request, actor, trial, "trials/trial_edit.html", "trial-detail", {"form": form})


# --- set-up: sites, schedule --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_sites(request, code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    form = SiteCreateForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            site = services.site_create(actor=request.user, trial=trial, **form.cleaned_data)
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Site %(code)s was added.") % {"code": site.code})
            return redirect("trial-sites", code=trial.code)
    sites = selectors.site_list(actor=actor, trial=trial).annotate(subject_count=Count("subjects")).order_by("code")
    return _trial_page(request, actor, trial, "trials/sites.html", "trial-sites", {"sites": sites, "form": form})


def _protocol_form(visit, data=None) -> ProtocolCreateForm:
    # One form per visit on the page: the ids differ, the field names stay plain.
    return ProtocolCreateForm(data, auto_id=f"id_{visit.code}_%s")


def _schedule_page(request, actor, trial, *, visit_form=None, failed_visit=None, failed_form=None):
    visits = list(selectors.visit_list(trial=trial))
    if visit_form is None:
        next_order = max((v.order for v in visits), default=0) + 1
        visit_form = VisitCreateForm(initial={"order": next_order, "window_before": 0, "window_after": 0})
    rows = [(v, failed_form if v == failed_visit else _protocol_form(v)) for v in visits]
    context = {"rows": rows, "visit_form": visit_form, "failed_visit": failed_visit}
    return _trial_page(request, actor, trial, "trials/schedule.html", "trial-schedule", context)


@login_required
@require_http_methods(["GET", "POST"])
def trial_schedule(request, code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    if request.method == "GET":
        return _schedule_page(request, actor, trial)
    form = VisitCreateForm(request.POST)
    if form.is_valid():
        try:
            visit = services.visit_create(actor=request.user, trial=trial, **form.cleaned_data)
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Visit %(label)s was added to the schedule.") % {"label": visit.label})
            return redirect("trial-schedule", code=trial.code)
    return _schedule_page(request, actor, trial, visit_form=form)


@login_required
@require_POST
def protocol_create(request, code, visit_code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    with scoped():
        visit = selectors.visit_get(trial=trial, code=visit_code)
    form = _protocol_form(visit, request.POST)
    if form.is_valid():
        try:
            protocol = services.protocol_create(actor=request.user, visit=visit, **form.cleaned_data)
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Imaging protocol %(protocol)s was added to %(visit)s.")
                % {"protocol": protocol, "visit": visit.label},
            )
            return redirect("trial-schedule", code=trial.code)
    return _schedule_page(request, actor, trial, failed_visit=visit, failed_form=form)


# --- subjects -----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_subjects(request, code):
    """The visit grid of the subjects the person may see; a trial admin also enrolls subjects here."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    _require_subject_access(actor, trial)
    can_enroll = actor.has_trial_perm(trial, "manage_trial")
    if request.method == "POST" and not can_enroll:
        raise PermissionDenied(_("Only a trial admin enrolls subjects."))
    form = None
    if can_enroll:
        form = SubjectEnrollForm(_posted(request), sites=selectors.enrollable_sites(actor=actor, trial=trial))
    if request.method == "POST" and form.is_valid():
        try:
            subject = services.subject_enroll(actor=request.user, site=form.cleaned_data["site"])
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Subject %(code)s was enrolled at %(site)s.") % {"code": subject.code, "site": subject.site.code},
            )
            return redirect("trial-subjects", code=trial.code)
    visits, rows = selectors.visit_grid(actor=actor, trial=trial)
    grid = [(row, list(zip(visits, row.cells, strict=True))) for row in rows]
    context = (
        {"visits": visits, "rows": rows, "grid": grid, "form": form}
        | _upload_links(actor, trial)
        | _qc_links(actor, trial)
    )
    return _trial_page(request, actor, trial, "trials/subjects.html", "trial-subjects", context)


@login_required
def subject_detail(request, code, subject_code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    _require_subject_access(actor, trial)
    with scoped():
        subject = selectors.subject_get(actor=actor, trial=trial, code=subject_code)
    timepoints = (
        subject.timepoints.select_related("visit")
        .annotate(n_series=Count("studies__series", distinct=True), n_instances=Count("studies__series__instances"))
        .order_by("visit__order")
    )
    with scoped():
        open_queries = selectors.query_list(actor=actor, trial=trial).filter(timepoint__subject=subject)
        open_queries = open_queries.exclude(state=Query.State.CLOSED).order_by("pk")
    queries_by_timepoint: dict[int, list[Query]] = {}
    for query in open_queries:
        queries_by_timepoint.setdefault(query.timepoint_id, []).append(query)
    context = (
        {
            "subject": subject,
            "timepoints": [(tp, queries_by_timepoint.get(tp.pk, [])) for tp in timepoints],
            "can_view_images": _sees_images(actor, trial, subject),
        }
        | _upload_links(actor, trial)
        | _qc_links(actor, trial)
    )
    return _trial_page(request, actor, trial, "trials/subject_detail.html", "trial-subjects", context)


def _qc_links(actor: Actor, trial: Trial) -> dict:
    """What a page needs to offer a link to a timepoint's QC page to QC reviewers."""
    return {"reviews_qc": actor.has_trial_perm(trial, "review_qc"), "qc_states": QC_STATES}


def _upload_links(actor: Actor, trial: Trial) -> dict:
    """What a page needs to offer "Upload images" only where the person may upload and the visit still accepts it."""
    return {
        "upload_site_ids": set(actor.sites(trial, "upload_to_site").values_list("pk", flat=True)),
        "uploadable_states": UPLOADABLE_STATES,
    }


# --- upload -------------------------------------------------------------------------------------------------

# Files an earlier upload already settled: not sent again. A file lost before processing may be sent again.
_SETTLED = (UploadItem.State.ACCEPTED, UploadItem.State.DUPLICATE, UploadItem.State.REJECTED)


def _received_files(uploads) -> list[dict]:
    """Every file the visit's uploads settled, one entry a SHA-256: stored wins over rejected."""
    received: dict[str, dict] = {}
    items = (
        UploadItem.objects.filter(upload__in=uploads, state__in=_SETTLED)
        .exclude(code="lost")
        .order_by("pk")
        .values("sha256", "state", "reason")
    )
    for item in items:
        known = received.get(item["sha256"])
        if known is None or known["state"] == UploadItem.State.REJECTED:
            received[item["sha256"]] = item
    return list(received.values())


@login_required
@require_GET
def timepoint_upload(request, code, subject_code, visit_code):
    """The coordinator's upload page: the browser reads, checks, hashes and sends the files through the API.

    Opening the page changes nothing: the browser opens an upload session only when there is a file to send,
    and resumes the person's unfinished one (after a reload or a dropped network).
    """
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        timepoint = selectors.upload_timepoint_get(
            actor=actor, trial=trial, subject_code=subject_code, visit_code=visit_code
        )
    uploads = selectors.upload_list(actor=actor, trial=trial).filter(timepoint=timepoint)
    current = (
        uploads.filter(created_by=request.user, state__in=[Upload.State.OPEN, Upload.State.PROCESSING])
        .order_by("-created_at")
        .first()
    )
    stored = Instance.objects.filter(series__study__timepoint=timepoint).aggregate(
        series=Count("series", distinct=True), instances=Count("pk")
    )
    # The API routes of one upload, with a placeholder id the browser replaces.
    status_url = reverse("api-upload", kwargs={"code": trial.code, "pk": 0})
    finish_url = reverse("api-upload-finish", kwargs={"code": trial.code, "pk": 0})
    context = {
        "subject": timepoint.subject,
        "visit": timepoint.visit,
        "timepoint": timepoint,
        "accepts_uploads": timepoint.state in UPLOADABLE_STATES,
        "stored": stored,
        "status_url": status_url,
        "finish_url": finish_url,
        "resume_url": reverse("api-upload", kwargs={"code": trial.code, "pk": current.pk}) if current else "",
        "received_json": json.dumps(_received_files(uploads), separators=(",", ":")),
        "state_labels_json": json.dumps({value: str(label) for value, label in Timepoint.State.choices}),
    }
    return _trial_page(request, actor, trial, "trials/upload.html", "trial-subjects", context)


# --- viewer -------------------------------------------------------------------------------------------------


def _sees_images(actor: Actor, trial: Trial, subject) -> bool:
    """Whether the trial's DICOMweb root shows this subject's images: admins, QC reviewers, the site's coordinators."""
    return (
        actor.has_trial_perm(trial, "view_all_subjects")
        or actor.sites(trial, "view_site_subjects").filter(pk=subject.site_id).exists()
    )


@login_required
@require_GET
# The image codecs are WebAssembly: compiling it is the one thing this page adds to the scripts' policy.
@csp_update({"script-src": ["'wasm-unsafe-eval'"]})
def timepoint_viewer(request, code, subject_code, visit_code):
    """The image viewer of one timepoint, over the trial's DICOMweb root, with the subject's other timepoints.

    It shows the subject's pseudonym and the visits' labels, nothing of the site and no dates. Readers,
    adjudicators and sponsors see nothing here (404): their images come through their read tasks.
    """
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        subject = selectors.subject_get(actor=actor, trial=trial, code=subject_code)
    if not _sees_images(actor, trial, subject):
        raise Http404(_("No such subject."))
    timepoints = subject.timepoints.select_related("visit").prefetch_related("studies").order_by("visit__order")
    timepoint = next((t for t in timepoints if t.visit.code == visit_code), None)
    if timepoint is None:
        raise Http404(_("No such visit."))
    # The subject's visits that hold images, in schedule order: this one and those to compare it with.
    visits = [
        {
            "visit": t.visit.code,
            "label": t.visit.label,
            "studies": sorted(study.study_instance_uid for study in t.studies.all()),
            "current": t.pk == timepoint.pk,
        }
        for t in timepoints
        if t.pk == timepoint.pk or t.studies.all()
    ]
    current = next(n for n, v in enumerate(visits) if v["current"])
    earlier, later = visits[:current], visits[current + 1 :]
    # Compare with the latest earlier visit first (the usual baseline/follow-up reading), else the next one.
    default_compare = (earlier[-1] if earlier else later[0] if later else visits[current])["visit"]
    root = reverse("dicomweb-trial-studies", kwargs={"scope_code": trial.code}).removesuffix("/studies")
    context = {
        "subject": subject,
        "visit": timepoint.visit,
        "timepoint": timepoint,
        "has_images": bool(visits[current]["studies"]),
        "compare_visits": [v for v in visits if v["studies"]],
        "default_compare": default_compare,
        "panes": ["left", "right"],
        "viewer_config": {"root": root, "wasmBase": static("dist/viewer/"), "timepoints": visits},
    }
    return _trial_page(request, actor, trial, "trials/viewer.html", "trial-subjects", context)


# --- people -------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_people(request, code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    form = MembershipGrantForm(_posted(request), sites=trial.sites.order_by("code"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            membership = services.person_grant(
                actor=request.user,
                trial=trial,
                email=data["email"],
                full_name=data["full_name"],
                role=data["role"],
                sites=data["sites"],
                request=request,
            )
            user = membership.user
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("%(person)s now holds the role %(role)s in %(trial)s.")
                % {"person": user.email, "role": membership.get_role_display(), "trial": trial.code},
            )
            return redirect("trial-people", code=trial.code)
    memberships = selectors.membership_list(trial=trial).order_by("user__email", "role")
    context = {"memberships": memberships, "form": form}
    return _trial_page(request, actor, trial, "trials/people.html", "trial-people", context)


@login_required
@require_POST
def membership_revoke(request, code, pk):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    with scoped():
        membership = selectors.membership_get(trial=trial, pk=pk)
    role, email = membership.get_role_display(), membership.user.email
    try:
        services.membership_revoke(actor=request.user, membership=membership)
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(person)s no longer holds the role %(role)s.") % {"person": email, "role": role})
    return redirect("trial-people", code=trial.code)


# --- API tokens ---------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_tokens(request, code):
    """The person's own tokens in the trial. A new token's key is shown in the POST's answer, once, never again."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    own_memberships = request.user.memberships.filter(trial=trial).order_by("role")
    form = TokenCreateForm(_posted(request), memberships=own_memberships)
    new_token = new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            new_token, new_key = services.api_token_create(
                actor=request.user, membership=form.cleaned_data["role"], name=form.cleaned_data["name"]
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            form = TokenCreateForm(memberships=own_memberships)
    tokens = selectors.token_list(actor=actor, trial=trial)
    context = {"tokens": tokens, "form": form, "new_token": new_token, "new_key": new_key}
    response = _trial_page(request, actor, trial, "trials/tokens.html", "trial-tokens", context)
    if new_key:
        add_never_cache_headers(response)
    return response


@login_required
@require_POST
def token_revoke(request, code, pk):
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    token = selectors.token_list(actor=actor, trial=trial).filter(pk=pk).first()
    if token is None:
        raise Http404(_("No such token."))
    services.api_token_revoke(actor=request.user, token=token)
    messages.success(request, _("Token %(name)s was revoked.") % {"name": token.name})
    return redirect("trial-tokens", code=trial.code)


# --- audit trail --------------------------------------------------------------------------------------------


@login_required
def trial_audit(request, code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "view_audit")
    form = AuditFilterForm(request.GET or None, actions=selectors.audit_actions(trial=trial))
    filters = selectors.AuditFilters()
    if form.is_bound:
        form.is_valid()
        # Filter by whichever fields are valid; the invalid ones show their error.
        filters = selectors.AuditFilters(
            **{name: value for name, value in form.cleaned_data.items() if value not in (None, "")}
        )
    events = selectors.audit_event_list(trial=trial, filters=filters)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "filtered": filters != selectors.AuditFilters()}
    return _trial_page(request, actor, trial, "trials/audit.html", "trial-audit", context)


# --- quality control ------------------------------------------------------------------------------------------


@login_required
@require_GET
def qc_worklist(request, code):
    """The QC reviewer's worklist: timepoints waiting for QC or for a site's answer, oldest first."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        timepoints = selectors.qc_worklist(actor=actor, trial=trial)
    return _trial_page(request, actor, trial, "trials/qc_worklist.html", "qc-worklist", {"timepoints": timepoints})


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
        "queries": data["queries"],
        "can_start": timepoint.state == Timepoint.State.UPLOADED,
        "can_relabel": timepoint.state in QC_STATES,
        "reviewable": reviewable,
        "fail_form": fail_form or QCFailForm(series=_series_of(timepoint), auto_id="id_fail_%s"),
        "pass_form": pass_form or QCPassForm(auto_id="id_pass_%s"),
        "today": timezone.localdate(),
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
def qc_start(request, code, subject_code, visit_code):
    actor, trial, timepoint = _qc_timepoint(request, code, subject_code, visit_code)
    try:
        qc_services.qc_start(actor=request.user, timepoint=timepoint)
    except InvalidState as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("You are reviewing %(timepoint)s.") % {"timepoint": timepoint})
    return _to_qc_page(trial, timepoint)


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
    context = {"page": page, "state": state, "tabs": tabs, "today": timezone.localdate()}
    return _trial_page(request, actor, trial, "trials/query_list.html", "query-list", context)


def _query(request, code: str, pk: int) -> tuple[Actor, Trial, Query]:
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        query = selectors.query_get(actor=actor, trial=trial, pk=pk)
    return actor, trial, query


def _answers(actor: Actor, trial: Trial, query: Query) -> bool:
    """Only the coordinators of the subject's site answer a query."""
    return actor.sites(trial, "upload_to_site").filter(pk=query.timepoint.subject.site_id).exists()


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
        "reviews_qc": reviews_qc,
        "can_upload": can_answer and open_ and timepoint.state in UPLOADABLE_STATES,
        "answer_form": answer_form or QueryAnswerForm(auto_id="id_answer_%s"),
        "close_form": close_form or QueryCloseForm(auto_id="id_close_%s"),
        "overdue": open_ and query.due_date < timezone.localdate(),
        "can_view_images": _sees_images(actor, trial, timepoint.subject),
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
