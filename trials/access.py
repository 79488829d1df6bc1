"""Who is asking: a logged-in person, or a machine client whose token narrows them to one trial and role.

Every selector takes an Actor. Permissions come from django-guardian object permissions (granted by
the membership services); a token can only narrow them, never widen them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from .models import ApiToken, Site, Trial
from .roles import SITE_PERMS, TRIAL_PERMS


@dataclass
class Actor:
    """A user, optionally narrowed by the API token they authenticated with."""

    user: object
    token: ApiToken | None = None
    _checker: ObjectPermissionChecker | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_request(cls, request) -> Actor:
        auth = getattr(request, "auth", None)
        return cls(user=request.user, token=auth if isinstance(auth, ApiToken) else None)

    @property
    def is_authenticated(self) -> bool:
        return bool(getattr(self.user, "is_authenticated", False))

    @property
    def checker(self) -> ObjectPermissionChecker:
        if self._checker is None:
            self._checker = ObjectPermissionChecker(self.user)
        return self._checker

    def _token_allows_trial(self, trial_id: int, perm: str) -> bool:
        if self.token is None:
            return True
        membership = self.token.membership
        return membership.trial_id == trial_id and perm in TRIAL_PERMS.get(membership.role, ())

    def has_trial_perm(self, trial: Trial, perm: str) -> bool:
        """True if the actor holds `perm` (a codename such as 'manage_trial') on the trial."""
        if not self.is_authenticated or not self.user.is_active:
            return False
        return self._token_allows_trial(trial.pk, perm) and self.checker.has_perm(perm, trial)

    def trials(self, perm: str = "view_trial") -> QuerySet[Trial]:
        if not self.is_authenticated:
            return Trial.objects.none()
        qs = get_objects_for_user(
            self.user, f"trials.{perm}", klass=Trial, accept_global_perms=False, with_superuser=False
        )
        if self.token is not None:
            if perm not in TRIAL_PERMS.get(self.token.membership.role, ()):
                return Trial.objects.none()
            qs = qs.filter(pk=self.token.membership.trial_id)
        return qs

    def sites(self, trial: Trial, perm: str) -> QuerySet[Site]:
        """The trial's sites on which the actor holds a site permission such as 'upload_to_site'."""
        if not self.is_authenticated:
            return Site.objects.none()
        qs = get_objects_for_user(
            self.user,
            f"trials.{perm}",
            klass=Site.objects.filter(trial=trial),
            accept_global_perms=False,
            with_superuser=False,
        )
        if self.token is not None:
            membership = self.token.membership
            if membership.trial_id != trial.pk or perm not in SITE_PERMS.get(membership.role, ()):
                return Site.objects.none()
            qs = qs.filter(pk__in=membership.sites.values("pk"))
        return qs
