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
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ctims.exceptions import NotFound, NotPermitted, ValidationFailed

from . import selectors, services
from .access import Actor
from .forms import (
    AuditFilterForm,
    MembershipGrantForm,
    ProtocolCreateForm,
    SiteCreateForm,
    SubjectEnrollForm,
    TokenCreateForm,
    TrialCreateForm,
    TrialEditForm,
    VisitCreateForm,
    add_service_errors,
)
from .ingest.services import UPLOADABLE_STATES
from .models import Instance, Timepoint, Trial, Upload, UploadItem

AUDIT_PAGE_SIZE = 50


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
    context = {"visits": visits, "rows": rows, "grid": grid, "form": form} | _upload_links(actor, trial)
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
    context = {
        "subject": subject,
        "timepoints": timepoints,
        "can_view_images": _sees_images(actor, trial, subject),
    } | _upload_links(actor, trial)
    return _trial_page(request, actor, trial, "trials/subject_detail.html", "trial-subjects", context)


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
