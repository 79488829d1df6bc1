"""Who is asking: a logged-in person, or a machine client whose token narrows them to one trial and role.

Every selector takes an Actor. Permissions come from django-guardian object permissions (granted by
the membership services); a token can only narrow them, never widen them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from guardian.models import UserObjectPermission
from guardian.shortcuts import get_user_perms

from .models import ApiToken, Site, Trial
from .roles import SITE_PERMS, TRIAL_PERMS


@dataclass
class Actor:
    """A user, optionally narrowed by the API token they authenticated with.

    Rights come only from the person's memberships (the object permissions their services grant): a
    superuser with no role in a trial is an outsider there, like anyone else.
    """

    user: object
    token: ApiToken | None = None
    _trial_perms: dict[int, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)
    _accesses: dict[str, TrialAccess | None] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_request(cls, request) -> Actor:
        auth = getattr(request, "auth", None)
        return cls(user=request.user, token=auth if isinstance(auth, ApiToken) else None)

    @property
    def is_authenticated(self) -> bool:
        return bool(getattr(self.user, "is_authenticated", False))

    def perms_on(self, trial: Trial) -> frozenset[str]:
        """The codenames granted to the user on the trial itself; never guardian's superuser shortcut."""
        if trial.pk not in self._trial_perms:
            self._trial_perms[trial.pk] = frozenset(get_user_perms(self.user, trial))
        return self._trial_perms[trial.pk]

    def access(self, code: str) -> TrialAccess | None:
        """`trial_access` for trial `code`, read once for this actor (who lives for one request), so that the
        trial and then an object in it are checked from the same two queries."""
        if code not in self._accesses:
            self._accesses[code] = trial_access(self, code)
        return self._accesses[code]

    def access_to(self, trial: Trial) -> TrialAccess | None:
        """`access` for this very trial row: None if the actor holds nothing on it (or its code names another)."""
        access = self.access(trial.code)
        return access if access is not None and access.trial.pk == trial.pk else None

    def _token_allows_trial(self, trial_id: int, perm: str) -> bool:
        if self.token is None:
            return True
        membership = self.token.membership
        return membership.trial_id == trial_id and perm in TRIAL_PERMS.get(membership.role, ())

    def has_trial_perm(self, trial: Trial, perm: str) -> bool:
        """True if the actor holds `perm` (a codename such as 'manage_trial') on the trial."""
        if not self.is_authenticated or not self.user.is_active:
            return False
        access = self._accesses.get(trial.code)
        if access is not None and access.trial.pk == trial.pk:
            # Already read for this request (`access`), from the same rows and narrowed by the token alike.
            return perm in access.trial_perms
        return self._token_allows_trial(trial.pk, perm) and perm in self.perms_on(trial)

    def _granted(self, model: type[Trial] | type[Site], perm: str) -> QuerySet:
        """The objects of `model` on which the user holds `perm` as an object permission of their own: one
        subquery. Memberships grant only user permissions (no groups, no global ones, no superuser shortcut);
        guardian's general `get_objects_for_user` asks the same, at some 8 ms of Python per call, and every
        page's inbox badge asks four times."""
        granted = UserObjectPermission.objects.filter(
            user=self.user, content_type=ContentType.objects.get_for_model(model), permission__codename=perm
        ).values("object_pk")
        return model.objects.alias(pk_text=Cast("pk", CharField())).filter(pk_text__in=granted)

    def trials(self, perm: str = "view_trial") -> QuerySet[Trial]:
        if not self.is_authenticated:
            return Trial.objects.none()
        qs = self._granted(Trial, perm)
        if self.token is not None:
            if perm not in TRIAL_PERMS.get(self.token.membership.role, ()):
                return Trial.objects.none()
            qs = qs.filter(pk=self.token.membership.trial_id)
        return qs

    def sites(self, trial: Trial, perm: str) -> QuerySet[Site]:
        """The trial's sites on which the actor holds a site permission such as 'upload_to_site'."""
        return self.sites_anywhere(perm).filter(trial=trial)

    def site_ids(self, trial: Trial, perm: str) -> set[int]:
        """The ids of `sites(trial, perm)`, from the permissions read once a request with the trial (`access`):
        no query of their own on a page that has read them."""
        access = self.access_to(trial)
        return set(access.sites_with(perm)) if access is not None else set()

    def sites_anywhere(self, perm: str) -> QuerySet[Site]:
        """The sites of every trial on which the actor holds a site permission (a token: of its trial only)."""
        if not self.is_authenticated:
            return Site.objects.none()
        qs = self._granted(Site, perm)
        if self.token is not None:
            membership = self.token.membership
            if perm not in SITE_PERMS.get(membership.role, ()):
                return Site.objects.none()
            qs = qs.filter(pk__in=membership.sites.values("pk"))
        return qs


@dataclass(frozen=True)
class TrialAccess:
    """One trial's permissions for one actor, read in two small queries (for hot paths such as DICOMweb)."""

    trial: Trial
    trial_perms: frozenset[str]
    site_perms: dict[int, frozenset[str]]  # site id -> codenames

    def sites_with(self, perm: str) -> list[int]:
        return [site_id for site_id, perms in self.site_perms.items() if perm in perms]

    def image_sites(self) -> set[int] | None:
        """Whose images the trial's DICOMweb root shows: None for every site (trial admins, QC reviewers),
        else the sites of a coordinator (empty for readers, adjudicators and sponsors)."""
        if "view_all_subjects" in self.trial_perms:
            return None
        return set(self.sites_with("view_site_subjects"))

    def sees_subjects(self) -> bool:
        """Whether the actor's role includes a subject list: all of them, or those of some site of theirs."""
        sites = self.image_sites()
        return sites is None or bool(sites)

    def sees_site(self, site_id: int) -> bool:
        """Whether the actor sees the subjects of this site, their uploads and images (`subject_list`'s rule)."""
        sites = self.image_sites()
        return sites is None or site_id in sites


def trial_access(actor: Actor, code: str) -> TrialAccess | None:
    """The actor's permissions on trial `code` and its sites, narrowed by their token; None if they hold none."""
    if not actor.is_authenticated or not actor.user.is_active:
        return None
    trial = Trial.objects.filter(code=code).first()
    if trial is None:
        return None
    content_types = ContentType.objects.get_for_models(Trial, Site)
    trial_ct, site_ct = content_types[Trial], content_types[Site]
    rows = (
        UserObjectPermission.objects.filter(user=actor.user)
        .filter(
            Q(content_type=trial_ct, object_pk=str(trial.pk))
            | Q(
                content_type=site_ct,
                object_pk__in=Site.objects.filter(trial=trial)
                .values("pk")
                .annotate(pk_text=Cast("pk", CharField()))
                .values("pk_text"),
            )
        )
        .values_list("content_type_id", "object_pk", "permission__codename")
    )
    trial_perms: set[str] = set()
    site_perms: dict[int, set[str]] = {}
    for content_type_id, object_pk, codename in rows:
        if content_type_id == trial_ct.pk:
            trial_perms.add(codename)
        else:
            site_perms.setdefault(int(object_pk), set()).add(codename)
    if actor.token is not None:
        membership = actor.token.membership
        if membership.trial_id != trial.pk:
            return None
        trial_perms &= TRIAL_PERMS.get(membership.role, frozenset())
        allowed_sites = set(membership.sites.values_list("pk", flat=True))
        site_perms = {
            pk: perms & SITE_PERMS.get(membership.role, frozenset())
            for pk, perms in site_perms.items()
            if pk in allowed_sites
        }
    if "view_trial" not in trial_perms:
        return None
    return TrialAccess(trial, frozenset(trial_perms), {pk: frozenset(p) for pk, p in site_perms.items()})
