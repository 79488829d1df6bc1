"""Helpers every page of a trial uses: access through the selectors, and the trial's page frame."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _

from ctims.exceptions import NotFound, NotPermitted

from .. import selectors
from ..access import Actor
from ..inbox import inbox_entries
from ..models import Timepoint, Trial

# How many of the inbox's entries the home page and a trial's overview show before "all in your inbox".
HOME_ENTRIES = 8

# Where a QC reviewer still has work on a timepoint: the worklist's states.
QC_STATES = (Timepoint.State.UPLOADED, Timepoint.State.IN_QC, Timepoint.State.QUERY_OPEN)


@login_required
def home(request):
    """The trials the person holds a role in, with their roles, and the first of what waits for them."""
    actor = Actor.from_request(request)
    trials = selectors.trial_list(actor=actor)
    roles: dict[int, list[str]] = {}
    for m in request.user.memberships.filter(trial__in=trials):
        roles.setdefault(m.trial_id, []).append(m.get_role_display())
    waiting = inbox_entries(actor)
    return render(
        request,
        "home.html",
        {
            "trials": [(t, roles.get(t.pk, [])) for t in trials],
            "can_create_trial": request.user.has_perm("trials.add_trial"),
            "waiting": waiting[:HOME_ENTRIES],
            "waiting_more": max(len(waiting) - HOME_ENTRIES, 0),
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


def _trial_page(request, actor: Actor, trial: Trial, template: str, current: str, context: dict | None = None):
    """Render a page inside a trial, with the trial's navigation limited to what the person's roles allow."""
    manages = actor.has_trial_perm(trial, "manage_trial")
    links = [
        ("trial-detail", _("Overview"), True),
        ("trial-subjects", _("Subjects"), selectors.sees_subjects(actor=actor, trial=trial)),
        ("qc-worklist", _("QC"), actor.has_trial_perm(trial, "review_qc")),
        ("query-list", _("Queries"), selectors.sees_subjects(actor=actor, trial=trial)),
        ("trial-schedule", _("Schedule"), manages),
        ("trial-sites", _("Sites"), manages),
        ("trial-people", _("People"), manages),
        ("read-design", _("Reading"), manages),
        ("read-results", _("Read results"), manages or actor.has_trial_perm(trial, "view_results")),
        ("read-transfers", _("Transfers"), manages or actor.has_trial_perm(trial, "view_results")),
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
