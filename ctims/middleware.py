"""Cross-cutting request handling."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponseBadRequest, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.urls import resolve
from django.utils.translation import gettext as _

from .api_errors import JSON_ROOTS, error_body

_LAST_SEEN = "ctims_last_seen"
_RESOLUTION = 60  # seconds
NUL_MESSAGE = "The request holds a NUL byte, which no value here can."


# The probes' paths (ctims.urls) and the names of the loopback address the supervisor and Prometheus use for them.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


class LoopbackProbeMiddleware:
    """/healthz, /readyz and /metrics asked for on the loopback address are answered whatever ALLOWED_HOSTS says.

    In production ALLOWED_HOSTS names the public host only, while the supervisor's probes, the README's
    `curl http://127.0.0.1:8000/readyz` and the local Prometheus speak to gunicorn on 127.0.0.1: Django's host
    check refused them with 400. Only these three paths and only a loopback name are let through (a page asked
    for as 127.0.0.1, or a probe under any other name, is still refused); the views need no session, person or
    CSRF token, and /metrics still checks the client's address or its token itself. It runs before the first
    middleware that checks the host (CommonMiddleware).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in PROBE_PATHS:
            domain, _port = split_domain_port(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", ""))
            if domain and validate_host(domain, LOOPBACK_HOSTS):
                match = resolve(request.path_info)
                request.resolver_match = match  # the metrics' route label
                return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)


class NulByteMiddleware:
    """A NUL byte in the path or query string is answered 400 before any view reads it.

    No value of this system holds one (PostgreSQL's text cannot), so none can be meant, and a search or a lookup
    that passed one on made the database refuse the query: a server error. The API and DICOMweb answer in their
    error shape; pages as plain text (this runs before sessions and the person are known).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or (
            "%00" in request.META.get("QUERY_STRING", "")
            and any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())
        ):
            if request.path.startswith(JSON_ROOTS):
                return JsonResponse(error_body("invalid", NUL_MESSAGE), status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class IdleSessionTimeoutMiddleware:
    """End a logged-in session after SESSION_IDLE_TIMEOUT without a request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            last_seen = request.session.get(_LAST_SEEN)
            if last_seen is not None and now - last_seen > settings.SESSION_IDLE_TIMEOUT.total_seconds():
                logout(request)
                messages.info(request, _("Your session ended after a period of inactivity. Please log in again."))
            elif last_seen is None or now - last_seen > _RESOLUTION:
                # Written at most once a minute: a viewer fetching hundreds of frames must not rewrite the session each time.
                request.session[_LAST_SEEN] = now
        return self.get_response(request)


# A read task lasts until it is signed or given to someone else: nothing served through its DICOMweb root may
# outlive it in a browser's cache, whatever the shared DICOMweb views say about de-identified instances.
TASK_ROOTS = "/dicomweb/tasks/"


class NoStoreMiddleware:
    """Every answer is `Cache-Control: no-store` unless its view chose its own caching (static files, the trial
    roots' immutable instances); a read task's root is no-store whatever its view said.

    Pages, API answers, CSV exports and SR downloads all carry trial data for one person: no browser, proxy
    or shared computer keeps a copy. Placed before WhiteNoise so that static files keep their own headers.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(TASK_ROOTS) or not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
            if response.has_header("Expires"):
                del response["Expires"]
        return response


class TwoFactorMiddleware:
    """A person who must sign in with a second factor (ctims.two_factor.required_for) and whose session is not
    verified yet reaches nothing but the log-in, log-out, password and two-factor pages: pages send them to
    verify (or enrol), the API and DICOMweb answer 403 with the error shape.

    Placed after django-otp's OTPMiddleware. A request with a trial token is judged by its token (the API and
    DICOMweb authenticate it), whatever session cookie comes along: its unverified session stands for no one
    (`request.user` is anonymous), so that the header cannot lift the check from pages, which read the session
    and ignore tokens.
    """

    OPEN = (
        "/accounts/",  # log-in, log-out, password reset and the two-factor pages themselves
        "/static/",
        "/i18n/",
        "/jsi18n/",
        "/health/",
        "/trials/invitations/",
    )
    # Under /accounts/ but not open before the second factor: changing the password needs a verified session.
    GUARDED = ("/accounts/password/change/",)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and (not request.path.startswith(self.OPEN) or request.path.startswith(self.GUARDED))
        ):
            from . import two_factor

            if two_factor.required_for(user):
                if not request.META.get("HTTP_AUTHORIZATION", "").startswith(("Bearer ", "Token ")):
                    return self._refuse(request)
                request.user = _unverified_nobody()
        return self.get_response(request)

    def _refuse(self, request):
        from django.shortcuts import redirect
        from django.utils.http import urlencode

        if request.path.startswith(JSON_ROOTS):
            message = _("Your roles require a second factor: log in again and enter your one-time code.")
            return JsonResponse(error_body("two_factor_required", message), status=403)
        return redirect(f"{settings.OTP_VERIFY_URL}?{urlencode({'next': request.get_full_path()})}")


def _unverified_nobody():
    """The anonymous user as django-otp's middleware leaves one: not verified."""
    from django.contrib.auth.models import AnonymousUser

    nobody = AnonymousUser()
    nobody.otp_device = None
    nobody.is_verified = lambda: False
    return nobody
