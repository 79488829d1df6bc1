from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ReadDesign
from .services import DESIGN_FIELDS


class ReadDesignForm(forms.ModelForm):
    class Meta:
        model = ReadDesign
        fields = DESIGN_FIELDS
        widgets = {"paradigm": forms.RadioSelect}

    def __init__(self, *args, reading_started: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if reading_started:
            self.fields["paradigm"].disabled = True
            self.fields["paradigm"].help_text = _("Reading has begun: the paradigm no longer changes.")
