"""Small input and output serializers, one pair per operation. None of them carries the pseudonym key."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from ..deid.engine import ACTIONS as DEID_ACTIONS
from ..ingest.browser import RECORDS_PER_REQUEST
from ..models import (
    SLICE_THICKNESS_MAX_MM,
    SLICE_THICKNESS_MIN_MM,
    ApiToken,
    ImagingProtocol,
    Invitation,
    Membership,
    Role,
    Site,
    Subject,
    Timepoint,
    Trial,
    Upload,
    UploadItem,
    Visit,
)
from ..selectors import AUDIT_DATE_MAX, AUDIT_DATE_MIN


class TrialOut(serializers.ModelSerializer):
    class Meta:
        model = Trial
        fields = [
            "code",
            "title",
            "sponsor",
            "protocol_number",
            "status",
            "subject_code_pattern",
            "created_at",
            "deid_retain_dates_modified",
            "deid_clean_descriptors",
            "deid_retain_device_identity",
            "deid_retain_patient_characteristics",
            "deid_private_safelist",
            "deid_burned_in_text",
            "deid_kept_text_attributes",
            "deid_paths",
            "two_factor_roles",
            "two_factor_at_signing",
        ]


class TrialCreateIn(serializers.Serializer):
    code = serializers.CharField(max_length=32)
    title = serializers.CharField(max_length=300)
    sponsor = serializers.CharField(max_length=200)
    protocol_number = serializers.CharField(max_length=100)
    status = serializers.ChoiceField(choices=Trial.Status.choices, default=Trial.Status.SETUP)
    subject_code_pattern = serializers.CharField(max_length=64, required=False)


class ListJSONField(serializers.JSONField):
    """A JSON value that may not be null: a form's or multipart body's "null" parses to None after DRF's own null
    check, and the model's blank=True field would skip its validators for it."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value is None:
            self.fail("null")
        return value


class TrialUpdateIn(serializers.Serializer):
    deid_retain_dates_modified = serializers.BooleanField(required=False)
    deid_clean_descriptors = serializers.BooleanField(required=False)
    deid_retain_device_identity = serializers.BooleanField(required=False)
    deid_retain_patient_characteristics = serializers.BooleanField(required=False)
    deid_private_safelist = ListJSONField(required=False)
    deid_burned_in_text = serializers.ChoiceField(choices=Trial.BurnedInText.choices, required=False)
    deid_kept_text_attributes = ListJSONField(required=False)
    deid_paths = serializers.ChoiceField(choices=Trial.DeidPaths.choices, required=False)
    title = serializers.CharField(max_length=300, required=False)
    sponsor = serializers.CharField(max_length=200, required=False)
    protocol_number = serializers.CharField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=Trial.Status.choices, required=False)
    subject_code_pattern = serializers.CharField(max_length=64, required=False)
    two_factor_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False, allow_empty=True
    )
    two_factor_at_signing = serializers.BooleanField(required=False)


class TrialNameOut(serializers.Serializer):
    """What a reader or adjudicator learns of a trial: its code and title."""

    code = serializers.CharField()
    title = serializers.CharField()

    class Meta:
        closed = True  # its schema admits no other property: a whole trial is not also a TrialNameOut


def or_name_only(whole, component_name: str, many: bool = False) -> PolymorphicProxySerializer:
    """For the schema: a trial's answer as its reader sees it, `whole` or its code and title only (a reader or
    adjudicator: TrialNameOut)."""
    return PolymorphicProxySerializer(
        component_name=component_name, serializers=[whole, TrialNameOut], resource_type_field_name=None, many=many
    )


class TrialSummaryOut(TrialNameOut):
    """Counts only, for sponsors: nothing identifying."""

    sites = serializers.IntegerField()
    subjects = serializers.IntegerField()
    visits = serializers.ListField(child=serializers.DictField())


class SiteOut(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["code", "name", "country"]


class SiteCreateIn(serializers.Serializer):
    code = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=200)
    # Two ASCII letters before django-countries sees it: it reads a string of digits as a numeric code, and
    # int() fails on digits it does not know ("¹").
    country = serializers.RegexField(
        r"^[A-Za-z]{2}$",
        max_length=2,
        help_text="ISO 3166-1 alpha-2 code, e.g. KR.",
        error_messages={"invalid": _("Use the two-letter ISO code of a country, e.g. KR.")},
    )


class ProtocolOut(serializers.ModelSerializer):
    class Meta:
        model = ImagingProtocol
        fields = ["id", "modality", "body_region", "contrast", "max_slice_thickness_mm", "same_scanner_as_baseline"]


class VisitOut(serializers.ModelSerializer):
    protocols = ProtocolOut(many=True, read_only=True)

    class Meta:
        model = Visit
        fields = ["code", "label", "sdtm_name", "order", "target_day", "window_before", "window_after", "protocols"]


class VisitCreateIn(serializers.Serializer):
    code = serializers.CharField(max_length=32)
    label = serializers.CharField(max_length=100)
    sdtm_name = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    order = serializers.IntegerField(min_value=0, max_value=32767)
    target_day = serializers.IntegerField()
    window_before = serializers.IntegerField(min_value=0, max_value=3650, default=0)
    window_after = serializers.IntegerField(min_value=0, max_value=3650, default=0)


class ProtocolCreateIn(serializers.Serializer):
    modality = serializers.ChoiceField(choices=ImagingProtocol.Modality.choices)
    body_region = serializers.ChoiceField(choices=ImagingProtocol.Region.choices)
    contrast = serializers.ChoiceField(choices=ImagingProtocol.Contrast.choices)
    max_slice_thickness_mm = serializers.DecimalField(
        max_digits=4, decimal_places=2, min_value=SLICE_THICKNESS_MIN_MM, max_value=SLICE_THICKNESS_MAX_MM
    )
    same_scanner_as_baseline = serializers.BooleanField(required=False, default=False)


class TimepointOut(serializers.ModelSerializer):
    visit = serializers.CharField(source="visit.code")

    class Meta:
        model = Timepoint
        fields = ["visit", "state"]


class SubjectOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code")
    timepoints = TimepointOut(many=True, read_only=True)

    class Meta:
        model = Subject
        fields = ["code", "site", "enrolled_at", "timepoints"]


class SubjectEnrollIn(serializers.Serializer):
    site = serializers.CharField(max_length=32)


class MembershipOut(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    sites = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "sites", "granted_at"]


class InvitationOut(serializers.ModelSerializer):
    """What the inviter learns: the offer they made, the same whether or not the address has an account."""

    sites = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "sites", "state", "expires_at"]

    def get_state(self, invitation) -> str:
        return "accepted" if invitation.accepted_at else "invited"


class MembershipGrantIn(serializers.Serializer):
    email = serializers.EmailField()
    full_name = serializers.CharField(max_length=200, required=False, default="")
    role = serializers.ChoiceField(choices=Role.choices)
    sites = serializers.ListField(child=serializers.CharField(max_length=32), required=False, default=list)


class TokenOut(serializers.ModelSerializer):
    role = serializers.CharField(source="membership.role")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]


class TokenCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices)


class TokenCreatedOut(TokenOut):
    key = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(TokenOut.Meta):
        fields = TokenOut.Meta.fields + ["key"]


class AuditEventOut(serializers.Serializer):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_label = serializers.CharField()
    summary = serializers.JSONField()
    hash = serializers.CharField()


AUDIT_DATE_VALIDATORS = [MinValueValidator(AUDIT_DATE_MIN), MaxValueValidator(AUDIT_DATE_MAX)]


class AuditFilterIn(serializers.Serializer):
    action = serializers.CharField(required=False, default="")
    actor = serializers.CharField(required=False, default="")
    object_type = serializers.CharField(required=False, default="")
    since = serializers.DateField(required=False, default=None, validators=AUDIT_DATE_VALIDATORS)
    until = serializers.DateField(required=False, default=None, validators=AUDIT_DATE_VALIDATORS)


class UploadItemOut(serializers.ModelSerializer):
    # In the request's language (Accept-Language; the upload page's), from the stored template and parameters.
    reason = serializers.CharField(source="reason_display", read_only=True)

    class Meta:
        model = UploadItem
        fields = ["sha256", "size", "state", "code", "reason"]


class UploadOpenIn(serializers.Serializer):
    # "browser": the client de-identifies each file itself (the upload page); "server": files are sent as they are.
    deid_path = serializers.ChoiceField(choices=Upload.DeidPath.choices, default=Upload.DeidPath.SERVER)


class UploadSubjectKeyOut(serializers.Serializer):
    subject = serializers.CharField()
    subject_key = serializers.CharField(help_text="The subject's own key (hex), never the trial's.")
    patient_hash = serializers.CharField(allow_blank=True)
    options = serializers.DictField()


_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


@extend_schema_field(
    {
        "type": "object",
        "description": "What the site's browser did to one file it de-identified: keyed hashes and counts, never a "
        "value of the original. Other members are ignored.",
        "properties": {
            "sha256": {**_HEX64, "description": "The SHA-256 of the de-identified file the browser will send."},
            "key_check": {**_HEX64, "description": "Proof that the browser used the subject's key (its keyed hash)."},
            "patient_hash": {
                **_HEX64,
                "pattern": "^([0-9a-f]{64})?$",
                "description": "The keyed hash of the file's Patient ID; empty or absent for a file without one.",
            },
            "actions": {
                "type": "object",
                "description": "How many attributes each action of the profile changed.",
                "propertyNames": {"enum": sorted(DEID_ACTIONS)},
                "additionalProperties": {"type": "integer"},
            },
        },
        "required": ["sha256", "key_check"],
    }
)
class _BrowserRecordField(serializers.DictField):
    """One record, checked by the ingest service (browser.browser_records_checked, which the STOW path shares):
    its shape is published here, its rules kept there."""


class BrowserRecordIn(serializers.Serializer):
    records = serializers.ListField(child=_BrowserRecordField(), max_length=RECORDS_PER_REQUEST)


class BrowserRecordsOut(serializers.Serializer):
    received = serializers.IntegerField(
        help_text="How many records this request brought, each checked; one sent before is kept once."
    )


class UploadStatusIn(serializers.Serializer):
    items_from = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="A `cursor` of an earlier answer: list only the files from it on (the rest were settled then); "
        "every file is listed once the upload is complete or cancelled.",
    )


class UploadOut(serializers.ModelSerializer):
    subject = serializers.CharField(source="timepoint.subject.code")
    visit = serializers.CharField(source="timepoint.visit.code")
    timepoint_state = serializers.CharField(source="timepoint.state")
    counts = serializers.SerializerMethodField()
    items = serializers.SerializerMethodField()
    cursor = serializers.SerializerMethodField()
    stow_url = serializers.SerializerMethodField()
    idle_closed = serializers.BooleanField(
        read_only=True,
        help_text="True when the periodic job closed the session after it received no file for "
        "UPLOAD_IDLE_HOURS, before the site finished it: the files it acknowledged are kept and processed, but "
        "the site never said it had sent everything. False for a session the site finished, or still open.",
    )
    timepoint_stored = serializers.SerializerMethodField(
        help_text="Once the upload is complete or cancelled, the uploaded series and images the visit holds "
        "(every upload's); null before."
    )

    class Meta:
        model = Upload
        fields = [
            "id",
            "state",
            "subject",
            "visit",
            "timepoint_state",
            "timepoint_stored",
            "created_at",
            "closed_at",
            "counts",
            "items",
            "cursor",
            "stow_url",
            "deid_path",
            "idle_closed",
        ]

    def _status(self, upload):
        """The upload's status (ingest.services.upload_status), made once per upload for `items`, `cursor` and
        `counts` (kept per upload: one serializer may be the child of a list)."""
        from ..ingest.services import upload_status

        made = self.__dict__.setdefault("_statuses", {})
        if upload.pk not in made:
            made[upload.pk] = upload_status(upload, items_from=self.context.get("items_from"))
        return made[upload.pk]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"series": {"type": "integer"}, "instances": {"type": "integer"}},
        }
    )
    def get_timepoint_stored(self, upload) -> dict | None:
        if upload.state in (Upload.State.OPEN, Upload.State.PROCESSING):
            return None  # counted once, when the upload ends, not at every status poll
        from ..selectors import timepoint_stored

        return timepoint_stored(upload.timepoint)

    @extend_schema_field(UploadItemOut(many=True))
    def get_items(self, upload) -> list:
        return UploadItemOut(self._status(upload).items, many=True).data

    def get_cursor(self, upload) -> int:
        return self._status(upload).cursor

    def get_counts(self, upload) -> dict:
        return self._status(upload).counts

    def get_stow_url(self, upload) -> str:
        return f"/dicomweb/trials/{upload.timepoint.subject.trial.code}/uploads/{upload.pk}/studies"


class InboxEntryOut(serializers.Serializer):
    """One thing waiting for the person; a reader's entries carry no site, subject code or image date."""

    kind = serializers.CharField()
    label = serializers.CharField()
    trial = serializers.CharField()
    title = serializers.CharField()
    about = serializers.CharField()
    url = serializers.CharField(help_text="The page where the person acts on it.")
    due = serializers.DateField(allow_null=True)
    overdue = serializers.BooleanField()
    since = serializers.DateTimeField(allow_null=True)


class InboxOut(serializers.Serializer):
    total = serializers.IntegerField()
    overdue = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Entries of each kind.")
    results = InboxEntryOut(many=True)
