"""The stored files of sites' uploads checked again with today's checks (`manage.py recheck`, with the records of trials.recheck).

A check added in a release guards the files received from then on; the files stored before it were never put
through it. This walks the instance index and, for every file a site uploaded, compares the stored bytes with
the SHA-256 of their index row and runs the checks the server makes on received bytes today: the receipt checks
(`validate.check_receivable`: bounds, decodable pixels) and the re-verification of de-identified bytes
(`reverify.recheck_stored`: only attributes the trial's profile keeps, no identifier pattern in any text value,
the subject code as the patient, pseudonymous UIDs). SRs written by CTIMS itself are not site uploads and are
not walked. What is found names the file by its pseudonymous UIDs and the reason's code, never a value read
from it; nothing is changed or removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..deid import DeidRejected
from ..models import Instance, Series, Trial
from . import store
from .reverify import recheck_stored
from .services import trial_deid_options
from .validate import check_receivable

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Finding:
    """One stored file today's checks refuse (or that no longer matches its index row)."""

    trial: str
    subject: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    code: str
    reason: str


def _read(storage, key: str) -> bytes | None:
    try:
        with storage.open(key, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def store_recheck(*, trial: Trial | None = None) -> Iterator[Finding | None]:
    """Each stored upload file of `trial` (every trial if None) in index order: None when it passes today's
    checks, else its Finding. One file is in memory at a time."""
    rows = (
        Instance.objects.filter(series__origin=Series.Origin.UPLOAD)
        .select_related("series__study__subject", "series__study__trial")
        .order_by("pk")
    )
    if trial is not None:
        rows = rows.filter(series__study__trial=trial)
    options_by_trial = {}
    images = store.image_storage()
    for instance in rows.iterator(chunk_size=500):
        study = instance.series.study
        options = options_by_trial.get(study.trial_id)
        if options is None:
            options = options_by_trial[study.trial_id] = trial_deid_options(study.trial)

        def finding(code: str, reason: str, *, study=study, instance=instance) -> Finding:
            return Finding(
                study.trial.code,
                study.subject.code,
                study.study_instance_uid,
                instance.series.series_instance_uid,
                instance.sop_instance_uid,
                code,
                reason,
            )

        data = _read(images, instance.storage_key)
        if data is None:
            yield finding("missing", "The index names a file the store does not hold.")
            continue
        if (hashlib.sha256(data).hexdigest(), len(data)) != (instance.sha256, instance.size):
            yield finding("changed", "The stored file no longer matches the SHA-256 and size of its index row.")
            continue
        try:
            check_receivable(data)
            recheck_stored(data, subject_code=study.subject.code, options=options)
        except DeidRejected as exc:
            yield finding(exc.code, exc.reason)
        else:
            yield None
