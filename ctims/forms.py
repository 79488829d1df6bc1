from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    """Email and password; lock-out after repeated failures is enforced by django-axes."""

    username = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_username(self) -> str:
        """The address as the account holds it, whatever its case (invitations keep addresses in lower case and
        people type them as they were written to them); one spelling, so django-axes counts the failures of
        every spelling against one address."""
        typed = self.cleaned_data["username"].strip()
        held = get_user_model().objects.filter(email__iexact=typed).values_list("email", flat=True)[:2]
        return held[0] if len(held) == 1 else typed.lower()


class OneTimeCodeForm(forms.Form):
    """A code from the authenticator app (six digits) or one of the recovery codes."""

    code = forms.CharField(
        label=_("One-time code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "text"}),
    )
