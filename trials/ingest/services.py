"""Upload sessions and the processing of each received file.

Raw bytes live only in the quarantine storage until the file is de-identified and verified (then the
de-identified copy goes to the image store) or rejected with a reason; either way the raw copy is deleted.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as KombuOperationalError

from ctims.audit import audit_record
from ctims.exceptions import InvalidState
from ctims.i18n import Text, gettext_noop, text_json
from ctims.metrics import DEID_SECONDS

from ..deid import DeidOptions, DeidRejected, DeidResult
from ..dicomweb import index as qido_index
from ..dicomweb.wado import metadata_from_bytes
from ..models import BrowserDeidRecord, Instance, Query, Series, Study, Subject, Timepoint, Trial, Upload, UploadItem
from ..services import timepoint_transition, trial_check_open
from . import store
from .decodable import check_decodable
from .reverify import Reverified, file_processor
from .subject_keys import subject_space
from .validate import check_receivable

HEX64 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 as a file's name in quarantine and in the browser's records
# A file still waiting for its outcome (processing, or its copy sent again), and one whose outcome is final.
WAITING_STATES = (UploadItem.State.QUARANTINED, UploadItem.State.RESEND)
SETTLED_STATES = (UploadItem.State.ACCEPTED, UploadItem.State.DUPLICATE, UploadItem.State.REJECTED)

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
        kept_text_attributes=frozenset(trial.deid_kept_text_attributes),
        burned_in_text=trial.deid_burned_in_text,
    )


def upload_open(*, actor, timepoint: Timepoint) -> Upload:
    """Start an upload session for a timepoint, or resume the person's open one (after a reload or a dropped network).

    The timepoint shows 'uploading' until the session completes (or, finished with no file, is discarded: it
    then goes back to the state kept here as `visit_state_before`). A closed trial opens none (nor resumes one).
    """
    trial_check_open(timepoint.subject.trial)
    mine = Upload.objects.filter(timepoint=timepoint, created_by=actor, state=Upload.State.OPEN)
    with transaction.atomic():
        # FOR UPDATE: a finish of that session in another tab (a discard, if it has no file) is done before this
        # reads it, and a new session opens, or waits for this transaction (a caller that changes the session
        # in it, upload_open_with_path, has it open).
        resumable = mine.select_for_update(of=("self",)).first()
        if resumable is not None:
            return resumable
        before = Timepoint.objects.select_for_update().values_list("state", flat=True).get(pk=timepoint.pk)
        resumable = mine.first()  # opened by another tab while this one waited for the visit's row
        if resumable is not None:
            return resumable
        timepoint = timepoint_transition(
            actor=actor, timepoint=timepoint, to=Timepoint.State.UPLOADING, allowed_from=UPLOADABLE_STATES
        )
        kept = before if before != Timepoint.State.UPLOADING else ""  # another upload of the visit is open
        upload = Upload.objects.create(timepoint=timepoint, created_by=actor, visit_state_before=kept)
        audit_record(
            actor=actor,
            action="upload.open",
            obj=upload,
            trial_id=timepoint.subject.trial_id,
            summary={"subject": timepoint.subject.code, "visit": timepoint.visit.code, "visit_state": before},
        )
    return upload


BATCH_SIZE = 32  # files per processing task at most: the per-batch database work is shared by its files


def processing_batches(item_ids: list[int]) -> list[list[int]]:
    """The files in the fewest batches of at most BATCH_SIZE, their sizes differing by one at most: workers
    that share an upload's batches then finish together (300 files are 10 batches of 30, not 9 of 32 and
    one of 12)."""
    if not item_ids:
        return []
    count = -(-len(item_ids) // BATCH_SIZE)
    size, larger = divmod(len(item_ids), count)
    batches, start = [], 0
    for n in range(count):
        end = start + size + (1 if n < larger else 0)
        batches.append(item_ids[start:end])
        start = end
    return batches


# Fault-injection points (tests only): "after_commit_before_enqueue" (called after the commit that acknowledges
# files, before their task is queued: where a killed web process stops), "batch_start" (a processing task
# begins: where a refused database shows first), "acknowledging" (called with the upload's id in the transaction
# that acknowledges received files, their rows written, just before its commit: where a request racing a finish
# of the same session, in another tab, stands).
FAULT_HOOKS: dict[str, Callable[..., None]] = {}

logger = logging.getLogger(__name__)


def _fault(point: str, *args) -> None:
    hook = FAULT_HOOKS.get(point)
    if hook is not None:
        hook(*args)


def upload_receive(
    *, upload: Upload, files: Iterable[bytes], records: dict[str, BrowserDeidRecord] | None = None
) -> list[UploadItem]:
    """Put received files in quarantine and make them due for processing; a file sent again is acknowledged once.

    The quarantine copy is durable before its row commits, and the commit is what makes the file due (the
    transactional outbox): its task is queued after the commit, and a file whose task never arrives (the web
    process died, the broker was down) is queued again by `upload_items_requeue`. A file sent again that is
    still waiting is queued again at once; one whose copy failed its check (state "resend") gets the new copy.

    Files the site's browser de-identified hold nothing raw: they skip quarantine and are settled in this
    request (`_receive_deidentified`). `records`: the browser's records of them that came with them (checked,
    not yet saved), by SHA-256; each is saved in the transaction that settles its file.
    """
    if upload.state != Upload.State.OPEN:
        raise InvalidState(_("This upload is closed; start a new upload to send more files."))
    from .browser import check_path_allowed  # browser.py builds on this module

    trial_check_open(upload.timepoint.subject.trial)  # an upload opened before the trial closed takes no more
    # Opened before the trial admin changed where images are de-identified: a session sending files as they
    # are takes none once the trial is browser-only (no raw byte is received), a browser one none once it is not.
    check_path_allowed(upload)
    received: dict[str, bytes] = {}
    files = list(files)
    for sha, data in zip(store.io_pool("receive").map(store.sha256_hex, files), files, strict=True):
        received.setdefault(sha, data)  # hashed side by side on the I/O threads
    known = dict(UploadItem.objects.filter(upload=upload, sha256__in=received).values_list("sha256", "state"))
    if upload.deid_path == Upload.DeidPath.BROWSER:
        due = {sha: data for sha, data in received.items() if known.get(sha) in (None, *WAITING_STATES)}
        _receive_deidentified(upload, due, resent={sha for sha in due if sha in known}, records=records or {})
        items_by_sha = {i.sha256: i for i in UploadItem.objects.filter(upload=upload, sha256__in=received)}
        return [items_by_sha[sha] for sha in received if sha in items_by_sha]
    with store.StagedWrites(store.quarantine_storage(), stage="receive") as staging:
        for sha, data in received.items():
            if sha not in known:  # all written first, then made durable together
                staging.stage(store.quarantine_key(upload.pk, sha), data, sha256=sha)
        staging.settle()
        with store.durable_batch():  # every copy durable (and mended if damaged) before the commit acknowledges it
            for sha, data in received.items():
                if sha not in known or known[sha] in WAITING_STATES:
                    staged = staging.take(store.quarantine_key(upload.pk, sha))
                    store.quarantine_put(upload.pk, sha, data, resent=sha in known, staged=staged)
    now = timezone.now()
    try:
        with transaction.atomic():
            _hold_open(upload)
            fresh = [
                UploadItem(upload=upload, sha256=sha, size=len(data), queued_at=now)
                for sha, data in received.items()
                if sha not in known
            ]
            # A concurrent request may have taken the same file: it is then acknowledged by that request.
            UploadItem.objects.bulk_create(fresh, ignore_conflicts=True)
            resent = UploadItem.objects.filter(upload=upload, sha256__in=received, state__in=WAITING_STATES)
            resent.update(state=UploadItem.State.QUARANTINED, code="", reason="", reason_text={}, queued_at=now)
            items_by_sha = {i.sha256: i for i in UploadItem.objects.filter(upload=upload, sha256__in=received)}
            due = [i.pk for i in items_by_sha.values() if i.state == UploadItem.State.QUARANTINED]
            _enqueue_on_commit(due)
            _fault("acknowledging", upload.pk)
    except InvalidState:
        # Closed while the copies were written (another tab finished the session): nothing was acknowledged. The
        # copies no row names go; one a row names (a request that committed first took the file) stays.
        named = set(UploadItem.objects.filter(upload=upload, sha256__in=received).values_list("sha256", flat=True))
        for sha in received:
            if sha not in named:
                store.quarantine_delete(upload.pk, sha)
        raise
    for sha, item in items_by_sha.items():
        if item.state not in WAITING_STATES and known.get(sha) in WAITING_STATES:
            # Processed while this copy was being written: the copy is not needed (and would be a leftover).
            store.quarantine_delete(upload.pk, sha)
    return [items_by_sha[sha] for sha in received if sha in items_by_sha]


def _hold_open(upload: Upload) -> None:
    """Called first in a transaction that acknowledges received files: holds the session's row until the commit,
    and refuses a session that is no longer open.

    Every move of a session out of "open" (its finish, its discard, the idle close) takes the row FOR UPDATE,
    which waits for this lock, and this lock for it: a session is either still open when the files commit (a
    finish waiting behind them then counts them) or closed before this reads it, and the request then
    acknowledges nothing (the upload page sends the files again, into a new session). FOR KEY SHARE rather
    than FOR SHARE: requests sending into one session do not wait for each other, nor for a processing batch,
    which takes the row FOR NO KEY UPDATE after its files' rows (a request holding a stronger lock here while
    it waits for one of those rows would deadlock with it).
    """
    if connection.features.has_select_for_update:  # Django's select_for_update has no KEY SHARE
        with connection.cursor() as cursor:
            sql = f"SELECT state FROM {Upload._meta.db_table} WHERE id = %s FOR KEY SHARE"  # noqa: S608
            cursor.execute(sql, [upload.pk])
            (state,) = cursor.fetchone()
    else:  # SQLite (the embedded default): a writing transaction holds the whole database
        state = Upload.objects.values_list("state", flat=True).get(pk=upload.pk)
    upload.state = state
    if state != Upload.State.OPEN:
        raise InvalidState(_("This upload is closed; start a new upload to send more files."))


def _receive_deidentified(
    upload: Upload, due: dict[str, bytes], *, resent: set[str], records: dict[str, BrowserDeidRecord]
) -> None:
    """Settle files the site's browser de-identified in the request that brings them: each is re-verified, then
    stored and indexed, or rejected, in the one transaction that also creates its row.

    Such a file holds nothing raw, so it needs no quarantine copy, and the row that acknowledges it commits
    only with its stored file durable and indexed (a request that dies first acknowledged nothing: the site
    sends the file again, and the image store takes the same bytes twice). `due` maps each file's SHA-256 to
    its bytes: new files, and files sent again whose row still waits (`resent`: their raw copy, sent before
    this path existed, is deleted once they are settled).
    A batch whose index write the database refuses for its content is done again one file at a time, so that
    the file at fault is rejected alone.
    """
    if not due:
        return
    try:
        _settle_at_receipt(upload, due, resent=resent, records=records)
    except (DataError, IntegrityError):
        if len(due) > 1:
            for sha, data in due.items():
                _receive_deidentified(upload, {sha: data}, resent=resent, records=records)
            return
        [(sha, data)] = due.items()
        with transaction.atomic():
            _hold_open(upload)
            item, _created = UploadItem.objects.get_or_create(upload=upload, sha256=sha, defaults={"size": len(data)})
            UploadItem.objects.filter(pk=item.pk, state=UploadItem.State.RESEND).update(
                state=UploadItem.State.QUARANTINED
            )
        _reject_unindexable(item.pk)  # rejects it if it still waits


def _settle_at_receipt(
    upload: Upload, due: dict[str, bytes], *, resent: set[str], records: dict[str, BrowserDeidRecord]
) -> None:
    """One transaction per request writes what its files need in the index: their records, rows, instances with
    their DICOM JSON (made here from the bytes in hand, before the transaction, instead of read back from the
    store by QC when the upload is finished), all at once (each write transaction of a request waits for the
    database's write lock and its flush to disk, and a request's three of them were a third of its time)."""
    timepoint, subject, trial = upload.timepoint, upload.timepoint.subject, upload.timepoint.subject.trial
    process = _processor(upload, list(due), records=records)
    with store.StagedWrites(store.image_storage(), stage="receive") as staging:
        outcomes = {
            sha: _outcome_staged(data, sha, process=process, trial=trial, staging=staging) for sha, data in due.items()
        }
        staging.settle()
        metadata = {}
        for sha, outcome in outcomes.items():
            if isinstance(outcome, Reverified) and outcome.metadata is not None:  # made by its read (reverify.py)
                metadata[sha] = (outcome.metadata, outcome.pixel_layout)
            elif isinstance(outcome, DeidResult):
                made = Instance(transfer_syntax_uid=outcome.transfer_syntax_uid)
                if metadata_from_bytes(made, outcome.data):
                    metadata[sha] = (made.metadata, made.pixel_layout)

        def with_metadata(instances: list[Instance]) -> None:
            for instance in instances:
                instance.metadata, instance.pixel_layout = metadata.get(instance.sha256, (None, None))

        now = timezone.now()
        with store.stored_files_undone_on_error(), transaction.atomic():
            _hold_open(upload)
            declared = [records[sha] for sha in due if sha in records]
            BrowserDeidRecord.objects.bulk_create(declared, ignore_conflicts=True)  # one sent before stands
            rows = [UploadItem(upload=upload, sha256=sha, size=len(data), queued_at=now) for sha, data in due.items()]
            UploadItem.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent request's rows stand
            ids = dict(
                UploadItem.objects.filter(upload=upload, sha256__in=due, state__in=WAITING_STATES).values_list(
                    "sha256", "pk"
                )
            )
            if not ids:
                return  # a concurrent request settled them all: this one acknowledges them as they are
            UploadItem.objects.filter(pk__in=ids.values(), state=UploadItem.State.RESEND).update(
                state=UploadItem.State.QUARANTINED, code="", reason="", reason_text={}
            )
            by_pk: dict[int, DeidResult | DeidRejected | None] = {ids[sha]: outcomes[sha] for sha in ids}
            _index_in_transaction(
                by_pk,
                upload=upload,
                timepoint=timepoint,
                subject=subject,
                staging=staging,
                copies=resent,
                before_insert=with_metadata,
            )
            _fault("acknowledging", upload.pk)


def _enqueue_on_commit(item_ids: list[int]) -> None:
    """After the commit that makes these files due, queue their processing in batches.

    A broker that cannot be reached loses nothing: the files stay due and the sweeper queues them.
    """
    from ..tasks import process_upload_batch

    def enqueue() -> None:
        _fault("after_commit_before_enqueue", item_ids)
        for batch in processing_batches(item_ids):
            try:
                process_upload_batch.delay(batch)
            except (KombuOperationalError, OSError) as exc:
                logger.warning("processing not queued (%s); the sweeper will queue it", type(exc).__name__)
                return

    if item_ids:
        transaction.on_commit(enqueue)


def upload_items_requeue(*, grace: timedelta | None = None) -> int:
    """Queue again every waiting file whose task was queued (or claimed) longer than `grace` ago; returns how many.

    `grace` defaults to settings.INGEST_REQUEUE_AFTER_SECONDS.
    The outbox's sweeper (Celery beat, and each worker at start): whatever lost a file's task (a web process
    killed before queueing, a broker restarted empty, a task that gave up on the database) is made good here.
    A file being processed is locked by its task and skipped; a second task for a file is harmless (it finds
    the file done).
    """
    if grace is None:
        grace = timedelta(seconds=settings.INGEST_REQUEUE_AFTER_SECONDS)
    cutoff = timezone.now() - grace
    with transaction.atomic():
        stale = list(
            UploadItem.objects.select_for_update(skip_locked=True)
            .filter(state=UploadItem.State.QUARANTINED)
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lte=cutoff))
            .order_by("upload_id", "pk")
            .values_list("upload_id", "pk")
        )
        UploadItem.objects.filter(pk__in=[pk for _upload, pk in stale]).update(queued_at=timezone.now())
        by_upload: dict[int, list[int]] = {}
        for upload_id, pk in stale:
            by_upload.setdefault(upload_id, []).append(pk)
        for ids in by_upload.values():
            _enqueue_on_commit(ids)
    return len(stale)


def quarantine_leftovers_sweep(*, older_than: float = 3600.0) -> int:
    """Delete the raw copies in quarantine that nothing waits for; returns how many were removed.

    A copy goes when its file is settled (accepted, a duplicate or rejected: a process died between the commit
    that settled it and the deletion after it, and no task comes for it again), or when no file row names it and
    it is older than `older_than` seconds (a request died between the copy and the commit that acknowledges it:
    the site sends the file again). A waiting file's copy, or one to be sent again, stays.
    """
    storage, removed, cutoff = store.quarantine_storage(), 0, timezone.now() - timedelta(seconds=older_than)
    try:
        folders, _files = storage.listdir("")
    except FileNotFoundError:  # never written to: every upload of this host came de-identified from a browser
        return 0
    for folder in folders:
        if not folder.isdigit():
            continue
        _inner, names = storage.listdir(f"{folder}/")
        shas = [name for name in names if HEX64.fullmatch(name)]
        states = dict(UploadItem.objects.filter(upload_id=int(folder), sha256__in=shas).values_list("sha256", "state"))
        for sha in shas:
            state, key = states.get(sha), store.quarantine_key(int(folder), sha)
            try:
                if state in SETTLED_STATES or (state is None and storage.get_modified_time(key) < cutoff):
                    storage.delete(key)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _reject(item: UploadItem, code: str, reason: str) -> None:
    """The reason is stored in English, with its template and parameters when it is a Text: pages say it in their
    reader's language (UploadItem.reason_display)."""
    item.state, item.code, item.reason = UploadItem.State.REJECTED, code, reason[:500]
    item.reason_text = text_json(reason)


OTHER_PATIENT = gettext_noop(
    "This file belongs to a different patient than the images already received for %(subject)s; "
    "it was not stored. Upload it under the right subject."
)


INSTANCE_CONFLICT = gettext_noop(
    "A different image with the same UIDs is already stored for this visit; the stored image was not replaced. "
    "If the image was corrected, export it with new UIDs, or ask the trial's imaging team."
)


def _already_uploaded(study: Study) -> Text:
    return Text(
        gettext_noop("This study was already uploaded for %(visit)s of %(subject)s."),
        visit=study.timepoint.visit.label,
        subject=study.subject.code,
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

    def incomplete(self, results: list[DeidResult]) -> bool:
        """Whether any of these results belongs to a study or series the index does not hold yet."""
        return any(
            r.study_instance_uid not in self.studies or r.series_instance_uid not in self.series for r in results
        )

    def conflict(self, stored: Instance, result: DeidResult, source_sha256: str) -> tuple[str, Text] | None:
        """Why `result`, under the UIDs of an instance already stored, is not that instance sent again: its study
        is another visit's, or it is another file (a re-export that kept the UIDs). None for the same file: the
        same de-identified bytes, or the very file received before (`source_sha256`, the received file's hash),
        whose output an upgraded engine may write differently."""
        study = self.studies.get(result.study_instance_uid)
        if study is not None and study.timepoint_id != self.timepoint.pk:
            return "wrong_timepoint", _already_uploaded(study)
        if stored.sha256 != hashlib.sha256(result.data).hexdigest() and (
            stored.pk is None  # stored by this batch, from another file of it
            or not UploadItem.objects.filter(instance=stored, sha256=source_sha256).exists()
        ):
            return "instance_conflict", Text(INSTANCE_CONFLICT)
        return None

    def study_for(self, result: DeidResult) -> Study | Text:
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
            return _already_uploaded(study)
        return study

    def series_for(self, result: DeidResult, study: Study) -> Series | Text:
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
            return Text(gettext_noop("This series belongs to another study already stored."))
        return series


def deid_record(result: DeidResult) -> dict | None:
    """What the index keeps of one instance's cleaning: attributes and reasons, and a pixel rewrite; never a value."""
    if not result.cleaned and not result.pixels:
        return None
    return {"cleaned": [list(pair) for pair in result.cleaned], "pixels": result.pixels}


def _new_instance(result: DeidResult, series: Series, key: str, *, sha256: str | None = None) -> Instance:
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
        sha256=sha256 or hashlib.sha256(result.data).hexdigest(),
        size=len(result.data),
        deid_method=result.deid_method[:500],
        deid_record=deid_record(result),
        **qido_index.instance_fields(idx),
    )


RESEND_REASON = Text(
    gettext_noop("The copy of this file received here was damaged or lost; please send the file again.")
)
DAMAGED_REASON = Text(
    gettext_noop(
        "The copy of this file received here was damaged or lost and the upload is closed; send the file again "
        "in a new upload."
    )
)
_WORD = re.compile(r"[^\s'\"(),:;=<>\[\]{}]+")


def unreadable_reason(exc: BaseException, raw: bytes) -> str:
    """'unreadable: <the parser's message>', with every word that occurs in the file itself left out.

    A parser's message can quote a value it choked on (a name, an ID); any such value is in the file's bytes,
    so no word of the message that appears there can reach the coordinator, a log or the database.
    """

    def scrub(match: re.Match) -> str:
        word = match.group(0)
        return "…" if len(word) > 1 and word.encode("utf-8", "replace") in raw else word

    message = _WORD.sub(scrub, str(exc))[:300]
    return f"unreadable: {type(exc).__name__}" + (f": {message}" if message else "")


def checked(raw: bytes, process: Callable[[bytes], DeidResult]) -> DeidResult:
    """`process(raw)` (de-identification, or re-verification of a browser's output) between the checks ingest
    makes of every file: parsing within bounds and what serving needs before it, compressed pixels that decode
    after it. Raises DeidRejected (or what `process` raises)."""
    check_receivable(raw)  # bounded parsing and what serving needs, before de-identification
    with DEID_SECONDS.time():
        result = process(raw)
    check_decodable(result.data, result.transfer_syntax_uid)  # compressed pixels a reader could not see
    return result


def _deidentify_one(raw: bytes, sha256: str, *, process: Callable[[bytes, str], DeidResult]):
    """One file's outcome: its de-identified result, or its rejection. Never raises: one bad file is its own rejection.

    `process` de-identifies a raw file on the server or re-verifies one the site's browser de-identified
    (reverify.file_processor).
    """
    try:
        return checked(raw, lambda data: process(data, sha256))
    except DeidRejected as exc:
        return exc
    except Exception as exc:  # a parser or engine failure on this file's content (RecursionError included)
        return DeidRejected("unreadable", unreadable_reason(exc, raw))


CLAIM_REFRESH_SECONDS = 30


def _claim(item_ids: list[int]) -> None:
    """Mark waiting files as held by a live task, so the sweeper leaves them alone for its grace period."""
    UploadItem.objects.filter(pk__in=item_ids, state=UploadItem.State.QUARANTINED).update(queued_at=timezone.now())


def _claim_waiting(item_ids: list[int]) -> list[UploadItem]:
    """Claim the waiting files among `item_ids` (`_claim`) and return them, by id, in one statement: only what is
    read here (their upload and SHA-256; the batch's one upload is read once after), where a claim and then a read
    of the rows, each joined to the upload's table by the model's ordering, were two round trips."""
    table = UploadItem._meta.db_table
    marks = ", ".join(["%s"] * len(item_ids))
    sql = f"UPDATE {table} SET queued_at = %s WHERE state = %s AND id IN ({marks}) RETURNING id, upload_id, sha256"  # noqa: S608
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, UploadItem.State.QUARANTINED, *item_ids])
        rows = sorted(cursor.fetchall())
    return [
        UploadItem(id=pk, upload_id=upload_id, sha256=sha256, state=UploadItem.State.QUARANTINED)
        for pk, upload_id, sha256 in rows
    ]


def upload_batch_process(*, item_ids: list[int]) -> None:
    """De-identify, verify, store and index a batch of quarantined files of one upload.

    A batch whose index write the database refuses for its content (a value out of range, a conflict with a
    row another upload just wrote) is done again one file at a time, so that the file at fault is rejected alone
    and its batch goes on (`_batch_process` holds the details).
    """
    _long_lived_frozen()
    try:
        _batch_process(item_ids)
    except (DataError, IntegrityError):
        if len(item_ids) == 1:
            _reject_unindexable(item_ids[0])
        else:
            for item_id in item_ids:
                upload_batch_process(item_ids=[item_id])


def _long_lived_frozen() -> None:
    """Before a process's first batch: what it holds then (Django, pydicom's dictionaries, the engine's tables, some
    190,000 objects in a worker) lives as long as the process, and is left out of every later garbage collection
    (gc.freeze). Parsing a batch makes enough objects to set off a full collection every few hundred files, and
    each walked all of those again: about 200 ms, a quarter of a millisecond of CPU per CT slice. The objects each
    batch makes are collected as before; a forked child keeps its parent's frozen objects frozen."""
    if not gc.get_freeze_count():
        gc.freeze()


def _reject_unindexable(item_id: int) -> None:
    with transaction.atomic():
        item = UploadItem.objects.select_related("upload").filter(pk=item_id).first()
        if item is None:
            return
        upload = Upload.objects.select_for_update().get(pk=item.upload_id)
        waiting = UploadItem.objects.select_for_update().filter(pk=item_id, state=UploadItem.State.QUARANTINED)
        item = waiting.order_by("pk").first()  # the model's ordering would join (and lock) the upload's row again
        if item is None:
            return
        _reject(item, "unreadable", Text(gettext_noop("unreadable: the file's attributes could not be indexed.")))
        item.processed_at = timezone.now()
        item.save(update_fields=["state", "code", "reason", "reason_text", "processed_at"])
        transaction.on_commit(lambda: store.quarantine_delete(upload.pk, item.sha256))
        _maybe_complete(upload)


def _batch_process(item_ids: list[int]) -> None:
    """De-identify, verify, store and index a batch of quarantined files of one upload.

    Safe to run again (a redelivered task): items no longer quarantined are skipped, and the image store
    accepts the same bytes twice. Each quarantine copy is checked against its item's SHA-256 first; a damaged
    or missing one is discarded and the client asked for the file again. Any failure of one file is that
    file's rejection; the rest of the batch goes on. De-identification and the files' writes to disk run
    outside the transaction; the index is written in one transaction (`_index_batch` says which row locks it
    holds when), and the files it stored are deleted again if that transaction rolls back.
    """
    _fault("batch_start", item_ids)
    items = _claim_waiting(item_ids)
    if len(items) < len(item_ids):
        claimed = {item.pk for item in items}
        others = UploadItem.objects.filter(pk__in=[pk for pk in item_ids if pk not in claimed])
        for row in others.filter(state__in=SETTLED_STATES).order_by("pk").only("id", "upload_id", "sha256"):
            # Settled by an earlier run of this task that died between its commit and the deletion after it (a
            # task is acknowledged only when it ends, so it comes again): the raw copy goes now.
            store.quarantine_delete(row.upload_id, row.sha256)
    if not items:
        return
    if any(item.upload_id != items[0].upload_id for item in items):
        raise ValueError("a processing batch holds the files of one upload")
    upload = Upload.objects.select_related("timepoint__subject__trial", "timepoint__visit").get(pk=items[0].upload_id)
    timepoint, subject, trial = upload.timepoint, upload.timepoint.subject, upload.timepoint.subject.trial
    process = _processor(upload, [i.sha256 for i in items])
    with store.StagedWrites(store.image_storage(), stage="processing") as staging:
        outcomes = _deidentify_batch(items, upload=upload, trial=trial, process=process, staging=staging)
        staging.settle()  # on disk before the index transaction takes the row locks other batches wait for
        _index_batch(item_ids, outcomes, upload=upload, timepoint=timepoint, subject=subject, staging=staging)


def _deidentify_batch(
    items: list[UploadItem], *, upload: Upload, trial: Trial, process, staging: store.StagedWrites
) -> dict[int, DeidResult | DeidRejected | None]:
    """Each file's outcome (None: its quarantine copy is damaged or lost); each result is staged for the store
    as soon as it exists, so its write to disk overlaps the next file's de-identification."""
    item_ids = [item.pk for item in items]
    outcomes: dict[int, DeidResult | DeidRejected | None] = {}
    claimed = time.monotonic()
    copies = store.ReadAhead(upload.pk, [item.sha256 for item in items])
    for item in items:
        if time.monotonic() - claimed > CLAIM_REFRESH_SECONDS:  # a long batch keeps its claim fresh
            _claim(item_ids)
            claimed = time.monotonic()
        raw = copies.next()
        if raw is None:
            outcomes[item.pk] = None
            continue
        outcomes[item.pk] = _outcome_staged(raw, item.sha256, process=process, trial=trial, staging=staging)
    return outcomes


def _processor(
    upload: Upload, shas: list[str], records: dict[str, BrowserDeidRecord] | None = None
) -> Callable[[bytes, str], DeidResult]:
    """De-identify on the server, or re-verify what the site's browser de-identified (reverify.py)."""
    subject, trial = upload.timepoint.subject, upload.timepoint.subject.trial
    return file_processor(
        upload=upload,
        shas=shas,
        records=records,
        space=subject_space(trial, subject.code),
        subject_code=subject.code,
        options=trial_deid_options(trial),
    )


def _outcome_staged(
    raw: bytes, sha256: str, *, process, trial: Trial, staging: store.StagedWrites
) -> DeidResult | DeidRejected:
    """One file's outcome; a result is staged for the store at once, so that its write to disk overlaps the next
    file's work. A file re-verified as it came (the browser path) is stored as it is: its SHA-256 is known."""
    outcome = _deidentify_one(raw, sha256, process=process)
    if isinstance(outcome, DeidResult) and outcome.study_instance_uid and outcome.series_instance_uid:
        known = sha256 if outcome.data is raw else None
        staging.stage(_result_key(trial, outcome), outcome.data, sha256=known)
    return outcome


def _result_key(trial: Trial, result: DeidResult) -> str:
    return store.instance_key(
        trial.code, result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid
    )


def _index_batch(
    item_ids: list[int],
    outcomes: dict[int, DeidResult | DeidRejected | None],
    *,
    upload: Upload,
    timepoint: Timepoint,
    subject: Subject,
    staging: store.StagedWrites,
) -> None:
    """Store and index the batch's outcomes in one transaction; the files it stored are deleted again if that
    transaction rolls back.

    Batches of one upload run side by side on several workers, so the row locks they share are held as briefly
    as the rules allow: each batch locks its own items; the subject's row only while the subject has no patient
    yet or the batch brings a study or series the index does not hold (their creation, and the check that a
    study belongs to one visit, are then serialized); the upload's row only at the end, to settle the files
    whose copy is damaged and to complete the upload, just before the commit.
    """
    with store.stored_files_undone_on_error(), transaction.atomic():
        _index_in_transaction(outcomes, upload=upload, timepoint=timepoint, subject=subject, staging=staging)


def _index_in_transaction(
    outcomes: dict[int, DeidResult | DeidRejected | None],
    *,
    upload: Upload,
    timepoint: Timepoint,
    subject: Subject,
    staging: store.StagedWrites,
    copies: set[str] | None = None,
    before_insert: Callable[[list[Instance]], None] | None = None,
) -> list[Instance]:
    """The body of `_index_batch`, in a transaction its caller holds (and whose rollback deletes what it stored);
    returns the instances it stored. `before_insert` may complete the new instances before their rows are written.

    The raw copies of the files settled here are deleted after the commit: all of them, or only `copies` (the
    files that have one) when the caller knows which.
    """
    # Ordered by id alone: the model's ordering (by upload) joins the upload's table, and FOR UPDATE over a join
    # locks the upload's row as well, which would make the batches of one upload take turns from here on.
    locked = {
        i.pk: i
        for i in UploadItem.objects.select_for_update()
        .filter(pk__in=outcomes, state=UploadItem.State.QUARANTINED)
        .order_by("pk")
    }
    results = [o for pk, o in outcomes.items() if pk in locked and isinstance(o, DeidResult)]
    if not subject.source_patient_hash:  # set once (below), never changed: a subject read with it is up to date
        subject = Subject.objects.select_related("trial").get(pk=subject.pk)
        timepoint.subject = subject
    index = _BatchIndex.load(timepoint, results)
    if not subject.source_patient_hash or index.incomplete(results):
        subject = Subject.objects.select_related("trial").select_for_update(of=("self",)).get(pk=subject.pk)
        timepoint.subject = subject
        index = _BatchIndex.load(timepoint, results)  # what a batch that held the lock before us created
    if not subject.source_patient_hash:
        # The subject's first images: the patient most of the batch belongs to is the subject, so a stray
        # file of another patient is held back whatever order the files arrive in.
        patients = Counter(r.source_patient_hash for r in results if r.source_patient_hash)
        if patients:
            subject.source_patient_hash = patients.most_common(1)[0][0]
            subject.save(update_fields=["source_patient_hash"])
    new_instances, now = [], timezone.now()
    # The stored files are durable, names included, before the index that points to them commits, and before the
    # upload's row is locked: their directories are flushed while the instance rows are written.
    with store.durable_batch() as names:
        for pk, item in locked.items():
            try:
                _index_one(item, outcomes[pk], upload=upload, index=index, new_instances=new_instances, staging=staging)
            except DatabaseError:
                raise  # the transaction is broken: the whole batch is retried
            except store.DifferentFileStored:
                _reject(
                    item,
                    "conflict",
                    Text(
                        gettext_noop(
                            "Another file is already stored under this image's identifiers; this one was not stored."
                        )
                    ),
                )
            except Exception as exc:  # the index sees de-identified values only; scrubbed all the same
                outcome = outcomes[pk]
                _reject(item, "unreadable", unreadable_reason(exc, getattr(outcome, "data", b"")))
            item.processed_at = now if item.state != UploadItem.State.RESEND else None
        names.flush_now()
        if before_insert is not None:
            before_insert(new_instances)
        Instance.objects.bulk_create(new_instances)
        for series_id, added in Counter(i.series_id for i in new_instances).items():
            Series.objects.filter(pk=series_id).update(instance_count=F("instance_count") + added)
    # FOR NO KEY UPDATE: a request acknowledging files of this upload holds the row FOR KEY SHARE (_hold_open)
    # and may be waiting for this batch's items; a finish or discard, FOR UPDATE, waits for both.
    upload = Upload.objects.select_for_update(no_key=True).get(pk=upload.pk)
    for item in locked.values():
        if item.state == UploadItem.State.RESEND and upload.state != Upload.State.OPEN:
            # The upload closed while this batch ran: nobody will send the file again.
            _reject(item, "lost", DAMAGED_REASON)
            item.processed_at = now
    _save_outcomes(list(locked.values()))
    done = [
        item.sha256
        for item in locked.values()
        if item.state != UploadItem.State.RESEND and (copies is None or item.sha256 in copies)
    ]
    transaction.on_commit(lambda: [store.quarantine_delete(upload.pk, sha) for sha in done])
    _maybe_complete(upload)
    return new_instances


def _index_one(
    item: UploadItem,
    outcome: DeidResult | DeidRejected | None,
    *,
    upload: Upload,
    index: _BatchIndex,
    new_instances: list[Instance],
    staging: store.StagedWrites,
) -> None:
    """Decide one locked item's outcome; a new instance is stored and added to `new_instances`."""
    subject, trial = index.timepoint.subject, index.timepoint.subject.trial
    if outcome is None:
        if upload.state == Upload.State.OPEN:
            item.state, item.code, item.reason = UploadItem.State.RESEND, "resend", RESEND_REASON
            item.reason_text = text_json(RESEND_REASON)
        else:
            _reject(item, "lost", DAMAGED_REASON)  # "lost": the upload page offers it again
    elif isinstance(outcome, DeidRejected):
        _reject(item, outcome.code, Text(outcome.template, **outcome.params))
    elif not outcome.source_patient_hash:
        reason = Text(gettext_noop("This file has no Patient ID, so it cannot be matched to the subject."))
        _reject(item, "no_patient_id", reason)
    elif subject.source_patient_hash != outcome.source_patient_hash:
        _reject(item, "other_patient", Text(OTHER_PATIENT, subject=subject.code))
    elif outcome.sop_instance_uid in index.instances:
        stored = index.instances[outcome.sop_instance_uid]
        conflict = index.conflict(stored, outcome, item.sha256)
        if conflict is not None:
            _reject(item, *conflict)
        else:
            item.state, item.instance = UploadItem.State.DUPLICATE, stored
    else:
        study = index.study_for(outcome)
        if not isinstance(study, Study):  # the study was uploaded for another visit
            _reject(item, "wrong_timepoint", study)
            return
        series = index.series_for(outcome, study)
        if not isinstance(series, Series):  # the series UID is filed under another study
            _reject(item, "series_in_other_study", series)
            return
        key = store.instance_key(
            trial.code, study.study_instance_uid, series.series_instance_uid, outcome.sop_instance_uid
        )
        staged = staging.take(key)  # not linked if what follows fails: the staging removes it then
        instance = _new_instance(outcome, series, key, sha256=staged.sha256 if staged is not None else None)
        store.store_instance(key, outcome.data, staged=staged)
        index.instances[outcome.sop_instance_uid] = instance
        new_instances.append(instance)
        item.state, item.instance = UploadItem.State.ACCEPTED, instance


# The outcome columns `_save_outcomes` writes, with the type each is cast to from a list of values on PostgreSQL
# ("": the type the values themselves give).
_OUTCOME_COLUMNS = {
    "state": "",
    "code": "",
    "reason": "",
    "reason_text": "jsonb",
    "instance_id": "bigint",
    "processed_at": "timestamptz",
}


def _save_outcomes(items: list[UploadItem]) -> None:
    """Write the items' outcomes in one round trip (Django's bulk_update builds a CASE per row and field): on
    PostgreSQL one UPDATE from a list of values, where an executemany was one statement per file, each bound on
    the client in turn (0.1 ms of the worker's CPU per file); elsewhere (SQLite, in the process) one per file."""
    if not items:
        return
    table = UploadItem._meta.db_table
    columns = list(_OUTCOME_COLUMNS)
    as_json = UploadItem._meta.get_field("reason_text").get_db_prep_value
    rows = [
        (
            i.state,
            i.code,
            i.reason,
            as_json(i.reason_text, connection),
            i.instance.pk if i.instance is not None else None,
            i.processed_at,
            i.pk,
        )
        for i in items
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
            assigned = ", ".join(f"{c} = v.{c}" + (f"::{cast}" if cast else "") for c, cast in _OUTCOME_COLUMNS.items())
            sql = (
                f"UPDATE {table} AS t SET {assigned} FROM (VALUES {', '.join([row] * len(rows))}) "  # noqa: S608
                f"AS v({', '.join(columns)}, id) WHERE t.id = v.id"
            )
            cursor.execute(sql, [value for values in rows for value in values])
        else:
            sql = f"UPDATE {table} SET " + ", ".join(f"{c} = %s" for c in columns) + " WHERE id = %s"  # noqa: S608
            cursor.executemany(sql, rows)


def upload_counts(upload: Upload) -> dict[str, int]:
    return _counts(dict(upload.items.values_list("state").annotate(n=Count("pk"))))


def _counts(by_state: dict[str, int]) -> dict[str, int]:
    return {state: by_state.get(state, 0) for state in UploadItem.State.values} | {"total": sum(by_state.values())}


@dataclass(frozen=True)
class UploadStatus:
    """What a status poll answers: the files (all, or those from a cursor on), the cursor for the next poll, and
    the counts of every file."""

    items: list[UploadItem]
    cursor: int
    counts: dict[str, int]


def upload_status(upload: Upload, *, items_from: int | None = None) -> UploadStatus:
    """The counts of every file and the cursor, from one aggregate query, and the files listed, from a second.
    The cursor is where the files not yet settled (waiting, or to be sent again) begin: every file before it was
    accepted, a duplicate or rejected, and such a file's state does not change. With `items_from` (an earlier
    cursor) only the files from it on are listed (and read) while the upload is open or processing, so a page
    polling while it sends gets the files in flight, not all of them each time; once the upload is complete or
    cancelled, every file."""
    items = upload.items.all()
    summary = items.aggregate(
        first_unsettled=Min("pk", filter=Q(state__in=WAITING_STATES)),
        last=Max("pk"),
        **{state: Count("pk", filter=Q(state=state)) for state in UploadItem.State.values},
    )
    first_unsettled, last = summary.pop("first_unsettled"), summary.pop("last")
    cursor = first_unsettled if first_unsettled is not None else (last if last is not None else -1) + 1
    if items_from is not None and upload.state in (Upload.State.OPEN, Upload.State.PROCESSING):
        items = items.filter(pk__gte=items_from)
    return UploadStatus(items=list(items), cursor=cursor, counts=_counts(summary))


def upload_finish(*, actor, upload: Upload) -> Upload:
    """The client has sent every file: close the session; it completes when the last file is processed.

    The row is taken FOR UPDATE: a request still acknowledging files into the session (another tab of the same
    person) commits first and its files are counted, or finds the session closed and acknowledges none.

    Returns the upload as it now stands, with its subject, trial and visit (what an answer about it shows): the
    locked row if it was no longer open, else the row read once more after the commit, since closing moves the
    visit's state through a row of its own.
    """
    with transaction.atomic():
        upload = Upload.objects.select_for_update(of=("self",)).select_related(*UPLOAD_SHOWN).get(pk=upload.pk)
        if upload.state != Upload.State.OPEN:
            return upload
        _close(actor=actor, upload=upload)
    return upload_as_shown(upload.pk)


# What an upload is shown with (its subject's code, its visit's code and state, the trial's STOW-RS address).
UPLOAD_SHOWN = ("timepoint__subject__trial", "timepoint__visit")


def upload_as_shown(pk: int) -> Upload:
    """The upload as it now stands, with what an answer about it shows (UPLOAD_SHOWN): one query."""
    return Upload.objects.select_related(*UPLOAD_SHOWN).get(pk=pk)


def _close(*, actor, upload: Upload, idle_hours: int | None = None) -> None:
    """Called holding the open session's row FOR UPDATE: the site finished it (or, with `idle_hours`, the periodic
    job closed it after that long without a file). With no file it is discarded; otherwise it takes no more files,
    and completes when the last one is processed."""
    if not upload.items.exists():
        _discard(actor=actor, upload=upload, idle_hours=idle_hours)
        return
    upload.state, upload.idle_closed = Upload.State.PROCESSING, idle_hours is not None
    upload.save(update_fields=["state", "idle_closed"])
    # The session takes no more files: a file the client was asked to send again and did not is rejected.
    upload.items.filter(state=UploadItem.State.RESEND).update(
        state=UploadItem.State.REJECTED,
        code="lost",
        reason=DAMAGED_REASON,
        reason_text=text_json(DAMAGED_REASON),
        processed_at=timezone.now(),
    )
    summary = {"files": upload.items.count()}
    if idle_hours is not None:
        summary["idle_hours"] = idle_hours
    audit_record(
        actor=actor,
        action="upload.close_idle" if idle_hours is not None else "upload.finish",
        obj=upload,
        trial_id=upload.timepoint.subject.trial_id,
        summary=summary,
    )
    _maybe_complete(upload)


def uploads_idle_close(*, idle: timedelta | None = None) -> int:
    """Close every open session that has received no file for `idle` (settings.UPLOAD_IDLE_HOURS by default; 0
    closes none); returns how many were closed.

    A coordinator who closed the tab, lost the network for good or went home mid-upload leaves a session open,
    and the visit "uploading" for everybody. The periodic job (Celery beat) closes such a session as a finish
    would, with nobody as the actor: one with no file is discarded and the visit goes back to the state it had;
    one with files keeps them (each is processed as always: nothing acknowledged is lost) and is marked
    `idle_closed`, so that the upload page tells its coordinator, and the upload history tells the QC reviewers,
    that the site never said it had sent everything. A session a request is acknowledging files into right now
    is skipped (its row is held): it is not idle.
    """
    if idle is None:
        if not settings.UPLOAD_IDLE_HOURS:
            return 0
        idle = timedelta(hours=settings.UPLOAD_IDLE_HOURS)
    cutoff = timezone.now() - idle
    stale = (
        Upload.objects.filter(state=Upload.State.OPEN, created_at__lte=cutoff)
        .annotate(last_file=Max("items__received_at"))
        .filter(Q(last_file__isnull=True) | Q(last_file__lte=cutoff))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    closed = 0
    for pk in stale:
        with transaction.atomic():
            upload = (
                Upload.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("timepoint__subject")
                .filter(pk=pk, state=Upload.State.OPEN)
                .first()
            )
            if upload is None:  # finished meanwhile, or files are being acknowledged into it
                continue
            if upload.items.filter(received_at__gt=cutoff).exists():  # a file arrived since the look above
                continue
            _close(actor=None, upload=upload, idle_hours=round(idle.total_seconds() / 3600))
            closed += 1
    return closed


def _discard(*, actor, upload: Upload, idle_hours: int | None = None) -> None:
    """Called holding the upload's row lock, for a session that received no file: nothing was sent (the site's
    browser opened it to de-identify, then found every file already held or held every file back; or it was left
    idle, `idle_hours`), so it is cancelled rather than completed, leaves no empty upload in the history, runs no
    QC, answers no query, and the visit goes back to the state it had when the session opened (`_visit_settle`:
    unless another upload of it is still open or processing, or one that closed while this was open stored
    images)."""
    upload.state, upload.closed_at = Upload.State.CANCELLED, timezone.now()
    upload.save(update_fields=["state", "closed_at"])
    timepoint = upload.timepoint
    summary = {"idle_hours": idle_hours} if idle_hours is not None else {}
    audit_record(actor=actor, action="upload.discard", obj=upload, trial_id=timepoint.subject.trial_id, summary=summary)
    _visit_settle(
        actor=actor,
        upload=upload,
        reason="upload discarded: no file sent" if idle_hours is None else "upload discarded: idle",
    )


def _maybe_complete(upload: Upload) -> None:
    """Called holding the upload's row lock: complete it once it is closed and nothing waits in quarantine."""
    if upload.state != Upload.State.PROCESSING or upload.items.filter(state=UploadItem.State.QUARANTINED).exists():
        return
    counts = upload_counts(upload)
    upload.state, upload.closed_at = Upload.State.COMPLETE, timezone.now()
    upload.save(update_fields=["state", "closed_at"])
    audit_record(
        actor=None,
        action="upload.complete",
        obj=upload,
        trial_id=upload.timepoint.subject.trial_id,
        summary={k: v for k, v in counts.items() if v},
    )
    from ..qc_services import query_note_upload

    if counts.get(UploadItem.State.ACCEPTED):
        query_note_upload(upload=upload)  # something new arrived: the open queries are answered by it
    _visit_settle(actor=None, upload=upload)


def _visit_settle(*, actor, upload: Upload, reason: str = "") -> None:
    """Called holding the row of a session just completed or discarded: the visit's state now that its uploads are
    done, or nothing while another session of it is still open or processing.

    A visit is "uploading" while any session of it is live (two coordinators of the site, each with their own), so
    QC cannot begin on a visit whose images are still arriving, and no image arrives in a visit under QC or read.
    The last session to close decides, for every session that closed while it (or one of those) was open, as one
    upload (`_closed_together`):
    - an image stored by one of them: "uploaded", and the QC checks run;
    - files came but nothing new (every file already stored or rejected): the visit's open queries were not
      answered ("query open"; a visit an earlier re-upload answered, "uploaded" when they opened, stays with QC:
      that answer stands), else "uploaded" if the visit holds images, else still "expected";
    - no file at all (every session discarded): the state the visit had when the first of them opened.
    The visit's row is taken before the other sessions are looked at: two sessions closing at once are decided one
    after the other, the second seeing the first closed. A visit that is no longer "uploading" (moved on under a
    session opened before this rule) is left as it is.
    """
    timepoint = upload.timepoint
    state = Timepoint.objects.select_for_update().values_list("state", flat=True).get(pk=timepoint.pk)
    live = Upload.objects.filter(timepoint=timepoint, state__in=(Upload.State.OPEN, Upload.State.PROCESSING))
    if state != Timepoint.State.UPLOADING or live.exclude(pk=upload.pk).exists():
        return
    together = _closed_together(upload)
    before = next((u.visit_state_before for u in together if u.visit_state_before), "")
    complete = [u.pk for u in together if u.state == Upload.State.COMPLETE]
    stored = Instance.objects.filter(series__study__timepoint=timepoint).exists()
    open_queries = Query.objects.filter(timepoint=timepoint).exclude(state=Query.State.CLOSED).exists()
    if not complete:  # no file was sent in any of them
        if not before:  # opened before 0.2.0 kept it: what the visit holds
            if open_queries:
                before = Timepoint.State.QUERY_OPEN
            elif stored:
                before = Timepoint.State.UPLOADED
            else:
                before = Timepoint.State.EXPECTED
        timepoint_transition(
            actor=actor, timepoint=timepoint, to=before, allowed_from=[Timepoint.State.UPLOADING], reason=reason
        )
        return
    accepted = UploadItem.objects.filter(upload__in=complete, state=UploadItem.State.ACCEPTED).exists()
    if not accepted and open_queries and before != Timepoint.State.UPLOADED:
        # Nothing new: what the reviewer asked for did not arrive.
        timepoint_transition(
            actor=None, timepoint=timepoint, to=Timepoint.State.QUERY_OPEN, allowed_from=[Timepoint.State.UPLOADING]
        )
        return
    if stored:
        from ..tasks import timepoint_checks

        transaction.on_commit(lambda: timepoint_checks.delay(timepoint.pk))
    # Nothing stored at all (every file rejected): the visit is still waiting for its images.
    timepoint_transition(
        actor=None,
        timepoint=timepoint,
        to=Timepoint.State.UPLOADED if stored else Timepoint.State.EXPECTED,
        allowed_from=[Timepoint.State.UPLOADING],
    )


def _closed_together(upload: Upload) -> list[Upload]:
    """The sessions of the visit that closed while this one, or another of them, was open, this one included, in
    the order they opened: the visit's last upload, as one (`_visit_settle`)."""
    closed = Upload.objects.filter(
        timepoint_id=upload.timepoint_id, state__in=(Upload.State.COMPLETE, Upload.State.CANCELLED)
    )
    since = upload.created_at
    while True:
        together = list(closed.filter(closed_at__gte=since).order_by("created_at", "pk"))
        together = together if any(u.pk == upload.pk for u in together) else [*together, upload]
        earliest = min(u.created_at for u in together)
        if earliest >= since:
            return sorted(together, key=lambda u: (u.created_at, u.pk))
        since = earliest
