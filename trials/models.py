"""Trials, their sites, visit schedule, imaging protocols, subjects, timepoints and the people in them."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from ctims.fields import DocumentField
from ctims.i18n import text_display

from .deid.profile import IDENTIFYING_TEXT

CODE_VALIDATOR = RegexValidator(
    r"^[A-Z0-9][A-Z0-9_-]{0,31}$",
    _("Use 1 to 32 upper-case letters, digits, '-' or '_', starting with a letter or digit."),
)
DEFAULT_SUBJECT_PATTERN = "{trial}-{site}-{n:03d}"


def new_pseudonym_key() -> bytes:
    """A fresh 256-bit secret for a trial's pseudonym space."""
    return secrets.token_bytes(32)


def validate_ascii(value: str) -> None:
    """Text that goes into a SAS transport v5 file of the sponsor's SDTM delivery, which holds ASCII only."""
    if not value.isascii():
        raise ValidationError(
            _(
                "Use English letters, digits, spaces and punctuation only: the sponsor's SDTM files (SAS transport "
                "version 5) cannot hold other characters."
            )
        )


SUBJECT_CODE_MAX = 64  # Subject.code; DICOM Patient ID (LO) holds 64 characters too
# A subject code is a path segment of the subject's pages and API, the Patient ID and Patient Name of every
# de-identified image (where ^ = \\ are delimiters and * ? wildcards of a search) and USUBJID in the SDTM files.
SUBJECT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Python's format specification: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.\d+)?(?P<type>[a-zA-Z%])?", re.S)
_NUMBER_TYPES = {None, "d", "b", "o", "x", "X"}  # whole numbers written in digits (and letters, in hex)


def validate_subject_code(code: str) -> None:
    """A subject code: letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters."""
    if len(code) > SUBJECT_CODE_MAX or not SUBJECT_CODE.fullmatch(code):
        raise ValidationError(
            _(
                "A subject code may only hold English letters, digits, '-', '_' and '.', starting with a letter or "
                "digit, and at most %(max)s characters; this pattern makes %(code)s."
            ),
            params={"max": SUBJECT_CODE_MAX, "code": repr(code[:80])},
        )


def validate_subject_pattern(pattern: str) -> None:
    """A subject code pattern may use {trial}, {site} and {n} (with a whole-number format such as {n:03d}), must
    use {n}, and must make subject codes that `validate_subject_code` accepts."""
    try:
        fields = [
            (name, spec, conv) for _lit, name, spec, conv in string.Formatter().parse(pattern) if name is not None
        ]
    except ValueError:
        fields = None
    names = {name for name, _spec, _conv in fields or ()}
    if fields is None or names - {"trial", "site", "n"} or any(conv for _name, _spec, conv in fields):
        raise ValidationError(
            _("The subject code pattern may only use {trial}, {site} and {n}, for example %(example)s."),
            params={"example": DEFAULT_SUBJECT_PATTERN},
        )
    if "n" not in names:
        raise ValidationError(_("The subject code pattern must contain {n}, the subject's number."))
    validate_ascii(pattern)  # subject codes are USUBJID in the SDTM delivery
    for name, spec, _conv in fields:
        match = _FORMAT_SPEC.fullmatch(spec) if name == "n" else None
        # The width is checked before anything is formatted: {n:999999999999d} would ask for a terabyte.
        number_format = match is not None and match["type"] in _NUMBER_TYPES
        if (name == "n" and not (number_format and int(match["width"] or 0) <= SUBJECT_CODE_MAX)) or (
            name != "n" and spec
        ):
            raise ValidationError(
                _(
                    "In the subject code pattern, {n} takes a whole-number format at most %(max)s wide, such as "
                    "{n:03d}, and {trial} and {site} none: %(field)s."
                ),
                params={"max": SUBJECT_CODE_MAX, "field": f"{{{name}:{spec}}}"},
            )
    for number in (1, 1234567):  # the first subject, and a number long enough to show separators
        try:
            code = pattern.format(trial="T", site="S", n=number)
        except (ValueError, KeyError, IndexError):
            raise ValidationError(
                _("The subject code pattern may only use {trial}, {site} and {n}, for example %(example)s."),
                params={"example": DEFAULT_SUBJECT_PATTERN},
            ) from None
        validate_subject_code(code)


def validate_private_safelist(value) -> None:
    """A list of [private creator, element offset 0-255] pairs."""
    ok = isinstance(value, list) and all(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and pair[0].strip()
        and isinstance(pair[1], int)
        and 0 <= pair[1] <= 0xFFFF
        for pair in value
    )
    if not ok:
        raise ValidationError(_('Give a list of ["private creator", element] pairs.'))


def validate_kept_text_attributes(value) -> None:
    """A list of keywords of attributes whose purpose is identifying text (trials.deid's IDENTIFYING_TEXT)."""
    if not isinstance(value, list) or not all(isinstance(k, str) and k in IDENTIFYING_TEXT for k in value):
        raise ValidationError(
            _("Give a list of attribute keywords among: %(keywords)s.")
            % {"keywords": ", ".join(sorted(IDENTIFYING_TEXT))}
        )


def default_two_factor_roles() -> list[str]:
    """The roles that sign in with a second factor unless the trial says otherwise: all who see images or reads."""
    return ["trial_admin", "qc_reviewer", "reader", "adjudicator"]


def validate_roles(value) -> None:
    known = {"trial_admin", "coordinator", "qc_reviewer", "reader", "adjudicator", "sponsor"}
    if not isinstance(value, list) or not all(isinstance(v, str) and v in known for v in value):
        raise ValidationError(_("Give a list of roles."))


class Trial(models.Model):
    """A study protocol whose imaging CTIMS manages."""

    class BurnedInText(models.TextChoices):
        REJECT = "reject", _("Reject the image")
        REDACT = "redact", _("Redact the text in the pixels")

    class Status(models.TextChoices):
        SETUP = "setup", _("Set-up")
        ACTIVE = "active", _("Active")
        CLOSED = "closed", _("Closed")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[CODE_VALIDATOR])
    title = models.CharField(_("title"), max_length=300)
    sponsor = models.CharField(_("sponsor"), max_length=200)
    protocol_number = models.CharField(_("protocol number"), max_length=100, validators=[validate_ascii])
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.SETUP)
    subject_code_pattern = models.CharField(
        _("subject code pattern"),
        max_length=64,
        default=DEFAULT_SUBJECT_PATTERN,
        validators=[validate_subject_pattern],
        help_text=_("How subject codes are made: {trial}, {site} and the number {n}, e.g. {n:03d}."),
    )
    # The trial's pseudonym secret: never shown in a page, the API, the admin or a log.
    pseudonym_key = models.BinaryField(max_length=32, editable=False, default=new_pseudonym_key)
    deid_retain_dates_modified = models.BooleanField(_("retain longitudinal dates (shifted)"), default=True)
    deid_clean_descriptors = models.BooleanField(_("clean descriptors"), default=True)
    deid_retain_device_identity = models.BooleanField(_("retain device identity"), default=False)
    deid_retain_patient_characteristics = models.BooleanField(_("retain patient characteristics"), default=False)
    deid_private_safelist = models.JSONField(
        _("private attributes kept"),
        default=list,
        blank=True,
        help_text=_(
            'Private attributes that survive de-identification, as ["private creator", element] pairs, e.g. '
            '[["SIEMENS CT VA0  COAD", 16]]; every other private attribute is removed.'
        ),
        validators=[validate_private_safelist],
    )
    deid_burned_in_text = models.CharField(
        _("text found in the pixels"),
        max_length=8,
        choices=BurnedInText.choices,
        default=BurnedInText.REJECT,
        help_text=_(
            "Secondary images, screens and images with overlays are read by OCR; text found in them is redacted "
            "(the only case the pixels are rewritten) or the image is rejected."
        ),
    )
    deid_kept_text_attributes = models.JSONField(
        _("identifying free text kept (cleaned)"),
        default=list,
        blank=True,
        help_text=_(
            'Attributes of free text about the patient that are kept, cleaned, instead of removed, e.g. ["PatientComments"].'
        ),
        validators=[validate_kept_text_attributes],
    )

    class PseudonymScheme(models.TextChoices):
        # Values are trials.deid.pseudonym's SCHEME_TRIAL and SCHEME_SUBJECT.
        TRIAL = "trial", _("one trial key (trials with images from before subject keys)")
        SUBJECT = "subject", _("a key per subject")

    class DeidPaths(models.TextChoices):
        SERVER = "server", _("on the server")
        EITHER = "either", _("in the site's browser, or on the server where the browser cannot")
        BROWSER = "browser", _("in the site's browser only: identified images never leave the site")

    # Set once: a trial that stored images under one scheme keeps it, or its pseudonyms would change.
    pseudonym_scheme = models.CharField(
        max_length=8, choices=PseudonymScheme.choices, default=PseudonymScheme.SUBJECT, editable=False
    )
    deid_paths = models.CharField(
        _("where images are de-identified"),
        max_length=8,
        choices=DeidPaths.choices,
        default=DeidPaths.SERVER,
        help_text=_(
            "In the browser, the site's computer de-identifies each image before it is sent and the server "
            "checks it again; 'browser only' refuses identified images altogether."
        ),
    )
    two_factor_roles = models.JSONField(
        _("roles that sign in with a second factor"),
        default=default_two_factor_roles,
        blank=True,
        validators=[validate_roles],
        help_text=_("People holding one of these roles in the trial log in with a one-time code as well."),
    )
    two_factor_at_signing = models.BooleanField(
        _("ask for a one-time code at signing"),
        default=False,
        help_text=_("Reads and adjudications are signed with the password and a one-time code."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        permissions = [
            ("manage_trial", "Manage the trial's set-up and people"),
            ("view_all_subjects", "See every subject of the trial"),
            ("view_audit", "Browse the trial's audit trail"),
            ("review_qc", "Review image quality of the trial"),
            ("view_results", "See the trial's locked results"),
        ]

    def __str__(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"<Trial {self.code}>"


class Site(models.Model):
    """An investigator site of a trial."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="sites")
    code = models.CharField(_("code"), max_length=32, validators=[CODE_VALIDATOR])
    name = models.CharField(_("name"), max_length=200)
    # ISO 3166-1 alpha-2, checked against django-countries' list (which also names it in the page's language).
    country = CountryField(
        _("country"), error_messages={"invalid_choice": _("Use the two-letter ISO code of a country, e.g. KR.")}
    )

    class Meta:
        ordering = ["trial", "code"]
        constraints = [models.UniqueConstraint(fields=["trial", "code"], name="site_code_unique_in_trial")]
        permissions = [
            ("view_site_subjects", "See the site's subjects"),
            ("upload_to_site", "Upload images for the site's subjects"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.code}/{self.code}"


class Visit(models.Model):
    """A scheduled imaging visit: its day relative to baseline (day 0) and the window around it."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="visits")
    code = models.CharField(_("code"), max_length=32, validators=[CODE_VALIDATOR])
    label = models.CharField(_("label"), max_length=100)
    # CDISC SDTM VISIT, the protocol-defined visit name: ASCII, since transport v5 files hold nothing else.
    sdtm_name = models.CharField(
        _("SDTM visit name"),
        max_length=40,
        blank=True,
        validators=[validate_ascii],
        help_text=_("The visit name in the sponsor's SDTM files, in English letters (blank: the label, or the code)."),
    )
    order = models.PositiveSmallIntegerField(_("order"))
    target_day = models.IntegerField(_("target day"), validators=[MinValueValidator(-3650), MaxValueValidator(3650)])
    window_before = models.PositiveSmallIntegerField(_("window before (days)"), default=0)
    window_after = models.PositiveSmallIntegerField(_("window after (days)"), default=0)

    class Meta:
        ordering = ["trial", "order"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "code"], name="visit_code_unique_in_trial"),
            models.UniqueConstraint(fields=["trial", "order"], name="visit_order_unique_in_trial"),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def sdtm_visit(self) -> str:
        """SDTM VISIT: the SDTM visit name if set, else the label if it is ASCII, else the code (upper case)."""
        name = self.sdtm_name.strip() or (self.label.strip() if self.label.isascii() else "") or self.code
        return name.upper()

    @property
    def earliest_day(self) -> int:
        return self.target_day - self.window_before

    @property
    def latest_day(self) -> int:
        return self.target_day + self.window_after


# A protocol's slice thickness bounds, as Decimals: a float bound (0.1) is not the Decimal 0.1 and refused it.
SLICE_THICKNESS_MIN_MM = Decimal("0.1")
SLICE_THICKNESS_MAX_MM = Decimal("20")


class ImagingProtocol(models.Model):
    """What a visit's imaging must contain."""

    class Modality(models.TextChoices):
        CT = "CT", "CT"
        MR = "MR", "MR"

    class Region(models.TextChoices):
        HEAD = "head", _("Head")
        NECK = "neck", _("Neck")
        CHEST = "chest", _("Chest")
        ABDOMEN = "abdomen", _("Abdomen")
        PELVIS = "pelvis", _("Pelvis")
        CHEST_ABDOMEN_PELVIS = "cap", _("Chest-abdomen-pelvis")
        WHOLE_BODY = "whole_body", _("Whole body")

    class Contrast(models.TextChoices):
        REQUIRED = "required", _("With contrast")
        NONE = "none", _("Without contrast")
        EITHER = "either", _("With or without contrast")

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="protocols")
    modality = models.CharField(_("modality"), max_length=2, choices=Modality.choices)
    body_region = models.CharField(_("body region"), max_length=16, choices=Region.choices)
    contrast = models.CharField(_("contrast"), max_length=16, choices=Contrast.choices)
    same_scanner_as_baseline = models.BooleanField(
        _("same scanner as baseline"),
        default=False,
        help_text=_("Follow-up scans must come from the scanner model and protocol of the subject's baseline."),
    )
    max_slice_thickness_mm = models.DecimalField(
        _("maximum slice thickness (mm)"),
        max_digits=4,
        decimal_places=2,
        validators=[MinValueValidator(SLICE_THICKNESS_MIN_MM), MaxValueValidator(SLICE_THICKNESS_MAX_MM)],
    )

    class Meta:
        ordering = ["visit", "modality", "body_region"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "modality", "body_region"], name="protocol_unique_per_visit")
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.get_body_region_display()}"


class Subject(models.Model):
    """An enrolled participant, known to CTIMS only by a pseudonymous code."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="subjects")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="subjects")
    code = models.CharField(_("code"), max_length=64)
    number = models.PositiveIntegerField()
    # Keyed hash of the source PatientID, set by the first accepted upload; the ID itself is never stored.
    source_patient_hash = models.CharField(max_length=64, blank=True, editable=False)
    enrolled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "code"]
        constraints = [models.UniqueConstraint(fields=["trial", "code"], name="subject_code_unique_in_trial")]

    def __str__(self) -> str:
        return self.code


class Timepoint(models.Model):
    """One subject at one visit, and how far its images have come."""

    class State(models.TextChoices):
        EXPECTED = "expected", _("Expected")
        UPLOADING = "uploading", _("Uploading")
        UPLOADED = "uploaded", _("Uploaded")
        IN_QC = "in_qc", _("In QC")
        QUERY_OPEN = "query_open", _("Query open")
        READY_FOR_READ = "ready", _("Ready for read")
        IN_READ = "in_read", _("In read")
        IN_ADJUDICATION = "in_adjudication", _("In adjudication")
        LOCKED = "locked", _("Locked")

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="timepoints")
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="timepoints")
    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.EXPECTED)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["subject", "visit__order"]
        constraints = [models.UniqueConstraint(fields=["subject", "visit"], name="one_timepoint_per_visit")]

    def __str__(self) -> str:
        return f"{self.subject.code} {self.visit.label}"


class Role(models.TextChoices):
    TRIAL_ADMIN = "trial_admin", _("Trial admin")
    SITE_COORDINATOR = "coordinator", _("Site coordinator")
    QC_REVIEWER = "qc_reviewer", _("QC reviewer")
    READER = "reader", _("Reader")
    ADJUDICATOR = "adjudicator", _("Adjudicator")
    SPONSOR_VIEWER = "sponsor", _("Sponsor viewer")


class Membership(models.Model):
    """A person's role in one trial (and, for a site coordinator, the sites they work for)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships")
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    sites = models.ManyToManyField(Site, blank=True, related_name="memberships")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "role", "user__email"]
        constraints = [models.UniqueConstraint(fields=["user", "trial", "role"], name="one_membership_per_role")]

    def __str__(self) -> str:
        return f"{self.user.email} · {self.get_role_display()} · {self.trial.code}"


def hash_token_key(key: str) -> str:
    """Tokens are stored as their SHA-256: a leaked table does not leak usable keys."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


class ApiToken(models.Model):
    """A machine client's credential, scoped to one membership (so to one trial and one role)."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=8, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Upload(models.Model):
    """One upload session: a coordinator sending one timepoint's images, in as many batches as it takes."""

    class State(models.TextChoices):
        OPEN = "open", _("Receiving")
        PROCESSING = "processing", _("Processing")
        COMPLETE = "complete", _("Complete")
        CANCELLED = "cancelled", _("Cancelled")

    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="uploads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    # The visit's state when the session opened: where it goes back to if the session is discarded with no file
    # ("" for sessions opened before 0.2.0 kept it, and while another upload of the visit was open).
    visit_state_before = models.CharField(max_length=16, blank=True, default="", db_default="")
    # Closed by the periodic job after UPLOAD_IDLE_HOURS without a file, not finished by the site: what it received
    # is kept and processed, and its coordinator and the QC reviewers are told it may be incomplete.
    idle_closed = models.BooleanField(default=False, db_default=False)

    class DeidPath(models.TextChoices):
        SERVER = "server", _("on the server")
        BROWSER = "browser", _("in the site's browser")

    # Where this session's files were de-identified: "browser" files are re-verified, never de-identified again.
    deid_path = models.CharField(max_length=8, choices=DeidPath.choices, default=DeidPath.SERVER)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload {self.pk} of {self.timepoint}"


class UploadItem(models.Model):
    """One file received in an upload: its raw bytes wait in quarantine until de-identified or rejected.

    The client's file name is never stored (scanner folders often carry the patient's name); the client
    identifies its files by the SHA-256 of their bytes.
    """

    class State(models.TextChoices):
        QUARANTINED = "quarantined", _("Waiting")
        ACCEPTED = "accepted", _("De-identified and stored")
        DUPLICATE = "duplicate", _("Already stored")
        REJECTED = "rejected", _("Rejected")
        # The quarantined copy was damaged or lost: the client is asked for the file again.
        RESEND = "resend", _("Send again")

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="items")
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUARANTINED, db_index=True)
    code = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    # The reason's template (a msgid) and parameters (ctims.i18n), to say it in the reader's language.
    reason_text = models.JSONField(default=dict, blank=True)
    instance = models.ForeignKey("Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    processed_at = models.DateTimeField(null=True, blank=True)
    # The outbox: when a processing task was last queued for this waiting file (set by the commit that makes it
    # due); a waiting file whose task is older than the grace period is queued again by the sweeper.
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # By the upload's id, not "upload": ordering by a relation orders by that model's own ordering, which joins
        # the upload's table into every query of items, row locks included (FOR UPDATE then locked the upload's
        # row too). Newest upload first, as its -created_at gave: ids grow as uploads are created.
        ordering = ["-upload_id", "pk"]
        constraints = [models.UniqueConstraint(fields=["upload", "sha256"], name="one_item_per_file_per_upload")]

    def __str__(self) -> str:
        return f"item {self.sha256[:12]} ({self.state})"

    @property
    def reason_display(self) -> str:
        """The reason in the active language."""
        return text_display(self.reason_text, self.reason)


class BrowserDeidRecord(models.Model):
    """What the site's browser declared of one file it de-identified, sent before the file itself.

    `key_check` is HMAC(subject key used, the output's SHA-256): the server, which knows the subject key,
    tells from it that the file was made with this subject's key. `patient_hash` is the keyed hash of the
    source Patient ID (never the ID), for the wrong-patient guard. `actions` holds the engine's counts.
    """

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="browser_records")
    sha256 = models.CharField(max_length=64)
    key_check = models.CharField(max_length=64)
    patient_hash = models.CharField(max_length=64, blank=True)
    actions = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "sha256"], name="one_browser_record_per_file")]

    def __str__(self) -> str:
        return f"browser record {self.sha256[:12]}"


class Study(models.Model):
    """A de-identified study in the image store, under its pseudonymous UID."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="studies")
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="studies")
    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)
    study_date = models.DateField(null=True, blank=True, help_text="Shifted by the subject's date offset.")
    study_time = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=200, blank=True)
    # QIDO-RS matching keys and return attributes (PS3.18 Table 10.6.1-5 and 10.6.3-3), as de-identified.
    accession_number = models.CharField(max_length=64, blank=True, default="")
    study_id = models.CharField(max_length=64, blank=True, default="")
    referring_physician_name = models.CharField(max_length=200, blank=True, default="")
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timepoint", "study_date"]
        indexes = [
            models.Index(fields=["trial", "study_date"], name="trials_study_trial_date"),
            models.Index(fields=["accession_number"], name="trials_study_accession"),
            models.Index(fields=["study_id"], name="trials_study_study_id"),
        ]

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(models.Model):
    """A de-identified series and the attributes QC and the viewer need."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)
    modality = models.CharField(max_length=16, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    slice_thickness = models.FloatField(null=True, blank=True)
    spacing_between_slices = models.FloatField(null=True, blank=True)
    contrast_agent = models.CharField(max_length=200, blank=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    # Kept by ingest so that searches need not count a million instance rows.
    instance_count = models.PositiveIntegerField(default=0)
    # QIDO-RS matching keys of the series level (PS3.18 Table 10.6.1-5), as de-identified.
    performed_procedure_step_start_date = models.DateField(null=True, blank=True)
    performed_procedure_step_start_time = models.CharField(max_length=16, blank=True, default="")
    requested_procedure_id = models.CharField(max_length=64, blank=True, default="")
    scheduled_procedure_step_id = models.CharField(max_length=64, blank=True, default="")

    class Origin(models.TextChoices):
        UPLOAD = "upload", _("Uploaded by a site")
        READ = "read", _("Written by a central read")

    # A read's SR is stored in the study it reads; only trial admins see it through the trial root.
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.UPLOAD)

    class Meta:
        ordering = ["study", "series_number"]
        verbose_name_plural = "series"
        indexes = [models.Index(fields=["study", "series_number"], name="trials_series_study_number")]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    """One de-identified Part 10 file in the image store: written once, addressed by trial and UIDs."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    # A QIDO-RS return attribute (Table 10.6.3-5); nullable so adding it does not rewrite the table.
    bits_allocated = models.SmallIntegerField(null=True, blank=True)  # no CHECK: adding it scans nothing
    image_position = models.JSONField(null=True, blank=True)
    image_orientation = models.JSONField(null=True, blank=True)
    pixel_spacing = models.JSONField(null=True, blank=True)
    slice_thickness = models.FloatField(null=True, blank=True)
    acquisition_number = models.IntegerField(null=True, blank=True)
    storage_key = models.CharField(max_length=300, unique=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    deid_method = models.CharField(max_length=500)
    # What de-identification cleaned out of kept text ([attribute path, reason] pairs, never a value) and how it
    # rewrote the pixels ("" when they are the input's); null when it did neither, as on most CT and MR slices.
    deid_record = DocumentField(null=True, blank=True, editable=False)
    # The DICOM JSON of every attribute but the pixel data, made on first request (instances never change).
    metadata = DocumentField(null=True, blank=True, editable=False)
    # Where native pixel frames lie in the file ({"offset", "frame_bytes", "frames"}), found on first request.
    pixel_layout = DocumentField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # By the series' id, not "series": ordering by a relation orders by that model's own ordering, which joins
        # the series, its study, visit, subject and trial to every query of instances. Within a series the order
        # is the same (the index below serves it); across series, the order they were indexed in.
        ordering = ["series_id", "instance_number"]
        indexes = [
            # QIDO's instance order within a series, and SOPClassUID matching across a trial.
            models.Index(fields=["series", "instance_number"], name="trials_instance_series_number"),
            models.Index(fields=["sop_class_uid"], name="trials_instance_sop_class"),
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class SeriesClassification(models.Model):
    """What QC's rules say a series is (CT phase or MR sequence, body region), and a reviewer's correction."""

    series = models.OneToOneField(Series, on_delete=models.CASCADE, related_name="classification")
    auto_kind = models.CharField(max_length=40)
    auto_region = models.CharField(max_length=40, blank=True)
    confidence = models.FloatField(default=0)
    reasons = models.JSONField(default=list)
    rules_version = models.CharField(max_length=20)
    kind = models.CharField(_("kind"), max_length=40, help_text=_("The rules' kind, or the reviewer's correction."))
    region = models.CharField(_("region"), max_length=40, blank=True)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.series} {self.kind}"


class QCFinding(models.Model):
    """One result of the automatic checks on a timepoint (or one of its series), replaced at every run."""

    class Severity(models.TextChoices):
        BLOCKING = "blocking", _("Blocking")
        WARNING = "warning", _("Warning")

    timepoint = models.ForeignKey(Timepoint, on_delete=models.CASCADE, related_name="qc_findings")
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="qc_findings")
    code = models.CharField(max_length=40)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    message = models.CharField(max_length=500)
    message_text = models.JSONField(default=dict, blank=True)  # the message's template and parameters (qc.Why)
    details = models.JSONField(default=dict)
    rules_version = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timepoint", "severity", "pk"]

    def __str__(self) -> str:
        return f"{self.code} ({self.severity})"

    @property
    def message_display(self) -> str:
        """The finding in the active language, from the sentence's template and parameters (trials.qc.Why). A
        finding stored before findings kept their template is said by its code's sentence in another language."""
        from .forms import why_text
        from .qc.compliance import CODES

        if self.message_text:
            return why_text(self.message_text)
        if translation.get_language() in (None, settings.LANGUAGE_CODE) or self.code not in CODES:
            return self.message
        return gettext(CODES[self.code])


class QCReview(models.Model):
    """A QC reviewer's decision on a timepoint: passed (ready for read) or failed with a query to the site."""

    class Decision(models.TextChoices):
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")

    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="qc_reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    failed_series = models.ManyToManyField(Series, blank=True, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.timepoint}: {self.decision}"


class Query(models.Model):
    """A question from the core lab to a site about a timepoint (and perhaps one series), until closed."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")
        CLOSED = "closed", _("Closed")

    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="queries")
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.SET_NULL, related_name="queries")
    # What QC failed, in no language: the series' numbers and descriptions (DICOM values), empty for the whole
    # visit. Pages head the query with `heading`, in their reader's language.
    title = models.CharField(_("title"), max_length=200, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.OPEN, db_index=True)
    due_date = models.DateField(_("due date"))
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When the last overdue reminder went out.")

    class Meta:
        ordering = ["-opened_at"]
        verbose_name_plural = "queries"

    def __str__(self) -> str:
        return f"Q{self.pk} {self.title}"

    @property
    def heading(self) -> str:
        """The query's title in the active language: "QC failed: 2 CT PV 5mm" (a recipient reads their own)."""
        if not self.title:
            return gettext("QC failed: the visit")
        return gettext("QC failed: %(names)s") % {"names": self.title}

    @property
    def is_overdue(self) -> bool:
        """Past its due date while waiting for the site: an answered query waits for the core lab, not the site."""
        return self.state == self.State.OPEN and self.due_date < timezone.localdate()


class QueryMessage(models.Model):
    """One message in a query's thread; a re-upload answers with a link to the upload."""

    query = models.ForeignKey(Query, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    body = models.TextField(_("message"))
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="query_messages")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"message {self.pk} on {self.query}"


class Invitation(models.Model):
    """A role in a trial offered to an email address; it becomes a membership only when that person accepts.

    The secret of its link is stored as its SHA-256, like a token key. Whether an account exists for the
    address is never told to the one who invites: the person finds out when they open the link.
    """

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="invitations")
    email = models.EmailField(_("email"))
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    sites = models.ManyToManyField(Site, blank=True, related_name="+")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Withdrawn: the role was removed, or the person was invited to it again (the newest invitation stands).
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} · {self.get_role_display()} · {self.trial.code}"
