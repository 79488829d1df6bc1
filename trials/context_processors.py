"""What every page's frame needs from the trials app: the person's inbox counts for the top bar."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from ctims import two_factor

from .access import Actor
from .inbox import inbox_counts


def inbox(request) -> dict:
    """`inbox_counts` for the top bar: one query, run only if the page shows the count (base.html's
    `inbox_count` block; error pages leave it out), and never for a session still owing its second factor
    (the person has not finished signing in: the two-factor pages show no inbox)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    if not _signed_in(user):
        return {}
    return {"inbox_counts": SimpleLazyObject(lambda: inbox_counts(Actor(user=user)))}


def _signed_in(user) -> bool:
    """Whether the person is through both factors, or needs no second one (django-otp marks the user)."""
    is_verified = getattr(user, "is_verified", None)
    if is_verified is None or is_verified():
        return True
    return not two_factor.required_for(user)
