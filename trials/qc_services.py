"""Quality control of uploaded timepoints and the queries it sends to sites.

The rules themselves live in the plain library `trials.qc`; these services feed it from the index, store
what it finds, move timepoints along (uploaded -> in QC -> query open / ready for read) and write the audit
trail. Emails name subjects only by their pseudonymous codes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import get_users_with_perms

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, ValidationFailed

from . import qc
from .dicomweb.wado import load_metadata
from .models import (
    Instance,
    QCFinding,
    QCReview,
    Query,
    QueryMessage,
    Series,
    SeriesClassification,
    Study,
    Timepoint,
    Upload,
)
from .services import timepoint_transition, trial_check_open
from .signals import timepoint_ready

State = Timepoint.State
# The states a QC decision (pass or fail) is taken from. There is no "start review" step: a decision needs
# nothing a start would give, so none is pretended. Uploaded is waiting for QC; In QC is back with QC once the
# visit's queries are closed (query_close).
REVIEWABLE = (State.UPLOADED, State.IN_QC)
DEFAULT_QUERY_DAYS = 7


def _series_infos(timepoint: Timepoint, study_day: int | None) -> dict[int, qc.SeriesInfo]:
    """SeriesInfo of each stored series of a timepoint, from the instances' DICOM JSON."""
    instances = list(
        Instance.objects.filter(series__study__timepoint=timepoint).select_related("series").defer("metadata")
    )
    load_metadata(instances)
    by_series: dict[int, list[dict]] = defaultdict(list)
    for instance in instances:
        by_series[instance.series_id].append(instance.metadata)
    return {pk: qc.series_info_from_dicom_json(items, study_day=study_day) for pk, items in by_series.items()}


def _baseline(timepoint: Timepoint) -> Timepoint | None:
    return (
        Timepoint.objects.filter(subject=timepoint.subject, visit__target_day=0)
        .exclude(pk=timepoint.pk)
        .select_related("visit")
        .first()
    )


def _study_date(timepoint: Timepoint) -> date | None:
    return (
        Study.objects.filter(timepoint=timepoint)
        .exclude(study_date=None)
        .order_by("study_date")
        .values_list("study_date", flat=True)
        .first()
    )


def _study_day(timepoint: Timepoint) -> int | None:
    """Days from the subject's baseline scan: exact, since both dates carry the same per-subject shift."""
    own = _study_date(timepoint)
    if own is None:
        return None
    if timepoint.visit.target_day == 0:
        return 0
    baseline = _baseline(timepoint)
    baseline_date = _study_date(baseline) if baseline is not None else None
    return (own - baseline_date).days if baseline_date is not None else None


def _protocols(timepoint: Timepoint) -> list[qc.ProtocolInfo]:
    visit = timepoint.visit
    return [
        qc.ProtocolInfo(
            modality=p.modality,
            body_region=p.body_region,
            contrast=p.contrast,
            max_slice_thickness_mm=float(p.max_slice_thickness_mm),
            window=(visit.earliest_day, visit.latest_day),
            target_day=visit.target_day,
            same_scanner_as_baseline=p.same_scanner_as_baseline,
            visit_label=visit.label,
        )
        for p in visit.protocols.all()
    ]


@transaction.atomic
def qc_run(*, timepoint: Timepoint) -> list[QCFinding]:
    """Classify the timepoint's series and check them against the visit's protocols; replaces earlier findings.

    A reviewer's corrected label is kept and used by the checks.
    """
    timepoint = Timepoint.objects.select_related("visit", "subject").get(pk=timepoint.pk)
    infos = _series_infos(timepoint, _study_day(timepoint))
    series = {s.pk: s for s in Series.objects.filter(pk__in=infos).select_related("classification")}
    classifications: dict[str, qc.Classification] = {}
    for pk, info in infos.items():
        auto = qc.classify_series(info)
        stored = getattr(series[pk], "classification", None)
        if stored is None:
            stored = SeriesClassification(series=series[pk])
        stored.auto_kind, stored.auto_region = auto.kind, auto.region
        stored.confidence, stored.reasons, stored.rules_version = (
            auto.confidence,
            [reason.as_json() if isinstance(reason, qc.Why) else reason for reason in auto.reasons],
            qc.DEFAULT_RULES.version,
        )
        if stored.corrected_by_id is None:
            stored.kind, stored.region = auto.kind, auto.region
        stored.save()
        classifications[info.series_uid] = qc.Classification(
            kind=stored.kind, region=stored.region, confidence=1.0 if stored.corrected_by_id else auto.confidence
        )
    baseline = _baseline(timepoint)
    baseline_infos = list(_series_infos(baseline, 0).values()) if baseline is not None else None
    findings = qc.check_timepoint(
        _protocols(timepoint), list(infos.values()), classifications=classifications, baseline=baseline_infos or None
    )
    by_uid = {s.series_instance_uid: s for s in series.values()}
    QCFinding.objects.filter(timepoint=timepoint).delete()
    rows = QCFinding.objects.bulk_create(
        QCFinding(
            timepoint=timepoint,
            series=by_uid.get(f.series_uid) if f.series_uid else None,
            code=f.code,
            severity=str(f.severity),
            message=f.message[:500],
            message_text=f.message.as_json() if isinstance(f.message, qc.Why) else {},
            details=dict(f.details),
            rules_version=qc.DEFAULT_RULES.version,
        )
        for f in findings
    )
    audit_record(
        actor=None,
        action="qc.run",
        obj=timepoint,
        trial_id=timepoint.subject.trial_id,
        summary={
            "series": len(infos),
            "blocking": sum(1 for f in findings if f.severity == qc.Severity.BLOCKING),
            "warnings": sum(1 for f in findings if f.severity == qc.Severity.WARNING),
            "rules": qc.DEFAULT_RULES.version,
        },
    )
    return rows


def series_relabel(*, actor, series: Series, kind: str, region: str) -> SeriesClassification:
    """Correct what the rules said a series is; the next checks use the reviewer's label."""
    if series.study.timepoint.state not in (*REVIEWABLE, State.QUERY_OPEN):
        raise InvalidState(
            _("Labels can be corrected while the visit is in QC, not once it is %(state)s.")
            % {"state": series.study.timepoint.get_state_display()}
        )
    try:
        qc.Classification(kind=kind, region=region, confidence=1.0)
    except ValueError as exc:
        raise ValidationFailed(_("Unknown series kind or region: %(e)s") % {"e": exc}) from None
    if kind not in qc.kinds_for_modality(series.modality):
        # A CT series called "MR T1" would head findings that speak of the CT series received.
        message = _("This is a %(modality)s series: give it a kind of that modality.") % {"modality": series.modality}
        raise ValidationFailed(message, fields={"kind": [message]})
    with transaction.atomic():
        stored = SeriesClassification.objects.select_for_update(of=("self",)).filter(series=series).first()
        if stored is None:
            raise InvalidState(_("This series has not been classified yet."))
        before = [stored.kind, stored.region]
        stored.kind, stored.region = kind, region
        stored.corrected_by, stored.corrected_at = actor, timezone.now()
        stored.save()
        timepoint = series.study.timepoint
        audit_record(
            actor=actor,
            action="qc.relabel",
            obj=series,
            trial_id=series.study.trial_id,
            summary={"series": series.series_number, "from": before, "to": [kind, region]},
        )
        qc_run(timepoint=timepoint)
    return stored


def _site_coordinators(timepoint: Timepoint) -> list:
    users = get_users_with_perms(timepoint.subject.site, only_with_perms_in=["view_site_subjects"])
    return [u for u in users if u.is_active and u.email]


def _qc_reviewers(timepoint: Timepoint) -> list:
    users = get_users_with_perms(timepoint.subject.trial, only_with_perms_in=["review_qc"])
    return [u for u in users if u.is_active and u.email]


def _notify(users: Iterable, subject: str, body: str) -> None:
    """Email after the transaction commits; a mail server that is down never undoes a decision."""
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in users]
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=True))


def _link(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def qc_fail(*, actor, timepoint: Timepoint, series: list[Series], reason: str, due_date: date | None = None) -> Query:
    """Fail a timepoint's series with a reason: a query goes to the site and the timepoint waits for its answer."""
    if not reason.strip():
        raise ValidationFailed(_("Say what is wrong, so the site can act on it."), fields={"reason": [_("Required.")]})
    if any(s.study.timepoint_id != timepoint.pk for s in series):
        raise ValidationFailed(_("Choose series of this visit."), fields={"series": [_("Not part of this visit.")]})
    due = due_date or timezone.localdate() + timedelta(days=DEFAULT_QUERY_DAYS)
    if due < timezone.localdate():
        raise ValidationFailed(_("The due date cannot be in the past."), fields={"due_date": [_("In the past.")]})
    trial_check_open(timepoint.subject.trial)
    with transaction.atomic():
        timepoint = timepoint_transition(
            actor=actor, timepoint=timepoint, to=State.QUERY_OPEN, allowed_from=REVIEWABLE, reason="QC failed"
        )
        review = QCReview.objects.create(
            timepoint=timepoint, reviewer=actor, decision=QCReview.Decision.FAILED, comment=reason
        )
        review.failed_series.set(series)
        names = ", ".join(f"{s.series_number} {s.description}".strip() for s in series)
        query = Query.objects.create(
            timepoint=timepoint,
            series=series[0] if len(series) == 1 else None,
            title=names[:200],  # the page heads it "QC failed: ..." in its reader's language (Query.heading)
            due_date=due,
            opened_by=actor,
        )
        QueryMessage.objects.create(query=query, author=actor, body=reason.strip())
        audit_record(
            actor=actor,
            action="qc.fail",
            obj=timepoint,
            trial_id=timepoint.subject.trial_id,
            summary={
                "query": query.pk,
                "series": [s.series_number for s in series],
                "due": due.isoformat(),
                "reason": reason.strip(),  # the reviewer's words, as the site reads them
            },
        )
        _notify(
            _site_coordinators(timepoint),
            _("[CTIMS] New query on %(subject)s %(visit)s")
            % {"subject": timepoint.subject.code, "visit": timepoint.visit.label},
            _("The core lab asks about %(subject)s, %(visit)s:\n\n%(reason)s\n\nPlease answer by %(due)s: %(link)s\n")
            % {
                "subject": timepoint.subject.code,
                "visit": timepoint.visit.label,
                "reason": reason.strip(),
                "due": due.isoformat(),
                "link": _link(f"/trials/{timepoint.subject.trial.code}/queries/{query.pk}/"),
            },
        )
    return query


def query_answer(*, actor, query: Query, body: str, upload: Upload | None = None) -> QueryMessage:
    """The site answers a query (in words, or by a re-upload); the QC reviewers are told."""
    if not body.strip():
        raise ValidationFailed(_("Write an answer."), fields={"body": [_("Required.")]})
    with transaction.atomic():
        query = (
            Query.objects.select_for_update(of=("self",))
            .select_related("timepoint__subject__trial", "timepoint__visit")
            .get(pk=query.pk)
        )
        if query.state == Query.State.CLOSED:
            raise InvalidState(_("This query is closed."))
        message = QueryMessage.objects.create(query=query, author=actor, body=body.strip(), upload=upload)
        query.state = Query.State.ANSWERED
        query.save(update_fields=["state"])
        timepoint = query.timepoint
        audit_record(
            actor=actor,
            action="query.answer",
            obj=query,
            trial_id=timepoint.subject.trial_id,
            summary={"upload": upload.pk if upload else None, "message": message.body},
        )
        _notify(
            _qc_reviewers(timepoint),
            _("[CTIMS] Query answered: %(subject)s %(visit)s")
            % {"subject": timepoint.subject.code, "visit": timepoint.visit.label},
            _("The site answered query %(query)s on %(subject)s, %(visit)s: %(link)s\n")
            % {
                "query": query.pk,
                "subject": timepoint.subject.code,
                "visit": timepoint.visit.label,
                "link": _link(f"/trials/{timepoint.subject.trial.code}/queries/{query.pk}/"),
            },
        )
    return message


def query_note_upload(*, upload: Upload) -> None:
    """A completed re-upload answers the timepoint's queries that are not closed, linked to the upload."""
    for query in Query.objects.filter(timepoint=upload.timepoint).exclude(state=Query.State.CLOSED):
        counts = upload.items.filter(state="accepted").count()
        query_answer(
            actor=upload.created_by,
            query=query,
            body=_("New images were uploaded (%(n)s stored).") % {"n": counts},
            upload=upload,
        )


def query_close(*, actor, query: Query, body: str = "") -> Query:
    """The reviewer closes a query; the timepoint can then be passed. A query closed meanwhile (another tab, another
    reviewer) is refused: the note would be lost, and the trail would credit the wrong person with closing it."""
    with transaction.atomic():
        query = Query.objects.select_for_update(of=("self",)).select_related("timepoint__subject").get(pk=query.pk)
        if query.state == Query.State.CLOSED:
            raise InvalidState(_("This query was already closed; your note was not added to its thread."))
        note = body.strip()
        if note:
            QueryMessage.objects.create(query=query, author=actor, body=note)
        query.state, query.closed_at = Query.State.CLOSED, timezone.now()
        query.save(update_fields=["state", "closed_at"])
        audit_record(
            actor=actor,
            action="query.close",
            obj=query,
            trial_id=query.timepoint.subject.trial_id,
            summary={"message": note} if note else {},
        )
        # Answered in words only: with its last query closed the visit is back in the reviewer's hands.
        others = Query.objects.filter(timepoint=query.timepoint).exclude(state=Query.State.CLOSED)
        if query.timepoint.state == State.QUERY_OPEN and not others.exists():
            timepoint_transition(
                actor=actor,
                timepoint=query.timepoint,
                to=State.IN_QC,
                allowed_from=[State.QUERY_OPEN],
                reason="query closed",
            )
    return query


def qc_pass(*, actor, timepoint: Timepoint, comment: str = "") -> Timepoint:
    """Pass a timepoint: it becomes ready for read. Every query on it must be closed first."""
    with transaction.atomic():
        if Query.objects.filter(timepoint=timepoint).exclude(state=Query.State.CLOSED).exists():
            raise InvalidState(_("Close the open queries of this visit before passing it."))
        timepoint = timepoint_transition(
            actor=actor, timepoint=timepoint, to=State.READY_FOR_READ, allowed_from=REVIEWABLE, reason="QC passed"
        )
        QCReview.objects.create(timepoint=timepoint, reviewer=actor, decision=QCReview.Decision.PASSED, comment=comment)
        ready_id = timepoint.pk
        transaction.on_commit(lambda: timepoint_ready.send(sender=Timepoint, timepoint_id=ready_id))
        audit_record(
            actor=actor,
            action="qc.pass",
            obj=timepoint,
            trial_id=timepoint.subject.trial_id,
            summary={"comment": comment},  # the reviewer's words (Part 11: what was entered, not that it was)
        )
    return timepoint


def queries_remind_overdue(*, today: date | None = None) -> int:
    """Email the site about each overdue query (open, past its due date: an answered one waits for the core lab),
    at most once a day per query; returns how many were sent."""
    today = today or timezone.localdate()
    sent = 0
    overdue = Query.objects.filter(state=Query.State.OPEN, due_date__lt=today).select_related(
        "timepoint__subject__trial", "timepoint__subject__site", "timepoint__visit"
    )
    for query in overdue:
        if query.reminded_at and timezone.localdate(query.reminded_at) >= today:
            continue
        timepoint = query.timepoint
        with transaction.atomic():
            Query.objects.filter(pk=query.pk).update(reminded_at=timezone.now())
            _notify(
                _site_coordinators(timepoint),
                _("[CTIMS] Overdue query on %(subject)s %(visit)s")
                % {"subject": timepoint.subject.code, "visit": timepoint.visit.label},
                _("Query %(query)s was due on %(due)s: %(link)s\n")
                % {
                    "query": query.pk,
                    "due": query.due_date.isoformat(),
                    "link": _link(f"/trials/{timepoint.subject.trial.code}/queries/{query.pk}/"),
                },
            )
        sent += 1
    return sent
