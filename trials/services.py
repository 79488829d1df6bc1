"""State changes of trials, sites, visits, protocols, subjects and roles; each writes its audit event.

Services assume the caller has checked access (views do, through the selectors); they check every
rule about the data itself and change nothing when a rule is broken.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, NotPermitted, ValidationFailed
from ctims.links import site_link

from .models import (
    ApiToken,
    ImagingProtocol,
    Invitation,
    Membership,
    Role,
    Site,
    Subject,
    Timepoint,
    Trial,
    Visit,
    hash_token_key,
    validate_subject_code,
    validate_subject_pattern,
)
from .roles import ROLES_WITH_SITES, SITE_PERMS, TRIAL_PERMS

log = logging.getLogger(__name__)

User = get_user_model()


def _clean(instance, exclude: Iterable[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _check_subject_pattern(trial: Trial) -> None:
    """The trial's pattern (valid as a field) makes codes that fit with the trial's own code too; each site's code
    is checked when a subject is enrolled there."""
    try:
        validate_subject_code(trial.subject_code_pattern.format(trial=trial.code, site="S", n=1))
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), fields={"subject_code_pattern": exc.messages}) from None


def trial_create(
    *,
    actor,
    code: str,
    title: str,
    sponsor: str,
    protocol_number: str,
    status: str = Trial.Status.SETUP,
    subject_code_pattern: str | None = None,
) -> Trial:
    """Create a trial with a fresh pseudonym key and make its creator the trial admin."""
    trial = Trial(
        code=code.strip().upper(),
        title=title.strip(),
        sponsor=sponsor.strip(),
        protocol_number=protocol_number.strip(),
        status=status,
    )
    if subject_code_pattern:
        trial.subject_code_pattern = subject_code_pattern.strip()
    _clean(trial)
    _check_subject_pattern(trial)
    with transaction.atomic():
        trial.save()
        audit_record(
            actor=actor,
            action="trial.create",
            obj=trial,
            trial_id=trial.pk,
            summary={"code": trial.code, "title": trial.title, "sponsor": trial.sponsor, "status": trial.status},
        )
        membership_grant(actor=actor, trial=trial, user=actor, role=Role.TRIAL_ADMIN)
    return trial


DEID_OPTIONS = (
    "deid_retain_dates_modified",
    "deid_clean_descriptors",
    "deid_retain_device_identity",
    "deid_retain_patient_characteristics",
    "deid_private_safelist",
    "deid_burned_in_text",
    "deid_kept_text_attributes",
)
TWO_FACTOR_OPTIONS = ("two_factor_roles", "two_factor_at_signing")
TRIAL_EDITABLE = (
    "title",
    "sponsor",
    "protocol_number",
    "status",
    "subject_code_pattern",
    *DEID_OPTIONS,
    *TWO_FACTOR_OPTIONS,
    "deid_paths",  # where images are de-identified may change at any time: both paths give the same pseudonyms
)


def trial_update(*, actor, trial: Trial, **changes) -> Trial:
    """Change a trial's descriptive fields or status; the code and pseudonym key never change."""
    unknown = set(changes) - set(TRIAL_EDITABLE)
    if unknown:
        raise ValidationFailed(_("These fields cannot be changed: %(names)s.") % {"names": ", ".join(sorted(unknown))})
    new_pattern = changes.get("subject_code_pattern", trial.subject_code_pattern)
    if new_pattern != trial.subject_code_pattern and trial.subjects.exists():
        raise ValidationFailed(
            _("The subject code pattern cannot change once subjects are enrolled."),
            fields={"subject_code_pattern": [_("Subjects are already enrolled.")]},
        )
    with transaction.atomic():
        trial = Trial.objects.select_for_update().get(pk=trial.pk)
        changed_options = [n for n in DEID_OPTIONS if n in changes and changes[n] != getattr(trial, n)]
        if changed_options and trial.studies.exists():
            raise ValidationFailed(
                _("De-identification options cannot change once images are stored: the trial's images must agree."),
                fields={name: [_("Images are already stored.")] for name in changed_options},
            )
        if changes.get("deid_paths", Trial.DeidPaths.SERVER) != Trial.DeidPaths.SERVER and (
            trial.pseudonym_scheme != Trial.PseudonymScheme.SUBJECT
        ):
            raise ValidationFailed(
                _(
                    "This trial stored images before subject keys existed: its images are de-identified on the "
                    "server only, so that their pseudonyms stay the same."
                ),
                fields={"deid_paths": [_("Only 'on the server' is possible for this trial.")]},
            )
        before = {name: getattr(trial, name) for name in changes}
        for name, value in changes.items():
            setattr(trial, name, value.strip() if isinstance(value, str) else value)
        if trial.subject_code_pattern != before.get("subject_code_pattern", trial.subject_code_pattern):
            _clean(trial)
            _check_subject_pattern(trial)
        else:  # a pattern from before patterns were checked does not stop other changes
            _clean(trial, exclude=["subject_code_pattern"])
        diff = {n: [before[n], getattr(trial, n)] for n in changes if before[n] != getattr(trial, n)}
        if not diff:
            return trial
        trial.save(update_fields=list(diff))
        audit_record(actor=actor, action="trial.update", obj=trial, trial_id=trial.pk, summary={"changes": diff})
    return trial


def site_create(*, actor, trial: Trial, code: str, name: str, country: str) -> Site:
    """Add an investigator site to a trial."""
    site = Site(trial=trial, code=code.strip().upper(), name=name.strip(), country=country.strip().upper())
    if trial.sites.filter(code=site.code).exists():
        raise ValidationFailed(
            _("A site with the code %(code)s already exists in this trial.") % {"code": site.code},
            fields={"code": [_("Already used in this trial.")]},
        )
    _clean(site)
    with transaction.atomic():
        site.save()
        audit_record(
            actor=actor,
            action="site.create",
            obj=site,
            trial_id=trial.pk,
            summary={"code": site.code, "name": site.name, "country": site.country.code},
        )
    return site


def _check_schedule(trial: Trial, visit: Visit) -> None:
    """A visit's window must not reach into a neighbour's: the schedule must say which visit a scan belongs to."""
    others = list(trial.visits.exclude(pk=visit.pk).order_by("order"))
    for other in others:
        if other.order < visit.order and other.target_day >= visit.target_day:
            raise ValidationFailed(
                _(
                    "Visit %(code)s comes after %(other)s in the schedule, so its target day must be later than day %(day)s."
                )
                % {"code": visit.code, "other": other.code, "day": other.target_day},
                fields={"target_day": [_("Must be later than the visit before it.")]},
            )
        if other.order > visit.order and other.target_day <= visit.target_day:
            raise ValidationFailed(
                _(
                    "Visit %(code)s comes before %(other)s in the schedule, so its target day must be earlier than day %(day)s."
                )
                % {"code": visit.code, "other": other.code, "day": other.target_day},
                fields={"target_day": [_("Must be earlier than the visit after it.")]},
            )
        if visit.earliest_day <= other.latest_day and other.earliest_day <= visit.latest_day:
            raise ValidationFailed(
                _(
                    "The window of %(code)s (days %(a1)s to %(a2)s) overlaps the window of %(other)s "
                    "(days %(b1)s to %(b2)s): a scan could belong to both."
                )
                % {
                    "code": visit.code,
                    "a1": visit.earliest_day,
                    "a2": visit.latest_day,
                    "other": other.code,
                    "b1": other.earliest_day,
                    "b2": other.latest_day,
                },
                fields={
                    "window_before": [_("Overlaps another visit.")],
                    "window_after": [_("Overlaps another visit.")],
                },
            )


def visit_name_clashes(visit: Visit, other: Visit) -> list[str]:
    """The names two visits of a trial share, of those each must have of its own: "label" (people tell visits
    apart by it; compared without case and surrounding space) and "sdtm_name" (the sponsor's SDTM files pair VISIT
    with VISITNUM one to one; VISIT as reads.sdtm writes it, Visit.sdtm_visit). Also read by `manage.py recheck`."""
    clashes = []
    if other.label.strip().casefold() == visit.label.strip().casefold():
        clashes.append("label")
    if other.sdtm_visit == visit.sdtm_visit:
        clashes.append("sdtm_name")
    return clashes


def _check_visit_names(trial: Trial, visit: Visit) -> None:
    """Each visit has a label and an SDTM visit name of its own (`visit_name_clashes`)."""
    for other in trial.visits.exclude(pk=visit.pk):
        clashes = visit_name_clashes(visit, other)
        if "label" in clashes:
            raise ValidationFailed(
                _("Visit %(other)s is already labelled %(label)s: give each visit a label of its own.")
                % {"other": other.code, "label": other.label},
                fields={"label": [_("Already the label of visit %(other)s.") % {"other": other.code}]},
            )
        if "sdtm_name" in clashes:
            raise ValidationFailed(
                _(
                    "Visit %(other)s already goes to the sponsor's SDTM files as %(name)s, and each SDTM visit name "
                    "must belong to one visit: give this visit another SDTM visit name."
                )
                % {"other": other.code, "name": other.sdtm_visit},
                fields={"sdtm_name": [_("Already the SDTM visit name of visit %(other)s.") % {"other": other.code}]},
            )


def visit_create(
    *,
    actor,
    trial: Trial,
    code: str,
    label: str,
    order: int,
    target_day: int,
    window_before: int = 0,
    window_after: int = 0,
    sdtm_name: str = "",
) -> Visit:
    """Add a visit to the schedule, and an expected timepoint for it to every enrolled subject."""
    trial_check_open(trial)
    visit = Visit(
        trial=trial,
        code=code.strip().upper(),
        label=label.strip(),
        sdtm_name=sdtm_name.strip(),
        order=order,
        target_day=target_day,
        window_before=window_before,
        window_after=window_after,
    )
    _clean(visit)
    with transaction.atomic():
        Trial.objects.select_for_update().get(pk=trial.pk)  # one schedule change at a time per trial
        _check_schedule(trial, visit)
        _check_visit_names(trial, visit)
        visit.save()
        Timepoint.objects.bulk_create([Timepoint(subject=s, visit=visit) for s in trial.subjects.all()])
        audit_record(
            actor=actor,
            action="visit.create",
            obj=visit,
            trial_id=trial.pk,
            summary={
                "code": visit.code,
                "label": visit.label,
                "sdtm_name": visit.sdtm_visit,
                "order": visit.order,
                "target_day": visit.target_day,
                "window": [visit.window_before, visit.window_after],
            },
        )
    return visit


def protocol_create(
    *,
    actor,
    visit: Visit,
    modality: str,
    body_region: str,
    contrast: str,
    max_slice_thickness_mm: Decimal | str | float,
    same_scanner_as_baseline: bool = False,
) -> ImagingProtocol:
    """State what a visit's imaging must contain."""
    trial_check_open(visit.trial)
    protocol = ImagingProtocol(
        visit=visit,
        modality=modality,
        body_region=body_region,
        contrast=contrast,
        max_slice_thickness_mm=Decimal(str(max_slice_thickness_mm)),
        same_scanner_as_baseline=same_scanner_as_baseline,
    )
    if visit.protocols.filter(modality=modality, body_region=body_region).exists():
        raise ValidationFailed(
            _("%(visit)s already has a protocol for this modality and body region.") % {"visit": visit.label},
            fields={"body_region": [_("Already defined for this visit.")]},
        )
    _clean(protocol)
    with transaction.atomic():
        protocol.save()
        audit_record(
            actor=actor,
            action="protocol.create",
            obj=protocol,
            trial_id=visit.trial_id,
            summary={
                "visit": visit.code,
                "modality": modality,
                "body_region": body_region,
                "contrast": contrast,
                "max_slice_thickness_mm": str(protocol.max_slice_thickness_mm),
                "same_scanner_as_baseline": same_scanner_as_baseline,
            },
        )
    return protocol


def subject_enroll(*, actor, site: Site) -> Subject:
    """Enroll a subject at a site: the code comes from the trial's pattern and the next free number."""
    trial = site.trial
    trial_check_open(trial)
    per_site = "{site" in trial.subject_code_pattern
    with transaction.atomic():
        # Lock what numbers are drawn from so two enrollments never take the same number.
        if per_site:
            Site.objects.select_for_update().get(pk=site.pk)
            taken = Subject.objects.filter(site=site)
        else:
            Trial.objects.select_for_update().get(pk=trial.pk)
            taken = Subject.objects.filter(trial=trial)
        number = (taken.aggregate(m=Max("number"))["m"] or 0) + 1
        try:
            # A pattern set before patterns were checked may make codes no page, image or SDTM file can hold.
            validate_subject_pattern(trial.subject_code_pattern)
            code = trial.subject_code_pattern.format(trial=trial.code, site=site.code, n=number)
            validate_subject_code(code)
        except ValidationError as exc:
            raise ValidationFailed(
                _("Subjects cannot be enrolled with this subject code pattern: %(why)s")
                % {"why": " ".join(exc.messages)}
            ) from None
        if Subject.objects.filter(trial=trial, code=code).exists():
            raise ValidationFailed(
                _("The subject code %(code)s is already taken in this trial; check the subject code pattern.")
                % {"code": code}
            )
        subject = Subject(trial=trial, site=site, code=code, number=number)
        _clean(subject)
        subject.save()
        Timepoint.objects.bulk_create([Timepoint(subject=subject, visit=v) for v in trial.visits.all()])
        audit_record(
            actor=actor,
            action="subject.enroll",
            obj=subject,
            trial_id=trial.pk,
            summary={"code": code, "site": site.code},
        )
    return subject


def _sync_permissions(user, trial: Trial) -> None:
    """Make the user's guardian permissions on the trial and its sites exactly what their memberships give."""
    wanted: set[tuple[str, str, int]] = set()
    for membership in Membership.objects.filter(user=user, trial=trial).prefetch_related("sites"):
        wanted |= {("trial", perm, trial.pk) for perm in TRIAL_PERMS[membership.role]}
        for site in membership.sites.all():
            wanted |= {("site", perm, site.pk) for perm in SITE_PERMS.get(membership.role, ())}

    site_ids = list(trial.sites.values_list("pk", flat=True))
    held: set[tuple[str, str, int]] = set()
    for uop in UserObjectPermission.objects.filter(user=user).select_related("permission", "content_type"):
        model, pk = uop.content_type.model, int(uop.object_pk)
        if (model == "trial" and pk == trial.pk) or (model == "site" and pk in site_ids):
            held.add((model, uop.permission.codename, pk))

    objects = {"trial": {trial.pk: trial}, "site": {s.pk: s for s in trial.sites.all()}}
    for kind, perm, pk in wanted - held:
        assign_perm(f"trials.{perm}", user, objects[kind][pk])
    for kind, perm, pk in held - wanted:
        remove_perm(f"trials.{perm}", user, objects[kind][pk])


# Roles that read a trial's images blind, and the roles that see what they are blind to (sites, real dates,
# results): one person never holds roles of both kinds in one trial.
BLINDED_ROLES = frozenset({Role.READER, Role.ADJUDICATOR})


def _check_grant(*, trial: Trial, role: str, sites: list[Site], user=None) -> None:
    """The rules of a role in a trial: a known role, the trial's own sites, sites for coordinators only, and
    (for `user`, the person if they have an account) no blinded role beside an unblinded one."""
    if role not in Role.values:
        raise ValidationFailed(_("Unknown role."), fields={"role": [_("Unknown role.")]})
    if user is not None:
        held = set(Membership.objects.filter(trial=trial, user=user).values_list("role", flat=True))
        conflicting = sorted(r for r in held if (r in BLINDED_ROLES) != (role in BLINDED_ROLES))
        if conflicting:
            message = _(
                "%(person)s is %(roles)s in %(trial)s. Readers and adjudicators read blind: they cannot also hold "
                "a role that sees the trial's sites, real dates or results (trial admin, site coordinator, QC "
                "reviewer, sponsor viewer), nor the reverse. Invite another person."
            ) % {
                "person": user.email,
                "roles": ", ".join(str(Role(r).label) for r in conflicting),
                "trial": trial.code,
            }
            raise ValidationFailed(message, fields={"role": [message]})
    if any(site.trial_id != trial.pk for site in sites):
        raise ValidationFailed(
            _("A site of another trial cannot be part of a role in %(trial)s.") % {"trial": trial.code},
            fields={"sites": [_("Choose sites of this trial.")]},
        )
    if role in ROLES_WITH_SITES and not sites:
        raise ValidationFailed(
            _("A site coordinator needs at least one site."), fields={"sites": [_("Choose at least one site.")]}
        )
    if role not in ROLES_WITH_SITES and sites:
        raise ValidationFailed(
            _("Only site coordinators work for particular sites."), fields={"sites": [_("Leave empty for this role.")]}
        )


def membership_grant(*, actor, trial: Trial, user, role: str, sites: Iterable[Site] = ()) -> Membership:
    """Give a person a role in a trial (a coordinator for one or more of its sites); re-granting updates the sites.

    People are given roles through invitations they accept (invitation_create); this is what acceptance, the
    demo and the tests' cast call.
    """
    sites = list(sites)
    _check_grant(trial=trial, role=role, sites=sites, user=user)
    if not user.is_active:
        raise ValidationFailed(_("This account is deactivated."))
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, trial=trial, role=role)
        before = sorted(membership.sites.values_list("code", flat=True))
        membership.sites.set(sites)
        after = sorted(s.code for s in sites)
        _sync_permissions(user, trial)
        if created or before != after:
            audit_record(
                actor=actor,
                action="membership.grant" if created else "membership.update",
                obj=membership,
                trial_id=trial.pk,
                summary={"user": user.email, "role": role, "sites": after}
                | ({} if created else {"changes": {"sites": [before, after]}}),  # what was, beside what is
            )
    return membership


def membership_revoke(*, actor, membership: Membership) -> None:
    """Take a role away; the person keeps the permissions of their other roles in the trial, if any."""
    trial, user = membership.trial, membership.user
    if membership.role == Role.TRIAL_ADMIN:
        others = Membership.objects.filter(trial=trial, role=Role.TRIAL_ADMIN).exclude(pk=membership.pk)
        if not others.filter(user__is_active=True).exists():
            # Nothing wrong with the request: the trial's state (no other active trial admin) refuses it.
            raise InvalidState(_("A trial must keep at least one trial admin."))
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="membership.revoke",
            obj=membership,
            trial_id=trial.pk,
            summary={"user": user.email, "role": membership.role},
        )
        membership.delete()
        _sync_permissions(user, trial)
        # A link sent for the role before cannot give it back.
        _invitations_withdraw(actor=actor, trial=trial, email=user.email, role=membership.role)


INVITATION_DAYS = 14


def _open_invitations(*, trial: Trial, email: str, role: str):
    return Invitation.objects.filter(
        trial=trial,
        email__iexact=email,
        role=role,
        accepted_at__isnull=True,
        withdrawn_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def invitation_withdraw(*, actor, invitation: Invitation) -> None:
    """A trial admin withdraws an invitation not yet accepted: its link no longer works."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None:
            raise InvalidState(_("This invitation was accepted already: revoke the role instead."))
        if locked.withdrawn_at is None:
            _withdraw(actor, locked, "withdrawn by a trial admin")


def _invitations_withdraw(*, actor, trial: Trial, email: str, role: str, reason: str = "role removed") -> None:
    """Withdraw the open invitations of `email` to `role` in the trial, each audited."""
    for invitation in _open_invitations(trial=trial, email=email, role=role).select_for_update():
        _withdraw(actor, invitation, reason)


def _withdraw(actor, invitation: Invitation, reason: str) -> None:
    """Withdraw one invitation (held locked by the caller's transaction), audited with why."""
    invitation.withdrawn_at = timezone.now()
    invitation.save(update_fields=["withdrawn_at"])
    audit_record(
        actor=actor,
        action="invitation.withdraw",
        obj=invitation,
        trial_id=invitation.trial_id,
        summary={"email": invitation.email, "role": invitation.role, "why": reason},
    )


def invitation_create(
    *, actor, trial: Trial, email: str, full_name: str, role: str, sites: Iterable[Site] = ()
) -> tuple[Invitation, str]:
    """Offer a role in the trial to an email address: an invitation is stored and emailed, nothing else changes.

    The same whether or not an account exists for the address (the answer tells the inviter nothing about
    other trials' people); the person accepts from the link (invitation_accept). Returns the invitation and
    the secret of its link, which is stored only hashed.
    """
    sites = list(sites)
    email = User.objects.normalize_email(email.strip()).lower()
    _check_grant(trial=trial, role=role, sites=sites, user=User.objects.filter(email__iexact=email).first())
    secret = secrets.token_urlsafe(32)
    invitation = Invitation(
        trial=trial,
        email=email,
        full_name=full_name.strip(),
        role=role,
        invited_by=actor,
        secret_hash=hash_token_key(secret),
        expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
    )
    _clean(invitation, exclude=["secret_hash"])
    with transaction.atomic():
        # Invited again: the newest invitation stands, and the links sent before no longer work.
        _invitations_withdraw(actor=actor, trial=trial, email=email, role=role, reason="invited again")
        invitation.save()
        invitation.sites.set(sites)
        audit_record(
            actor=actor,
            action="invitation.create",
            obj=invitation,
            trial_id=trial.pk,
            summary={"email": email, "role": role, "sites": sorted(s.code for s in sites)},
        )
        context = {
            "email": email,
            "inviter": actor.full_name or actor.email,
            "trial": trial.code,
            "role": invitation.get_role_display(),
            "link": site_link(reverse("invitation", args=[secret])),
            "days": INVITATION_DAYS,
            "sites": ", ".join(f"{site.name} ({site.code})" for site in sites),
        }
        # Sent only once the transaction commits: an invitation that fails sends nothing.
        transaction.on_commit(lambda: _invitation_send(invitation, context))
    return invitation, secret


def _invitation_send(invitation: Invitation, context: dict) -> None:
    """Email the invitation's link. A relay that refuses or cannot be reached leaves the invitation stored (it is
    committed) and says so in `invitation.email_failed`, for the page to tell the inviter; it was a server error."""
    invitation.email_failed = False
    try:
        send_mail(
            render_to_string("registration/invite_subject.txt", context).strip(),
            render_to_string("registration/invite_email.txt", context),
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
        )
    except (OSError, smtplib.SMTPException) as exc:
        invitation.email_failed = True
        log.warning("The email of invitation %s could not be sent (%s)", invitation.pk, type(exc).__name__)


def invitation_find(secret: str) -> Invitation | None:
    """The open invitation whose link carries `secret`: not accepted, withdrawn or expired; else None."""
    if not secret.isascii():
        return None
    return (
        Invitation.objects.select_related("trial", "invited_by")
        .filter(
            secret_hash=hash_token_key(secret),
            accepted_at__isnull=True,
            withdrawn_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """The invited person (logged in with the invited address) takes the role; the invitation is used up."""
    if user.email.lower() != invitation.email:
        raise NotPermitted(_("This invitation is for another email address. Log out and open the link again."))
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if (
            invitation.accepted_at is not None
            or invitation.withdrawn_at is not None
            or invitation.expires_at <= timezone.now()
        ):
            raise InvalidState(_("This invitation was already used, was withdrawn or has expired."))
        # The invited sites are added to those the person already works for, never in their place.
        held = Membership.objects.filter(trial=invitation.trial, user=user, role=invitation.role).first()
        sites = {site.pk: site for site in invitation.sites.all()}
        if held is not None:
            sites |= {site.pk: site for site in held.sites.all()}
        membership = membership_grant(  # the person who accepts is the one who acts
            actor=user, trial=invitation.trial, user=user, role=invitation.role, sites=list(sites.values())
        )
        invitation.accepted_at, invitation.accepted_by = timezone.now(), user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            actor=user,
            action="invitation.accept",
            obj=invitation,
            trial_id=invitation.trial_id,
            summary={"email": invitation.email, "role": invitation.role},
        )
    return membership


def invitation_account_create(*, invitation: Invitation, full_name: str, password: str):
    """An invited person without an account makes one with the invited address, and accepts in the same step."""
    if User.objects.filter(email=invitation.email).exists():
        raise InvalidState(_("An account with this address exists: log in to accept the invitation."))
    user = User(email=invitation.email, full_name=full_name.strip())
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), fields={"new_password1": exc.messages}) from None
    user.set_password(password)
    _clean(user, exclude=["password"])
    with transaction.atomic():
        user.save()
        audit_record(actor=user, action="user.create", obj=user, summary={"email": user.email, "by": "invitation"})
        invitation_accept(invitation=invitation, user=user)
    return user


TOKEN_PREFIX_LEN = 8


def api_token_create(*, actor, membership: Membership, name: str) -> tuple[ApiToken, str]:
    """Issue a token for a machine client, scoped to one membership; the key is returned once and stored hashed."""
    if not name.strip():
        raise ValidationFailed(
            _("Give the token a name that says which client uses it."), fields={"name": [_("Required.")]}
        )
    key = "ctims_" + secrets.token_urlsafe(32)
    token = ApiToken(
        membership=membership, name=name.strip(), prefix=key[6 : 6 + TOKEN_PREFIX_LEN], key_hash=hash_token_key(key)
    )
    _clean(token, exclude=["prefix", "key_hash"])
    with transaction.atomic():
        try:
            token.save()
        except IntegrityError:  # pragma: no cover - a 256-bit collision
            raise ValidationFailed(_("Please try again.")) from None
        audit_record(
            actor=actor,
            action="token.create",
            obj=token,
            trial_id=membership.trial_id,
            summary={"name": token.name, "role": membership.role, "prefix": token.prefix},
        )
    return token, key


def api_token_revoke(*, actor, token: ApiToken) -> None:
    """Stop a token from authenticating; it stays listed as revoked."""
    if token.revoked_at is not None:
        return
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="token.revoke",
            obj=token,
            trial_id=token.membership.trial_id,
            summary={"name": token.name, "prefix": token.prefix},
        )


def trial_check_open(trial: Trial) -> None:
    """Refuse new data on a closed trial: no subject enrolled, visit or protocol added, upload opened, file received
    or query opened. A trial in set-up takes them (its schedule is built and its first subjects enrolled there), as
    does an active one; on a closed trial reads, results, transfers and the audit trail stay readable, and the
    queries already open can still be answered and closed. The status is read afresh: `trial` may be stale."""
    status = Trial.objects.filter(pk=trial.pk).values_list("status", flat=True).first()
    if status == Trial.Status.CLOSED:
        raise InvalidState(
            _("Trial %(code)s is closed: it takes no new subjects, visits, images or queries.") % {"code": trial.code}
        )


def timepoint_transition(
    *, actor, timepoint: Timepoint, to: str, allowed_from: Iterable[str], reason: str = ""
) -> Timepoint:
    """Move a timepoint along its life cycle, refusing any move that does not start from `allowed_from`.

    Locks the timepoint row; writes the audit event in the caller's transaction.
    """
    allowed = set(allowed_from)
    with transaction.atomic():
        locked = (
            Timepoint.objects.select_for_update(of=("self",)).select_related("subject", "visit").get(pk=timepoint.pk)
        )
        if locked.state == to:
            return locked
        if locked.state not in allowed:
            raise InvalidState(
                _("%(timepoint)s is %(state)s, so it cannot become %(to)s.")
                % {
                    "timepoint": locked,
                    "state": locked.get_state_display(),
                    "to": Timepoint.State(to).label,
                }
            )
        before = locked.state
        locked.state = to
        locked.save(update_fields=["state", "updated_at"])
        summary = {"from": before, "to": to}
        if reason:
            summary["reason"] = reason
        audit_record(
            actor=actor, action="timepoint.transition", obj=locked, trial_id=locked.subject.trial_id, summary=summary
        )
    return locked
