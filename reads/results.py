"""Which read stands for a visit: a single read, the readers' agreement, or an adjudicator's choice.

When every reader of a visit has signed, the visit is settled: with one reader, or with two who agree
on the overall response and on the visit of progression, the result is locked at once (reader 1's read
when they agree); otherwise the visit goes to an adjudicator, who picks one reader's read, states why and
signs. A locked result never changes.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from guardian.shortcuts import assign_perm

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, NotFound, ValidationFailed
from ctims.signatures import signature_create, signing
from trials.models import Role, Timepoint
from trials.services import timepoint_transition

from .models import Adjudication, Read, ReadDesign, ReaderAssignment, ReadTask, TimepointResult
from .services import ADJUDICATOR_SLOT, current_readers, held_by, in_role, least_loaded

# Stored in English with the signature; shown translated beside the checkbox.
ADJUDICATOR_MEANING = gettext_noop("I have adjudicated this case and chosen the read I agree with")


def latest_signed(task: ReadTask) -> Read | None:
    return task.reads.filter(state=Read.State.SIGNED).order_by("-version").first()


def _reads_of(assignment: ReaderAssignment, *, up_to_order: int) -> list[tuple[Timepoint, Read]]:
    tasks = (
        ReadTask.objects.filter(
            assignment=assignment, kind=ReadTask.Kind.READ, timepoint__visit__order__lte=up_to_order
        )
        .select_related("timepoint__visit")
        .order_by("timepoint__visit__order")
    )
    return [(t.timepoint, read) for t in tasks if (read := latest_signed(t)) is not None]


def progression_visit(assignment: ReaderAssignment, *, up_to_order: int) -> str | None:
    """The visit at which this reader first called progression (the date of progression), if any."""
    for timepoint, read in _reads_of(assignment, up_to_order=up_to_order):
        if read.overall_response == "PD":
            return timepoint.visit.code
    return None


def disagreements(timepoint: Timepoint, reads: dict[int, Read]) -> list[str]:
    """Why the two readers of a visit disagree; empty when they agree."""
    why = []
    if reads[1].overall_response != reads[2].overall_response:
        why.append("overall_response")
    order = timepoint.visit.order
    assignments = {read.task.assignment.slot: read.task.assignment for read in reads.values()}
    if progression_visit(assignments[1], up_to_order=order) != progression_visit(assignments[2], up_to_order=order):
        why.append("progression_date")
    return why


def _lock(timepoint: Timepoint, read: Read, source: str, *, actor=None, adjudication=None) -> TimepointResult:
    result = TimepointResult.objects.create(
        timepoint=timepoint,
        read=read,
        source=source,
        adjudication=adjudication,
        overall_response=read.overall_response,
        locked_at=timezone.now(),
    )
    timepoint_transition(
        actor=actor,
        timepoint=timepoint,
        to=Timepoint.State.LOCKED,
        allowed_from=[Timepoint.State.IN_READ, Timepoint.State.IN_ADJUDICATION],
        reason=f"read result: {source}",
    )
    audit_record(
        actor=actor,
        action="read_result.lock",
        obj=result,
        trial_id=timepoint.subject.trial_id,
        summary={
            "visit": timepoint.visit.code,
            "case": read.task.assignment.case_label,
            "source": source,
            "reader_slot": read.task.assignment.slot,
            "read": read.pk,
            "overall_response": read.overall_response or "baseline",
        },
    )
    return result


def timepoint_settle(timepoint: Timepoint) -> None:
    """Lock the visit's result, or send it to adjudication, once every reader has signed it.

    Called in the signing transaction. The visit's row lock orders two readers who sign at the same moment:
    the second to take it sees the first's signature, so the visit is always settled once.
    """
    timepoint = (
        Timepoint.objects.select_for_update(of=("self",)).select_related("subject", "visit").get(pk=timepoint.pk)
    )
    if TimepointResult.objects.filter(timepoint=timepoint).exists():
        return
    design = ReadDesign.objects.get(trial_id=timepoint.subject.trial_id)
    tasks = list(
        ReadTask.objects.filter(timepoint=timepoint, kind=ReadTask.Kind.READ)
        .exclude(state=ReadTask.State.WITHDRAWN)
        .select_related("assignment")
    )
    if len(tasks) < design.readers_per_subject or any(t.state != ReadTask.State.SIGNED for t in tasks):
        return
    reads = {t.assignment.slot: latest_signed(t) for t in tasks}
    if design.readers_per_subject == 1:
        _lock(timepoint, reads[1], TimepointResult.Source.SINGLE)
        return
    why = disagreements(timepoint, reads)
    if not why:
        _lock(timepoint, reads[1], TimepointResult.Source.AGREEMENT)
        return
    _adjudication_open(timepoint, design, why)


def _adjudicator_for(subject) -> ReaderAssignment | None:
    """The subject's adjudicator: the one it already has (if still in the role), else the least loaded who is
    not one of its readers or earlier adjudicators."""
    current = subject.reader_assignments.filter(in_role(), slot=ADJUDICATOR_SLOT, retired_at__isnull=True)
    existing = current.order_by("-pk").first()
    if existing is not None:
        return existing
    readers = subject.reader_assignments.values_list("reader_id", flat=True)
    pool = least_loaded(subject=subject, role=Role.ADJUDICATOR, slots=(ADJUDICATOR_SLOT,), exclude=readers)
    if not pool:
        return None
    return ReaderAssignment.objects.create(
        subject=subject,
        reader=pool[0],
        slot=ADJUDICATOR_SLOT,
        case_label=subject.reader_assignments.first().case_label,
    )


def _adjudication_task(adjudication: Adjudication, design: ReadDesign) -> ReadTask | None:
    """Give a waiting adjudication its task, for the subject's adjudicator; None if the trial has none."""
    assignment = _adjudicator_for(adjudication.subject)
    if assignment is None:
        return None
    latest = adjudication.timepoints.select_related("visit").order_by("-visit__order").first()
    task = ReadTask.objects.create(
        design=design,
        timepoint=latest,
        assignment=assignment,
        kind=ReadTask.Kind.ADJUDICATION,
        state=ReadTask.State.OPEN,
        due_date=timezone.localdate() + timedelta(days=design.task_days),
    )
    assign_perm("reads.read_task", assignment.reader, task)
    adjudication.task = task
    adjudication.save(update_fields=["task"])
    return task


def _adjudication_open(timepoint: Timepoint, design: ReadDesign, why: list[str]) -> Adjudication:
    """Send a visit to adjudication: into the subject's open adjudication if there is one, else a new one.

    With no adjudicator in the trial the adjudication waits for one (the reader's signature is never refused
    for it); the trial admin assigns it from the Reading page once an adjudicator is granted.
    """
    subject = timepoint.subject
    adjudication = (
        Adjudication.objects.select_for_update(of=("self",))
        .filter(subject=subject, signature__isnull=True)
        .select_related("task__timepoint__visit")
        .first()
    )
    created = adjudication is None
    if created:
        adjudication = Adjudication.objects.create(subject=subject)
    adjudication.timepoints.add(timepoint)
    task = adjudication.task
    if task is None:
        task = _adjudication_task(adjudication, design)
    elif timepoint.visit.order > task.timepoint.visit.order:
        task.timepoint = timepoint
        task.save(update_fields=["timepoint"])
    timepoint_transition(
        actor=None,
        timepoint=timepoint,
        to=Timepoint.State.IN_ADJUDICATION,
        allowed_from=[Timepoint.State.IN_READ],
        reason="readers disagree",
    )
    audit_record(
        actor=None,
        action="adjudication.open" if created else "adjudication.extend",
        obj=adjudication,
        trial_id=subject.trial_id,
        summary={
            "case": subject.reader_assignments.first().case_label,
            "visit": timepoint.visit.code,
            "why": why,
            "adjudicator": task.assignment.reader.email if task else None,
        },
    )
    return adjudication


def adjudicators_assign(*, actor, trial) -> int:
    """Give every adjudication still waiting for an adjudicator its task; the number given."""
    design = ReadDesign.objects.filter(trial=trial).first()
    if design is None:
        return 0
    given = 0
    with transaction.atomic():
        waiting = (
            Adjudication.objects.select_for_update()
            .filter(subject__trial=trial, task__isnull=True, signature__isnull=True)
            .select_related("subject__trial")
        )
        for adjudication in waiting:
            task = _adjudication_task(adjudication, design)
            if task is None:
                raise InvalidState(_("The trial has no adjudicator who is not one of the subject's readers."))
            given += 1
            audit_record(
                actor=actor,
                action="adjudication.assign",
                obj=adjudication,
                trial_id=trial.pk,
                summary={"case": task.assignment.case_label, "adjudicator": task.assignment.reader.email},
            )
    return given


def adjudication_reads(adjudication: Adjudication) -> dict[int, dict[int, Read]]:
    """For each visit of the subject up to the adjudicated one: {timepoint id: {slot: the reader's signed read}}."""
    subject = adjudication.subject
    order = adjudication.task.timepoint.visit.order
    out: dict[int, dict[int, Read]] = {}
    for assignment in current_readers(subject):
        for timepoint, read in _reads_of(assignment, up_to_order=order):
            out.setdefault(timepoint.pk, {})[assignment.slot] = read
    return out


def adjudicate(
    *,
    actor,
    task_id: int,
    choice: str,
    reason: str,
    password: str,
    meaning_confirmed: bool,
    request=None,
    second_factor: str = "",
) -> Adjudication:
    """The adjudicator picks reader 1's or reader 2's read, says why and signs; the visits in question lock.

    A wrong password is recorded by `signing` (with the request, it counts towards the log-in lock-out).
    """
    with signing(user=actor, request=request), transaction.atomic():
        task = (
            held_by(actor)
            .select_for_update(of=("self",))
            .select_related("assignment", "timepoint__visit", "design__trial")
            .filter(pk=task_id, kind=ReadTask.Kind.ADJUDICATION)
            .first()
        )
        if task is None:
            raise NotFound(_("No such task."))
        adjudication = Adjudication.objects.select_for_update().get(task=task)
        if adjudication.signature_id is not None:
            raise InvalidState(_("This adjudication is already signed."))
        errors = {}
        if choice not in ("1", "2"):
            errors["choice"] = [_("Choose reader 1 or reader 2.")]
        if not (reason or "").strip():
            errors["reason"] = [_("State the reason for your choice.")]
        if not meaning_confirmed:
            errors["meaning"] = [_("Confirm the meaning of your signature.")]
        if errors:
            raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
        slot = int(choice)
        reads = adjudication_reads(adjudication)
        in_question = list(adjudication.timepoints.select_related("visit", "subject").order_by("visit__order"))
        chosen = {}
        for timepoint in in_question:
            read = reads.get(timepoint.pk, {}).get(slot)
            if read is None:
                raise InvalidState(_("The chosen reader has no signed read of every visit in question."))
            chosen[timepoint] = read
        signature = signature_create(
            user=actor,
            password=password,
            meaning=ADJUDICATOR_MEANING,
            obj=adjudication,
            content={
                "adjudication": adjudication.pk,
                "case": task.assignment.case_label,
                "visits": [t.visit.code for t in in_question],
                "chosen_slot": slot,
                "reason": reason.strip(),
                "reads": {t.visit.code: {s: r.pk for s, r in reads[t.pk].items()} for t in in_question},
            },
            trial_id=task.design.trial_id,
            second_factor_required=task.design.trial.two_factor_at_signing,
            second_factor=second_factor,
        )
        adjudication.chosen_slot = slot
        adjudication.reason = reason.strip()
        adjudication.signature = signature
        adjudication.decided_at = signature.at
        adjudication.save()
        for timepoint, read in chosen.items():
            _lock(timepoint, read, TimepointResult.Source.ADJUDICATION, actor=actor, adjudication=adjudication)
        task.state = ReadTask.State.SIGNED
        task.save(update_fields=["state"])
        audit_record(
            actor=actor,
            action="adjudication.decide",
            obj=adjudication,
            trial_id=task.design.trial_id,
            summary={
                "case": task.assignment.case_label,
                "visits": [t.visit.code for t in in_question],
                "chosen_slot": slot,
                "reason": adjudication.reason,
                "signature": signature.pk,
            },
        )
    return adjudication
