"""The person's inbox: what waits for them in every trial they are in, each entry linking to where they act."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import selectors
from ..access import Actor
from ..inbox import KIND_LABELS, inbox_entries


@login_required
@require_GET
def inbox(request):
    """Everything waiting for the person, overdue first; `?trial=CODE` and `?kind=` narrow the list."""
    actor = Actor.from_request(request)
    trials = list(selectors.trial_list(actor=actor))
    chosen = next((t for t in trials if t.code == request.GET.get("trial")), None)
    kind = request.GET.get("kind", "")
    if kind not in KIND_LABELS:
        kind = ""
    entries = inbox_entries(actor, trial=chosen)
    by_kind: dict[str, int] = {}
    for entry in entries:
        by_kind[entry.kind] = by_kind.get(entry.kind, 0) + 1
    tabs = [("", None, len(entries))] + [(k, label, by_kind[k]) for k, label in KIND_LABELS.items() if k in by_kind]
    if kind:
        entries = [e for e in entries if e.kind == kind]
    context = {
        "entries": entries,
        "tabs": tabs,
        "kind": kind,
        "trials": trials,
        "chosen_trial": chosen,
        "overdue": sum(1 for e in entries if e.overdue),
    }
    return render(request, "inbox.html", context)
