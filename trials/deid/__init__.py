"""De-identification of DICOM instances (PS3.15 Annex E) into a trial's pseudonym space. Imports no Django."""

from .engine import DeidResult, deidentify
from .errors import DeidRejected
from .options import CT_MR_SOP_CLASSES, DeidOptions
from .profile import PROFILE_EDITION
from .pseudonym import PseudonymSpace
from .verify import IdentifyingValues, verify_no_phi

__all__ = [
    "CT_MR_SOP_CLASSES",
    "PROFILE_EDITION",
    "DeidOptions",
    "DeidRejected",
    "DeidResult",
    "IdentifyingValues",
    "PseudonymSpace",
    "deidentify",
    "verify_no_phi",
]
