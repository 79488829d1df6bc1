"""Read designs, reader assignment and read tasks; each change writes its audit event."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, ValidationFailed
from ctims.signatures import user_id_asked
from trials.models import Membership, Role, Subject, Timepoint, Trial
from trials.services import timepoint_transition

from .models import READER_SLOTS, Read, ReadDesign, ReaderAssignment, ReadTask

DESIGN_FIELDS = (
    "criteria",
    "paradigm",
    "randomize_order",
    "show_prior_timepoints",
    "show_visit_label",
    "task_days",
    "adjudication_trigger",
    "confirmation_required",
    "confirmation_days",
    "sd_minimum_days",
    "sd_window_days",
)


# What the results rest on: the criteria the readers measure by (fixed once reading has begun, as the paradigm is)
# and the rules that turn signed reads into adjudications and subject-level endpoints (fixed once a read is
# signed: results signed, locked and delivered were computed with them).
READING_FIELDS = ("criteria", "paradigm")
ENDPOINT_FIELDS = (
    "adjudication_trigger",
    "confirmation_required",
    "confirmation_days",
    "sd_minimum_days",
    "sd_window_days",
)


def signer_components(*, request, password: str, second_factor: str = "", user_id: str = "") -> dict:
    """The components a reader's or an adjudicator's signature is checked with, as `signature_create` takes them:
    the password, the one-time code, and the user ID typed where the signing is the first of its log-in
    (`user_id_asked`, 21 CFR 11.200(a)(1)(i)), None where it is not (the form did not ask for it). The one place
    that decides it for the read and the adjudication alike; the pages ask by the same function."""
    return {
        "password": password,
        "second_factor": second_factor,
        "user_id": user_id if user_id_asked(request) else None,
    }


def design_fixed(design: ReadDesign | None) -> frozenset[str]:
    """The design's fields that can no longer change."""
    if design is None or design.pk is None or not design.tasks.exists():
        return frozenset()
    if Read.objects.filter(task__design=design, state=Read.State.SIGNED).exists():
        return frozenset(READING_FIELDS + ENDPOINT_FIELDS)
    return frozenset(READING_FIELDS)


def case_label(subject: Subject) -> str:
    """The pseudonymous label readers know a subject by: keyed, so it reveals neither the site nor the code."""
    digest = hmac.new(bytes(subject.trial.pseudonym_key), b"ctims:case:" + subject.code.encode(), hashlib.sha256)
    return "C-" + base64.b32encode(digest.digest()[:5]).decode("ascii")[:7]


def read_design_set(*, actor, trial: Trial, **fields) -> ReadDesign:
    """Create or change the trial's read design; what results rest on is fixed once reading has begun and once a
    read is signed (`design_fixed`)."""
    unknown = set(fields) - set(DESIGN_FIELDS)
    if unknown:
        raise ValidationFailed(_("Unknown read design fields: %(names)s.") % {"names": ", ".join(sorted(unknown))})
    with transaction.atomic():
        design, created = ReadDesign.objects.select_for_update().get_or_create(trial=trial)
        changed = {name for name, value in fields.items() if value != getattr(design, name)}
        fixed = changed & design_fixed(design)
        if fixed & set(READING_FIELDS):
            raise InvalidState(_("The criteria and the paradigm cannot change once read tasks exist."))
        if fixed:
            raise InvalidState(
                _(
                    "The adjudication trigger and the endpoint rules cannot change once a read is signed: the "
                    "signed results, and what was delivered, were computed with them."
                )
            )
        before = {name: getattr(design, name) for name in DESIGN_FIELDS}
        for name, value in fields.items():
            setattr(design, name, value)
        try:
            design.full_clean(exclude=["trial"])
        except ValidationError as exc:
            raise ValidationFailed.from_django(exc) from None
        design.save()
        audit_record(
            actor=actor,
            action="read_design.create" if created else "read_design.update",
            obj=design,
            trial_id=trial.pk,
            summary={name: getattr(design, name) for name in DESIGN_FIELDS} | _changes(before, design, created),
        )
    return design


def _changes(before: dict, design: ReadDesign, created: bool) -> dict:
    """A changed design's fields as they were beside as they are (11.10(e)), for its audit event."""
    changed = {name: [was, getattr(design, name)] for name, was in before.items() if was != getattr(design, name)}
    return {"changes": changed} if changed and not created else {}


ADJUDICATOR_SLOT = 3


def current_readers(subject: Subject) -> QuerySet[ReaderAssignment]:
    """The subject's readers now (slots 1 and 2), without those retired from the case."""
    return subject.reader_assignments.filter(slot__in=READER_SLOTS, retired_at__isnull=True)


def slot_role(slot: int) -> str:
    """The role a slot is held under: the readers' slots under Reader, the adjudicator's under Adjudicator."""
    return Role.ADJUDICATOR if slot == ADJUDICATOR_SLOT else Role.READER


def in_role(assignment: str = "", trial: str = "subject__trial") -> Q:
    """The condition that an assignment's holder is active and holds its slot's role in the trial.

    `assignment` is the path to the assignment ("" on ReaderAssignment, "assignment__" on ReadTask) and
    `trial` the path to its trial from the queried model.
    """
    reader = f"{assignment}reader"

    def member(role: str) -> Exists:
        return Exists(Membership.objects.filter(trial=OuterRef(trial), user=OuterRef(reader), role=role))

    return Q(**{f"{reader}__is_active": True}) & (
        (Q(**{f"{assignment}slot__in": READER_SLOTS}) & member(Role.READER))
        | (Q(**{f"{assignment}slot": ADJUDICATOR_SLOT}) & member(Role.ADJUDICATOR))
    )


def held(tasks: QuerySet[ReadTask]) -> QuerySet[ReadTask]:
    """The tasks whose holder still holds the role they were given them under, with an active account.

    A reader or adjudicator whose role is revoked loses their tasks at once, with no permission left to
    clean up; what they signed stays on record, and the trial admin gives the rest to someone else.
    """
    return tasks.exclude(state=ReadTask.State.WITHDRAWN).filter(in_role("assignment__", "design__trial"))


def held_by(user) -> QuerySet[ReadTask]:
    """The tasks `user` holds and may open now: theirs, in the role they were given them under, and not waiting.

    The one holder check of every read-side path (pages, drafts, signing, the task's DICOMweb root). A task
    that waits for an earlier visit does not exist yet for anyone, its holder included; and holding a task
    is being its reader, never a superuser or an object permission that says yes to everyone.
    """
    if not getattr(user, "is_authenticated", False):
        return ReadTask.objects.none()
    return held(ReadTask.objects.filter(assignment__reader=user)).exclude(state=ReadTask.State.WAITING)


def departed(assignments: QuerySet[ReaderAssignment]) -> QuerySet[ReaderAssignment]:
    """The assignments whose holder no longer holds the slot's role in the trial, or whose account is off."""
    return assignments.exclude(in_role())


def least_loaded(*, subject: Subject, role: str, slots: tuple[int, ...], exclude=()) -> list:
    """The trial's active members in `role` (not in `exclude`), fewest subjects held in `slots` first."""
    load = dict(
        ReaderAssignment.objects.filter(subject__trial=subject.trial, slot__in=slots, retired_at__isnull=True)
        .values_list("reader")
        .annotate(n=Count("pk"))
    )
    members = (
        Membership.objects.filter(trial=subject.trial, role=role, user__is_active=True)
        .exclude(user_id__in=list(exclude))
        .select_related("user")
    )
    return sorted((m.user for m in members), key=lambda u: (load.get(u.pk, 0), u.email))


def readers_assign(*, subject: Subject, design: ReadDesign) -> list[ReaderAssignment]:
    """The subject's readers, chosen once to balance the readers' load (fewest subjects first) and then kept.

    Called holding the subject's row lock (select_for_update) so two timepoints never assign twice.
    """
    assigned = list(current_readers(subject).order_by("slot"))
    wanted = design.readers_per_subject
    if len(assigned) >= wanted:
        return assigned[:wanted]
    candidates = least_loaded(
        subject=subject,
        role=Role.READER,
        slots=READER_SLOTS,
        exclude=subject.reader_assignments.values_list("reader_id", flat=True),
    )
    if len(assigned) + len(candidates) < wanted:
        raise InvalidState(
            _("The read design needs %(n)s readers per subject; the trial has fewer readers.") % {"n": wanted}
        )
    label = case_label(subject)
    for slot in range(len(assigned) + 1, wanted + 1):
        reader = candidates.pop(0)
        assigned.append(ReaderAssignment.objects.create(subject=subject, reader=reader, slot=slot, case_label=label))
    return assigned


def may_open(assignment: ReaderAssignment, timepoint: Timepoint) -> bool:
    """A reader reads a subject's visits in order: a visit opens once every earlier visit of theirs is signed.

    A visit after day 0 is a follow-up and also waits for a signed baseline (a visit on or before day 0), so a
    follow-up that passes QC first never becomes the reader's baseline.
    """
    earlier = ReadTask.objects.filter(
        assignment=assignment, kind=ReadTask.Kind.READ, timepoint__visit__order__lt=timepoint.visit.order
    )
    if earlier.exclude(state=ReadTask.State.SIGNED).exists():
        return False
    return timepoint.visit.target_day <= 0 or earlier.filter(state=ReadTask.State.SIGNED).exists()


def read_tasks_create(*, timepoint: Timepoint) -> list[ReadTask]:
    """Create the read tasks of a timepoint that became ready for read; nothing if the trial has no read design.

    Each task is visible to its reader alone (a guardian permission on the task). A follow-up waits until
    the reader has signed the visits before it.
    """
    design = ReadDesign.objects.filter(trial_id=timepoint.subject.trial_id).first()
    if design is None:
        return []
    with transaction.atomic():
        subject = Subject.objects.select_for_update(of=("self",)).select_related("trial").get(pk=timepoint.subject_id)
        tasks = []
        for assignment in readers_assign(subject=subject, design=design):
            task = ReadTask.objects.filter(
                design=design, timepoint=timepoint, assignment=assignment, kind=ReadTask.Kind.READ
            ).first() or _task_new(assignment, timepoint, design)
            tasks.append(task)
        timepoint_transition(
            actor=None,
            timepoint=timepoint,
            to=Timepoint.State.IN_READ,
            allowed_from=[Timepoint.State.READY_FOR_READ],
            reason="read tasks created",
        )
    return tasks


def replacements(assignment: ReaderAssignment) -> list:
    """Who may take over an assignment: the slot's role, active, not yet assigned to the subject; least loaded first."""
    subject = assignment.subject
    slots = READER_SLOTS if assignment.slot in READER_SLOTS else (ADJUDICATOR_SLOT,)
    taken = subject.reader_assignments.values_list("reader_id", flat=True)
    return least_loaded(subject=subject, role=slot_role(assignment.slot), slots=slots, exclude=taken)


def _task_new(assignment: ReaderAssignment, timepoint: Timepoint, design: ReadDesign) -> ReadTask:
    """A read task for `assignment`'s reader (theirs alone), open if they may read the visit now, else waiting."""
    task = ReadTask.objects.create(
        design=design,
        timepoint=timepoint,
        assignment=assignment,
        kind=ReadTask.Kind.READ,
        due_date=timezone.localdate() + timedelta(days=design.task_days),
        state=ReadTask.State.OPEN if may_open(assignment, timepoint) else ReadTask.State.WAITING,
    )
    assign_perm("reads.read_task", assignment.reader, task)
    audit_record(
        actor=None,
        action="read_task.create",
        obj=task,
        trial_id=design.trial_id,
        summary={
            "case": assignment.case_label,
            "visit": timepoint.visit.code,
            "reader": assignment.reader.email,
            "state": task.state,
        },
    )
    return task


@dataclass(frozen=True)
class Handover:
    """What giving an assignment to someone else involves."""

    open: int  # its unsigned tasks
    reread: int  # visits the new reader reads again from baseline: the holder, a reader, signed in the case
    waits_for_adjudication: bool  # a re-read must wait until the case's open adjudication is decided


def handover(assignment: ReaderAssignment, tasks: list[ReadTask]) -> Handover:
    """The handover of `assignment` with its (not withdrawn) `tasks`: the one rule for the page and the service."""
    open_ = sum(task.state != ReadTask.State.SIGNED for task in tasks)
    reread = len(tasks) if open_ < len(tasks) and assignment.slot in READER_SLOTS else 0
    waits = bool(reread) and assignment.subject.adjudications.filter(signature__isnull=True).exists()
    return Handover(open=open_, reread=reread, waits_for_adjudication=waits)


def assignment_replace(*, actor, assignment_id: int, trial: Trial, reader) -> ReaderAssignment:
    """Give a reader's (or adjudicator's) place in a case to someone else.

    - A reader who has signed nothing in the case hands on its tasks as they are.
    - A reader who has signed is retired from the case: the new reader reads every visit of it again from
      baseline (a case is read by one reader from baseline on), and the retired reader's signed reads stay
      on record; results already locked stay locked. Refused while the case waits for an adjudication.
    - An adjudicator's decisions are each their own: the open adjudication goes to the new adjudicator, the
      signed ones stay with their signer.

    Unsigned drafts are the holder's own work and are discarded, not handed on.
    """
    with transaction.atomic():
        assignment = (
            ReaderAssignment.objects.select_for_update(of=("self",))
            .select_related("subject__trial", "reader")
            .filter(pk=assignment_id, subject__trial=trial, retired_at__isnull=True)
            .first()
        )
        if assignment is None:
            raise ValidationFailed(_("No such reader assignment in this trial."))
        if reader not in replacements(assignment):
            raise ValidationFailed(
                _("Choose an active %(role)s of this trial who does not already read this case.")
                % {"role": Role(slot_role(assignment.slot)).label},
                fields={"reader": [_("Not available for this case.")]},
            )
        tasks = list(
            assignment.tasks.select_for_update(of=("self",))
            .exclude(state=ReadTask.State.WITHDRAWN)
            .select_related("timepoint__visit", "design")
            .order_by("timepoint__visit__order")
        )
        plan = handover(assignment, tasks)
        unsigned = [task for task in tasks if task.state != ReadTask.State.SIGNED]
        if plan.waits_for_adjudication:
            raise InvalidState(
                _("Case %(case)s waits for an adjudication of its readers' reads: decide it first.")
                % {"case": assignment.case_label}
            )
        before = assignment.reader
        _total, deleted = Read.objects.filter(task__in=unsigned, state=Read.State.DRAFT).delete()
        discarded = deleted.get(Read._meta.label, 0)
        for task in unsigned:
            remove_perm("reads.read_task", before, task)
        if assignment.slot in READER_SLOTS and not plan.reread:
            assignment.reader = reader
            assignment.save(update_fields=["reader"])
            holder = assignment
        else:
            assignment.retired_at = timezone.now()
            assignment.save(update_fields=["retired_at"])
            holder = ReaderAssignment.objects.create(
                subject=assignment.subject, reader=reader, slot=assignment.slot, case_label=assignment.case_label
            )
        if plan.reread:
            for task in unsigned:
                task.state = ReadTask.State.WITHDRAWN
                task.save(update_fields=["state"])
            for task in tasks:
                _task_new(holder, task.timepoint, task.design)
        else:
            for task in unsigned:
                assign_perm("reads.read_task", reader, task)
                task.assignment = holder
                if task.state == ReadTask.State.IN_PROGRESS:
                    task.state = ReadTask.State.OPEN
                task.save(update_fields=["assignment", "state"])
        audit_record(
            actor=actor,
            action="assignment.replace",
            obj=holder,
            trial_id=trial.pk,
            summary={
                "case": assignment.case_label,
                "slot": assignment.slot,
                "from": before.email,
                "to": reader.email,
                "tasks": plan.reread or plan.open,
                "read_again_from_baseline": bool(plan.reread),
                "drafts_discarded": discarded,
            },
        )
    return holder
