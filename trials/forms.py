"""Page forms: plain forms whose cleaned_data goes to a service, which checks every rule again."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import BLANK_CHOICE_DASH
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop, pgettext
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from ctims.audit_display import action_label
from ctims.exceptions import CTIMSError

from . import qc
from .deid.profile import IDENTIFYING_TEXT
from .models import SLICE_THICKNESS_MAX_MM, SLICE_THICKNESS_MIN_MM, ImagingProtocol, Role, Trial, validate_ascii
from .qc.classify import PARTS, region_from_parts
from .qc_services import DEFAULT_QUERY_DAYS
from .roles import ROLES_WITH_SITES
from .selectors import AUDIT_DATE_MAX, AUDIT_DATE_MIN


def add_service_errors(form: forms.Form, exc: CTIMSError) -> None:
    """Show a service's refusal on the form: messages about a field by that field, the explanation above the form."""
    attached: list[str] = []
    for name, messages in exc.fields.items():
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
                attached.append(message)
    # Errors converted from model validation repeat the field messages; any other message explains them.
    if exc.message and exc.message != " ".join(attached):
        form.add_error(None, exc.message)


class TrialCreateForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        help_text=_("Upper-case letters, digits, '-' or '_', e.g. ONC-204. It cannot change later."),
    )
    title = forms.CharField(label=_("Title"), max_length=300)
    sponsor = forms.CharField(label=_("Sponsor"), max_length=200)
    protocol_number = forms.CharField(label=_("Protocol number"), max_length=100)
    status = forms.ChoiceField(label=_("Status"), choices=Trial.Status.choices, initial=Trial.Status.SETUP)
    subject_code_pattern = forms.CharField(
        label=_("Subject code pattern"),
        max_length=64,
        required=False,
        help_text=_("Uses {trial}, {site} and the number {n}; the default is {trial}-{site}-{n:03d}."),
    )


class TrialEditForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=300)
    sponsor = forms.CharField(label=_("Sponsor"), max_length=200)
    protocol_number = forms.CharField(label=_("Protocol number"), max_length=100)
    status = forms.ChoiceField(label=_("Status"), choices=Trial.Status.choices)
    subject_code_pattern = forms.CharField(
        label=_("Subject code pattern"),
        max_length=64,
        help_text=_(
            "Uses {trial}, {site} and the number {n}, e.g. {n:03d}. It cannot change once subjects are enrolled."
        ),
    )

    deid_retain_dates_modified = forms.BooleanField(
        label=_("Retain longitudinal dates, shifted per subject"),
        required=False,
        help_text=_("Keeps the intervals between visits exact (RECIST needs them)."),
    )
    deid_clean_descriptors = forms.BooleanField(
        label=_("Clean descriptors"),
        required=False,
        help_text=_("Keeps study, series and protocol descriptions with identifying values removed."),
    )
    deid_retain_device_identity = forms.BooleanField(label=_("Retain device identity"), required=False)
    deid_retain_patient_characteristics = forms.BooleanField(
        label=_("Retain patient characteristics"), required=False, help_text=_("Sex, age, size and weight.")
    )
    two_factor_roles = forms.MultipleChoiceField(
        label=_("Roles that log in with a one-time code"),
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("People in these roles enrol an authenticator app and enter its code at every log-in."),
    )
    two_factor_at_signing = forms.BooleanField(
        label=_("Ask for a one-time code at signing"),
        required=False,
        help_text=_("Reads and adjudications are then signed with the password and the app's code."),
    )

    deid_burned_in_text = forms.ChoiceField(
        label=_("Text found in the pixels"),
        choices=Trial.BurnedInText.choices,
        help_text=_("Secondary images and screens are read by OCR: redact what it finds, or reject the image."),
    )
    deid_kept_text_attributes = forms.MultipleChoiceField(
        label=_("Free text about the patient kept, cleaned"),
        required=False,
        choices=[(k, k) for k in sorted(IDENTIFYING_TEXT)],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Removed unless ticked; a ticked one is cleaned of names, numbers, addresses and dates."),
    )

    deid_paths = forms.ChoiceField(
        label=_("Where images are de-identified"),
        choices=Trial.DeidPaths.choices,
        help_text=_(
            "In the browser, the site's computer de-identifies each image before it is sent and the server checks "
            "it again; 'browser only' refuses identified images altogether. Both give the same pseudonyms."
        ),
    )

    def __init__(self, *args, subjects_enrolled: bool = False, images_stored: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if subjects_enrolled:
            # Submitted values are ignored for a disabled field: the stored pattern is kept.
            self.fields["subject_code_pattern"].disabled = True
        if images_stored:
            for name in self.fields:
                if name.startswith("deid_") and name != "deid_paths":
                    self.fields[name].disabled = True


class SiteCreateForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32, help_text=_("Short and upper-case, e.g. SEO."))
    name = forms.CharField(label=_("Name"), max_length=200)
    country = forms.ChoiceField(
        label=_("Country"),
        # Called for each form, so that the countries are named in the language of the request.
        choices=lambda: BLANK_CHOICE_DASH + list(countries),
        error_messages={"invalid_choice": _("Use the two-letter ISO code of a country, e.g. KR.")},
    )


class VisitCreateForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=32, help_text=_("e.g. W6"))
    label = forms.CharField(label=_("Label"), max_length=100, help_text=_("e.g. Week 6"))
    sdtm_name = forms.CharField(
        label=_("SDTM visit name"),
        max_length=40,
        required=False,
        validators=[validate_ascii],
        help_text=_("In English letters, e.g. WEEK 6 (blank: the label if it is in English letters, else the code)."),
    )
    order = forms.IntegerField(label=_("Order"), min_value=1, max_value=32767)
    target_day = forms.IntegerField(
        label=_("Target day"), min_value=-3650, max_value=3650, help_text=_("Days after baseline (day 0).")
    )
    window_before = forms.IntegerField(label=_("Window before (days)"), min_value=0, max_value=3650, initial=0)
    window_after = forms.IntegerField(label=_("Window after (days)"), min_value=0, max_value=3650, initial=0)


class ProtocolCreateForm(forms.Form):
    modality = forms.ChoiceField(label=_("Modality"), choices=ImagingProtocol.Modality.choices)
    body_region = forms.ChoiceField(label=_("Body region"), choices=ImagingProtocol.Region.choices)
    contrast = forms.ChoiceField(label=_("Contrast"), choices=ImagingProtocol.Contrast.choices)
    max_slice_thickness_mm = forms.DecimalField(
        label=_("Maximum slice thickness (mm)"),
        min_value=SLICE_THICKNESS_MIN_MM,
        max_value=SLICE_THICKNESS_MAX_MM,
        max_digits=4,
        decimal_places=2,
    )
    same_scanner_as_baseline = forms.BooleanField(
        label=_("Same scanner as baseline"),
        required=False,
        help_text=_("Follow-up scans must come from the scanner model and protocol of the subject's baseline."),
    )


class SubjectEnrollForm(forms.Form):
    site = forms.ModelChoiceField(label=_("Site"), queryset=None, to_field_name="code", empty_label=None)

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["site"].label_from_instance = lambda site: f"{site.code} · {site.name}"


class MembershipGrantForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    full_name = forms.CharField(
        label=_("Full name"),
        max_length=200,
        required=False,
        help_text=_("Needed when the person has no account yet."),
    )
    role = forms.ChoiceField(label=_("Role"), choices=[("", _("Choose a role…")), *Role.choices])
    sites = forms.ModelMultipleChoiceField(
        label=_("Sites"),
        queryset=None,
        to_field_name="code",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Only for site coordinators."),
    )

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sites"].queryset = sites
        self.fields["sites"].label_from_instance = lambda site: f"{site.code} · {site.name}"

    def clean(self):
        # Checked here as well as in the service so that nobody is invited for a grant that would fail.
        data = super().clean()
        role, sites = data.get("role"), data.get("sites")
        if role is None or sites is None:
            return data
        if role in ROLES_WITH_SITES and not sites:
            self.add_error("sites", _("A site coordinator needs at least one site."))
        if role not in ROLES_WITH_SITES and sites:
            self.add_error("sites", _("Only site coordinators work for particular sites."))
        return data


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("Which client uses it, e.g. the site PACS gateway.")
    )
    role = forms.ModelChoiceField(
        label=_("Role"),
        queryset=None,
        to_field_name="role",
        empty_label=None,
        help_text=_("The token can do only what this role of yours allows."),
    )

    def __init__(self, *args, memberships, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = memberships
        self.fields["role"].label_from_instance = lambda membership: membership.get_role_display()


AUDIT_DATE_VALIDATORS = [MinValueValidator(AUDIT_DATE_MIN), MaxValueValidator(AUDIT_DATE_MAX)]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(label=_("Who"), max_length=254, required=False)
    object_type = forms.CharField(
        label=_("Object type"),
        max_length=64,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "trials.site"}),
    )
    object_id = forms.CharField(label=_("Object id"), max_length=64, required=False)
    since = forms.DateField(
        label=_("Since"),
        required=False,
        validators=AUDIT_DATE_VALIDATORS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = forms.DateField(
        label=_("Until"),
        required=False,
        validators=AUDIT_DATE_VALIDATORS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", _("Any action"))] + [(a, action_label(a)) for a in actions]

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("Must be on or after the start date."))
        return data


# --- quality control ------------------------------------------------------------------------------------------

# The labels of trials.qc.KINDS, for makemessages: the library stays free of Django, its words are translated here.
KIND_LABELS = (
    gettext_noop("CT non-contrast"),
    gettext_noop("CT arterial"),
    gettext_noop("CT portal venous"),
    gettext_noop("CT delayed"),
    gettext_noop("CT with contrast (phase unknown)"),
    gettext_noop("MR T1"),
    gettext_noop("MR T1 post-contrast"),
    gettext_noop("MR T2"),
    gettext_noop("MR FLAIR"),
    gettext_noop("MR diffusion (DWI)"),
    gettext_noop("MR ADC map"),
    gettext_noop("MR other sequence"),
    gettext_noop("Localizer"),
    gettext_noop("Unknown"),
)
_PART_WORDS = {
    "head": _("head"),
    "neck": _("neck"),
    "chest": _("chest"),
    "abdomen": _("abdomen"),
    "pelvis": _("pelvis"),
}
_NAMED_REGION_WORDS = {"cap": _("chest-abdomen-pelvis"), "whole_body": _("whole body")}


def kind_label(kind: str) -> str:
    """How a person reads a series kind ("CT portal venous"), in their language."""
    return gettext(qc.KINDS[kind]) if kind in qc.KINDS else kind


def region_text(region: str) -> str:
    """How a person reads a body region ("chest-abdomen-pelvis", "abdomen-pelvis"), in their language."""
    if not region:
        return gettext("region unknown")
    if region in _NAMED_REGION_WORDS:
        return str(_NAMED_REGION_WORDS[region])
    try:
        parts = qc.region_parts(region)
    except ValueError:
        return region
    joiner = pgettext("joins body parts, as in abdomen-pelvis", "-")
    return joiner.join(str(_PART_WORDS[part]) for part in PARTS if part in parts)


def why_text(reason: str | dict) -> str:
    """A classification's reason (trials.qc.Why, stored as JSON) in the reader's language; a reason stored as
    text before reasons kept their template is shown as it is."""
    if not isinstance(reason, dict):
        return gettext(reason) if reason else reason
    params = {}
    for key, value in reason.get("params", {}).items():
        if isinstance(value, dict):
            params[key] = why_text(value)
        elif isinstance(value, list):
            params[key] = pgettext("joins a list", ", ").join(why_text(v) for v in value)
        elif key == "region":
            params[key] = region_text(value)
        else:
            params[key] = value
    template = gettext(reason["template"])
    return template % params if params else template


def kind_choices(modality: str) -> list[tuple[str, str]]:
    """The kinds a series of this modality can be given."""
    return [(kind, kind_label(kind)) for kind in qc.kinds_for_modality(modality)]


def region_choices(current: str = "") -> list[tuple[str, str]]:
    """Unknown, then every run of neighbouring body parts head to toe (and a stored region outside those)."""
    regions = [""] + [
        region_from_parts(set(PARTS[start:end]))
        for start in range(len(PARTS))
        for end in range(start + 1, len(PARTS) + 1)
    ]
    if current and current not in regions:
        regions.append(current)
    return [(region, region_text(region)) for region in regions]


class SeriesRelabelForm(forms.Form):
    """A QC reviewer's correction of what a series is."""

    kind = forms.ChoiceField(label=_("Kind"))
    region = forms.ChoiceField(label=_("Body region"), required=False)

    def __init__(self, *args, modality: str, current_region: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kind_choices(modality)
        self.fields["region"].choices = region_choices(current_region)


def _series_label(series) -> str:
    number = series.series_number if series.series_number is not None else "?"
    return f"#{number} {series.description}".strip()


class QCFailForm(forms.Form):
    series = forms.ModelMultipleChoiceField(
        label=_("Failed series"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None chosen: the query is about the whole visit."),
    )
    reason = forms.CharField(
        label=_("What is wrong"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("The site's coordinators read this as the first message of the query."),
    )
    due_date = forms.DateField(
        label=_("Answer due by"), widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )

    def __init__(self, *args, series, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["series"].queryset = series
        self.fields["series"].label_from_instance = _series_label
        if not self.is_bound:
            self.initial.setdefault("due_date", timezone.localdate() + timedelta(days=DEFAULT_QUERY_DAYS))


class QCPassForm(forms.Form):
    comment = forms.CharField(
        label=_("Comment"), max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class QueryAnswerForm(forms.Form):
    body = forms.CharField(label=_("Your answer"), max_length=10000, widget=forms.Textarea(attrs={"rows": 4}))


class QueryCloseForm(forms.Form):
    body = forms.CharField(
        label=_("Closing note"), max_length=10000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
