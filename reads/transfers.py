"""Sponsor data transfers: a trial's locked reads up to a cut-off, as one reproducible zip, built by a task.

A sponsor viewer or trial admin requests a transfer (`transfer_request`); the commit queues `build_transfer`,
which calls `transfer_build`: it gathers every subject's assessment series as locked by the cut-off
(`reads.series.trial_series`), writes SDTM TU/TR/RS as SAS transport v5 and CSV (`reads.sdtm`), their
define.xml (`reads.define_xml`), plain lesion, visit and subject tables, every SR of a read in the transfer
(with every SR a correction or an adjudication replaced, under superseded/), and a manifest with each file's
SHA-256, the transfer's number, cut-off, the transfer it supersedes, what changed per subject since then and
which SR replaces which. The zip is written once, atomically, to the "transfers" storage, listed, and downloaded
as often as needed (`transfer_open`, audited each time).

Reproducible: every file but the manifest depends only on the data as locked by the cut-off (sorted rows, sorted
zip entries with a fixed time stamp, transport headers and define.xml stamped with the time the data stand at),
so a second transfer with nothing changed differs only in the manifest's number, time and predecessor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import tempfile
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pydicom
from django.core.files.storage import storages
from django.db import OperationalError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ctims import safe_csv
from ctims.audit import audit_record
from ctims.exceptions import InvalidState, NotFound, ValidationFailed
from ctims.i18n import Text, gettext_noop, text_json
from trials.ingest import store
from trials.ingest.store import image_storage
from trials.ingest.subject_keys import subject_space
from trials.models import Instance, Series, Timepoint, Trial

from . import define_xml, sdtm
from .assessment import new_lesions_assessed
from .models import DeliverySettings, Read, ReadDesign, ReaderAssignment, TimepointResult, Transfer, reader_code
from .quality import transfer as quality_transfer
from .sites import BY_CODE
from .sr_store import accepted_in_description

log = logging.getLogger(__name__)

# The build's steps and the percentage reached when each is done.
STEPS = {
    "collect": (10, gettext_lazy("Gathering locked reads")),
    "sdtm": (35, gettext_lazy("Writing SDTM TU, TR and RS")),
    "define": (45, gettext_lazy("Writing define.xml")),
    "tables": (55, gettext_lazy("Writing lesion, visit and subject tables")),
    "srs": (90, gettext_lazy("Adding the signed SRs")),
    "store": (100, gettext_lazy("Storing the zip")),
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no entry carries the time it was written
EMPTY_DATA_TIME = datetime(1960, 1, 1, tzinfo=UTC)  # SAS's epoch, for a transfer with nothing locked yet


def reader_name(evaluator: int | None) -> str:
    """How the plain tables name an evaluator number: "Reader 1", "Reader 3" (who took over a case), "Adjudicator"."""
    if evaluator is None:
        return ""
    return "Adjudicator" if evaluator == sdtm.ADJUDICATOR else f"Reader {evaluator}"


def transfer_storage():
    return storages["transfers"]


# --- settings ----------------------------------------------------------------------------------------------


def delivery_settings(trial: Trial) -> DeliverySettings:
    """The trial's delivery settings (the defaults, unsaved, if never set)."""
    return DeliverySettings.objects.filter(trial=trial).first() or DeliverySettings(trial=trial)


def delivers_dates(trial: Trial) -> bool:
    """Whether the trial's images keep (shifted) scan dates: without them there are no study days or real dates
    to deliver."""
    return trial.deid_retain_dates_modified


def dates_delivered(trial: Trial, settings: DeliverySettings | None = None) -> str:
    """The scan dates a transfer requested now carries: "real" (real dates and study days, the trial admin's
    setting), "study_days" (study days only), or "none" (the trial's images keep no dates)."""
    if not delivers_dates(trial):
        return "none"
    return "real" if (settings or delivery_settings(trial)).real_dates else "study_days"


@transaction.atomic
def delivery_settings_set(*, actor, trial: Trial, real_dates: bool) -> DeliverySettings:
    """The trial admin decides whether transfers carry real scan dates (default: study days only)."""
    current, _created = DeliverySettings.objects.select_for_update().get_or_create(trial=trial)
    if current.real_dates != real_dates:
        current.real_dates = real_dates
        current.full_clean()
        current.save()
        audit_record(
            actor=actor,
            action="delivery_settings.set",
            obj=current,
            trial_id=trial.pk,
            summary={"real_dates": real_dates},
        )
    return current


# --- requesting, listing, downloading -----------------------------------------------------------------------


def enqueue_build(transfer_id: int) -> None:
    """Queue the build of a transfer (called once the request commits; tests replace it to hold the build)."""
    from .tasks import build_transfer

    build_transfer.delay(transfer_id)


def transfer_request(*, actor, trial: Trial, cutoff: datetime | None = None) -> Transfer:
    """A sponsor viewer or trial admin asks for a transfer of what is locked by `cutoff` (default: now).

    The trial's row lock numbers transfers one after the other; the build is queued by the commit.
    """
    now = timezone.now()
    cutoff = cutoff or now
    if cutoff > now:
        raise ValidationFailed(_("The cut-off cannot be in the future."), fields={"cutoff": [_("In the future.")]})
    if cutoff < trial.created_at:  # it would deliver nothing; centuries back, its time zone offset is not RFC 3339
        raise ValidationFailed(
            _("The cut-off cannot be before the trial was created."), fields={"cutoff": [_("Before the trial.")]}
        )
    with transaction.atomic():
        Trial.objects.select_for_update().get(pk=trial.pk)
        number = (Transfer.objects.filter(trial=trial).aggregate(n=Max("number"))["n"] or 0) + 1
        transfer = Transfer(
            trial=trial,
            number=number,
            cutoff=cutoff,
            real_dates=dates_delivered(trial) == "real",
            requested_by=actor,
            requested_at=now,
        )
        transfer.full_clean()
        transfer.save()
        audit_record(
            actor=actor,
            action="transfer.request",
            obj=transfer,
            trial_id=trial.pk,
            summary={"number": number, "cutoff": cutoff.isoformat(), "real_dates": transfer.real_dates},
        )
        transaction.on_commit(lambda: enqueue_build(transfer.pk))
    return transfer


def transfers_list(trial: Trial):
    """The trial's transfers, newest first (a queryset: the page and the API take a page of it)."""
    return Transfer.objects.filter(trial=trial).select_related("requested_by", "supersedes").order_by("-number")


def transfer_get(*, trial: Trial, number: int) -> Transfer:
    """One transfer of the trial by its number; NotFound otherwise."""
    transfer = Transfer.objects.filter(trial=trial, number=number).select_related("supersedes").first()
    if transfer is None:
        raise NotFound(_("No such transfer."))
    return transfer


def transfer_open(*, actor, transfer: Transfer):
    """The transfer's zip, opened for reading; the download is audited. InvalidState until it is built."""
    if transfer.state != Transfer.State.READY:
        raise InvalidState(_("This transfer is not ready yet."))
    audit_record(
        actor=actor,
        action="transfer.download",
        obj=transfer,
        trial_id=transfer.trial_id,
        summary={"number": transfer.number, "sha256": transfer.sha256},
    )
    return transfer_storage().open(transfer.storage_key, "rb")


def transfers_resume(*, older_than: timedelta = timedelta(minutes=10)) -> list[int]:
    """Queue again every transfer still queued or building `older_than` after it was requested: its task was
    lost with a broker that restarted empty, or its worker died. Building is idempotent and gives the same bytes,
    so a build that was only slow is harmless to repeat. Returns the transfers queued."""
    since = timezone.now() - older_than
    stuck = list(
        Transfer.objects.filter(
            state__in=[Transfer.State.QUEUED, Transfer.State.BUILDING], requested_at__lt=since
        ).values_list("pk", flat=True)
    )
    for transfer_id in stuck:
        enqueue_build(transfer_id)
    return stuck


def step_label(transfer: Transfer) -> str:
    return str(STEPS[transfer.step][1]) if transfer.step in STEPS else ""


# --- building ----------------------------------------------------------------------------------------------


def _progress(transfer: Transfer, step: str, done: int | None = None) -> None:
    transfer.step = step
    transfer.progress = done if done is not None else STEPS[step][0]
    Transfer.objects.filter(pk=transfer.pk).update(step=transfer.step, progress=transfer.progress)


def transfer_predecessor(transfer: Transfer) -> Transfer | None:
    """The transfer this one supersedes: of those built before it, the one with the latest cut-off not later
    than its own.

    A transfer asked for an earlier cut-off (the data as they stood at an interim analysis) is compared with
    what was delivered up to that cut-off, not with a later one: the later one's data are not withdrawn."""
    return (
        Transfer.objects.filter(
            trial=transfer.trial,
            number__lt=transfer.number,
            state=Transfer.State.READY,
            cutoff__lte=transfer.cutoff,
        )
        .order_by("-cutoff", "-number")
        .first()
    )


def transfer_build(*, transfer_id: int) -> Transfer:
    """Build a requested transfer into its zip (the task's body). Idempotent: a built transfer is left alone,
    and a build that died half-way is done again with the same result.

    A transient database error propagates (the task retries); anything else marks the transfer failed with a
    reason and is audited.
    """
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update(of=("self",)).select_related("trial").get(pk=transfer_id)
        if transfer.state == Transfer.State.READY:
            return transfer
        transfer.state, transfer.progress, transfer.step, transfer.error = Transfer.State.BUILDING, 0, "", ""
        transfer.save(update_fields=["state", "progress", "step", "error"])
    try:
        previous = transfer_predecessor(transfer)
        files, fingerprints, srs = build_files(transfer)
        changes = changes_since(previous.fingerprints if previous else None, fingerprints)
        files.update(manifest_files(transfer, previous, files, changes, srs["mismatches"], srs["replacements"]))
        key = f"{transfer.trial.code}/{transfer.filename}"
        with tempfile.TemporaryFile() as written:  # the zip grows on disk, an SR at a time (`zip_write`)
            zip_write(written, files)
            del files  # the tables' and datasets' bytes: the zip holds them now
            written.seek(0)
            sha256, size = store.write_once_file(  # read back a chunk at a time, never whole in memory
                transfer_storage(), key, written, refusal="a different transfer is already stored under this name"
            )
    except OperationalError:
        raise
    except Exception as exc:
        log.exception("transfer %s of trial %s failed", transfer.number, transfer.trial.code)
        # Written in no one's language: kept as template and parameters, said in the reader's (error_display).
        reason = (
            Text(gettext_noop("The SDTM datasets break a transport file rule: %(why)s"), why=str(exc)[:400])
            if isinstance(exc, sdtm.DatasetError)
            else Text(
                gettext_noop("The build failed (%(kind)s); request the transfer again or ask the operator."),
                kind=type(exc).__name__,
            )
        )
        with transaction.atomic():
            Transfer.objects.filter(pk=transfer.pk).update(
                state=Transfer.State.FAILED, error=reason[:500], error_text=text_json(reason)
            )
            transfer.refresh_from_db()
            audit_record(
                actor=None,
                action="transfer.fail",
                obj=transfer,
                trial_id=transfer.trial_id,
                summary={"number": transfer.number, "reason": transfer.error},
            )
        return transfer
    with transaction.atomic():
        transfer.state = Transfer.State.READY
        transfer.progress, transfer.step = 100, "store"
        transfer.supersedes = previous
        transfer.storage_key, transfer.sha256, transfer.size = key, sha256, size
        transfer.fingerprints, transfer.changes = fingerprints, changes
        transfer.finished_at = timezone.now()
        transfer.save()
        audit_record(
            actor=None,
            action="transfer.build",
            obj=transfer,
            trial_id=transfer.trial_id,
            summary={
                "number": transfer.number,
                "cutoff": transfer.cutoff.isoformat(),
                "supersedes": previous.number if previous else None,
                "sha256": transfer.sha256,
                "subjects": len(fingerprints),
            },
        )
    return transfer


# --- gathering ---------------------------------------------------------------------------------------------


def _tenths(mm) -> int | None:
    if mm in (None, ""):
        return None
    return int(Decimal(str(mm)) * 10)


METHOD_OF_MODALITY = {"CT": "CT SCAN", "MR": "MRI"}  # SDTM METHOD of the modalities a protocol may ask for


def _methods(trial: Trial) -> tuple[dict[int, str], dict[str, str]]:
    """Each timepoint's imaging method as SDTM names it (MRI if any series is MR, else CT SCAN), and each CT or
    MR series' own: a lesion drawn on the CT of a visit that also holds a brain MR was measured by CT SCAN."""
    visits: dict[int, str] = {}
    series: dict[str, str] = {}
    for timepoint_id, uid, modality in Series.objects.filter(study__trial=trial).values_list(
        "study__timepoint_id", "series_instance_uid", "modality"
    ):
        if modality == "MR" or timepoint_id not in visits:
            visits[timepoint_id] = "MRI" if modality == "MR" else "CT SCAN"
        if modality in METHOD_OF_MODALITY:
            series[uid] = METHOD_OF_MODALITY[modality]
    return visits, series


def _location(lesion) -> str:
    """TULOC: the finding site's SNOMED CT meaning (English, as in the SR); its code if the stored meaning is not
    one transport v5 can carry."""
    site = BY_CODE.get(lesion.site_code)
    if site is not None:
        return site.meaning
    return lesion.site_meaning if lesion.site_meaning.isascii() else lesion.site_code


def _observations(read: Read, seen: set[str], series_methods: dict[str, str]) -> tuple[sdtm.LesionObservation, ...]:
    """The lesions of a read as SDTM observations, each with the method of the image it was drawn on (if it was);
    `seen` holds the labels of the evaluator's earlier visits."""
    lesions = {lesion.label: lesion for lesion in read.task.assignment.lesions.all()}
    out = []
    for key, category in (("targets", "target"), ("non_targets", "non_target"), ("new", "new")):
        for entry in read.content.get(key, []):
            label = entry["label"]
            lesion = lesions.get(label)
            out.append(
                sdtm.LesionObservation(
                    label=label,
                    tracking_uid=lesion.tracking_uid if lesion else "",
                    category=category,
                    location=_location(lesion) if lesion else "",
                    is_node=bool(entry.get("is_node")),
                    status=entry.get("status") or "present",
                    long_axis=_tenths(entry.get("long_mm")),
                    short_axis=_tenths(entry.get("short_mm")),
                    identified_here=label not in seen,
                    method=series_methods.get((entry.get("image") or {}).get("series", ""), ""),
                )
            )
            seen.add(label)
    return tuple(out)


@dataclasses.dataclass
class Gathered:
    """What a transfer holds, before it is written: SDTM input, plain rows, SRs and per-subject fingerprints."""

    delivery: sdtm.Delivery
    visits: list[dict]
    lesions: list[dict]
    subjects: list[dict]
    srs: list[tuple[str, str]]  # (path in the zip, storage key in the image store)
    sr_evaluators: dict[str, int]  # path in the zip: the evaluator number of the read the SR holds or accepts
    sr_replacements: list[dict]  # each SR of the transfer that replaces another one of it (`_sr_history`)
    data_time: datetime
    fingerprints: dict


def _study_id(trial: Trial) -> str:
    """STUDYID: the protocol number (ASCII by its validator; the trial code, ASCII too, for one entered before)."""
    number = trial.protocol_number.strip()
    return number if number and number.isascii() else trial.code


def _real_date(trial: Trial | None, subject: str, shifted: date | None) -> date | None:
    """The real scan date: the shifted date moved back by the subject's offset (only the server knows it).

    `trial` is None when the transfer delivers no real dates.
    """
    if trial is None or shifted is None:
        return None
    return shifted - timedelta(days=subject_space(trial, subject).date_offset_days(subject))


def _digest(value) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _record(code: str, v, evaluator: int, dated: Trial | None, methods: dict, **values) -> sdtm.VisitAssessment:
    """One evaluator's record of a visit of a series (`v`, a reads.series.VisitAssessment)."""
    return sdtm.VisitAssessment(
        subject=code,
        visit=sdtm.VisitRef(
            v.visit_code, v.timepoint.visit.label, v.timepoint.visit.order, v.timepoint.visit.sdtm_visit
        ),
        evaluator=evaluator,
        baseline=v.baseline,
        study_day=v.study_day,
        scan_date=_real_date(dated, code, v.scan_date),
        method=methods.get(v.timepoint.pk, "CT SCAN"),
        **values,
    )


def gather(transfer: Transfer) -> Gathered:
    """Everything locked by the transfer's cut-off, per subject: every reader's series (a reader retired from the
    case by then included, under their own evaluator number), the adjudicator's choices, the accepted result and
    each series' endpoints."""
    from .selectors import adjudicated_visits
    from .series import trial_series

    trial = transfer.trial
    dated = trial if transfer.real_dates and delivers_dates(trial) else None
    methods, series_methods = _methods(trial)
    assessments: list[sdtm.VisitAssessment] = []
    endpoints: list[sdtm.SubjectEndpoint] = []
    visits_rows: list[dict] = []
    lesion_rows: list[dict] = []
    subject_rows: list[dict] = []
    srs: list[tuple[str, int]] = []  # (path in the zip, SR instance id)
    sr_evaluators: dict[str, int] = {}
    replacements: list[dict] = []
    times: list[datetime] = []
    fingerprints: dict = {}
    designed = ReadDesign.objects.filter(trial=trial).exists()  # without a read design nothing was ever read
    # The visits an adjudicator decided (the readers disagreed on them), what the results CSV, the API and reader
    # quality call adjudicated; a visit whose result only follows a decision about another is not one of them.
    decided = adjudicated_visits(Timepoint.objects.filter(subject__trial=trial).values("pk"))
    for series in trial_series(trial, cutoff=transfer.cutoff) if designed else []:
        code = series.subject.code
        if not series.result.visits:
            continue
        accepted = series.accepted.number  # None: the result mixes readers' reads with no one's series covering it
        times.extend(adjudication.decided_at for adjudication in series.adjudications)
        # The visits whose standing result an adjudicator decided (with whole-case adjudication, every visit the
        # accepted series covers when it was decided).
        adjudicated = {
            v.timepoint.pk: v.result.adjudication
            for v in series.result.visits
            if v.result is not None and v.result.adjudication_id
        }
        # Whose read each visit's standing result holds, by evaluator number.
        standing = {v.timepoint.pk: v.read.task.assignment.evaluator_number for v in series.result.visits}
        per_visit: dict[str, list] = {}
        # Each reader's series under their own evaluator number, a reader retired from the case included: the
        # locked results may stand on what they signed.
        for reader_series in series.evaluators:
            number = reader_series.number
            seen: set[str] = set()
            for v in reader_series.visits:
                read = v.read
                a = read.assessment or {}
                record = _record(
                    code,
                    v,
                    number,
                    dated,
                    methods,
                    accepted=v.accepted,
                    target_response=a.get("target_response") or "",
                    non_target_response=a.get("non_target_response") or "",
                    new_lesions="" if v.baseline else new_lesions_assessed(a),
                    overall_response=v.overall_response,
                    sum_of_diameters=_tenths(a.get("sum_mm")),
                    lesions=_observations(read, seen, series_methods),
                )
                assessments.append(record)
                per_visit.setdefault(v.visit_code, []).append(record)
                if v.result is not None:
                    times.append(v.result.locked_at)
                adjudication = adjudicated.get(v.timepoint.pk)
                visits_rows.append(
                    _visit_row(
                        record,
                        adjudication=adjudication,
                        decided=v.timepoint.pk in decided,
                        result_evaluator=standing.get(v.timepoint.pk),
                        signature=read.signature,
                    )
                )
                lesion_rows.extend(_lesion_rows(record))
                if read.sr_instance_id:
                    # The read's SR, and the versions it corrected, each with its own signed SR: the history of the
                    # record (the read's own is the last).
                    versions = _read_versions(read)
                    paths = [_read_sr_path(code, v.visit_code, number, version, read) for version in versions]
                    for version, version_path in zip(versions, paths, strict=True):
                        srs.append((version_path, version.sr_instance_id))
                        sr_evaluators[version_path] = number
                    replacements.extend(
                        _replacement(newer, "read corrected", older)
                        for older, newer in zip(paths, paths[1:], strict=False)
                    )
            ep = reader_series.endpoints
            if ep is not None:
                endpoints.append(sdtm.SubjectEndpoint(code, number, number == accepted, ep.best_response.value))
            subject_rows.append(_subject_row(code, number, reader_series, dated, accepted=number == accepted))
        result = series.result
        for v in result.visits:
            if v.result is not None and v.result.sr_instance_id:
                # The adjudication's result SR, verified by the adjudicator, names the accepted reader's SR.
                path = f"sr/{code}/{v.visit_code}-result.dcm"
                srs.append((path, v.result.sr_instance_id))
                sr_evaluators[path] = standing[v.timepoint.pk]
            if v.result is not None:
                # The results the visit's standing one replaced, oldest first: the SR each stood on stays delivered.
                chain = _result_versions(v.result)
                paths = []
                for k, version in enumerate(chain, start=1):
                    evaluator = version.read.task.assignment.evaluator_number
                    if version.sr_instance_id is None:  # it stood on its read's own SR, delivered above
                        paths.append(f"sr/{code}/{v.visit_code}-R{evaluator}.dcm")
                    elif version.pk == v.result.pk:
                        paths.append(f"sr/{code}/{v.visit_code}-result.dcm")
                    else:
                        older_path = f"sr/{code}/superseded/{v.visit_code}-result-v{k}.dcm"
                        srs.append((older_path, version.sr_instance_id))
                        sr_evaluators[older_path] = evaluator
                        paths.append(older_path)
                replacements.extend(
                    _replacement(newer, "result changed by adjudication", older)
                    for older, newer in zip(paths, paths[1:], strict=False)
                    if older != newer
                )
            adjudication = adjudicated.get(v.timepoint.pk)
            if adjudication is None:
                continue
            record = _record(
                code, v, sdtm.ADJUDICATOR, dated, methods, accepted=False, overall_response=v.overall_response
            )
            assessments.append(record)
            per_visit.setdefault(v.visit_code, []).append(record)
            visits_rows.append(
                _visit_row(
                    record,
                    adjudication=adjudication,
                    decided=v.timepoint.pk in decided,
                    result_evaluator=standing.get(v.timepoint.pk),
                    signature=adjudication.signature,
                )
            )
        if accepted is None and result.endpoints is not None:
            # The result holds more than one reader's reads: its best response is the adjudicator's record.
            endpoints.append(sdtm.SubjectEndpoint(code, sdtm.ADJUDICATOR, True, result.endpoints.best_response.value))
        subject_rows.append(
            _subject_row(code, None, series.accepted, dated, accepted=True, adjudications=series.adjudications)
        )
        fingerprints[code] = {
            "visits": [[visit, _digest([dataclasses.asdict(r) for r in rows])] for visit, rows in per_visit.items()],
            "endpoints": _digest([r for r in subject_rows if r["subject"] == code]),
        }
    keys = dict(Instance.objects.filter(pk__in=[pk for _path, pk in srs]).values_list("pk", "storage_key"))
    delivery = sdtm.Delivery(study_id=_study_id(trial), assessments=tuple(assessments), endpoints=tuple(endpoints))
    return Gathered(
        delivery=delivery,
        visits=visits_rows,
        lesions=lesion_rows,
        subjects=subject_rows,
        srs=sorted((path, keys[pk]) for path, pk in srs),
        sr_evaluators=sr_evaluators,
        sr_replacements=sorted(replacements, key=lambda r: (r["sr"], r["replaces"])),
        data_time=max(times, default=EMPTY_DATA_TIME),
        fingerprints=fingerprints,
    )


def _read_versions(read: Read) -> list[Read]:
    """The signed versions of a reader's read of a visit up to `read`, oldest first: the reads each correction
    superseded (a correction is signed only while the visit is not locked, so all were signed before it)."""
    versions = {r.pk: r for r in read.task.reads.all()}  # prefetched by reads.series with their signatures
    chain = [read]
    while chain[0].supersedes_id is not None:
        chain.insert(0, versions.get(chain[0].supersedes_id) or chain[0].supersedes)
    return [r for r in chain if r.sr_instance_id]


def _read_sr_path(code: str, visit: str, evaluator: int, version: Read, current: Read) -> str:
    """Where a version of an evaluator's read of a visit has its SR in the zip: the current one's beside the other
    evaluators', each version it superseded under superseded/ with its version number."""
    if version.pk == current.pk:
        return f"sr/{code}/{visit}-R{evaluator}.dcm"
    return f"sr/{code}/superseded/{visit}-R{evaluator}-v{version.version}.dcm"


def _result_versions(result: TimepointResult) -> list[TimepointResult]:
    """A visit's results up to `result`, oldest first: each adjudication that changed or confirmed a locked
    visit's result made a new one superseding the one before (a result row never changes)."""
    chain = [result]
    while chain[0].supersedes_id is not None:
        chain.insert(
            0,
            TimepointResult.history.select_related("read__task__assignment").get(pk=chain[0].supersedes_id),
        )
    return chain


def _replacement(sr: str, why: str, replaces: str) -> dict:
    """One entry of the manifest's sr_replacements: the SR at `sr` replaces the one at `replaces`."""
    return {"sr": sr, "replaces": replaces, "why": why}


def _chosen(adjudications) -> set[int]:
    """The evaluator numbers of the readers whose series the adjudications accepted (the chosen slot's holder
    when each was decided)."""
    if not adjudications:
        return set()
    ids = TimepointResult.history.filter(adjudication__in=adjudications).values_list("read__task__assignment_id")
    return {a.evaluator_number for a in ReaderAssignment.objects.filter(pk__in=ids)}


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _where(record: sdtm.VisitAssessment) -> dict:
    """The columns every plain table row starts with: whose record of which visit, and when."""
    return {
        "subject": record.subject,
        "visit": record.visit.code,
        "visit_label": record.visit.label,
        "visit_number": record.visit.number,
        "study_day": "" if record.study_day is None else record.study_day,
        "scan_date": _iso(record.scan_date),
        "evaluator": reader_name(record.evaluator),
        "accepted": "Y" if record.accepted else "N",
    }


def _visit_row(
    record: sdtm.VisitAssessment, *, adjudication, decided: bool, result_evaluator: int | None, signature
) -> dict:
    """One evaluator's assessment of one visit, with the signature it stands on (the reader's of their read, the
    adjudicator's of the adjudication): printed name, moment (ISO 8601, zone stated) and meaning (11.50).
    `adjudicated`: the visit's result follows an adjudication (as delivered from the first transfer on);
    `decided_by_adjudicator`: the adjudicator decided this visit, the readers having disagreed on it."""
    return _where(record) | {
        "target_response": record.target_response,
        "non_target_response": record.non_target_response,
        "new_lesions": record.new_lesions,
        "overall_response": record.overall_response,
        "sum_of_diameters_mm": sdtm.mm(record.sum_of_diameters) if record.sum_of_diameters is not None else "",
        "adjudicated": "Y" if adjudication is not None else "N",
        "accepted_reader": reader_name(result_evaluator),
        "adjudication_reason": adjudication.reason if adjudication is not None else "",
        "decided_by_adjudicator": "Y" if decided else "N",
        "signed_by": signature.signer_name,
        "signed_at": signature.at.astimezone(UTC).isoformat(),
        "signature_meaning": signature.meaning,
    }


def _lesion_rows(record: sdtm.VisitAssessment) -> list[dict]:
    rows = []
    for lesion in record.lesions:
        counted = ""
        if lesion.category == "target":
            axis = lesion.short_axis if lesion.is_node else lesion.long_axis
            counted = {
                "measured": sdtm.mm(axis) if axis is not None else "",
                "too_small": sdtm.mm(sdtm.TOO_SMALL_TENTHS),
                "disappeared": sdtm.mm(0),
            }.get(lesion.status, "")
        rows.append(
            _where(record)
            | {
                "lesion": lesion.label,
                "tracking_uid": lesion.tracking_uid,
                "category": lesion.category.replace("_", "-"),
                "location": lesion.location,
                "lymph_node": "Y" if lesion.is_node else "N",
                "status": lesion.status.replace("_", " "),
                "long_axis_mm": sdtm.mm(lesion.long_axis) if lesion.long_axis is not None else "",
                "short_axis_mm": sdtm.mm(lesion.short_axis) if lesion.short_axis is not None else "",
                "counted_mm": counted,
            }
        )
    return rows


def _subject_row(
    code: str, evaluator: int | None, series, dated: Trial | None, *, accepted: bool, adjudications=()
) -> dict:
    ep = series.endpoints
    progression = ep.progression if ep is not None else None
    pd_visit = series.progression_visit
    reasons = [a.reason for a in adjudications]
    return {
        "subject": code,
        "series": reader_name(evaluator) if evaluator is not None else "Accepted result",
        "evaluator": series.evaluator,
        "accepted": "Y" if accepted else "N",
        "best_overall_response": ep.best_response.value if ep is not None else "",
        "response_start_visit": ep.response_start.visit if ep is not None and ep.response_start else "",
        "progression_visit": progression.visit if progression else "",
        "progression_study_day": pd_visit.study_day if pd_visit is not None and pd_visit.study_day else "",
        "progression_date": _iso(_real_date(dated, code, pd_visit.scan_date)) if pd_visit is not None else "",
        "progression_back_dated": ("Y" if progression.back_dated else "N") if progression else "",
        "adjudicated": "Y" if adjudications else "N",
        "chosen_reader": ", ".join(reader_name(n) for n in sorted(_chosen(adjudications))),
        "adjudication_reason": " | ".join(reasons),
    }


# --- writing -----------------------------------------------------------------------------------------------

WHERE_COLUMNS = [
    "subject",
    "visit",
    "visit_label",
    "visit_number",
    "study_day",
    "scan_date",
    "evaluator",
    "accepted",
]
VISIT_COLUMNS = WHERE_COLUMNS + [
    "target_response",
    "non_target_response",
    "new_lesions",
    "overall_response",
    "sum_of_diameters_mm",
    "adjudicated",
    "accepted_reader",
    "adjudication_reason",
    "decided_by_adjudicator",  # new columns go last: the columns before them keep their places
    "signed_by",
    "signed_at",
    "signature_meaning",
]
LESION_COLUMNS = WHERE_COLUMNS + [
    "lesion",
    "tracking_uid",
    "category",
    "location",
    "lymph_node",
    "status",
    "long_axis_mm",
    "short_axis_mm",
    "counted_mm",
]
SUBJECT_COLUMNS = [
    "subject",
    "series",
    "evaluator",
    "accepted",
    "best_overall_response",
    "response_start_visit",
    "progression_visit",
    "progression_study_day",
    "progression_date",
    "progression_back_dated",
    "adjudicated",
    "chosen_reader",
    "adjudication_reason",
]


def table_bytes(columns: list[str], rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = safe_csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@dataclasses.dataclass(frozen=True)
class StoredSR:
    """An SR of the transfer as the build knows it until the zip takes it: where it is in the image store, its
    SHA-256 and its size. A large trial's SRs are never all in memory at once."""

    key: str
    sha256: str
    size: int


def _file_digest(data: bytes | StoredSR) -> tuple[str, int]:
    if isinstance(data, StoredSR):
        return data.sha256, data.size
    return hashlib.sha256(data).hexdigest(), len(data)


def build_files(transfer: Transfer) -> tuple[dict[str, bytes | StoredSR], dict, dict]:
    """Every file of the transfer but the manifest, by path in the zip (an SR as a `StoredSR`, copied when the zip
    is written); the per-subject fingerprints; and what the manifest says of its SRs: those that name another
    evaluator than the read they hold (`sr_observer_mismatch`) and which SR replaces which (`sr_replacements`)."""
    _progress(transfer, "collect", 1)
    gathered = gather(transfer)
    _progress(transfer, "collect")
    trial = transfer.trial
    files: dict[str, bytes] = {}
    sets = sdtm.datasets(gathered.delivery)
    for dataset in sets:
        name = dataset.name.lower()
        files[f"sdtm/{name}.xpt"] = sdtm.xport_bytes(dataset, stamped=gathered.data_time)
        files[f"sdtm/{name}.csv"] = sdtm.csv_bytes(dataset)
    _progress(transfer, "sdtm")
    files["sdtm/define.xml"] = define_xml.define_xml(
        study_oid=trial.code,
        study_name=trial.protocol_number or trial.code,
        study_description=trial.title,
        protocol_name=trial.protocol_number or trial.code,
        datasets=sets,
        files={d.name: f"{d.name.lower()}.xpt" for d in sets},
        created=gathered.data_time,
    )
    _progress(transfer, "define")
    files["tables/visits.csv"] = table_bytes(VISIT_COLUMNS, gathered.visits)
    files["tables/lesions.csv"] = table_bytes(LESION_COLUMNS, gathered.lesions)
    files["tables/subjects.csv"] = table_bytes(SUBJECT_COLUMNS, gathered.subjects)
    files.update(quality_transfer.transfer_files(transfer))  # the reader statistics report (reads.quality)
    _progress(transfer, "tables")
    images = image_storage()
    start, end = STEPS["tables"][0], STEPS["srs"][0]
    mismatches = []
    for n, (path, key) in enumerate(gathered.srs, start=1):
        # Read here for its hash and its observer, and again when the zip takes it (`zip_write`): one at a time.
        with images.open(key, "rb") as f:
            data = f.read()
        files[path] = StoredSR(key, hashlib.sha256(data).hexdigest(), len(data))
        if (mismatch := sr_observer_mismatch(path, data, gathered.sr_evaluators[path])) is not None:
            mismatches.append(mismatch)
        del data
        if n % 10 == 0 or n == len(gathered.srs):
            _progress(transfer, "srs", start + (end - start) * n // len(gathered.srs))
    _progress(transfer, "srs")
    return files, gathered.fingerprints, {"mismatches": mismatches, "replacements": gathered.sr_replacements}


def changes_since(previous: dict | None, current: dict) -> dict:
    """Per subject, what changed since the superseded transfer's fingerprints (all new without one)."""
    previous = previous or {}
    out = {}
    for subject in sorted(set(previous) | set(current)):
        before, now = previous.get(subject), current.get(subject)
        old_visits = dict(map(tuple, before["visits"])) if before else {}
        new_visits = dict(map(tuple, now["visits"])) if now else {}
        entry = {
            "status": "new" if before is None else "removed" if now is None else "unchanged",
            "visits_added": [v for v in new_visits if v not in old_visits],
            "visits_changed": [v for v in new_visits if v in old_visits and old_visits[v] != new_visits[v]],
            "visits_removed": [v for v in old_visits if v not in new_visits],
            "endpoints_changed": bool(before and now and before["endpoints"] != now["endpoints"]),
        }
        if entry["status"] == "unchanged" and (
            entry["visits_added"] or entry["visits_changed"] or entry["visits_removed"] or entry["endpoints_changed"]
        ):
            entry["status"] = "changed"
        out[subject] = entry
    return out


# Programs read the tables as they are; Excel, given a CSV without a byte-order mark, guesses the Windows code page.
ENCODING_NOTE = (
    "The CSV files are UTF-8 without a byte-order mark, as pandas, R (read.csv, readr) and SAS (ENCODING='UTF-8') "
    "read them; a mark would become part of the first column's name for R's read.csv, Python's csv with utf-8 "
    "and SAS without ENCODING=. To open one in Excel, use Data > From Text/CSV with File origin 65001: Unicode "
    "(UTF-8), or Korean and other non-ASCII text is garbled."
)
ADJUDICATED_NOTE = (
    "tables/visits.csv: adjudicated is Y for every visit whose result follows an adjudication (the adjudicator "
    "accepts one reader's series, which then stands at every visit of the subject); decided_by_adjudicator is Y "
    "only for the visits the readers disagreed on and the adjudicator decided, the visits the reader-quality "
    "report counts as adjudicated."
)
REPLACEMENTS_NOTE = (
    "Signed SRs never change: a correction is a new SR. sr/<subject>/ holds each visit's current SRs; "
    "sr/<subject>/superseded/ holds every SR one of them replaced, so the history of a corrected result can be "
    "read: a reader's read corrected before the visit locked (<visit>-R<n>-v<version>.dcm) and a result SR an "
    "adjudication replaced (<visit>-result-v<n>.dcm, n counting the visit's results from 1). sr_replacements "
    'lists each replacement: "sr" replaces "replaces", "why" is "read corrected" or "result changed by '
    "adjudication\" (the visit's result moved from the SR it stood on to another one). Each SR also names the SRs "
    "it replaces in its Predecessor Documents Sequence (0040,A360)."
)
OBSERVER_NOTE = (
    "An SR listed in sr_observer_mismatches was signed before CTIMS numbered a reader who took a case over from "
    "a retired one as an evaluator of their own: the SR names that reader by the place they took "
    '("Radiologist 1"; a result SR, in its series description, as the reader accepted). Signed SRs never '
    "change, so it is delivered as signed; its file name (-R3), the SDTM --EVALID and the tables name the "
    "evaluator, and the SOP Instance UID links the SR to those records."
)


RESULT_SR = re.compile(r"-result(-v\d+)?\.dcm$")  # a result SR's path in the zip, current or superseded


def sr_observer_mismatch(path: str, data: bytes, evaluator: int) -> dict | None:
    """An SR of the transfer that names another reader than `evaluator`, whose read it holds (a reader's SR: its
    verifying observer) or accepts (a result SR: its series description); None if it names them right."""
    dataset = pydicom.dcmread(
        io.BytesIO(data), stop_before_pixels=True, specific_tags=["VerifyingObserverSequence", "SeriesDescription"]
    )
    expected = reader_code(evaluator)
    if RESULT_SR.search(path):
        names = accepted_in_description(str(dataset.get("SeriesDescription", "")))
        if names is None:
            return None
    else:
        observers = dataset.get("VerifyingObserverSequence") or []
        names = ", ".join(str(o.VerifyingObserverName).replace("^", " ").strip() for o in observers)
    return None if names == expected else {"path": path, "sr_names": names, "evaluator": expected}


def manifest_files(
    transfer: Transfer,
    previous: Transfer | None,
    files: dict[str, bytes | StoredSR],
    changes: dict,
    mismatches: list[dict],
    replacements: list[dict] = (),
) -> dict:
    """manifest.json (the transfer, its cut-off, predecessor, every file's SHA-256, what changed, any reader's
    SR that names another evaluator than its file, which SR replaces which) and a `sha256sum -c` list of every
    file."""
    listing = [
        {"path": path, "sha256": digest, "bytes": size}
        for path, (digest, size) in ((path, _file_digest(data)) for path, data in sorted(files.items()))
    ]
    manifest = {
        "format": "CTIMS sponsor transfer 1",
        "trial": transfer.trial.code,
        "protocol": transfer.trial.protocol_number,
        "transfer": transfer.number,
        "requested_at": transfer.requested_at.astimezone(UTC).isoformat(),
        "cutoff": transfer.cutoff.astimezone(UTC).isoformat(),
        "supersedes": previous.number if previous else None,
        "real_dates": transfer.real_dates,
        "files": listing,
        "changes": changes,
        "sr_observer_mismatches": sorted(mismatches, key=lambda m: m["path"]),
        "sr_replacements": list(replacements),
        "notes": [ENCODING_NOTE, ADJUDICATED_NOTE, REPLACEMENTS_NOTE] + ([OBSERVER_NOTE] if mismatches else []),
    }
    blob = (json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=True) + "\n").encode("ascii")
    sums = [(entry["sha256"], entry["path"]) for entry in listing] + [
        (hashlib.sha256(blob).hexdigest(), "manifest.json")
    ]
    text = "".join(f"{digest}  {path}\n" for digest, path in sorted(sums, key=lambda s: s[1]))
    return {"manifest.json": blob, "manifest.sha256": text.encode("ascii")}


def zip_write(out, files: dict[str, bytes | StoredSR]) -> None:
    """Write into `out` (a seekable binary file) a zip whose bytes depend only on the files: sorted entries, one
    fixed time stamp, fixed attributes. An SR is read from the image store as its entry is written, and refused if
    it no longer hashes to what the manifest lists."""
    images = image_storage()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            data = files[path]
            if isinstance(data, StoredSR):
                stored = data
                with images.open(stored.key, "rb") as f:
                    data = f.read()
                if hashlib.sha256(data).hexdigest() != stored.sha256:
                    raise store.DifferentFileStored(f"the SR for {path} changed while the transfer was built")
            archive.writestr(info, data, compresslevel=6)
            del data


def zip_bytes(files: dict[str, bytes | StoredSR]) -> bytes:
    """The zip of `zip_write`, as bytes (a small transfer's, or a test's)."""
    out = io.BytesIO()
    zip_write(out, files)
    return out.getvalue()
