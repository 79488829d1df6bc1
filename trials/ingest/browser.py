"""De-identification in the site's browser: what the browser is given for one subject, and when.

The browser runs the same trials/deid engine (static/dist/deid/) with the subject's own key, which only a
coordinator of the subject's site holding an open upload of that subject receives; the trial key stays here.
"""

from __future__ import annotations

from ..deid import DeidOptions
from ..models import Trial, Upload
from .services import trial_deid_options
from .subject_keys import browser_subject_key


def deid_options_payload(options: DeidOptions) -> dict:
    """The trial's options as JSON for the browser's engine (static/src/deid/ctims_deid_entry.options_from)."""
    return {
        "retain_longitudinal_modified_dates": options.retain_longitudinal_modified_dates,
        "clean_descriptors": options.clean_descriptors,
        "retain_device_identity": options.retain_device_identity,
        "retain_patient_characteristics": options.retain_patient_characteristics,
        "private_tag_safelist": sorted([creator, element] for creator, element in options.private_tag_safelist),
        "accepted_sop_classes": sorted(options.accepted_sop_classes),
    }


def browser_allowed(trial: Trial) -> bool:
    """The trial lets sites de-identify in the browser (and its scheme gives a subject key to do it with)."""
    return trial.deid_paths != Trial.DeidPaths.SERVER and trial.pseudonym_scheme == Trial.PseudonymScheme.SUBJECT


def upload_browser_key(*, upload: Upload) -> dict:
    """What the browser needs to de-identify for the upload's subject. Precondition: the caller checked that
    the person is a coordinator of the subject's site and that `upload` is theirs and open.
    """
    subject, trial = upload.timepoint.subject, upload.timepoint.subject.trial
    key = browser_subject_key(trial, subject.code)
    if key is None:  # pragma: no cover - browser_allowed() is checked before an upload takes the browser path
        raise ValueError("a one-key trial gives no subject key")
    return {
        "subject": subject.code,
        "subject_key": key.hex(),
        "patient_hash": subject.source_patient_hash,
        "options": deid_options_payload(trial_deid_options(trial)),
    }
