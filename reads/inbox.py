"""The read side of a person's inbox (see trials.inbox): their read and adjudication tasks, and transfers ready.

Reader entries carry what the worklist shows and nothing more: the trial, the case label, the visit label as
the read design allows, the due date. No site, no subject code, no date of the images, no other reader's result.
"""

from __future__ import annotations

from datetime import date

from django.db.models import CharField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.translation import gettext as _

from ctims.models import AuditEvent
from trials.access import Actor
from trials.inbox import Entry, Source, register, register_link, tally_of
from trials.models import Trial

from .models import ReaderAssignment, ReadTask, Transfer
from .selectors import earlier_visit_count, visit_label
from .services import held_by

TO_DO = (ReadTask.State.OPEN, ReadTask.State.IN_PROGRESS)


def tasks_to_do(actor: Actor, kind: str) -> QuerySet[ReadTask]:
    """The actor's own tasks of `kind` they may open and have not signed. API tokens never reach a task."""
    if actor.token is not None:
        return ReadTask.objects.none()
    return held_by(actor.user).filter(kind=kind, state__in=TO_DO)


def _task_entries(actor: Actor, kind: str, today: date, trial: Trial | None) -> list[Entry]:
    tasks = (
        tasks_to_do(actor, kind)
        .select_related("assignment", "timepoint__visit", "design__trial")
        .annotate(earlier_visits=earlier_visit_count())
    )
    if trial is not None:
        tasks = tasks.filter(design__trial=trial)
    out = []
    for task in tasks.order_by("due_date", "pk"):
        started = task.state == ReadTask.State.IN_PROGRESS
        if kind == ReadTask.Kind.ADJUDICATION:
            title = _("Adjudication in progress") if started else _("New adjudication")
        else:
            title = _("Read in progress") if started else _("New read")
        out.append(
            Entry(
                kind=kind,
                trial=task.design.trial.code,
                title=title,
                about=f"{task.assignment.case_label} · {visit_label(task, task.timepoint, place=task.earlier_visits)}",
                url=reverse("read-task", kwargs={"pk": task.pk}),
                due=task.due_date,
                overdue=task.due_date < today,
            )
        )
    return out


def _task_source(kind: str) -> Source:
    return Source(
        kind=kind,
        tally=lambda actor, today: tally_of(tasks_to_do(actor, kind), overdue=Q(due_date__lt=today)),
        entries=lambda actor, today, trial: _task_entries(actor, kind, today, trial),
    )


def transfers_ready(actor: Actor) -> QuerySet[Transfer]:
    """The newest built transfer of each trial whose results the actor receives (a sponsor viewer's, or one a
    trial admin asked for), until they download it: the download's audit event is what marks it done."""
    if not actor.is_authenticated:
        return Transfer.objects.none()
    downloaded = AuditEvent.objects.filter(
        action="transfer.download",
        actor=actor.user,
        object_type=Transfer._meta.label_lower,
        object_id=Cast(OuterRef("pk"), CharField()),
    )
    receives = Q(trial__in=actor.trials("view_results")) | Q(
        trial__in=actor.trials("manage_trial"), requested_by=actor.user
    )
    return (
        Transfer.objects.filter(receives, state=Transfer.State.READY)
        .exclude(superseded_by__state=Transfer.State.READY)
        .exclude(Exists(downloaded))
    )


def _transfer_entries(actor: Actor, today: date, trial: Trial | None) -> list[Entry]:
    transfers = transfers_ready(actor).select_related("trial")
    if trial is not None:
        transfers = transfers.filter(trial=trial)
    return [
        Entry(
            kind="transfer",
            trial=t.trial.code,
            title=_("Transfer %(n)s is ready to download") % {"n": t.number},
            about=t.filename,
            url=reverse("read-transfers", kwargs={"code": t.trial.code}),
            since=t.finished_at,
        )
        for t in transfers.order_by("finished_at", "pk")
    ]


def register_sources() -> None:
    # "My reads": for anyone ever given a case to read (their worklist keeps what they signed).
    register_link("reads", lambda actor: ReaderAssignment.objects.filter(reader=actor.user))
    register(_task_source(ReadTask.Kind.READ))
    register(_task_source(ReadTask.Kind.ADJUDICATION))
    register(
        Source(
            kind="transfer",
            tally=lambda actor, today: tally_of(transfers_ready(actor)),
            entries=_transfer_entries,
        )
    )
