"""Quality control of a timepoint's images as a plain library: series classification and protocol compliance.

Imports no Django. The Django side builds SeriesInfo from the index (or the instances' DICOM JSON), a
ProtocolInfo per ImagingProtocol of the visit, calls check_timepoint and stores the findings.
"""

from .classify import (
    DEFAULT_RULES,
    KINDS,
    Classification,
    RuleSet,
    Why,
    classify_series,
    kind_modality,
    kinds_for_modality,
    load_rules,
    region_label,
    region_parts,
)
from .compliance import CODES, Finding, ProtocolInfo, Severity, check_timepoint
from .series import InstanceInfo, SeriesInfo, series_info_from_datasets, series_info_from_dicom_json

__all__ = [
    "CODES",
    "DEFAULT_RULES",
    "KINDS",
    "Classification",
    "Why",
    "Finding",
    "InstanceInfo",
    "ProtocolInfo",
    "RuleSet",
    "SeriesInfo",
    "Severity",
    "check_timepoint",
    "classify_series",
    "kind_modality",
    "kinds_for_modality",
    "load_rules",
    "region_label",
    "region_parts",
    "series_info_from_datasets",
    "series_info_from_dicom_json",
]
