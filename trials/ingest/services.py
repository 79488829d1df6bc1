"""Upload sessions and the processing of each received file.

Raw bytes live only in the quarantine storage until the file is de-identified and verified (then the
de-identified copy goes to the image store) or rejected with a reason; either way the raw copy is deleted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from ctims.audit import audit_record
from ctims.exceptions import InvalidState

from ..deid import DeidOptions, DeidRejected, DeidResult, PseudonymSpace, deidentify
from ..dicomweb import index as qido_index
from ..models import Instance, Series, Study, Subject, Timepoint, Trial, Upload, UploadItem
from ..services import timepoint_transition
from . import store

UPLOADABLE_STATES = (
    Timepoint.State.EXPECTED,
    Timepoint.State.UPLOADING,
    Timepoint.State.UPLOADED,
    Timepoint.State.QUERY_OPEN,
)


def trial_deid_options(trial: Trial) -> DeidOptions:
    return DeidOptions(
        retain_longitudinal_modified_dates=trial.deid_retain_dates_modified,
        clean_descriptors=trial.deid_clean_descriptors,
        retain_device_identity=trial.deid_retain_device_identity,
        retain_patient_characteristics=trial.deid_retain_patient_characteristics,
        private_tag_safelist=frozenset((creator, element) for creator, element in trial.deid_private_safelist),
    )


def trial_space(trial: Trial) -> PseudonymSpace:
    return PseudonymSpace(bytes(trial.pseudonym_key))


def upload_open(*, actor, timepoint: Timepoint) -> Upload:
    """Start an upload session for a timepoint, or resume the person's open one (after a reload or a dropped network).

    The timepoint shows 'uploading' until the session completes.
    """
    with transaction.atomic():
        resumable = Upload.objects.filter(timepoint=timepoint, created_by=actor, state=Upload.State.OPEN).first()
        if resumable is not None:
            return resumable
        timepoint = timepoint_transition(
            actor=actor, timepoint=timepoint, to=Timepoint.State.UPLOADING, allowed_from=UPLOADABLE_STATES
        )
        upload = Upload.objects.create(timepoint=timepoint, created_by=actor)
        audit_record(
            actor=actor,
            action="upload.open",
            obj=upload,
            trial_id=timepoint.subject.trial_id,
            summary={"subject": timepoint.subject.code, "visit": timepoint.visit.code},
        )
    return upload


BATCH_SIZE = 32  # files per processing task: the per-batch database work is shared by its files


def upload_receive(*, upload: Upload, files: Iterable[bytes]) -> list[UploadItem]:
    """Put received files in quarantine and queue them for processing in batches; a file sent again is acknowledged once."""
    from ..tasks import process_upload_batch

    if upload.state != Upload.State.OPEN:
        raise InvalidState(_("This upload is closed; start a new upload to send more files."))
    received: dict[str, bytes] = {}
    for data in files:
        received.setdefault(hashlib.sha256(data).hexdigest(), data)
    known = set(UploadItem.objects.filter(upload=upload, sha256__in=received).values_list("sha256", flat=True))
    fresh = [
        UploadItem(upload=upload, sha256=sha, size=len(data)) for sha, data in received.items() if sha not in known
    ]
    for item in fresh:
        store.quarantine_put(upload.pk, item.sha256, received[item.sha256])
    # A concurrent request may have taken the same file: it is then acknowledged by that request.
    UploadItem.objects.bulk_create(fresh, ignore_conflicts=True)
    items_by_sha = {i.sha256: i for i in UploadItem.objects.filter(upload=upload, sha256__in=received)}
    new_ids = [items_by_sha[item.sha256].pk for item in fresh if item.sha256 in items_by_sha]
    items = [items_by_sha[sha] for sha in received if sha in items_by_sha]
    for start in range(0, len(new_ids), BATCH_SIZE):
        batch = new_ids[start : start + BATCH_SIZE]
        transaction.on_commit(lambda batch=batch: process_upload_batch.delay(batch))
    return items


def _reject(item: UploadItem, code: str, reason: str) -> None:
    item.state, item.code, item.reason = UploadItem.State.REJECTED, code, reason[:500]


OTHER_PATIENT = _(
    "This file belongs to a different patient than the images already received for %(subject)s; "
    "it was not stored. Upload it under the right subject."
)


@dataclass
class _BatchIndex:
    """Studies, series and instances a batch touches, looked up once for the whole batch."""

    timepoint: Timepoint
    studies: dict[str, Study]
    series: dict[str, Series]
    instances: dict[str, Instance]

    @classmethod
    def load(cls, timepoint: Timepoint, results: list[DeidResult]) -> _BatchIndex:
        return cls(
            timepoint=timepoint,
            studies=Study.objects.select_related("timepoint__visit", "subject")
            .order_by()
            .in_bulk({r.study_instance_uid for r in results}, field_name="study_instance_uid"),
            series=Series.objects.order_by().in_bulk(
                {r.series_instance_uid for r in results}, field_name="series_instance_uid"
            ),
            instances=Instance.objects.order_by().in_bulk(
                {r.sop_instance_uid for r in results}, field_name="sop_instance_uid"
            ),
        )

    def study_for(self, result: DeidResult) -> Study | str:
        subject, idx = self.timepoint.subject, result.index
        study = self.studies.get(result.study_instance_uid)
        if study is None:
            study = self.studies[result.study_instance_uid] = Study.objects.create(
                study_instance_uid=result.study_instance_uid,
                trial=subject.trial,
                subject=subject,
                timepoint=self.timepoint,
                study_date=idx.get("study_date"),
                study_time=idx.get("study_time") or "",
                description=(idx.get("study_description") or "")[:200],
                **qido_index.study_fields(idx),
            )
        if study.timepoint_id != self.timepoint.pk:
            return _("This study was already uploaded for %(visit)s of %(subject)s.") % {
                "visit": study.timepoint.visit.label,
                "subject": study.subject.code,
            }
        return study

    def series_for(self, result: DeidResult, study: Study) -> Series | str:
        idx = result.index
        series = self.series.get(result.series_instance_uid)
        if series is None:
            series = self.series[result.series_instance_uid] = Series.objects.create(
                series_instance_uid=result.series_instance_uid,
                study=study,
                modality=idx.get("modality") or "",
                series_number=idx.get("series_number"),
                description=(idx.get("series_description") or "")[:200],
                body_part=(idx.get("body_part_examined") or "")[:64],
                slice_thickness=idx.get("slice_thickness"),
                spacing_between_slices=idx.get("spacing_between_slices"),
                contrast_agent=(idx.get("contrast_bolus_agent") or "")[:200],
                manufacturer=(idx.get("manufacturer") or "")[:100],
                model_name=(idx.get("manufacturer_model_name") or "")[:100],
                frame_of_reference_uid=result.frame_of_reference_uid or "",
                **qido_index.series_fields(idx),
            )
        if series.study_id != study.pk:
            return _("This series belongs to another study already stored.")
        return series


def _new_instance(result: DeidResult, series: Series, key: str) -> Instance:
    idx = result.index
    return Instance(
        series=series,
        sop_instance_uid=result.sop_instance_uid,
        sop_class_uid=result.sop_class_uid,
        instance_number=idx.get("instance_number"),
        transfer_syntax_uid=result.transfer_syntax_uid,
        rows=idx.get("rows"),
        columns=idx.get("columns"),
        number_of_frames=idx.get("number_of_frames") or 1,
        image_position=idx.get("image_position_patient"),
        image_orientation=idx.get("image_orientation_patient"),
        pixel_spacing=idx.get("pixel_spacing"),
        slice_thickness=idx.get("slice_thickness"),
        acquisition_number=idx.get("acquisition_number"),
        storage_key=key,
        sha256=hashlib.sha256(result.data).hexdigest(),
        size=len(result.data),
        deid_method=result.deid_method[:500],
        **qido_index.instance_fields(idx),
    )


def upload_batch_process(*, item_ids: list[int]) -> None:
    """De-identify, verify, store and index a batch of quarantined files of one upload.

    Safe to run again (a redelivered task): items no longer quarantined are skipped, and the image store
    accepts the same bytes twice. De-identification runs outside the transaction; the index is written in
    one transaction holding the upload's and the subject's row locks.
    """
    items = list(
        UploadItem.objects.filter(pk__in=item_ids, state=UploadItem.State.QUARANTINED).select_related(
            "upload__timepoint__subject__trial", "upload__timepoint__visit"
        )
    )
    if not items:
        return
    upload = items[0].upload
    if any(item.upload_id != upload.pk for item in items):
        raise ValueError("a processing batch holds the files of one upload")
    timepoint, subject, trial = upload.timepoint, upload.timepoint.subject, upload.timepoint.subject.trial
    space, options = trial_space(trial), trial_deid_options(trial)
    outcomes: dict[int, DeidResult | DeidRejected | None] = {}
    for item in items:
        raw = store.quarantine_read(upload.pk, item.sha256)
        if raw is None:
            outcomes[item.pk] = None
            continue
        try:
            outcomes[item.pk] = deidentify(raw, space=space, subject_code=subject.code, options=options)
        except DeidRejected as exc:
            outcomes[item.pk] = exc

    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        locked = {
            i.pk: i
            for i in UploadItem.objects.select_for_update().filter(pk__in=outcomes, state=UploadItem.State.QUARANTINED)
        }
        subject = Subject.objects.select_for_update().get(pk=subject.pk)
        timepoint.subject = subject
        results = [o for pk, o in outcomes.items() if pk in locked and isinstance(o, DeidResult)]
        if not subject.source_patient_hash:
            # The subject's first images: the patient most of the batch belongs to is the subject, so a stray
            # file of another patient is held back whatever order the files arrive in.
            patients = Counter(r.source_patient_hash for r in results if r.source_patient_hash)
            if patients:
                subject.source_patient_hash = patients.most_common(1)[0][0]
                subject.save(update_fields=["source_patient_hash"])
        index = _BatchIndex.load(timepoint, results)
        new_instances, now = [], timezone.now()
        for pk, item in locked.items():
            outcome = outcomes[pk]
            if outcome is None:
                _reject(item, "lost", _("The file was lost before it could be processed; please send it again."))
            elif isinstance(outcome, DeidRejected):
                _reject(item, outcome.code, outcome.reason)
            elif not outcome.source_patient_hash:
                _reject(
                    item, "no_patient_id", _("This file has no Patient ID, so it cannot be matched to the subject.")
                )
            elif subject.source_patient_hash != outcome.source_patient_hash:
                _reject(item, "other_patient", OTHER_PATIENT % {"subject": subject.code})
            elif outcome.sop_instance_uid in index.instances:
                item.state, item.instance = UploadItem.State.DUPLICATE, index.instances[outcome.sop_instance_uid]
            else:
                study = index.study_for(outcome)
                series = index.series_for(outcome, study) if isinstance(study, Study) else study
                if isinstance(series, str):
                    _reject(item, "wrong_timepoint", series)
                else:
                    key = store.instance_key(
                        trial.code, study.study_instance_uid, series.series_instance_uid, outcome.sop_instance_uid
                    )
                    store.store_instance(key, outcome.data)
                    instance = _new_instance(outcome, series, key)
                    index.instances[outcome.sop_instance_uid] = instance
                    new_instances.append(instance)
                    item.state, item.instance = UploadItem.State.ACCEPTED, instance
            item.processed_at = now
        Instance.objects.bulk_create(new_instances)
        for series_id, added in Counter(i.series_id for i in new_instances).items():
            Series.objects.filter(pk=series_id).update(instance_count=F("instance_count") + added)
        _save_outcomes(list(locked.values()))
        shas = [item.sha256 for item in locked.values()]
        transaction.on_commit(lambda: [store.quarantine_delete(upload.pk, sha) for sha in shas])
        _maybe_complete(upload)


def _save_outcomes(items: list[UploadItem]) -> None:
    """Write the items' outcomes in one round trip (Django's bulk_update builds a CASE per row and field)."""
    table = UploadItem._meta.db_table
    columns = ["state", "code", "reason", "instance_id", "processed_at"]
    sql = f"UPDATE {table} SET " + ", ".join(f"{c} = %s" for c in columns) + " WHERE id = %s"  # noqa: S608
    rows = [
        (i.state, i.code, i.reason, i.instance.pk if i.instance is not None else None, i.processed_at, i.pk)
        for i in items
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def upload_counts(upload: Upload) -> dict[str, int]:
    counts = dict(upload.items.values_list("state").annotate(n=Count("pk")))
    return {state: counts.get(state, 0) for state in UploadItem.State.values} | {"total": sum(counts.values())}


def upload_finish(*, actor, upload: Upload) -> Upload:
    """The client has sent every file: close the session; it completes when the last file is processed."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state != Upload.State.OPEN:
            return upload
        upload.state = Upload.State.PROCESSING
        upload.save(update_fields=["state"])
        audit_record(
            actor=actor,
            action="upload.finish",
            obj=upload,
            trial_id=upload.timepoint.subject.trial_id,
            summary={"files": upload.items.count()},
        )
        _maybe_complete(upload)
    upload.refresh_from_db()
    return upload


def _maybe_complete(upload: Upload) -> None:
    """Called holding the upload's row lock: complete it once it is closed and nothing waits in quarantine."""
    if upload.state != Upload.State.PROCESSING or upload.items.filter(state=UploadItem.State.QUARANTINED).exists():
        return
    counts = upload_counts(upload)
    upload.state, upload.closed_at = Upload.State.COMPLETE, timezone.now()
    upload.save(update_fields=["state", "closed_at"])
    timepoint = upload.timepoint
    stored = Instance.objects.filter(series__study__timepoint=timepoint).exists()
    audit_record(
        actor=None,
        action="upload.complete",
        obj=upload,
        trial_id=timepoint.subject.trial_id,
        summary={k: v for k, v in counts.items() if v},
    )
    from ..qc_services import query_note_upload
    from ..tasks import timepoint_checks

    query_note_upload(upload=upload)
    if stored:
        transaction.on_commit(lambda: timepoint_checks.delay(timepoint.pk))
    # Nothing stored at all (every file rejected): the visit is still waiting for its images.
    timepoint_transition(
        actor=None,
        timepoint=timepoint,
        to=Timepoint.State.UPLOADED if stored else Timepoint.State.EXPECTED,
        allowed_from=[Timepoint.State.UPLOADING],
    )
