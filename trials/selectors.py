"""Reads scoped to the person asking: what is outside their scope is absent (404), never forbidden (403)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from ctims.exceptions import NotFound, NotPermitted
from ctims.i18n import text_display
from ctims.models import AuditEvent

from .access import Actor
from .models import (
    ApiToken,
    Invitation,
    Membership,
    QCFinding,
    Query,
    Series,
    Site,
    Subject,
    Timepoint,
    Trial,
    Upload,
    UploadItem,
    Visit,
)


def trial_list(*, actor: Actor) -> QuerySet[Trial]:
    """The trials in which the actor holds any role."""
    return actor.trials("view_trial").order_by("code")


def trial_get(*, actor: Actor, code: str, perm: str = "view_trial") -> Trial:
    """The trial with this code if the actor is in it (else 404), checking `perm` on it (else 403).

    Read from the actor's `TrialAccess` (two small queries, narrowed by their token as `trial_list` is), which
    later checks in the same request reuse.
    """
    access = actor.access(code)
    if access is None:
        raise NotFound(_("No such trial."))
    if perm not in access.trial_perms:
        raise NotPermitted(_("Your role in this trial does not allow this."))
    return access.trial


def subject_list(*, actor: Actor, trial: Trial) -> QuerySet[Subject]:
    """Subjects the actor may see: all for admins and QC reviewers, their own sites' for coordinators, none otherwise."""
    qs = Subject.objects.filter(trial=trial).select_related("site")
    if actor.has_trial_perm(trial, "view_all_subjects"):
        return qs
    return qs.filter(site__in=actor.sites(trial, "view_site_subjects"))


def sees_subjects(*, actor: Actor, trial: Trial) -> bool:
    """Whether the actor's role includes a subject list: trial admins, QC reviewers and site coordinators.

    Read from the actor's `TrialAccess` (the trial's permissions and its sites', token-narrowed, loaded once a
    request), which a trial's page asks two to four times: its navigation, its own check, its subject list.
    """
    access = actor.access_to(trial)
    return access is not None and access.sees_subjects()


def sees_schedule(*, actor: Actor, trial: Trial) -> bool:
    """Whether the actor's role includes the trial's schedule and its counts (sites, subjects, visit states).

    Trial admins, QC reviewers, site coordinators and sponsors do; readers and adjudicators see only what
    their worklist shows, and the schedule's labels, site and subject counts and per-visit states (which tell
    whether the other reader agreed) are not part of that.
    """
    return (
        actor.has_trial_perm(trial, "manage_trial")
        or actor.has_trial_perm(trial, "view_results")
        or sees_subjects(actor=actor, trial=trial)
    )


def require_schedule_access(*, actor: Actor, trial: Trial) -> None:
    """Refuse (403) a member whose role does not include the schedule: readers and adjudicators."""
    if not sees_schedule(actor=actor, trial=trial):
        raise NotPermitted(_("Your role in this trial does not include its visit schedule."))


def require_subject_access(*, actor: Actor, trial: Trial) -> None:
    """Refuse (403) a member whose role includes no subjects: readers, adjudicators, sponsors."""
    if not sees_subjects(actor=actor, trial=trial):
        raise NotPermitted(_("Your role in this trial does not include seeing subjects."))


def sees_images(*, actor: Actor, trial: Trial, subject: Subject) -> bool:
    """Whether the trial's DICOMweb root shows this subject's images (the rule `TrialAccess.image_sites` states)."""
    access = actor.access_to(trial)
    return access is not None and access.sees_site(subject.site_id)


def subject_get(*, actor: Actor, trial: Trial, code: str) -> Subject:
    subject = subject_list(actor=actor, trial=trial).filter(code=code).first()
    if subject is None:
        raise NotFound(_("No such subject."))
    return subject


def site_list(*, actor: Actor, trial: Trial) -> QuerySet[Site]:
    """Sites the actor may see: all for those who see all subjects or manage the trial, their own for coordinators."""
    if actor.has_trial_perm(trial, "view_all_subjects") or actor.has_trial_perm(trial, "manage_trial"):
        return trial.sites.all()
    return actor.sites(trial, "view_site_subjects")


def enrollable_sites(*, actor: Actor, trial: Trial) -> QuerySet[Site]:
    """Sites at which the actor may enroll subjects: every site for a trial admin."""
    if actor.has_trial_perm(trial, "manage_trial"):
        return trial.sites.all()
    return Site.objects.none()


def visit_list(*, trial: Trial) -> QuerySet[Visit]:
    return trial.visits.prefetch_related("protocols").order_by("order")


def visit_get(*, trial: Trial, code: str) -> Visit:
    visit = trial.visits.filter(code=code).first()
    if visit is None:
        raise NotFound(_("No such visit."))
    return visit


def membership_list(*, trial: Trial) -> QuerySet[Membership]:
    return trial.memberships.select_related("user").prefetch_related("sites")


def invitations_open(*, trial: Trial) -> QuerySet[Invitation]:
    """The trial's invitations not yet accepted, withdrawn or expired: roles offered, not held."""
    return (
        trial.invitations.filter(accepted_at__isnull=True, withdrawn_at__isnull=True, expires_at__gt=timezone.now())
        .prefetch_related("sites")
        .order_by("email")
    )


def membership_get(*, trial: Trial, pk: int) -> Membership:
    membership = membership_list(trial=trial).filter(pk=pk).first()
    if membership is None:
        raise NotFound(_("No such membership."))
    return membership


def token_list(*, actor: Actor, trial: Trial) -> QuerySet[ApiToken]:
    """The actor's own tokens in this trial."""
    return ApiToken.objects.filter(membership__trial=trial, membership__user=actor.user).select_related("membership")


@dataclass(frozen=True)
class GridRow:
    subject: Subject
    cells: list[Timepoint | None]


def timepoints_with_counts() -> QuerySet[Timepoint]:
    """Timepoints with their visit and counts of stored image series and instances (`n_series`, `n_instances`)
    and of QC findings (`n_blocking`, `n_warnings`); instance counts come from the series' kept count. The SRs
    that reads store in the visit's study are results, not images: only uploaded series count."""

    def findings(severity: str):
        # A subquery, so that the finding rows do not multiply the series counted by the same query.
        rows = QCFinding.objects.filter(timepoint=OuterRef("pk"), severity=severity).order_by().values("timepoint")
        return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0)

    uploaded = Q(studies__series__origin=Series.Origin.UPLOAD)
    return Timepoint.objects.select_related("visit").annotate(
        n_series=Count("studies__series", filter=uploaded, distinct=True),
        n_instances=Coalesce(Sum("studies__series__instance_count", filter=uploaded), 0),
        n_blocking=findings("blocking"),
        n_warnings=findings("warning"),
    )


def visit_grid_subjects(*, actor: Actor, trial: Trial) -> QuerySet[Subject]:
    """The visit grid's subjects in the order of their numbers (within each site where the code pattern names
    the site: codes are text, and -1000 sorted before -101), each with its timepoints (from
    timepoints_with_counts) to prefetch: page them first, then give the page to `visit_grid`."""
    timepoints = timepoints_with_counts()
    order = ("site__code", "number", "code") if "{site" in trial.subject_code_pattern else ("number", "code")
    subjects = subject_list(actor=actor, trial=trial).order_by(*order)
    return subjects.prefetch_related(Prefetch("timepoints", queryset=timepoints))


def visit_grid(*, actor: Actor, trial: Trial, subjects=None) -> tuple[list[Visit], list[GridRow]]:
    """The visit grid: one row a visible subject (of `subjects`, a page of `visit_grid_subjects`, if given),
    one cell a visit (a timepoint from timepoints_with_counts)."""
    visits = list(visit_list(trial=trial))
    if subjects is None:
        subjects = visit_grid_subjects(actor=actor, trial=trial)
    rows = []
    for subject in subjects:
        by_visit = {tp.visit_id: tp for tp in subject.timepoints.all()}
        rows.append(GridRow(subject=subject, cells=[by_visit.get(v.pk) for v in visits]))
    return visits, rows


@dataclass(frozen=True)
class TrialSummary:
    """Counts only: what a sponsor sees of a trial's progress, with nothing identifying."""

    sites: int
    subjects: int
    states_by_visit: list[tuple[Visit, dict[str, int]]]


def trial_summary(*, trial: Trial) -> TrialSummary:
    visits = list(visit_list(trial=trial))
    counts = Counter(Timepoint.objects.filter(subject__trial=trial).values_list("visit_id", "state"))
    states = [(v, {s: counts.get((v.pk, s), 0) for s in Timepoint.State.values}) for v in visits]
    return TrialSummary(sites=trial.sites.count(), subjects=trial.subjects.count(), states_by_visit=states)


# The dates an audit filter may name: a day's bounds in any time zone must be a datetime in UTC too (0001-01-01
# at midnight in Seoul is not; SQLite's make_naive overflowed). The form and the API refuse a date outside.
AUDIT_DATE_MIN = date(1900, 1, 1)
AUDIT_DATE_MAX = date(9999, 12, 30)


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    object_type: str = ""
    object_id: str = ""
    since: date | None = None
    until: date | None = None


def audit_event_list(*, trial: Trial, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """The trial's audit events, newest first, narrowed by the filters."""
    f = filters or AuditFilters()
    qs = AuditEvent.objects.filter(trial_id=trial.pk).order_by("-seq")
    if f.action:
        qs = qs.filter(action=f.action)
    if f.actor:
        qs = qs.filter(actor_label__icontains=f.actor)
    if f.object_type:
        qs = qs.filter(object_type=f.object_type)
    if f.object_id:
        qs = qs.filter(object_id=f.object_id)
    tz = timezone.get_current_timezone()
    if f.since:
        qs = qs.filter(at__gte=datetime.combine(f.since, time.min, tzinfo=tz))
    if f.until:
        qs = qs.filter(at__lte=datetime.combine(f.until, time.max, tzinfo=tz))
    return qs


def audit_actions(*, trial: Trial) -> list[str]:
    return list(
        AuditEvent.objects.filter(trial_id=trial.pk).order_by("action").values_list("action", flat=True).distinct()
    )


def upload_timepoint_get(*, actor: Actor, trial: Trial, subject_code: str, visit_code: str) -> Timepoint:
    """The timepoint a person may upload to: the subject must be at one of their upload sites (else 403 or 404)."""
    subject = subject_get(actor=actor, trial=trial, code=subject_code)
    if subject.site_id not in actor.site_ids(trial, "upload_to_site"):  # read with the trial: no query of its own
        raise NotPermitted(_("Only the site's coordinators upload images for this subject."))
    timepoint = subject.timepoints.select_related("visit", "subject__trial").filter(visit__code=visit_code).first()
    if timepoint is None:
        raise NotFound(_("No such visit."))
    return timepoint


def upload_list(*, actor: Actor, trial: Trial) -> QuerySet[Upload]:
    """Uploads of the subjects the actor may see."""
    return Upload.objects.filter(timepoint__subject__in=subject_list(actor=actor, trial=trial)).select_related(
        "timepoint__subject", "timepoint__visit", "created_by"
    )


def upload_get(*, actor: Actor, trial: Trial, pk: int, write: bool = False) -> Upload:
    """An upload the actor may see (else 404); with `write`, one they may add files to (else 403).

    The rule is `upload_list`'s (every subject's for those who see all subjects, else their sites'), read from
    the actor's `TrialAccess`: the upload API's every request (each STOW body, each status poll) checks it.
    The upload comes with its visit, its subject and their trial, and the person who opened it.
    """
    access = actor.access_to(trial)
    if access is None:
        raise NotFound(_("No such upload."))
    upload = (
        Upload.objects.filter(pk=pk, timepoint__subject__trial=trial)
        .select_related("timepoint__subject", "timepoint__visit", "created_by")
        .first()
    )
    if upload is None:
        raise NotFound(_("No such upload."))
    site_id = upload.timepoint.subject.site_id
    if not access.sees_site(site_id):
        raise NotFound(_("No such upload."))
    if write and site_id not in access.sites_with("upload_to_site"):
        raise NotPermitted(_("Only the site's coordinators upload images for this subject."))
    upload.timepoint.subject.trial = trial  # the row it was filtered by: no join, no query to reach it
    return upload


def timepoint_get(*, actor: Actor, trial: Trial, subject_code: str, visit_code: str) -> Timepoint:
    """A timepoint of a subject the actor may see (else 404)."""
    subject = subject_get(actor=actor, trial=trial, code=subject_code)
    timepoint = (
        subject.timepoints.select_related("visit", "subject__site", "subject__trial")
        .filter(visit__code=visit_code)
        .first()
    )
    if timepoint is None:
        raise NotFound(_("No such visit."))
    return timepoint


def qc_worklist(*, actor: Actor, trial: Trial) -> QuerySet[Timepoint]:
    """Timepoints waiting for QC or for a site's answer, oldest first; for QC reviewers only (else 403).

    `answered` is true where the site has answered every query still open on the visit (in words or by a new
    upload): the visit waits for the reviewer again, not for the site.
    """
    if not actor.has_trial_perm(trial, "review_qc"):
        raise NotPermitted(_("Only QC reviewers review image quality."))
    states = [Timepoint.State.UPLOADED, Timepoint.State.IN_QC, Timepoint.State.QUERY_OPEN]

    def queries(state: str):
        return Exists(Query.objects.filter(timepoint=OuterRef("pk"), state=state))

    return (
        Timepoint.objects.filter(subject__trial=trial, state__in=states)
        .select_related("subject__site", "visit")
        .annotate(
            n_blocking=Count("qc_findings", filter=Q(qc_findings__severity="blocking"), distinct=True),
            n_warnings=Count("qc_findings", filter=Q(qc_findings__severity="warning"), distinct=True),
            # Completed uploads only: a session discarded for want of files (cancelled) uploaded nothing.
            uploaded_at=Max("uploads__closed_at", filter=Q(uploads__state=Upload.State.COMPLETE)),
            answered=ExpressionWrapper(
                queries(Query.State.ANSWERED) & ~queries(Query.State.OPEN), output_field=BooleanField()
            ),
        )
        .order_by("updated_at", "pk")
    )


def qc_timepoint(*, timepoint: Timepoint) -> dict:
    """What the QC page shows: findings, and the series with their classification and number of frames (`frames`:
    the images a reader scrolls through, an enhanced CT or MR being one instance of many frames)."""
    series = (
        Series.objects.filter(study__timepoint=timepoint)
        .annotate(frames=Sum("instances__number_of_frames", default=0))
        .select_related("classification__corrected_by", "study")
        .order_by("series_number", "pk")
    )
    return {
        "findings": list(timepoint.qc_findings.select_related("series")),
        "series": list(series),
        "reviews": list(timepoint.qc_reviews.select_related("reviewer")),
        "queries": list(timepoint.queries.all()),
    }


# Open queries first, then answered, then closed.
QUERY_ORDER = Case(
    When(state=Query.State.OPEN, then=Value(0)),
    When(state=Query.State.ANSWERED, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def query_list(*, actor: Actor, trial: Trial) -> QuerySet[Query]:
    """Queries of the subjects the actor may see: their sites' for coordinators, all for QC reviewers and admins."""
    if not sees_subjects(actor=actor, trial=trial):
        raise NotPermitted(_("Your role in this trial does not include site queries."))
    return (
        Query.objects.filter(timepoint__subject__in=subject_list(actor=actor, trial=trial))
        .select_related("timepoint__subject__site", "timepoint__visit", "opened_by", "series")
        .order_by(QUERY_ORDER, "due_date", "pk")
    )


def query_get(*, actor: Actor, trial: Trial, pk: int) -> Query:
    query = query_list(actor=actor, trial=trial).filter(pk=pk).first()
    if query is None:
        raise NotFound(_("No such query."))
    return query


def queries_overdue(*, trial: Trial) -> QuerySet[Query]:
    """Queries past their due date still waiting for the site (open), for the trial admin."""
    return (
        Query.objects.filter(timepoint__subject__trial=trial, state=Query.State.OPEN, due_date__lt=timezone.localdate())
        .select_related("timepoint__subject__site", "timepoint__visit")
        .order_by("due_date")
    )


# Files an earlier upload already settled are not sent again; a file lost before processing may be.
_SETTLED = (UploadItem.State.ACCEPTED, UploadItem.State.DUPLICATE, UploadItem.State.REJECTED)


@dataclass(frozen=True)
class UploadPageState:
    """What the upload page starts from: the person's unfinished upload, what is stored, what was received."""

    resumable: Upload | None
    stored_series: int
    stored_instances: int
    received: list[dict]  # one {sha256, state, reason} a file the visit's uploads settled
    idle_closed: Upload | None = None  # the person's last upload, when the periodic job closed it unfinished
    idle_closed_files: int = 0  # the files the server had received in it


@dataclass(frozen=True)
class UploadRecord:
    """One upload's outcome as the visit keeps it: its files counted by state, and the rejected ones with why."""

    upload: Upload
    counts: dict[str, int]  # UploadItem.State value -> number of files
    rejected: list[UploadItem]

    def outcomes(self) -> list[tuple[str, str, int]]:
        """(state, label, count) of each state some file is in, in the order the states are declared."""
        labels = dict(UploadItem.State.choices)
        return [(state, labels[state], self.counts[state]) for state in UploadItem.State.values if state in self.counts]


def timepoint_stored(timepoint: Timepoint) -> dict[str, int]:
    """The uploaded series and images a visit holds: {"series": n, "instances": n}."""
    return Series.objects.filter(study__timepoint=timepoint, origin=Series.Origin.UPLOAD).aggregate(
        series=Count("pk"), instances=Coalesce(Sum("instance_count"), 0)
    )


def upload_history(
    *, actor: Actor, trial: Trial, subject_code: str, visit_code: str | None = None
) -> list[UploadRecord]:
    """The uploads of a subject's visits (of one visit, with `visit_code`) the actor may see, newest first.

    A file is known by its hash and size only (the client's file name is never stored); a rejection reason names
    the attribute and what to do, never a value from the file. A session discarded because no file was sent in
    it (cancelled) is no upload to list.
    """
    uploads = upload_list(actor=actor, trial=trial).filter(timepoint__subject__code=subject_code)
    uploads = uploads.exclude(state=Upload.State.CANCELLED)
    if visit_code is not None:
        uploads = uploads.filter(timepoint__visit__code=visit_code)
    uploads = list(uploads.order_by("-created_at", "-pk"))
    counts: dict[int, dict[str, int]] = {upload.pk: {} for upload in uploads}
    rows = UploadItem.objects.filter(upload__in=uploads).values("upload_id", "state").annotate(n=Count("pk"))
    for row in rows.order_by():
        counts[row["upload_id"]][row["state"]] = row["n"]
    rejected: dict[int, list[UploadItem]] = {upload.pk: [] for upload in uploads}
    for item in UploadItem.objects.filter(upload__in=uploads, state=UploadItem.State.REJECTED).order_by("pk"):
        rejected[item.upload_id].append(item)
    return [UploadRecord(upload, counts[upload.pk], rejected[upload.pk]) for upload in uploads]


def upload_page_state(*, actor: Actor, trial: Trial, timepoint: Timepoint) -> UploadPageState:
    """Read for a timepoint the actor may upload to (checked by upload_timepoint_get)."""
    uploads = upload_list(actor=actor, trial=trial).filter(timepoint=timepoint)
    resumable = (
        uploads.filter(created_by=actor.user, state__in=[Upload.State.OPEN, Upload.State.PROCESSING])
        .order_by("-created_at")
        .first()
    )
    stored = timepoint_stored(timepoint)
    received: dict[str, dict] = {}
    items = (
        UploadItem.objects.filter(upload__in=uploads, state__in=_SETTLED)
        .exclude(code="lost")
        .order_by("pk")
        .values("sha256", "state", "reason", "reason_text")
    )
    for item in items:  # stored wins over rejected
        item["reason"] = text_display(item.pop("reason_text"), item["reason"])  # in the reader's language
        known = received.get(item["sha256"])
        if known is None or known["state"] == UploadItem.State.REJECTED:
            received[item["sha256"]] = item
    # The person's last upload of the visit, if the periodic job closed it unfinished (UPLOAD_IDLE_HOURS): the page
    # says so, so they know the server kept what it received and the rest may still have to be sent.
    last = (
        uploads.filter(created_by=actor.user)
        .exclude(state=Upload.State.CANCELLED)
        .order_by("-created_at", "-pk")
        .first()
    )
    idle_closed = last if last is not None and last.idle_closed else None
    return UploadPageState(
        resumable,
        stored["series"],
        stored["instances"],
        list(received.values()),
        idle_closed=idle_closed,
        idle_closed_files=idle_closed.items.count() if idle_closed else 0,
    )
