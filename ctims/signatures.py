"""Electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200): the signer re-enters their password,
states the meaning, and the signature binds to a hash of exactly what was signed.

§11.200(a)(1): the first signing of a period of controlled access (a log-in) takes both components, the user ID
(the email) and the password; later signings of the same log-in take the password alone. `user_id_asked` says
which, and `signing` remembers a signing made under the log-in.

A wrong password is an attempt at a signature that is not the signer's (§11.300(d)): `signing` records it
in the audit trail and counts it with the failed log-ins, so repeated attempts lock signing and log-in alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import logout
from django.contrib.auth.signals import user_login_failed
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .audit import audit_record
from .exceptions import NotPermitted, ValidationFailed
from .models import AuditEvent, Signature, User
from .two_factor import code_matches


class SignatureRefused(NotPermitted):
    """The password was wrong: nothing was signed. Carries what the attempt was for, for the audit trail."""

    code = "signature_refused"

    def __init__(self, message: str, *, obj: models.Model, meaning: str, trial_id: int | None, reason: str):
        super().__init__(message)
        self.obj, self.meaning, self.trial_id, self.reason = obj, meaning, trial_id, reason


def _credentials(user: User) -> dict:
    return {"username": user.email}


# The session remembers the log-in (by its moment) under which its person last signed: a new log-in, in this
# browser or another, asks for the user ID again.
SIGNED_UNDER = "ctims_signed_under_login"


def _login_mark(request) -> str:
    last_login = getattr(request.user, "last_login", None)
    return last_login.isoformat() if last_login else ""


def user_id_asked(request) -> bool:
    """True if a signing made with `request` is the first of its log-in, so the user ID is entered as well
    (§11.200(a)(1)(i)). Without a request (scripts, tests of services) nothing is asked."""
    if request is None or not hasattr(request, "session"):
        return False
    return request.session.get(SIGNED_UNDER) != _login_mark(request)


@contextmanager
def signing(*, user: User, request=None) -> Iterator[None]:
    """Wrap a signing service's transaction, outside it, so that a refusal is recorded after the rollback.

    Refused at once while the account is locked. A wrong password is audited ("signature.refuse") and
    counted as a failed log-in; the attempt that reaches the lock-out limit also ends the session. Without a
    request (scripts, tests of services) there is nothing to count against, and only the audit happens.
    """
    if request is not None and not AxesProxyHandler.is_allowed(request, _credentials(user)):
        raise NotPermitted(
            _("Too many wrong passwords: signing is locked for now. Try again later."), code="locked_out"
        )
    try:
        yield
        if request is not None and hasattr(request, "session"):
            request.session[SIGNED_UNDER] = _login_mark(request)
    except SignatureRefused as exc:
        audit_record(
            actor=user,
            action="signature.refuse",
            obj=exc.obj,
            trial_id=exc.trial_id,
            summary={
                "meaning": exc.meaning,
                "object": f"{exc.obj._meta.label_lower}:{exc.obj.pk}",
                "reason": exc.reason,  # which component was wrong, never what was typed
            },
        )
        if request is not None:
            user_login_failed.send(sender=__name__, credentials=_credentials(user), request=request)
            if getattr(request, "axes_locked_out", False):
                logout(request)
        raise


def content_hash(content: Any) -> str:
    """SHA-256 of the content's canonical JSON: the same content always hashes the same."""
    blob = json.dumps(content, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def signature_create(
    *,
    user: User,
    password: str,
    meaning: str,
    obj: models.Model,
    content: Any,
    trial_id: int | None = None,
    second_factor_required: bool = False,
    second_factor: str = "",
    user_id: str | None = None,
) -> Signature:
    """Sign `content` as `user` after checking their password again; the signature and its audit event commit together.

    Where the trial asks for it (`second_factor_required`), a current one-time code of the signer's
    authenticator (or a recovery code, used up) is checked too. A wrong password or code is refused
    (SignatureRefused) and changes nothing; run the caller's transaction inside `signing` to have the refusal
    recorded and counted. `user_id`, where the signing is the first of its log-in (`user_id_asked`), is the user
    ID the signer typed, which must be theirs; None where it was not asked.
    """
    if not meaning.strip():
        raise ValidationFailed(_("State what the signature means."), fields={"meaning": [_("Required.")]})

    def refused(reason: str, message: str) -> SignatureRefused:
        """Which component was wrong goes in the audit event (never what was typed); the signer is told."""
        return SignatureRefused(message, obj=obj, meaning=meaning.strip(), trial_id=trial_id, reason=reason)

    if user_id is not None and user_id.strip().casefold() != user.email.casefold():
        raise refused("user ID", _("The user ID is not yours; nothing was signed. Enter the email you log in with."))
    if not password or not user.is_active or not user.check_password(password):
        raise refused("password", _("The password is not correct; nothing was signed."))
    if second_factor_required and not code_matches(user, second_factor):
        raise refused("one-time code", _("The one-time code is not correct; nothing was signed."))
    with transaction.atomic():
        signature = Signature.objects.create(
            signer=user,
            signer_name=user.full_name or user.email,
            at=timezone.now(),
            meaning=meaning.strip(),
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            content_hash=content_hash(content),
        )
        audit_record(
            actor=user,
            action="signature.create",
            obj=signature,
            trial_id=trial_id,
            summary={
                "meaning": signature.meaning,
                "object": f"{signature.object_type}:{signature.object_id}",
                "content_hash": signature.content_hash,
            },
        )
    return signature


def signature_verify(signature: Signature, content: Any) -> bool:
    """True if `content` is exactly what was signed."""
    return signature.content_hash == content_hash(content)


# --- verification (11.70, 11.10(e)): every signature still stands on what it signed ---------------------------

# Each app that signs records says how to check one of its signatures: given the signature, the problem with the
# record it names ("" if none). Keyed by the record's model label ("reads.read"); registered in AppConfig.ready.
SIGNED_RECORDS: dict[str, Callable[[Signature], str]] = {}

# A signature's moment is taken just before its audit event is written, in the same transaction.
_EVENT_LAG = timedelta(minutes=1)


@dataclass(frozen=True)
class SignaturesReport:
    """The outcome of checking every signature: how many were checked, and each problem found (ids only)."""

    checked: int
    problems: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.problems


def signatures_verify(*, batch: int = 2000) -> SignaturesReport:
    """Check every signature against the audit event that recorded it (signer, meaning, record, content hash,
    moment) and, through its app's check, against the record it signs (that the record still holds it and still
    hashes to what was signed). Run after `audit_verify`: the events are trusted only while the chain holds.

    A row rewritten below the application (the database's refusals switched off) is found here: a changed
    signature no longer matches its event, a changed record no longer matches its signature's hash.
    """
    events = {
        event.object_id: event
        for event in AuditEvent.objects.filter(action="signature.create", object_type="ctims.signature").only(
            "seq", "at", "actor_id", "object_id", "summary"
        )
    }
    problems, checked = [], 0
    for signature in Signature.objects.order_by("pk").iterator(chunk_size=batch):
        checked += 1
        name = f"signature #{signature.pk} ({signature.object_type}:{signature.object_id})"
        event = events.get(str(signature.pk))
        if event is None:
            problems.append(f"{name}: no audit event recorded it")
            continue
        recorded = {
            "signer": event.actor_id,
            "meaning": event.summary.get("meaning"),
            "object": event.summary.get("object"),
            "content_hash": event.summary.get("content_hash"),
        }
        held = {
            "signer": signature.signer_id,
            "meaning": signature.meaning,
            "object": f"{signature.object_type}:{signature.object_id}",
            "content_hash": signature.content_hash,
        }
        changed = sorted(key for key in recorded if recorded[key] != held[key])
        if not timedelta(0) <= event.at - signature.at <= _EVENT_LAG:
            changed.append("at")
        if changed:
            problems.append(f"{name}: differs from audit event #{event.seq} in {', '.join(changed)}")
            continue
        check = SIGNED_RECORDS.get(signature.object_type)
        problem = check(signature) if check is not None else ""
        if problem:
            problems.append(f"{name}: {problem}")
    return SignaturesReport(checked, tuple(problems))
