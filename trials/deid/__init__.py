"""De-identification of DICOM instances (PS3.15 Annex E) into a trial's pseudonym space. Imports no Django."""

from pydicom import config as _pydicom_config

# pydicom's read-time validation warns with the offending value (a malformed PatientBirthDate, say) in the
# message; identifying values must never reach a log, so values are not validated on reading.
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE

from . import burned_in  # noqa: E402
from .engine import DeidResult, deidentify  # noqa: E402
from .errors import DeidRejected  # noqa: E402
from .options import CT_MR_SOP_CLASSES, REDACT, REJECT, DeidOptions, sop_class_rejection  # noqa: E402
from .profile import PROFILE_EDITION  # noqa: E402
from .pseudonym import PseudonymSpace  # noqa: E402
from .verify import IdentifyingValues, verify_no_phi  # noqa: E402

__all__ = [
    "burned_in",
    "CT_MR_SOP_CLASSES",
    "PROFILE_EDITION",
    "REDACT",
    "REJECT",
    "DeidOptions",
    "DeidRejected",
    "DeidResult",
    "IdentifyingValues",
    "PseudonymSpace",
    "deidentify",
    "sop_class_rejection",
    "verify_no_phi",
]
