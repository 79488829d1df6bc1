"""Pages of a trial's set-up: the trial, sites, schedule, people, API tokens and the audit trail."""

from __future__ import annotations

from dataclasses import asdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ctims.audit import audit_export
from ctims.audit_display import event_view
from ctims.exceptions import InvalidState, ValidationFailed
from ctims.models import AuditEvent

from .. import selectors, services
from ..access import Actor
from ..forms import (
    AuditFilterForm,
    MembershipGrantForm,
    ProtocolCreateForm,
    SiteCreateForm,
    TokenCreateForm,
    TrialCreateForm,
    TrialEditForm,
    VisitCreateForm,
    add_service_errors,
)
from ..inbox import inbox_entries
from ..models import Role, Timepoint, Trial
from ._common import HOME_ENTRIES, _posted, _trial, _trial_page, scoped

AUDIT_PAGE_SIZE = 50

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
        # Where each role's work is, for the overview's "Go to".
        "sees_subjects": selectors.sees_subjects(actor=actor, trial=trial),
        "reviews_qc": actor.has_trial_perm(trial, "review_qc"),
        "sees_results": manages or sees_results,
        "reads_cases": request.user.memberships.filter(trial=trial, role__in=[Role.READER, Role.ADJUDICATOR]).exists(),
    }
    waiting = inbox_entries(actor, trial=trial)
    context["waiting"] = waiting[:HOME_ENTRIES]
    context["waiting_more"] = max(len(waiting) - HOME_ENTRIES, 0)
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
        except (ValidationFailed, InvalidState) as exc:
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
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Imaging protocol %(protocol)s was added to %(visit)s.")
                % {"protocol": protocol, "visit": visit.label},
            )
            return redirect("trial-schedule", code=trial.code)
    return _schedule_page(request, actor, trial, failed_visit=visit, failed_form=form)


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
            invitation, _secret = services.invitation_create(
                actor=request.user,
                trial=trial,
                email=data["email"],
                full_name=data["full_name"],
                role=data["role"],
                sites=data["sites"],
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            person = {"person": invitation.email, "role": invitation.get_role_display()}
            if getattr(invitation, "email_failed", False):
                messages.warning(
                    request,
                    _(
                        "The invitation of %(person)s to the role %(role)s is saved, but its email could not be sent: "
                        "ask the operator to check the mail settings, then withdraw it and invite again."
                    )
                    % person,
                )
            else:
                messages.success(
                    request,
                    _(
                        "An invitation to the role %(role)s was sent to %(person)s; "
                        "the role is theirs once they accept it."
                    )
                    % person,
                )
            return redirect("trial-people", code=trial.code)
    memberships = selectors.membership_list(trial=trial).order_by("user__email", "role")
    context = {"memberships": memberships, "form": form, "invitations": selectors.invitations_open(trial=trial)}
    return _trial_page(request, actor, trial, "trials/people.html", "trial-people", context)


@login_required
@require_POST
def invitation_withdraw(request, code, pk):
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    invitation = selectors.invitations_open(trial=trial).filter(pk=pk).first()
    if invitation is None:
        raise Http404(_("No such invitation."))
    try:
        services.invitation_withdraw(actor=request.user, invitation=invitation)
    except InvalidState as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("The invitation of %(person)s to the role %(role)s was withdrawn; its link no longer works.")
            % {"person": invitation.email, "role": invitation.get_role_display()},
        )
    return redirect("trial-people", code=trial.code)


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
    except (ValidationFailed, InvalidState) as exc:
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
    form, filters = _audit_filters(request, trial)
    events = (
        selectors.audit_event_list(trial=trial, filters=filters) if filters is not None else AuditEvent.objects.none()
    )
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = [event_view(event) for event in page.object_list]  # in the reader's language
    export_query = urlencode({k: v for k, v in request.GET.items() if k != "page"})
    context = {
        "form": form,
        "page": page,
        "filtered": filters != selectors.AuditFilters(),  # None (a filter refused) too
        "export_url": reverse("trial-audit-export", kwargs={"code": trial.code})
        + (f"?{export_query}" if export_query else ""),
    }
    return _trial_page(request, actor, trial, "trials/audit.html", "trial-audit", context)


def _audit_filters(request, trial: Trial) -> tuple[AuditFilterForm, selectors.AuditFilters | None]:
    """The audit filter form from the query string, and its filters; None when a field cannot be used (its error
    shows on the page): a filter left out would list more than was asked for."""
    form = AuditFilterForm(request.GET or None, actions=selectors.audit_actions(trial=trial))
    if not form.is_bound:
        return form, selectors.AuditFilters()
    if not form.is_valid():
        return form, None
    return form, selectors.AuditFilters(
        **{name: value for name, value in form.cleaned_data.items() if value not in (None, "")}
    )


@login_required
@require_GET
def trial_audit_export(request, code):
    """The trial's audit trail as CSV, filtered like the page, headed by the chain's verification; recorded."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "view_audit")
    form, filters = _audit_filters(request, trial)
    if filters is None:  # never a wider export than asked for
        reasons = [
            f"{form.fields[name].label if name in form.fields else ''}: {' '.join(errors)}".lstrip(": ")
            for name, errors in form.errors.items()
        ]
        return HttpResponseBadRequest("\n".join(reasons) + "\n", content_type="text/plain; charset=utf-8")
    used = {name: str(value) for name, value in asdict(filters).items() if value not in (None, "")}
    lines = audit_export(
        actor=request.user,
        obj=trial,
        trial_id=trial.pk,
        events=selectors.audit_event_list(trial=trial, filters=filters),
        filters=used,
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{trial.code}-audit-{stamp}.csv"'
    add_never_cache_headers(response)  # no-store: an export is never kept by a browser or proxy
    return response
