"""What every page's frame needs from the trials app: the person's inbox counts for the top bar."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from .access import Actor
from .inbox import inbox_counts


def inbox(request) -> dict:
    """`inbox_counts` for the top bar, counted only if the page shows it (a handful of queries, one per kind)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"inbox_counts": SimpleLazyObject(lambda: inbox_counts(Actor(user=user)))}
