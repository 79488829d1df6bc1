"""Accepting an invitation from its emailed link: log in with the invited address, or choose a password."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import SetPasswordForm
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from ctims.exceptions import InvalidState, NotPermitted, ValidationFailed
from ctims.models import User

from .. import services
from ..forms import add_service_errors


class AccountForm(SetPasswordForm):
    """A new account for the invited address: the person's name and a password, twice."""

    full_name = forms.CharField(label=gettext_lazy("Full name"), max_length=200)
    field_order = ["full_name", "new_password1", "new_password2"]


@require_http_methods(["GET", "POST"])
def invitation(request, secret: str):
    """The invitation behind the link: 404 if used, expired or unknown. Its page says what to do next."""
    found = services.invitation_find(secret)
    if found is None:
        raise Http404(_("This invitation was already used, was withdrawn or has expired."))
    has_account = User.objects.filter(email=found.email).exists()
    context = {"invitation": found, "has_account": has_account, "form": None}
    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                services.invitation_accept(invitation=found, user=request.user)
            except NotPermitted as exc:
                context["error"] = exc.message
                return render(request, "registration/invitation.html", context, status=403)
            except InvalidState:
                raise Http404(_("This invitation was already used, was withdrawn or has expired.")) from None
            messages.success(
                request,
                _("You now hold the role %(role)s in %(trial)s.")
                % {
                    "role": found.get_role_display(),
                    "trial": found.trial.code,
                },
            )
            return redirect("trial-detail", code=found.trial.code)
        context["wrong_account"] = request.user.email.lower() != found.email
        return render(request, "registration/invitation.html", context)
    if not has_account:
        form = AccountForm(User(email=found.email), request.POST or None, initial={"full_name": found.full_name})
        if request.method == "POST" and form.is_valid():
            try:
                user = services.invitation_account_create(
                    invitation=found,
                    full_name=form.cleaned_data["full_name"],
                    password=form.cleaned_data["new_password1"],
                )
            except (ValidationFailed, InvalidState) as exc:
                add_service_errors(form, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request,
                    _("Welcome. You now hold the role %(role)s in %(trial)s.")
                    % {
                        "role": found.get_role_display(),
                        "trial": found.trial.code,
                    },
                )
                return redirect("trial-detail", code=found.trial.code)
        context["form"] = form
    return render(request, "registration/invitation.html", context)
