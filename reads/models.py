"""How a trial's images are read: the read design, which readers read which subject, and their tasks."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from ctims.models import Signature
from trials.models import Instance, Subject, Timepoint, Trial

from .criteria.endpoints import (
    DEFAULT_CONFIRMATION_DAYS,
    DEFAULT_SD_MINIMUM_DAYS,
    DEFAULT_SD_WINDOW_DAYS,
    EndpointRules,
)


class ReadDesign(models.Model):
    """How a trial is read: the criteria, single or double reading, and what a reader may see."""

    class Paradigm(models.TextChoices):
        SINGLE = "single", _("Single read")
        DOUBLE = "double", _("Double read with adjudication")

    class Criteria(models.TextChoices):
        RECIST_11 = "recist11", "RECIST 1.1"

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="read_design")
    criteria = models.CharField(_("criteria"), max_length=20, choices=Criteria.choices, default=Criteria.RECIST_11)
    paradigm = models.CharField(_("paradigm"), max_length=10, choices=Paradigm.choices, default=Paradigm.DOUBLE)
    randomize_order = models.BooleanField(_("randomize case order per reader"), default=False)
    show_prior_timepoints = models.BooleanField(_("readers see the subject's earlier visits"), default=True)
    show_visit_label = models.BooleanField(_("readers see the visit label"), default=True)
    task_days = models.PositiveSmallIntegerField(_("days to read a case"), default=14)

    class AdjudicationTrigger(models.TextChoices):
        VISIT_RESPONSE = "visit_response", _("The readers disagree on a visit's response or date of progression")
        ENDPOINTS = "endpoints", _("The readers disagree on the best overall response or the date of progression")
        BEST_RESPONSE = "best_response", _("The readers disagree on the best overall response")
        PROGRESSION_DATE = "progression_date", _("The readers disagree on the date of progression")

    adjudication_trigger = models.CharField(
        _("adjudicate when"),
        max_length=20,
        choices=AdjudicationTrigger.choices,
        default=AdjudicationTrigger.VISIT_RESPONSE,
        help_text=_("Subject-level triggers are evaluated each time a visit is signed by both readers."),
    )
    confirmation_required = models.BooleanField(
        _("a response (CR or PR) must be confirmed"),
        default=False,
        help_text=_("RECIST 1.1 section 4.4.2: required where response is the primary endpoint."),
    )
    confirmation_days = models.PositiveSmallIntegerField(
        _("days to confirm a response"),
        default=DEFAULT_CONFIRMATION_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
    )
    sd_minimum_days = models.PositiveSmallIntegerField(
        _("minimum duration of stable disease (days from baseline)"),
        default=DEFAULT_SD_MINIMUM_DAYS,
        validators=[MaxValueValidator(3650)],
    )
    sd_window_days = models.PositiveSmallIntegerField(
        _("window of that minimum (days)"), default=DEFAULT_SD_WINDOW_DAYS, validators=[MaxValueValidator(365)]
    )

    def __str__(self) -> str:
        return f"{self.trial.code} {self.get_criteria_display()} {self.get_paradigm_display()}"

    @property
    def readers_per_subject(self) -> int:
        return 2 if self.paradigm == self.Paradigm.DOUBLE else 1

    @property
    def endpoint_rules(self) -> EndpointRules:
        """The rules of subject-level endpoints (best overall response) this design sets."""
        return EndpointRules(
            confirmation=self.confirmation_required,
            confirmation_days=self.confirmation_days,
            sd_minimum_days=self.sd_minimum_days,
            sd_window_days=self.sd_window_days,
        )


READER_SLOTS = (1, 2)


def evaluator_numbers(assignments) -> dict[int, int]:
    """{assignment id: evaluator number} of one subject's reader assignments (slots 1 and 2), as
    `ReaderAssignment.evaluator_number` gives them; each assignment gets its number cached too."""
    out: dict[int, int] = {}
    taken: set[int] = set()
    replacements = len(READER_SLOTS)
    for assignment in sorted(assignments, key=lambda a: (a.assigned_at, a.pk)):
        if assignment.slot not in READER_SLOTS:
            continue
        if assignment.slot in taken:
            replacements += 1
            out[assignment.pk] = replacements
        else:
            taken.add(assignment.slot)
            out[assignment.pk] = assignment.slot
        assignment._evaluator_number = out[assignment.pk]
    return out


def evaluator_numbers_by_subject(assignments) -> tuple[dict[int, list], dict[int, int]]:
    """Reader assignments of several subjects (slots 1 and 2) grouped by subject, and {assignment id: evaluator
    number} of them all (`evaluator_numbers`, subject by subject)."""
    by_subject: dict[int, list] = {}
    for assignment in assignments:
        by_subject.setdefault(assignment.subject_id, []).append(assignment)
    numbers: dict[int, int] = {}
    for held in by_subject.values():
        numbers.update(evaluator_numbers(held))
    return by_subject, numbers


def reader_code(evaluator_number: int | None) -> str:
    """How records outside the system name an evaluator (SR observers, transfers): "Radiologist N", or
    "Adjudicator" (None)."""
    return f"Radiologist {evaluator_number}" if evaluator_number is not None else "Adjudicator"


class ReaderAssignment(models.Model):
    """A reader of one subject: a subject keeps the same readers for all its timepoints.

    Slots 1 and 2 are the readers, one current each. A reader who leaves after signing in the case is retired
    from it: a new reader takes the slot and reads every visit again from baseline, while the retired
    assignment keeps what its reader signed. Slot 3 is the adjudicator; an adjudicator who leaves hands the
    open adjudication on through a new slot-3 assignment, so a subject may have had several.
    """

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="reader_assignments")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reader_assignments")
    slot = models.PositiveSmallIntegerField(help_text="1 or 2: Reader 1 and Reader 2 of the subject.")
    case_label = models.CharField(max_length=16, help_text="The pseudonymous label the reader knows the case by.")
    assigned_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True, help_text="When another reader took the slot over.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "reader"], name="one_assignment_per_reader"),
            models.UniqueConstraint(
                fields=["subject", "slot"],
                condition=models.Q(slot__in=[1, 2], retired_at__isnull=True),
                name="one_reader_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_label} reader {self.slot}"

    @property
    def evaluator_number(self) -> int | None:
        """The number records outside the system give this reader of the case (None for an adjudicator): the
        first holder of slot 1 or 2 is numbered by the slot, and each reader who took a slot over from a retired
        one is a new evaluator, 3, 4, ... in the order they were assigned. A number never changes once given:
        what the retired reader signed keeps theirs, and the newcomer's reads are never taken for theirs."""
        if self.slot not in READER_SLOTS:
            return None
        if "_evaluator_number" not in self.__dict__:
            if self.pk is None:
                return self.slot
            siblings = ReaderAssignment.objects.filter(subject_id=self.subject_id, slot__in=READER_SLOTS)
            self._evaluator_number = evaluator_numbers(siblings)[self.pk]
        return self._evaluator_number

    @property
    def reader_code(self) -> str:
        """How records outside the system name this reader of the case (SR observers, transfers): never the
        person; "Radiologist N" by `evaluator_number`, "Adjudicator"."""
        return reader_code(self.evaluator_number)

    @property
    def slot_label(self) -> str:
        """How pages name the place: "Reader 1", "Reader 2" or "Adjudicator"."""
        if self.slot in (1, 2):
            return _("Reader %(n)s") % {"n": self.slot}
        return str(_("Adjudicator"))


class ReadTask(models.Model):
    """One reader's work on one timepoint; a follow-up opens once the reader has signed the visit before it."""

    class Kind(models.TextChoices):
        READ = "read", _("Read")
        ADJUDICATION = "adjudication", _("Adjudication")

    class State(models.TextChoices):
        WAITING = "waiting", _("Waiting for the previous visit")
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        SIGNED = "signed", _("Signed")
        WITHDRAWN = "withdrawn", _("Withdrawn: the case went to another reader")

    design = models.ForeignKey(ReadDesign, on_delete=models.PROTECT, related_name="tasks")
    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="read_tasks")
    assignment = models.ForeignKey(ReaderAssignment, on_delete=models.PROTECT, related_name="tasks")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.READ)
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING, db_index=True)
    due_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_date", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["timepoint", "assignment", "kind"], name="one_task_per_reader_and_visit")
        ]
        permissions = [("read_task", "Read the images of this task and record the read")]

    def __str__(self) -> str:
        return f"task {self.pk}: {self.assignment.case_label} {self.timepoint.visit.code}"


class Read(models.Model):
    """One version of a reader's read of one visit: a draft until signed; a signed read never changes.

    A correction is a new version of the same task that names the version it supersedes.
    """

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SIGNED = "signed", _("Signed")

    task = models.ForeignKey(ReadTask, on_delete=models.PROTECT, related_name="reads")
    version = models.PositiveSmallIntegerField(default=1)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT, db_index=True)
    # The reader's lesions and findings as the read page sends them (see reads.content).
    content = models.JSONField(default=dict, blank=True)
    # The criteria engine's result for `content` (see reads.services.assessment_json).
    assessment = models.JSONField(null=True, blank=True)
    overall_response = models.CharField(max_length=16, blank=True)
    signature = models.OneToOneField(Signature, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    sr_instance = models.ForeignKey(Instance, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "version"]
        constraints = [models.UniqueConstraint(fields=["task", "version"], name="one_read_per_version")]

    def __str__(self) -> str:
        return f"read {self.pk} v{self.version} of task {self.task_id}"


class Lesion(models.Model):
    """A lesion one reader follows through a subject's visits: its label (T01) and tracking UID never change."""

    class Category(models.TextChoices):
        TARGET = "target", _("Target")
        NON_TARGET = "non_target", _("Non-target")
        NEW = "new", _("New")

    assignment = models.ForeignKey(ReaderAssignment, on_delete=models.PROTECT, related_name="lesions")
    label = models.CharField(max_length=8)
    tracking_uid = models.CharField(max_length=64, unique=True)
    category = models.CharField(max_length=12, choices=Category.choices)
    site_code = models.CharField(max_length=20)
    site_meaning = models.CharField(max_length=100)
    is_node = models.BooleanField(default=False)
    first_read = models.ForeignKey(Read, on_delete=models.PROTECT, related_name="lesions_introduced")

    class Meta:
        ordering = ["assignment", "category", "label"]
        constraints = [models.UniqueConstraint(fields=["assignment", "label"], name="one_lesion_per_label")]

    def __str__(self) -> str:
        return self.label


class Measurement(models.Model):
    """One lesion in one signed read: its status, its axes in tenths of a millimetre and where they were drawn."""

    read = models.ForeignKey(Read, on_delete=models.PROTECT, related_name="measurements")
    lesion = models.ForeignKey(Lesion, on_delete=models.PROTECT, related_name="measurements")
    status = models.CharField(max_length=32)
    long_axis = models.PositiveIntegerField(null=True, blank=True, help_text="Tenths of a millimetre.")
    short_axis = models.PositiveIntegerField(null=True, blank=True, help_text="Tenths of a millimetre.")
    long_points = models.JSONField(null=True, blank=True, help_text="Two image (column, row) points.")
    short_points = models.JSONField(null=True, blank=True)
    study_uid = models.CharField(max_length=64, blank=True)
    series_uid = models.CharField(max_length=64, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    frame = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["read", "lesion"]
        constraints = [models.UniqueConstraint(fields=["read", "lesion"], name="one_measurement_per_lesion")]

    def __str__(self) -> str:
        return f"{self.lesion.label} in read {self.read_id}"


class Adjudication(models.Model):
    """An adjudicator's decision between the two readers of a subject for the visits where they disagree."""

    # None while the trial has no adjudicator to give it to (see reads.results.adjudicators_assign).
    task = models.OneToOneField(ReadTask, on_delete=models.PROTECT, null=True, blank=True, related_name="adjudication")
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="adjudications")
    timepoints = models.ManyToManyField(Timepoint, related_name="adjudications")
    chosen_slot = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    signature = models.OneToOneField(Signature, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"adjudication {self.pk}"


class CurrentResults(models.Manager):
    """The results that stand: those no later result of the same visit supersedes."""

    def get_queryset(self):
        return super().get_queryset().filter(superseded_by__isnull=True)


class TimepointResult(models.Model):
    """The locked result of one visit: the read that stands, by agreement, single read or adjudication.

    A result row never changes (the database refuses it). When an adjudication accepts the other reader's series,
    each already locked visit gets a new result that supersedes the old one, so the history of what stood when
    stays readable. `objects` gives the standing results only; `history` every version.
    """

    class Source(models.TextChoices):
        SINGLE = "single", _("Single read")
        AGREEMENT = "agreement", _("Readers agreed")
        ADJUDICATION = "adjudication", _("Adjudicated")

    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="read_results")
    read = models.ForeignKey(Read, on_delete=models.PROTECT, related_name="results")
    source = models.CharField(max_length=16, choices=Source.choices)
    adjudication = models.ForeignKey(Adjudication, on_delete=models.PROTECT, null=True, blank=True)
    overall_response = models.CharField(max_length=16, blank=True)
    locked_at = models.DateTimeField()
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    # The result SR written at adjudication (verified by the adjudicator, referencing the accepted read's SR).
    sr_instance = models.ForeignKey(Instance, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    objects = CurrentResults()
    history = models.Manager()  # noqa: DJ012 - a second manager, not a field

    class Meta:
        ordering = ["timepoint__subject__code", "timepoint__visit__order"]
        base_manager_name = "history"
        constraints = [
            # Each visit's results form one chain: one first result, each later one superseding exactly one.
            models.UniqueConstraint(
                fields=["timepoint"], condition=models.Q(supersedes__isnull=True), name="one_first_result_per_visit"
            )
        ]

    def __str__(self) -> str:
        return f"result of {self.timepoint}"

    @property
    def sr(self) -> Instance | None:
        """The SR that records this result: the adjudication's result SR, else the standing read's own SR."""
        return self.sr_instance or self.read.sr_instance


class DeliverySettings(models.Model):
    """What a trial's sponsor transfers may carry: study days always, real scan dates only if the trial says so."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="delivery_settings")
    real_dates = models.BooleanField(
        _("deliver real scan dates"),
        default=False,
        help_text=_(
            "Off: transfers carry study days only. On: also each scan's real date, computed back from the "
            "pseudonym space's date shift on the server."
        ),
    )

    def __str__(self) -> str:
        return f"delivery settings of {self.trial.code}"


class Transfer(models.Model):
    """One data transfer to the sponsor: the trial's locked reads up to a cut-off, built once into a zip and kept.

    The same cut-off gives the same files; only the manifest says which transfer it is and when it was made.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="transfers")
    number = models.PositiveIntegerField()
    cutoff = models.DateTimeField(help_text="Only what was signed and locked by then is in the transfer.")
    real_dates = models.BooleanField(default=False, help_text="The trial's delivery setting when it was requested.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    step = models.CharField(max_length=32, blank=True, help_text="What the build is doing (see reads.transfers).")
    supersedes = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    storage_key = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    # Per subject and visit, a digest of what was delivered: the next transfer's "what changed" starts here.
    fingerprints = models.JSONField(default=dict, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)  # English, for logs and the API
    error_text = models.JSONField(default=dict, blank=True)  # its template and parameters (ctims.i18n.Text)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["trial", "-number"]
        constraints = [models.UniqueConstraint(fields=["trial", "number"], name="one_transfer_per_number")]

    def __str__(self) -> str:
        return f"{self.trial.code} transfer {self.number}"

    @property
    def error_display(self) -> str:
        """Why the build failed, in the active language."""
        from ctims.i18n import text_display

        return text_display(self.error_text, self.error)

    @property
    def filename(self) -> str:
        return f"{self.trial.code}-transfer-{self.number:04d}.zip"
