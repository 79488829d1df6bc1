"""Log-ins, log-outs, failed log-ins and lock-outs in the audit trail (21 CFR Part 11 §11.10(e), §11.300(d)).

Django and django-axes announce these only as signals, so these receivers are their one interface: each records
one event and does nothing else. A failed attempt names the address tried and the client's address (the one
axes counts lock-outs by), never the password; it is nobody's act that we know of, so it has no actor, and it
is recorded on the account of that address when there is one.
"""

from __future__ import annotations

import ipaddress

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.helpers import get_client_ip_address
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .audit import audit_record
from .models import User

# Set on a request that django-axes refused because its account was already locked out: its password was never
# checked, and axes announces the refusal with the same signals as the failure that locked the account.
LOCKED_AT_ENTRY = "ctims_locked_at_entry"


class LockOutBackend(AxesStandaloneBackend):
    """django-axes' gate in front of the password check, noting on the request when it turned an attempt away."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            setattr(request, LOCKED_AT_ENTRY, True)
            raise


def forwarded_client_ip(request) -> str | None:
    """The client's address (django-axes' AXES_CLIENT_IP_CALLABLE): behind the reverse proxy every request comes
    from the proxy's own address, so from one of PROXY_ADDRESSES it is the last address X-Forwarded-For lists that
    is not a proxy's (nginx appends the address it saw to whatever the client sent: the entries before it are the
    client's to choose and are never read). From any other address, or without a valid entry, REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR")
    proxies = settings.PROXY_ADDRESSES
    if remote not in proxies:
        return remote
    chain = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for entry in reversed(chain):
        if entry and entry not in proxies:
            try:
                return str(ipaddress.ip_address(entry))
            except ValueError:
                return remote
    return remote


def client_address(request) -> str | None:
    """The client's address as django-axes sees it (and counts failures by)."""
    if request is None:
        return None
    return getattr(request, "axes_ip_address", None) or get_client_ip_address(request)


def account_of(email: str | None) -> User | None:
    """The account an address typed at log-in names, whatever its case."""
    return User.objects.filter(email__iexact=(email or "").strip()).first() if email else None


@receiver(user_logged_in, dispatch_uid="ctims.audit.login")
def _logged_in(sender, request, user, **kwargs) -> None:
    audit_record(
        actor=user, action="login", obj=user, summary={"email": user.email, "ip_address": client_address(request)}
    )


@receiver(user_logged_out, dispatch_uid="ctims.audit.logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None and user.is_authenticated:
        audit_record(
            actor=user, action="logout", obj=user, summary={"email": user.email, "ip_address": client_address(request)}
        )


@receiver(user_login_failed, dispatch_uid="ctims.audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    if sender == "ctims.signatures":
        return  # a wrong signing password: recorded as signature.refuse, with what was being signed
    email = credentials.get("username") or credentials.get("email") or ""
    reason = "locked out" if getattr(request, LOCKED_AT_ENTRY, False) else "password"
    login_fail_record(actor=None, email=email, request=request, reason=reason)


@receiver(user_locked_out, dispatch_uid="ctims.audit.locked_out")
def _locked_out(sender, request, username, ip_address, **kwargs) -> None:
    if getattr(request, LOCKED_AT_ENTRY, False):
        return  # an attempt on an account locked before: a refused log-in (reason "locked out"), not a new lock-out
    audit_record(
        actor=None,
        action="login.lockout",
        obj=account_of(username),
        summary={"email": username, "ip_address": ip_address},
    )


def login_fail_record(*, actor: User | None, email: str, request, reason: str) -> None:
    """Record a refused log-in: a wrong password (no actor), or a wrong one-time code after the right password."""
    audit_record(
        actor=actor,
        action="login.fail",
        obj=actor or account_of(email),
        summary={"email": email, "ip_address": client_address(request), "reason": reason},
    )
