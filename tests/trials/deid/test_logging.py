"""Nothing identifying reaches a log while de-identifying, even when a value is malformed."""

from __future__ import annotations

import logging
import warnings

from trials.deid import deidentify

from .factories import DEFAULT, SUBJECT, ct_image, part10, space


def test_a_malformed_identifying_value_is_never_logged_or_warned(caplog):
    ds = ct_image()
    ds.PatientBirthDate = "19XX-CANARY-0314"  # not a DICOM date: pydicom would warn with the value
    ds.PatientName = "CANARYNAME^MALFORMED\x01"
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        result = deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert b"CANARY" not in result.data
    said = " ".join(r.getMessage() for r in caplog.records) + " ".join(str(w.message) for w in caught)
    assert "CANARY" not in said
