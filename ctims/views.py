"""Pages that belong to no trial: log-in, two-factor sign-in, password reset and health."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connection, transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import two_factor
from .account_events import account_of, client_address
from .api_errors import JSON_ROOTS, error_body
from .audit import audit_record
from .exceptions import ValidationFailed
from .forms import LoginForm, OneTimeCodeForm
from .models import AuditEvent


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True


class _PasswordSetAudited:
    """A Django view that sets the person's own password, audited as theirs in the same transaction (never the
    password): `audit_action` names how it was set."""

    audit_action: str

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            user = form.user
            audit_record(actor=user, action=self.audit_action, obj=user, summary={"email": user.email})
        return response


class PasswordChangeView(_PasswordSetAudited, auth_views.PasswordChangeView):
    """Django's password change, audited."""

    audit_action = "user.password_change"


# Reset emails one address receives in an hour, whoever asks: anyone may ask, so without a bound a script
# sent an account's owner an email per request.
RESET_EMAILS_PER_HOUR = 3


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, with the emailed link built from SITE_URL: a forged Host header cannot redirect it.

    Each request is audited with the address typed (on its account, if one has it) and whether an email went:
    nobody is the actor, as anyone may ask; the page answers alike either way. An address gets at most
    RESET_EMAILS_PER_HOUR emails an hour (counted from the audit, which every web process shares; the requests
    refused an email do not count)."""

    def form_valid(self, form):
        email = form.cleaned_data["email"]
        with transaction.atomic():
            recent = AuditEvent.objects.filter(
                action="user.password_reset_request",
                at__gte=timezone.now() - timedelta(hours=1),
                summary__email__iexact=email,
                summary__sent=True,  # the emails sent: a script that keeps asking must not hold the owner off for ever
            ).count()
            send = recent < RESET_EMAILS_PER_HOUR
            audit_record(
                actor=None,
                action="user.password_reset_request",
                obj=account_of(email),
                summary={"email": email, "ip_address": client_address(self.request), "sent": send},
            )
        if not send:
            return HttpResponseRedirect(self.get_success_url())
        site = urlsplit(settings.SITE_URL)
        form.save(
            domain_override=site.netloc,
            use_https=site.scheme == "https",
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            html_email_template_name=self.html_email_template_name,
            extra_email_context=self.extra_email_context,
        )
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(_PasswordSetAudited, auth_views.PasswordResetConfirmView):
    """Django's new password from an emailed link, audited as the person's."""

    audit_action = "user.password_reset"


@require_GET
def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
def api_root(request):
    """The API's front door: where its schema and documentation are, and where the resources start."""
    here = request.build_absolute_uri
    return JsonResponse(
        {
            "name": settings.SPECTACULAR_SETTINGS["TITLE"],
            "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "schema": here(reverse("api-schema")),
            "docs": here(reverse("api-docs")),
            "trials": here(reverse("api-trials")),
            "inbox": here(reverse("api-inbox")),
            "authentication": "A session (log in at /accounts/login/) or an API token: 'Authorization: Bearer <token>'.",
        }
    )


def _next(request) -> str:
    """Where to go after the second factor: the page asked for, if it is one of ours, else home."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL


def _code_error(form, exc: ValidationFailed) -> None:
    form.add_error("code", exc.fields.get("code", [exc.message])[0])
    form.add_error(None, exc.message)


@login_required
@require_http_methods(["GET", "POST"])
def two_factor_verify(request):
    """After the password: a code from the app or a recovery code; enrolment first for someone without an app."""
    if two_factor.authenticator(request.user) is None:
        return redirect(f"{settings.OTP_VERIFY_URL}enrol/?{urlencode({'next': _next(request)})}")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            two_factor.verify(request=request, code=form.cleaned_data["code"])
        except ValidationFailed as exc:
            _code_error(form, exc)
        else:
            return redirect(_next(request))
    return render(request, "registration/two_factor_verify.html", {"form": form, "next": _next(request)})


@login_required
@require_http_methods(["GET", "POST"])
def two_factor_enrol(request):
    """Set up an authenticator app: its QR code and secret, then a code from it; the recovery codes follow once.

    Someone who has an app already enrols a new one only from a verified session: a password alone never
    replaces the second factor.
    """
    if two_factor.authenticator(request.user) is not None and not request.user.is_verified():
        return redirect(f"{settings.OTP_VERIFY_URL}?{urlencode({'next': _next(request)})}")
    device = two_factor.enrolment_device(request.user)
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = two_factor.enrol_confirm(request=request, code=form.cleaned_data["code"])
        except ValidationFailed as exc:
            _code_error(form, exc)
        else:
            return render(request, "registration/two_factor_codes.html", {"codes": codes, "next": _next(request)})
    context = {
        "form": form,
        "next": _next(request),
        "qr": two_factor.qr_svg_data_uri(device),
        "secret": two_factor.secret_text(device),
    }
    return render(request, "registration/two_factor_enrol.html", context)


@login_required
@require_POST
def two_factor_recovery_codes(request):
    """New recovery codes (the old ones stop working), from a verified session; shown once."""
    if not request.user.is_verified():
        return redirect(f"{settings.OTP_VERIFY_URL}?{urlencode({'next': settings.LOGIN_REDIRECT_URL})}")
    codes = two_factor.recovery_codes_renew(user=request.user)
    return render(request, "registration/two_factor_codes.html", {"codes": codes, "next": _next(request)})


def not_found(request, exception):
    """A path no route matches: under the API's and DICOMweb's roots a 404 in their error shape (a client there
    parses JSON), elsewhere the page."""
    if request.path.startswith(JSON_ROOTS):
        return JsonResponse(error_body("not_found", "No such resource."), status=404)
    return defaults.page_not_found(request, exception)
