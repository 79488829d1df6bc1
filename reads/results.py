"""Which read stands for a visit: a single read, the readers' agreement, or an adjudicator's choice.

When every reader of a visit has signed, the visit is settled. The read design says what the two readers must
agree on (its adjudication trigger): the visit's response and date of progression, or only the subject-level
endpoints (best overall response and/or date of progression) as they stand with this visit. If they agree, the
result is locked at once with the accepted reader's read (reader 1's until an adjudicator accepts another's
series); otherwise the visit goes to an adjudicator, who reviews both readers' whole cases, accepts one reader's
series, states why and signs. The accepted reader's reads then stand at every visit of the subject: a visit
already locked gets a new result that supersedes the old one (a result row itself never changes).
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
from ctims.models import AuditEvent
from ctims.signatures import signature_create, signing
from trials.ingest.store import stored_files_undone_on_error
from trials.models import ApiToken, Role, Timepoint, Trial
from trials.services import timepoint_transition

from .models import Adjudication, Read, ReadDesign, ReaderAssignment, ReadTask, TimepointResult
from .series import AssessmentSeries, subject_series
from .services import ADJUDICATOR_SLOT, current_readers, held_by, in_role, least_loaded, signer_components
from .sr import SRError
from .sr_store import result_sr_store, sr_problem, sr_recorded

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


def accepted_slot(subject) -> int:
    """The reader whose series stands for the subject: the latest adjudication's choice, else reader 1."""
    decided = Adjudication.objects.filter(subject=subject, signature__isnull=False).order_by("-decided_at").first()
    return decided.chosen_slot if decided else 1


def _progression(series: AssessmentSeries) -> str | None:
    """The visit a reader's progression dates from (back-dated for a confirmed equivocal new lesion)."""
    if series.endpoints is not None:
        return series.endpoints.progression.visit if series.endpoints.progression else None
    # Without scan dates there are no endpoints: the first visit read as PD.
    return next((v.visit_code for v in series.visits if v.overall_response == "PD"), None)


def disagreements(timepoint: Timepoint, reads: dict[int, Read], design: ReadDesign | None = None) -> list[str]:
    """What the two readers disagree on at this visit under the design's adjudication trigger; empty if nothing.

    "overall_response": the visit's responses differ (the visit trigger); "best_response": the best overall
    responses of their series up to this visit differ; "progression_date": their dates of progression differ.
    """
    design = design or ReadDesign.objects.get(trial_id=timepoint.subject.trial_id)
    trigger = ReadDesign.AdjudicationTrigger(design.adjudication_trigger)
    T = ReadDesign.AdjudicationTrigger  # noqa: N806
    series = subject_series(timepoint.subject, locked_only=False, up_to_order=timepoint.visit.order).readers
    one, two = series[1], series[2]
    why = []
    if trigger == T.VISIT_RESPONSE and reads[1].overall_response != reads[2].overall_response:
        why.append("overall_response")
    if trigger in (T.ENDPOINTS, T.BEST_RESPONSE):
        if one.endpoints is None or two.endpoints is None:  # no scan dates: the visit's responses decide
            if reads[1].overall_response != reads[2].overall_response:
                why.append("overall_response")
        elif one.endpoints.best_response != two.endpoints.best_response:
            why.append("best_response")
    if trigger != T.BEST_RESPONSE and _progression(one) != _progression(two):
        why.append("progression_date")
    return why


def _lock(
    timepoint: Timepoint, read: Read, source: str, *, actor=None, adjudication=None, sr_instance=None
) -> TimepointResult:
    """Lock the visit's result with `read`. An adjudicated visit is locked when the decision was signed, as are
    the visits the decision changes, so a cut-off holds all of a decision's visits or none."""
    result = TimepointResult.objects.create(
        timepoint=timepoint,
        read=read,
        source=source,
        adjudication=adjudication,
        overall_response=read.overall_response,
        locked_at=adjudication.decided_at if adjudication is not None else timezone.now(),
        sr_instance=sr_instance,
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
            **(sr_recorded(sr_instance) if sr_instance is not None else {}),
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
    why = disagreements(timepoint, reads, design)
    if not why and Adjudication.objects.filter(subject=timepoint.subject, signature__isnull=True).exists():
        why = ["case_in_adjudication"]  # the open adjudication's choice will decide this visit too
    if not why:
        _lock(timepoint, reads[accepted_slot(timepoint.subject)], TimepointResult.Source.AGREEMENT)
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
            Adjudication.objects.select_for_update(of=("self",))
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
    user_id: str = "",
) -> Adjudication:
    """The adjudicator accepts reader 1's or reader 2's series, says why and signs: the visits in question lock
    with that reader's reads, and every visit of the subject already locked with the other reader's read follows.

    Refused if the chosen reader has not signed every one of those visits. A wrong password is recorded by `signing` (with the request, it counts towards the log-in lock-out).
    """
    with signing(user=actor, request=request), stored_files_undone_on_error(), transaction.atomic():
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
        locked = list(
            TimepointResult.objects.filter(timepoint__subject=adjudication.subject)
            .select_related("timepoint__visit", "timepoint__subject", "read__task__assignment")
            .order_by("timepoint__visit__order")
        )
        chosen = {}
        for timepoint in in_question + [r.timepoint for r in locked]:
            read = reads.get(timepoint.pk, {}).get(slot)
            if read is None:
                raise InvalidState(_("The chosen reader has no signed read of every visit of the case."))
            chosen[timepoint.pk] = read
        changed = [r for r in locked if r.read_id != chosen[r.timepoint_id].pk]
        signature = signature_create(
            user=actor,
            meaning=ADJUDICATOR_MEANING,
            obj=adjudication,
            content={
                "adjudication": adjudication.pk,
                "case": task.assignment.case_label,
                "visits": [t.visit.code for t in in_question],
                "chosen_slot": slot,
                "reason": reason.strip(),
                "reads": {t.visit.code: {s: r.pk for s, r in reads[t.pk].items()} for t in in_question},
                "locked_visits_changed": {r.timepoint.visit.code: chosen[r.timepoint_id].pk for r in changed},
            },
            trial_id=task.design.trial_id,
            second_factor_required=task.design.trial.two_factor_at_signing,
            **signer_components(request=request, password=password, second_factor=second_factor, user_id=user_id),
        )
        adjudication.chosen_slot = slot
        adjudication.reason = reason.strip()
        adjudication.signature = signature
        adjudication.decided_at = signature.at
        adjudication.save()
        try:
            for timepoint in in_question:
                read = chosen[timepoint.pk]
                _lock(
                    timepoint,
                    read,
                    TimepointResult.Source.ADJUDICATION,
                    actor=actor,
                    adjudication=adjudication,
                    sr_instance=result_sr_store(read=read, adjudication=adjudication, signer=signature, previous=None),
                )
            for result in locked:
                read = chosen[result.timepoint_id]
                sr_instance = result_sr_store(
                    read=read, adjudication=adjudication, signer=signature, previous=result.sr_instance
                )
                _result_follow(result, read, actor=actor, adjudication=adjudication, sr_instance=sr_instance)
        except SRError as exc:
            raise InvalidState(
                _("The result's structured report could not be written, so nothing was signed: %(why)s") % {"why": exc}
            ) from None
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
                "locked_visits_changed": [r.timepoint.visit.code for r in changed],
            },
        )
    return adjudication


def adjudication_signature_check(signature) -> str:
    """The problem, if any, with the adjudication an adjudicator's signature names (21 CFR 11.70): it must still
    hold that signature, and still say what its decision's audit event recorded when it was signed: the reader
    chosen, the reason, the visits decided and the moment. (The signed content also named the reads compared and
    the results changed, the state of the moment that the hash alone keeps; what the adjudication row holds is
    checked against the hash-chained event, as `audit_verify` trusts the chain first.) "" if it does."""
    adjudication = Adjudication.objects.filter(pk=int(signature.object_id), signature=signature).first()
    if adjudication is None:
        return "the adjudication it names does not hold it"
    event = (
        AuditEvent.objects.filter(
            action="adjudication.decide", object_type="reads.adjudication", object_id=str(adjudication.pk)
        )
        .order_by("seq")
        .first()
    )
    if event is None:
        return "no audit event recorded its decision"
    held = {
        "chosen_slot": adjudication.chosen_slot,
        "reason": adjudication.reason,
        "visits": list(adjudication.timepoints.order_by("visit__order").values_list("visit__code", flat=True)),
        "signature": signature.pk,
    }
    # An event of an older release may lack a key: what it recorded is checked.
    changed = sorted(key for key in held if key in event.summary and event.summary[key] != held[key])
    if adjudication.decided_at != signature.at:
        changed.append("decided_at")
    if changed:
        return f"the adjudication was changed after it was signed ({', '.join(changed)})"
    return _result_srs_problem(adjudication)


RESULT_SR_EVENTS = ("read_result.lock", "read_result.change", "read_result.confirm")


def _result_srs_problem(adjudication: Adjudication) -> str:
    """The problem, if any, with the result SRs an adjudication wrote (`sr_store.sr_problem`), each checked against
    the event that locked its result."""
    results = list(
        TimepointResult.objects.filter(adjudication=adjudication, sr_instance__isnull=False)
        .select_related("sr_instance")
        .order_by("pk")
    )
    events = {
        event.object_id: event.summary
        for event in AuditEvent.objects.filter(
            action__in=RESULT_SR_EVENTS,
            object_type="reads.timepointresult",
            object_id__in=[str(result.pk) for result in results],
        ).only("object_id", "summary")
    }
    for result in results:
        problem = sr_problem(result.sr_instance, events.get(str(result.pk), {}))
        if problem:
            return f"the result #{result.pk}: {problem}"
    return ""


def _result_follow(
    result: TimepointResult, read: Read, *, actor, adjudication: Adjudication, sr_instance
) -> TimepointResult:
    """A locked visit follows the adjudicator's choice: a new result with the accepted reader's read (and the
    adjudication's result SR) supersedes the old one, which stays on record; the audit trail says what changed,
    or that the visit already held the accepted read ("read_result.confirm")."""
    new = TimepointResult.objects.create(
        timepoint=result.timepoint,
        read=read,
        source=TimepointResult.Source.ADJUDICATION,
        adjudication=adjudication,
        overall_response=read.overall_response,
        locked_at=adjudication.decided_at,
        supersedes=result,
        sr_instance=sr_instance,
    )
    audit_record(
        actor=actor,
        action="read_result.change" if result.read_id != read.pk else "read_result.confirm",
        obj=new,
        trial_id=result.timepoint.subject.trial_id,
        summary={
            "visit": result.timepoint.visit.code,
            "case": read.task.assignment.case_label,
            "adjudication": adjudication.pk,
            "supersedes": result.pk,
            "from_read": result.read_id,
            "to_read": read.pk,
            "from_reader_slot": result.read.task.assignment.slot,
            "to_reader_slot": read.task.assignment.slot,
            "from_overall_response": result.overall_response or "baseline",
            "to_overall_response": read.overall_response or "baseline",
            **sr_recorded(sr_instance),
        },
    )
    return new


# --- downloads of locked results -----------------------------------------------------------------------------

# What a download took, as the audit event's "kind" (reads.audit_labels puts each into words).
DOWNLOAD_KINDS = (
    "results_csv",
    "lesions_csv",
    "results_api",
    "sr",
    "sr_api",
    "sr_dicomweb",
    "quality_csv",
    "quality_chart",
)


def results_download_record(
    *, actor, trial: Trial, kind: str, obj=None, token: ApiToken | None = None, **summary
) -> AuditEvent:
    """Record that `actor` took locked results of the trial out of CTIMS: one event per download (a CSV, an SR, a
    page of the API, a reader quality table or chart), so the core lab can say who took which results when
    (21 CFR 11.10(e), the audit trail of access to electronic records). The event names the kind of download, its
    parameters (filters, cut-off, page) and how many rows it held, and the API token it came through, if any.

    Call it once the download is ready to go out (its parameters checked, its file opened): a refused request took
    nothing. The summary holds codes, counts, dates and pseudonymous identifiers only (subject and visit codes,
    the SR's SOP Instance UID), never a value of an identifying attribute."""
    if kind not in DOWNLOAD_KINDS:
        raise ValueError(f"unknown download kind {kind!r}")
    if token is not None:
        summary["token"] = str(token)
    return audit_record(
        actor=actor,
        action="results.download",
        obj=obj if obj is not None else trial,
        trial_id=trial.pk,
        summary={"kind": kind, **summary},
    )


def dicomweb_sr_retrieve_record(actor, trial_id: int, retrieved: str, study_uid: str, sr_uids: list[str]) -> None:
    """Record that released SRs were retrieved through the trial's DICOMweb root (trials.dicomweb.scopes'
    RELEASED_READS_RETRIEVED): one event a request, naming what was retrieved ("instances", or "metadata", which
    holds the whole report), the study's and the SRs' UIDs (the pseudonymous ones the root serves) and the API
    token it came through."""
    results_download_record(
        actor=actor.user,
        trial=Trial.objects.get(pk=trial_id),
        kind="sr_dicomweb",
        token=actor.token,
        retrieved=retrieved,
        study=study_uid,
        sr=list(sr_uids),
    )


def result_sr_download_record(*, actor, result: TimepointResult, kind: str, token: ApiToken | None = None):
    """Record the download of one locked result's SR, named by its subject and visit codes and its SOP Instance
    UID (`results_download_record`)."""
    return results_download_record(
        actor=actor,
        trial=result.timepoint.subject.trial,
        kind=kind,
        obj=result,
        token=token,
        subject=result.timepoint.subject.code,
        visit=result.timepoint.visit.code,
        sr=result.sr.sop_instance_uid,
    )
