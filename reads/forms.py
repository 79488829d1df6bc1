from django import forms
from django.utils.translation import gettext_lazy as _

from .models import DeliverySettings, ReadDesign
from .services import DESIGN_FIELDS, READING_FIELDS


class ReadDesignForm(forms.ModelForm):
    class Meta:
        model = ReadDesign
        fields = DESIGN_FIELDS
        widgets = {"paradigm": forms.RadioSelect}

    def __init__(self, *args, fixed: frozenset[str] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        for name in fixed:
            self.fields[name].disabled = True
            self.fields[name].help_text = (
                _("Reading has begun: this no longer changes.")
                if name in READING_FIELDS
                else _("A read is signed: results were computed with this rule, so it no longer changes.")
            )


class TransferRequestForm(forms.Form):
    """A sponsor's request for a data transfer: what was locked by the cut-off (empty: now)."""

    cutoff = forms.DateTimeField(
        label=_("Cut-off"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        help_text=_("Only what was signed and locked by then is delivered. Leave empty for now."),
    )


class DeliverySettingsForm(forms.ModelForm):
    class Meta:
        model = DeliverySettings
        fields = ["real_dates"]
