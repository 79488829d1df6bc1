"""Server-rendered pages of trials."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .access import Actor
from .selectors import trial_list


@login_required
def home(request):
    """The trials the person holds a role in, with their roles."""
    trials = trial_list(actor=Actor.from_request(request))
    roles: dict[int, list[str]] = {}
    for m in request.user.memberships.filter(trial__in=trials):
        roles.setdefault(m.trial_id, []).append(m.get_role_display())
    return render(
        request,
        "home.html",
        {"trials": [(t, roles.get(t.pk, [])) for t in trials], "can_create_trial": request.user.has_perm("trials.add_trial")},
    )
