"""De-identification in the site's browser: what the browser is given for one subject, and when.

The browser runs the same trials/deid engine (static/dist/deid/) with the subject's own key, which only a
coordinator of the subject's site holding an open upload of that subject receives; the trial key stays here.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, ValidationFailed

from ..deid import DeidOptions
from ..deid.engine import ACTIONS
from ..models import BrowserDeidRecord, Timepoint, Trial, Upload
from .services import HEX64, trial_deid_options, upload_finish, upload_open
from .subject_keys import browser_subject_key

RECORDS_PER_REQUEST = 1000


def deid_options_payload(options: DeidOptions) -> dict:
    """The trial's options as JSON for the browser's engine (static/src/deid/ctims_deid_entry.options_from)."""
    return {
        "retain_longitudinal_modified_dates": options.retain_longitudinal_modified_dates,
        "clean_descriptors": options.clean_descriptors,
        "retain_device_identity": options.retain_device_identity,
        "retain_patient_characteristics": options.retain_patient_characteristics,
        "private_tag_safelist": sorted([creator, element] for creator, element in options.private_tag_safelist),
        "accepted_sop_classes": sorted(options.accepted_sop_classes),
        "kept_text_attributes": sorted(options.kept_text_attributes),
        "burned_in_text": options.burned_in_text,
    }


def browser_allowed(trial: Trial) -> bool:
    """The trial lets sites de-identify in the browser (and its scheme gives a subject key to do it with)."""
    return trial.deid_paths != Trial.DeidPaths.SERVER and trial.pseudonym_scheme == Trial.PseudonymScheme.SUBJECT


def path_allowed(trial: Trial, deid_path: str) -> bool:
    """The trial (still) lets an upload send files by `deid_path` (an Upload.DeidPath)."""
    if deid_path == Upload.DeidPath.BROWSER:
        return browser_allowed(trial)
    return trial.deid_paths != Trial.DeidPaths.BROWSER


def check_path_allowed(upload: Upload) -> None:
    """Refuse an open session whose way of sending files its trial no longer allows (the trial admin changed
    *Where images are de-identified* while it was open): it takes no more files and gives no subject key."""
    trial = upload.timepoint.subject.trial
    if path_allowed(trial, upload.deid_path):
        return
    if upload.deid_path == Upload.DeidPath.BROWSER:
        raise InvalidState(_("This trial de-identifies images on the server; send the files as they are."))
    raise InvalidState(
        _("This trial accepts only images de-identified in the site's browser; use the upload page of CTIMS.")
    )


def upload_open_with_path(*, actor, timepoint: Timepoint, browser: bool) -> Upload:
    """Open (or resume) the person's upload, de-identifying in their browser or on the server as the trial allows.

    A resumed session keeps the path its files were sent by; one without files yet takes the path asked for.
    """
    trial = timepoint.subject.trial
    if browser and not browser_allowed(trial):
        raise InvalidState(_("This trial de-identifies images on the server; send the files as they are."))
    if not browser and trial.deid_paths == Trial.DeidPaths.BROWSER:
        raise InvalidState(
            _("This trial accepts only images de-identified in the site's browser; use the upload page of CTIMS.")
        )
    wanted = Upload.DeidPath.BROWSER if browser else Upload.DeidPath.SERVER
    with transaction.atomic():
        upload = upload_open(actor=actor, timepoint=timepoint)
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.deid_path != wanted and upload.items.exists() and not path_allowed(trial, upload.deid_path):
            # The trial stopped allowing the way this session's files were sent (browser-only, or server only):
            # that session is closed (what it received is still processed) and a new one takes the other way.
            upload_finish(actor=actor, upload=upload)
            upload = upload_open(actor=actor, timepoint=timepoint)
        if upload.deid_path != wanted and not upload.items.exists():
            upload.deid_path = wanted
            upload.save(update_fields=["deid_path"])
    return upload


def _check_key_holder(upload: Upload) -> None:
    if upload.state != Upload.State.OPEN:
        raise InvalidState(_("This upload is closed; the subject key is given only while an upload is open."))
    if upload.deid_path != Upload.DeidPath.BROWSER:
        raise InvalidState(_("This upload sends files as they are; its files are de-identified on the server."))
    check_path_allowed(upload)


def upload_browser_key(*, actor, upload: Upload) -> dict:
    """What the browser needs to de-identify for the upload's subject, and an audit event that it was given.

    Precondition: the caller checked that `actor` is a coordinator of the subject's site (selectors.upload_get
    with write). The subject key is given only for an open browser-path upload; the trial key never.
    """
    _check_key_holder(upload)
    subject, trial = upload.timepoint.subject, upload.timepoint.subject.trial
    key = browser_subject_key(trial, subject.code)
    if key is None:  # pragma: no cover - upload_open_with_path refuses the browser path for a one-key trial
        raise InvalidState(_("This trial de-identifies images on the server; send the files as they are."))
    audit_record(
        actor=actor, action="upload.subject_key", obj=upload, trial_id=trial.pk, summary={"subject": subject.code}
    )
    return {
        "subject": subject.code,
        "subject_key": key.hex(),
        "patient_hash": subject.source_patient_hash,
        "options": deid_options_payload(trial_deid_options(trial)),
    }


def browser_records_receive(*, upload: Upload, records: list) -> int:
    """Keep the browser's declaration of each file it will send (by the SHA-256 of the de-identified bytes).

    A record sent again is kept once. Records hold no value from the original: keyed hashes and counts only.
    """
    rows = browser_records_checked(upload=upload, records=records)
    BrowserDeidRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def browser_records_checked(*, upload: Upload, records: list) -> list[BrowserDeidRecord]:
    """The browser's records as rows to keep (not saved), each checked; refused as `browser_records_receive`
    refuses them. The STOW request that carries records before its files saves each with its file's row."""
    if upload.state != Upload.State.OPEN:  # said as the files that follow the records would be refused
        raise InvalidState(_("This upload is closed; start a new upload to send more files."))
    _check_key_holder(upload)
    if not isinstance(records, list) or len(records) > RECORDS_PER_REQUEST:
        raise ValidationFailed(_("Send at most %(n)s records at a time.") % {"n": RECORDS_PER_REQUEST})
    rows = []
    for record in records:
        ok = (
            isinstance(record, dict)
            and isinstance(record.get("sha256"), str)
            and HEX64.fullmatch(record["sha256"])
            and isinstance(record.get("key_check"), str)
            and HEX64.fullmatch(record["key_check"])
            and isinstance(record.get("patient_hash", ""), str)
            and (record.get("patient_hash", "") == "" or HEX64.fullmatch(record["patient_hash"]))
            and isinstance(record.get("actions", {}), dict)
            and all(k in ACTIONS and type(v) is int for k, v in record.get("actions", {}).items())
        )
        if not ok:
            raise ValidationFailed(_("A de-identification record is malformed."))
        rows.append(
            BrowserDeidRecord(
                upload=upload,
                sha256=record["sha256"],
                key_check=record["key_check"],
                patient_hash=record.get("patient_hash", ""),
                actions=record.get("actions", {}),
            )
        )
    return rows
