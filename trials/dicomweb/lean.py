"""The lean path of DICOMweb for token clients: no session, locale, CSRF, messages or lock-out middleware.

A viewer with a Bearer token fetches hundreds of frames a minute; none of those requests has a session or a
form, so the middleware that reads and writes sessions, negotiates the language or checks CSRF tokens is pure
cost there. This middleware sits just after the security middleware: a request under /dicomweb/ that carries
an `Authorization: Bearer` header is routed straight to its view (which authenticates the token itself);
every other request goes on through the whole stack.

It sits above django-csp's middleware, which builds the policy string anew for every response (a third of a
millisecond, as much as the rest of a frame's Python): the lean answers carry the same policy, built once.
"""

from __future__ import annotations

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.contrib.auth.models import AnonymousUser
from django.urls import Resolver404, resolve

PREFIX = "/dicomweb/"


class DicomwebTokenMiddleware:
    """Answer DICOMweb requests of token clients without the session-based middleware below it."""

    def __init__(self, get_response):
        self.get_response = get_response
        # The policy django-csp would send (no nonce: no DICOMweb answer is a page), built once.
        self.policies = [(HEADER, build_policy()), (HEADER_REPORT_ONLY, build_policy(report_only=True))]

    def __call__(self, request):
        if (
            request.method not in ("GET", "HEAD")  # STOW-RS and the rest keep the whole stack
            or not request.path_info.startswith(PREFIX)
            or not request.META.get("HTTP_AUTHORIZATION", "").startswith("Bearer ")
        ):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.user = AnonymousUser()  # the token, not a session, says who this is
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        for header, policy in self.policies:
            if policy and header not in response:
                response[header] = policy
        return response
