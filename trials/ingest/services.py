"""Upload sessions and the processing of each received file.

Raw bytes live only in the quarantine storage until the file is de-identified and verified (then the
de-identified copy goes to the image store) or rejected with a reason; either way the raw copy is deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from ctims.audit import audit_record
from ctims.exceptions import InvalidState

from ..deid import DeidOptions, DeidRejected, PseudonymSpace, deidentify
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


def upload_receive(*, upload: Upload, files: Iterable[bytes]) -> list[UploadItem]:
    """Put received files in quarantine and queue each for processing; a file sent again is acknowledged once."""
    from ..tasks import process_upload_item

    if upload.state != Upload.State.OPEN:
        raise InvalidState(_("This upload is closed; start a new upload to send more files."))
    items = []
    for data in files:
        sha = hashlib.sha256(data).hexdigest()
        with transaction.atomic():
            item = UploadItem.objects.filter(upload=upload, sha256=sha).first()
            if item is None:
                store.quarantine_put(upload.pk, sha, data)
                item = UploadItem.objects.create(upload=upload, sha256=sha, size=len(data))
                transaction.on_commit(lambda pk=item.pk: process_upload_item.delay(pk))
        items.append(item)
    return items


def _reject(item: UploadItem, code: str, reason: str) -> None:
    item.state, item.code, item.reason = UploadItem.State.REJECTED, code, reason[:500]


def _index(item: UploadItem, result, timepoint: Timepoint) -> Instance | str:
    """Add the de-identified instance to the index, or say why it cannot be (as a rejection reason)."""
    subject = timepoint.subject
    idx = result.index
    study, _created = Study.objects.get_or_create(
        study_instance_uid=result.study_instance_uid,
        defaults={
            "trial": subject.trial,
            "subject": subject,
            "timepoint": timepoint,
            "study_date": idx.get("study_date"),
            "study_time": idx.get("study_time") or "",
            "description": (idx.get("study_description") or "")[:200],
        },
    )
    if study.timepoint_id != timepoint.pk:
        return _("This study was already uploaded for %(visit)s of %(subject)s.") % {
            "visit": study.timepoint.visit.label,
            "subject": study.subject.code,
        }
    series, _created = Series.objects.get_or_create(
        series_instance_uid=result.series_instance_uid,
        defaults={
            "study": study,
            "modality": idx.get("modality") or "",
            "series_number": idx.get("series_number"),
            "description": (idx.get("series_description") or "")[:200],
            "body_part": (idx.get("body_part_examined") or "")[:64],
            "slice_thickness": idx.get("slice_thickness"),
            "spacing_between_slices": idx.get("spacing_between_slices"),
            "contrast_agent": (idx.get("contrast_bolus_agent") or "")[:200],
            "manufacturer": (idx.get("manufacturer") or "")[:100],
            "model_name": (idx.get("manufacturer_model_name") or "")[:100],
            "frame_of_reference_uid": result.frame_of_reference_uid or "",
        },
    )
    if series.study_id != study.pk:
        return _("This series belongs to another study already stored.")
    key = store.instance_key(
        subject.trial.code, study.study_instance_uid, series.series_instance_uid, result.sop_instance_uid
    )
    store.store_instance(key, result.data)
    return Instance.objects.create(
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
        deid_method=str(result.deid_method)[:500] if hasattr(result, "deid_method") else "",
    )


def upload_item_process(*, item_id: int) -> UploadItem:
    """De-identify, verify, store and index one quarantined file; safe to run again for the same item."""
    item = UploadItem.objects.select_related("upload__timepoint__subject__trial", "upload__timepoint__visit").get(
        pk=item_id
    )
    if item.state != UploadItem.State.QUARANTINED:
        return item
    upload = item.upload
    timepoint = upload.timepoint
    subject = timepoint.subject
    trial = subject.trial
    raw = store.quarantine_read(upload.pk, item.sha256)
    if raw is None:
        with transaction.atomic():
            _reject(item, "lost", _("The file was lost before it could be processed; please send it again."))
            _finish_item(item)
        return item
    try:
        result = deidentify(raw, space=trial_space(trial), subject_code=subject.code, options=trial_deid_options(trial))
    except DeidRejected as exc:
        result, rejection = None, exc
    with transaction.atomic():
        item = UploadItem.objects.select_for_update().get(pk=item.pk)
        if item.state != UploadItem.State.QUARANTINED:
            return item
        if result is None:
            _reject(item, rejection.code, rejection.reason)
        else:
            locked_subject = Subject.objects.select_for_update().get(pk=subject.pk)
            if not locked_subject.source_patient_hash:
                locked_subject.source_patient_hash = result.source_patient_hash
                locked_subject.save(update_fields=["source_patient_hash"])
            existing = Instance.objects.filter(sop_instance_uid=result.sop_instance_uid).first()
            if locked_subject.source_patient_hash != result.source_patient_hash:
                _reject(
                    item,
                    "other_patient",
                    _(
                        "This file belongs to a different patient than the images already received for %(subject)s; "
                        "it was not stored. Upload it under the right subject."
                    )
                    % {"subject": subject.code},
                )
            elif existing is not None:
                item.state, item.instance = UploadItem.State.DUPLICATE, existing
            else:
                indexed = _index(item, result, timepoint)
                if isinstance(indexed, str):
                    _reject(item, "wrong_timepoint", indexed)
                else:
                    item.state, item.instance = UploadItem.State.ACCEPTED, indexed
        _finish_item(item)
    return item


def _finish_item(item: UploadItem) -> None:
    item.processed_at = timezone.now()
    item.save(update_fields=["state", "code", "reason", "instance", "processed_at"])
    upload_id, sha = item.upload_id, item.sha256
    transaction.on_commit(lambda: store.quarantine_delete(upload_id, sha))
    _maybe_complete(Upload.objects.select_for_update().get(pk=item.upload_id))


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
    # Nothing stored at all (every file rejected): the visit is still waiting for its images.
    timepoint_transition(
        actor=None,
        timepoint=timepoint,
        to=Timepoint.State.UPLOADED if stored else Timepoint.State.EXPECTED,
        allowed_from=[Timepoint.State.UPLOADING],
    )
