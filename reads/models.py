"""How a trial's images are read: the read design, which readers read which subject, and their tasks."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from trials.models import Subject, Timepoint, Trial


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

    def __str__(self) -> str:
        return f"{self.trial.code} {self.get_criteria_display()} {self.get_paradigm_display()}"

    @property
    def readers_per_subject(self) -> int:
        return 2 if self.paradigm == self.Paradigm.DOUBLE else 1


class ReaderAssignment(models.Model):
    """A reader of one subject: a subject keeps the same readers for all its timepoints."""

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="reader_assignments")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reader_assignments")
    slot = models.PositiveSmallIntegerField(help_text="1 or 2: Reader 1 and Reader 2 of the subject.")
    case_label = models.CharField(max_length=16, help_text="The pseudonymous label the reader knows the case by.")
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject", "reader"], name="one_assignment_per_reader"),
            models.UniqueConstraint(fields=["subject", "slot"], name="one_reader_per_slot"),
        ]

    def __str__(self) -> str:
        return f"{self.case_label} reader {self.slot}"


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
