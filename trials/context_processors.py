"""What every page's frame needs from the trials app: the person's inbox counts and links for the top bar."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from ctims import two_factor

from .access import Actor
from .inbox import Counts, inbox_counts, top_bar_links


def inbox(request) -> dict:
    """`inbox_counts` for the top bar: one query, run only if the page shows the count (base.html's
    `inbox_count` block; error pages leave it out), and never for a session still owing its second factor
    (the person has not finished signing in: the two-factor pages show no inbox).

    `top_bar_links` (such as "My reads") come with the counts, which base.html shows first; a page that shows no
    count (an error page, a two-factor page) asks for them alone, in one query, as base.html did before."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    actor = Actor(user=user)
    if not _signed_in(user):
        return {"top_bar_links": SimpleLazyObject(lambda: top_bar_links(actor))}
    counted: list[Counts] = []

    def counts() -> Counts:
        counted.append(inbox_counts(actor))
        return counted[0]

    def links() -> frozenset[str]:
        return counted[0].links if counted else top_bar_links(actor)

    return {"inbox_counts": SimpleLazyObject(counts), "top_bar_links": SimpleLazyObject(links)}


def _signed_in(user) -> bool:
    """Whether the person is through both factors, or needs no second one (django-otp marks the user)."""
    is_verified = getattr(user, "is_verified", None)
    if is_verified is None or is_verified():
        return True
    return not two_factor.required_for(user)
