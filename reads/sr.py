"""DICOM SR for reads: the one place that writes and parses read results.

A read is encoded as a TID 1500 "Imaging Measurement Report" in a Comprehensive 3D SR
instance (highdicom), placed in the de-identified study it reads (same StudyInstanceUID,
new series and instance):

* one TID 1501 measurement group per lesion (source image as group-level reference; TID
  1410 is not used because it allows one region per group and highdicom forbids
  per-measurement coordinates in it), each with
  - Tracking Identifier (DCM 112039, the label e.g. "T01") and Tracking Unique Identifier
    (DCM 112040, stable for the lesion across timepoints);
  - Finding Site (SCT 363698007), Finding type SCT 52988006 "Lesion", or SCT 30746006
    "Lymphadenopathy" for a node (the node's station is its finding site);
  - Method RECIST 1.1 (DCM 126081); Time Point context (TID 1502): the visit's label, its code
    as Protocol Time Point Identifier (DCM 126071), its order (DCM 126073) and, at baseline,
    the Time Point Type UMLS C1442488 "Baseline";
  - Long axis (SCT 103339001) / Short axis (SCT 103340004) in UCUM "mm" with their tenths
    ("14.0"), each with its own SCOORD POLYLINE (two endpoints, image pixel (column, row));
  - Baseline Category (DCM 112016) = DCM 112074 / 112075 / 112076 for target / non-target /
    new ("Non-Lesion at Baseline") lesions;
  - a target's Lesion Status (SCT Measured, DCM Too small, SCT Absent, NCIt Not Evaluable)
    and a non-target's status (SCT Present, SCT Absent, NCIt Not Evaluable, or the local
    "Unequivocal progression"); a new lesion has neither.
* one TID 1501 group "Timepoint response" with target response (DCM CID 6143 values),
  non-target response (DCM CID 6144 values), overall response as DCM 112048 "Current
  Response" (NCIt C-codes of the CDISC "Oncology Response Assessment Result" codelist C96785,
  see OVERALL_RESPONSE_CODES), the sum of diameters in mm and, at a follow-up, the reader's call on new
  lesions (local "New Lesions" = SCT Absent / Equivocal / Present). NE is NCIt C62222 everywhere.
  Local 99CTIMS codes remain only where no standard concept was found (target/non-target
  response names, lesion status names, sum of diameters, non-CR/non-PD, unequivocal progression).

The SR is marked COMPLETE and VERIFIED by the verifying observer, named by the trial's reader
code ("Radiologist 1"; "Adjudicator", with the NCIt role C96561, on a result SR). Patient and
study attributes are copied by highdicom from the first de-identified evidence header, so the
SR carries only the pseudonym; of the evidence's de-identification record only what is true of
the SR is kept (patient identity removed, dates shifted), never the image profile's options or
its equipment. The caller gives every date in the study's shifted timeline.

Measurement values are written as DS strings from the Decimal and parsed back to Decimal
from the DS string, so they round-trip exactly (DS holds at most 16 characters).  Points
are stored as SCOORD (FL, float32): use coordinates exactly representable in float32
(e.g. integers or halves) if exact round-trip matters.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.valuerep import DS

Point = tuple[float, float]
Segment = tuple[Point, Point]

# --------------------------------------------------------------------------- codes

LOCAL_SCHEME = "99CTIMS"
LOCAL_SCHEME_NAME = "CTIMS local codes"


def _local(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=LOCAL_SCHEME, meaning=meaning)


# Standard codes, all verified against pydicom's SR code dictionary.
LONG_AXIS = codes.SCT.LongAxis  # SCT 103339001 "Long axis"
SHORT_AXIS = codes.SCT.ShortAxis  # SCT 103340004 "Short axis"
MM = codes.UCUM.Millimeter  # UCUM "mm"
RECIST_1_1 = codes.DCM.RECIST1Point1  # DCM 126081 "RECIST 1.1" (CID 6147)
LESION = codes.SCT.Lesion  # SCT 52988006
# A node's finding is a finding (SCT 30746006 "Lymphadenopathy", CID 6347); where it is, is its finding site.
LYMPHADENOPATHY = codes.SCT.Lymphadenopathy
LYMPH_NODE = codes.SCT.LymphNode  # SCT 59441001: the anatomy, which SRs written before 2026-12 used as finding
BASELINE_CATEGORY = codes.DCM.BaselineCategory  # DCM 112016
TIME_POINT = hd.sr.CodedConcept("C2348792", "UMLS", "Time Point")  # as written by hd.sr.TimePointContext
BASELINE_TIME_POINT = codes.UMLS.Baseline  # UMLS C1442488 "Baseline" (CID 6146 Time Point Types)
ADJUDICATOR = codes.NCIt.Adjudicator  # NCIt C96561 (CID 7453 Performing Roles)
# The standard "Not Evaluable" (NCIt C62222, the CDISC "NE" result): the one code for NE wherever it appears.
NOT_EVALUABLE = hd.sr.CodedConcept("C62222", "NCIt", "Not Evaluable")

BASELINE_CODES = {  # CID 6145 "Baseline Category"
    "target": codes.DCM.TargetLesionAtBaseline,  # DCM 112074 "Target Lesion at Baseline"
    "non_target": codes.DCM.NonTargetLesionAtBaseline,  # DCM 112075 "Non-Target Lesion at Baseline"
    "new": codes.DCM.NonLesionAtBaseline,  # DCM 112076 "Non-Lesion at Baseline": a new lesion
}

# Response assessment names with no DICOM, SNOMED or NCIt concept in pydicom's dictionaries stay local codes
# mirroring CDISC RSTESTCD; the overall response is DICOM's "Current Response".
TARGET_RESPONSE = _local("TRGRESP", "Target Response")
NON_TARGET_RESPONSE = _local("NTRGRESP", "Non-target Response")
OVERALL_RESPONSE = codes.DCM.CurrentResponse  # DCM 112048 "Current Response"
OVERALL_RESPONSE_LOCAL = _local("OVRLRESP", "Overall Response")  # what SRs written before 2026-12 carry
SUM_OF_DIAMETERS = _local("SUMDIAM", "Sum of Diameters")
LESION_CATEGORY = _local("LESCAT", "Lesion Category")  # read from older SRs; the Baseline Category says it now
LESION_STATUS = _local("LESSTAT", "Lesion Status")
NON_TARGET_STATUS = _local("NTSTAT", "Non-target Lesion Status")
TIMEPOINT_RESPONSE_LABEL = "Timepoint response"
# The reader's call on new lesions at a follow-up (RECIST 1.1 section 4.3.3): no concept for the question in
# pydicom's dictionaries, so a local name; the answers are standard SNOMED CT qualifiers.
NEW_LESIONS = _local("NEWLES", "New Lesions")
NEW_LESION_CODES = {
    "NONE": codes.SCT.Absent,  # SCT 272519000
    "EQUIVOCAL": codes.SCT.Equivocal,  # SCT 42425007
    "UNEQUIVOCAL": codes.SCT.Present,  # SCT 52101004
}

NE = "NE"
NON_CR_NON_PD = "NON-CR/NON-PD"

TARGET_RESPONSE_CODES = {  # CID 6143 "Target Lesion Response" (verified in pydicom)
    "CR": codes.DCM.TargetLesionCompleteResponse,  # 112041
    "PR": codes.DCM.TargetLesionPartialResponse,  # 112042
    "PD": codes.DCM.TargetLesionProgressiveDisease,  # 112043
    "SD": codes.DCM.TargetLesionStableDisease,  # 112044
    NE: NOT_EVALUABLE,  # CID 6143 has no NE
}
NON_TARGET_RESPONSE_CODES = {  # CID 6144 "Non-Target Lesion Response" (verified in pydicom)
    "CR": codes.DCM.NonTargetLesionCompleteResponse,  # 112045
    NON_CR_NON_PD: codes.DCM.NonTargetLesionIncompleteResponseOrStableDisease,  # 112046
    "PD": codes.DCM.NonTargetLesionProgressiveDisease,  # 112047
    NE: NOT_EVALUABLE,  # CID 6144 has no NE
}
# Overall response: the NCIt C-codes that CDISC CT uses for RSSTRESC in the codelist
# "Oncology Response Assessment Result" (C96785, ONCRSR).  Not in pydicom's NCIt dictionary;
# checked by hand against two independent sources per code:
#   (a) the CDISC CT codelist C96785 as exported in hakupao/sdtm-pedia,
#       knowledge_base/terminology/core/oncology_part1.md (code, submission value, synonyms);
#   (b) NCIt-bound enums in chicagopcdc/linkml-data-dictionary,
#       markdown_model_generated/ResponseEnum.md (ncit:C4870/C18058/C18213/C35571/C62222).
# C18058 is PR and C18213 is SD (an earlier version of this table had them swapped).
# Code meanings are the CDISC synonyms in RECIST wording; the NCIt preferred terms differ for
# CR and PR ("Complete Remission", "Partial Remission"), which CDISC lists as synonyms too.
# NON-CR/NON-PD stays local: CDISC CT lists it as C96700 ("Non Complete Response/Non
# Progressive Disease") in (a), but no second independent source was found; switch when there is.
OVERALL_RESPONSE_CODES = {
    "CR": hd.sr.CodedConcept("C4870", "NCIt", "Complete Response"),
    "PR": hd.sr.CodedConcept("C18058", "NCIt", "Partial Response"),
    "SD": hd.sr.CodedConcept("C18213", "NCIt", "Stable Disease"),
    "PD": hd.sr.CodedConcept("C35571", "NCIt", "Progressive Disease"),
    NE: NOT_EVALUABLE,
    NON_CR_NON_PD: _local("OVRL-NCRNPD", "Non-CR/Non-PD"),
}

# Older SRs' local lesion categories, read back only.
CATEGORY_CODES = {
    "target": _local("TARGET", "Target lesion"),
    "non_target": _local("NON-TARGET", "Non-target lesion"),
    "new": _local("NEW", "New lesion"),
}
STATUS_CODES = {  # a target lesion at a time point
    "measured": codes.SCT.Measured,  # SCT 258104002
    "too_small": codes.DCM.TooSmall,  # DCM 112133 "Too small"
    "disappeared": codes.SCT.Absent,  # SCT 272519000
    "not_evaluable": NOT_EVALUABLE,
}
LEGACY_STATUS_CODES = {  # what SRs written before 2026-12 carry, read back only
    "measured": _local("MEASURED", "Measured"),
    "too_small": _local("TOO-SMALL", "Too small to measure"),
    "disappeared": _local("DISAPPEARED", "Disappeared"),
    "not_evaluable": _local("NOT-EVALUABLE", "Not evaluable"),
}
NON_TARGET_STATUS_CODES = {  # a non-target lesion at a time point
    "present": codes.SCT.Present,  # SCT 52101004
    "absent": codes.SCT.Absent,  # SCT 272519000
    "unequivocal_progression": _local("UNEQUIVOCAL-PROGRESSION", "Unequivocal progression"),
    "not_evaluable": NOT_EVALUABLE,
}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SourceImage:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    frame_of_reference_uid: str | None = None
    # The frame of a multi-frame image the lesion is drawn on (1-based); None for a single-frame image, whose
    # references carry no frame number.
    frame: int | None = None

    @property
    def frames(self) -> list[int] | None:
        return [self.frame] if self.frame is not None else None


@dataclass
class LesionMeasurement:
    tracking_uid: str
    tracking_label: str
    category: str  # "target" | "non_target" | "new"
    finding_site: tuple[str, str]  # (SCT code value, code meaning)
    image: SourceImage | None  # None for a lesion recorded without a drawing (gone, not evaluable)
    is_node: bool = False
    long_axis_mm: Decimal | None = None
    short_axis_mm: Decimal | None = None
    long_axis_points: Segment | None = None
    short_axis_points: Segment | None = None
    status: str | None = "measured"  # a target's: measured | too_small | disappeared | not_evaluable; else None
    non_target_status: str | None = None  # a non-target's: present | absent | unequivocal_progression | not_evaluable


@dataclass
class ReadReport:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    series_number: int
    instance_number: int
    reader_name: str
    verifying_observer_name: str
    verification_datetime: dt.datetime
    content_datetime: dt.datetime
    timepoint_label: str
    lesions: list[LesionMeasurement] = field(default_factory=list)
    timepoint_code: str | None = None  # the visit's code in the protocol (Protocol Time Point Identifier)
    timepoint_order: int | None = None  # the visit's place in the schedule (Time Point Order)
    timepoint_is_baseline: bool = False
    observer_role: str | None = None  # "adjudicator" for a result SR written at adjudication
    description: str | None = None  # the Series Description; by default "Read <time point> <reader>"
    target_response: str | None = None  # CR PR SD PD NE
    non_target_response: str | None = None  # CR NON-CR/NON-PD PD NE
    overall_response: str | None = None  # CR PR SD PD NE NON-CR/NON-PD
    sum_of_diameters_mm: Decimal | None = None
    new_lesions: str | None = None  # a follow-up's call: NONE EQUIVOCAL UNEQUIVOCAL; None at baseline
    method: str = "RECIST 1.1"
    # What the SR may truthfully say of its de-identification: it carries only the pseudonym, and its dates are
    # in the study's shifted timeline when `dates_shifted`.
    deidentification_method: str = "CTIMS SR from de-identified images; pseudonym only"  # LO: <= 64
    dates_shifted: bool = True
    # Filled by parse_measurement_report (copied from the evidence header on write).
    patient_id: str | None = None
    patient_name: str | None = None


class SRError(ValueError):
    pass


# --------------------------------------------------------------------------- write


def _ds_str(value: Decimal) -> str:
    text = format(Decimal(value), "f")
    if len(text) > 16:
        raise SRError(f"measurement {value} does not fit a DS value (16 characters)")
    return text


def _segment_array(points: Segment) -> np.ndarray:
    arr = np.array(points, dtype=float)
    if arr.shape != (2, 2):
        raise SRError(f"expected two (col, row) points, got {points!r}")
    return arr


def _measurement(name, value: Decimal, points: Segment | None, image: SourceImage) -> hd.sr.Measurement:
    coords = None
    if points is not None:
        coords = [
            hd.sr.CoordinatesForMeasurement(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                graphic_data=_segment_array(points),
                source_image=hd.sr.SourceImageForRegion(
                    image.sop_class_uid, image.sop_instance_uid, referenced_frame_numbers=image.frames
                ),
            )
        ]
    m = hd.sr.Measurement(
        name=name,
        value=float(value),
        unit=MM,
        method=RECIST_1_1,
        referenced_coordinates=coords,
    )
    # Write the exact decimal string rather than a float rendering.
    for item in m:
        if item.ValueType == "NUM":
            item.MeasuredValueSequence[0].NumericValue = DS(_ds_str(value))
    return m


def _lesion_group(lesion: LesionMeasurement, time_point: hd.sr.TimePointContext):
    if lesion.category not in BASELINE_CODES:
        raise SRError(f"unknown lesion category {lesion.category!r}")
    if lesion.category == "target" and lesion.status not in STATUS_CODES:
        raise SRError(f"unknown lesion status {lesion.status!r}")
    if lesion.non_target_status is not None and lesion.non_target_status not in NON_TARGET_STATUS_CODES:
        raise SRError(f"unknown non-target status {lesion.non_target_status!r}")
    tracking = hd.sr.TrackingIdentifier(uid=lesion.tracking_uid, identifier=lesion.tracking_label)
    site_value, site_meaning = lesion.finding_site
    sites = [hd.sr.FindingSite(hd.sr.CodedConcept(site_value, "SCT", site_meaning))]
    measurements = []
    if lesion.long_axis_mm is not None:
        measurements.append(_measurement(LONG_AXIS, lesion.long_axis_mm, lesion.long_axis_points, lesion.image))
    if lesion.short_axis_mm is not None:
        measurements.append(_measurement(SHORT_AXIS, lesion.short_axis_mm, lesion.short_axis_points, lesion.image))
    # The category is the Baseline Category (target, non-target, or "non-lesion at baseline": new); a status is
    # written only where the read has one: a target's measurement status, a non-target's call.
    evaluations = [hd.sr.QualitativeEvaluation(BASELINE_CATEGORY, BASELINE_CODES[lesion.category])]
    if lesion.category == "target":
        evaluations.append(hd.sr.QualitativeEvaluation(LESION_STATUS, STATUS_CODES[lesion.status]))
    if lesion.non_target_status is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(NON_TARGET_STATUS, NON_TARGET_STATUS_CODES[lesion.non_target_status])
        )
    common = {
        "tracking_identifier": tracking,
        "time_point_context": time_point,
        "finding_type": LYMPHADENOPATHY if lesion.is_node else LESION,
        "method": RECIST_1_1,
        "finding_sites": sites,
        "measurements": measurements or None,
        "qualitative_evaluations": evaluations,
    }
    # TID 1501 rather than TID 1410: TID 1410 allows a single image region for the group and
    # highdicom forbids per-measurement coordinates there, but each axis needs its own SCOORD
    # (TID 300 "INFERRED FROM"), as dcmjs/OHIF bidirectional measurements do.
    sources = None
    if lesion.image is not None:
        sources = [
            hd.sr.SourceImageForMeasurementGroup(
                lesion.image.sop_class_uid, lesion.image.sop_instance_uid, referenced_frame_numbers=lesion.image.frames
            )
        ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(source_images=sources, **common)


def _response_group(report: ReadReport, time_point: hd.sr.TimePointContext):
    evaluations = []
    for value, table, name in (
        (report.target_response, TARGET_RESPONSE_CODES, TARGET_RESPONSE),
        (report.non_target_response, NON_TARGET_RESPONSE_CODES, NON_TARGET_RESPONSE),
        (report.overall_response, OVERALL_RESPONSE_CODES, OVERALL_RESPONSE),
    ):
        if value is None:
            continue
        if value not in table:
            raise SRError(f"{name.meaning}: unknown response {value!r}")
        evaluations.append(hd.sr.QualitativeEvaluation(name, table[value]))
    if report.new_lesions is not None:
        if report.new_lesions not in NEW_LESION_CODES:
            raise SRError(f"{NEW_LESIONS.meaning}: unknown call {report.new_lesions!r}")
        evaluations.append(hd.sr.QualitativeEvaluation(NEW_LESIONS, NEW_LESION_CODES[report.new_lesions]))
    measurements = None
    if report.sum_of_diameters_mm is not None:
        m = hd.sr.Measurement(
            name=SUM_OF_DIAMETERS, value=float(report.sum_of_diameters_mm), unit=MM, method=RECIST_1_1
        )
        for item in m:
            if item.ValueType == "NUM":
                item.MeasuredValueSequence[0].NumericValue = DS(_ds_str(report.sum_of_diameters_mm))
        measurements = [m]
    if not evaluations and measurements is None:
        return None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=TIMEPOINT_RESPONSE_LABEL),
        time_point_context=time_point,
        method=RECIST_1_1,
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
    )


def _pn(name: str) -> str:
    """A display name such as "Reader 1" as a single-component PN ("Reader 1^")."""
    return name if "^" in name else name + "^"


def _da_tm(value: dt.datetime) -> tuple[str, str]:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S")


def _dt(value: dt.datetime) -> str:
    text = value.strftime("%Y%m%d%H%M%S")
    if value.utcoffset() is not None:
        text += value.strftime("%z")
    return text


def _tz(value: dt.datetime) -> str | None:
    """The TimezoneOffsetFromUTC ("+0000") of an aware time, None for a naive one."""
    return value.strftime("%z") if value.utcoffset() is not None else None


def _comprehensive_sr(report: ReadReport, evidence, content) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=content[0],
        series_instance_uid=report.series_uid,
        series_number=report.series_number,
        sop_instance_uid=report.sop_instance_uid,
        instance_number=report.instance_number,
        manufacturer="CTIMS",
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=_pn(report.verifying_observer_name),
        verifying_organization="CTIMS",
        series_description=(report.description or f"Read {report.timepoint_label} {report.reader_name}")[:64],
    )


def write_measurement_report(report: ReadReport, evidence: Sequence[pydicom.Dataset]) -> pydicom.Dataset:
    """Build the TID 1500 Comprehensive 3D SR for ``report``.

    ``evidence`` are the (headers of the) de-identified images the read refers to; the first
    provides patient and study attributes.  Every image referenced by a lesion must be in it.
    """
    if not evidence:
        raise SRError("evidence must contain at least one de-identified source image header")
    studies = {str(ds.StudyInstanceUID) for ds in evidence}
    if studies != {report.study_uid}:
        raise SRError(f"evidence must all belong to study {report.study_uid}, got {sorted(studies)}")
    known = {str(ds.SOPInstanceUID) for ds in evidence}
    for lesion in report.lesions:
        if lesion.image is None:
            if lesion.long_axis_points or lesion.short_axis_points:
                raise SRError(f"{lesion.tracking_label}: points without an image")
            continue
        if lesion.image.sop_instance_uid not in known:
            raise SRError(f"{lesion.tracking_label}: image {lesion.image.sop_instance_uid} not in evidence")
        if lesion.image.study_uid != report.study_uid:
            raise SRError(f"{lesion.tracking_label}: image belongs to another study")
    labels = [le.tracking_label for le in report.lesions]
    if len(set(labels)) != len(labels) or len({le.tracking_uid for le in report.lesions}) != len(labels):
        raise SRError("tracking labels and tracking UIDs must be unique within a report")
    if report.method != "RECIST 1.1":
        raise SRError(f"unsupported method {report.method!r}")

    time_point = hd.sr.TimePointContext(
        time_point=report.timepoint_label,
        time_point_type=BASELINE_TIME_POINT if report.timepoint_is_baseline else None,
        time_point_order=report.timepoint_order,
        protocol_time_point_identifier=report.timepoint_code,
    )
    groups = [_lesion_group(lesion, time_point) for lesion in report.lesions]
    response = _response_group(report, time_point)
    if response is not None:
        groups.append(response)

    observation_context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_pn(report.reader_name),
                role_in_procedure=ADJUDICATOR if report.observer_role == "adjudicator" else None,
            ),
        )
    )
    content = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    with warnings.catch_warnings():
        # highdicom warns about a single-component PatientName and quotes it: the pseudonym is one component
        # by design, and no name is ever written into a warning.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        sr = _comprehensive_sr(report, evidence, content)
    # Every date is the caller's: in the study's shifted timeline, so that no date tells the subject's offset
    # from the study date; times are real, with their offset from UTC.
    sr.VerifyingObserverSequence[0].VerificationDateTime = _dt(report.verification_datetime)
    sr.ContentDate, sr.ContentTime = _da_tm(report.content_datetime)
    sr.SeriesDate, sr.SeriesTime = sr.ContentDate, sr.ContentTime
    sr.InstanceCreationDate, sr.InstanceCreationTime = sr.ContentDate, sr.ContentTime
    if _tz(report.content_datetime):
        sr.TimezoneOffsetFromUTC = _tz(report.content_datetime)
    # De-identified source: keep accession number and referring physician empty.
    sr.AccessionNumber = ""
    sr.ReferringPhysicianName = ""
    _keep_pseudonym_only(sr)
    _claim_only_what_is_true(sr, report)
    scheme = pydicom.Dataset()
    scheme.CodingSchemeDesignator = LOCAL_SCHEME
    scheme.CodingSchemeName = LOCAL_SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = "CTIMS"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


# Identity attributes that may carry a value other than the pseudonym; the Patient module copy
# from the evidence must not bring them into the SR.
_OTHER_IDENTITY = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "IssuerOfPatientIDQualifiersSequence",
)


# Copied from the evidence by highdicom, these describe what was done to the images, not to this SR.
_EVIDENCE_ONLY = ("DeidentificationMethodCodeSequence", "ContributingEquipmentSequence")


def _claim_only_what_is_true(sr: pydicom.Dataset, report: ReadReport) -> None:
    """The SR says of its own de-identification only what is true of it: the patient is the pseudonym, and the
    dates are shifted if they are; no profile or option it was never put through, no equipment that never
    touched it."""
    for kw in _EVIDENCE_ONLY:
        if kw in sr:
            delattr(sr, kw)
    sr.PatientIdentityRemoved = "YES"
    sr.DeidentificationMethod = report.deidentification_method
    if report.dates_shifted:
        sr.LongitudinalTemporalInformationModified = "MODIFIED"
    elif "LongitudinalTemporalInformationModified" in sr:
        del sr.LongitudinalTemporalInformationModified


def _keep_pseudonym_only(sr: pydicom.Dataset) -> None:
    for kw in _OTHER_IDENTITY:
        if kw in sr:
            delattr(sr, kw)
    pseudonym = {"PatientName": str(sr.get("PatientName", "")), "PatientID": str(sr.get("PatientID", ""))}

    def check(ds: pydicom.Dataset) -> None:
        for elem in ds:
            if elem.keyword in pseudonym and str(elem.value) != pseudonym[elem.keyword]:
                raise SRError(f"{elem.keyword} other than the pseudonym found in the SR")
            if elem.VR == "SQ":
                for item in elem.value:
                    check(item)

    check(sr)


# --------------------------------------------------------------------------- parse


def _code_key(code) -> tuple[str, str]:
    return (str(code.scheme_designator), str(code.value))


def _reverse(table: dict) -> dict:
    return {_code_key(code): key for key, code in table.items()}


_CATEGORY_BY_CODE = _reverse(CATEGORY_CODES)
_STATUS_BY_CODE = _reverse(STATUS_CODES) | _reverse(LEGACY_STATUS_CODES)
_NON_TARGET_STATUS_BY_CODE = _reverse(NON_TARGET_STATUS_CODES)
_TARGET_BY_CODE = _reverse(TARGET_RESPONSE_CODES)
_NON_TARGET_BY_CODE = _reverse(NON_TARGET_RESPONSE_CODES)
_OVERALL_BY_CODE = _reverse(OVERALL_RESPONSE_CODES)
_BASELINE_BY_CODE = _reverse(BASELINE_CODES)
_NEW_LESIONS_BY_CODE = _reverse(NEW_LESION_CODES)


def _name_key(item) -> tuple[str, str]:
    c = item.ConceptNameCodeSequence[0]
    return (str(c.CodingSchemeDesignator), str(c.CodeValue))


def _walk(items):
    for item in items:
        yield item
        if "ContentSequence" in item:
            yield from _walk(item.ContentSequence)


def _find_text(items, name) -> str | None:
    for item in _walk(items):
        if item.get("ValueType") == "TEXT" and _name_key(item) == _code_key(name):
            return str(item.TextValue)
    return None


def _measurement_value(m: hd.sr.Measurement) -> Decimal:
    """The value as Decimal from the DS string itself (no float round trip)."""
    for item in m:
        if item.ValueType == "NUM":
            value = item.MeasuredValueSequence[0].NumericValue
            return Decimal(getattr(value, "original_string", None) or str(value))
    raise SRError("measurement without numeric value")


def _points(graphic_data) -> Segment:
    arr = np.asarray(graphic_data, dtype=float).reshape(-1, 2)
    if arr.shape != (2, 2):
        raise SRError(f"expected a two-point polyline, got {arr.shape[0]} points")
    return ((float(arr[0, 0]), float(arr[0, 1])), (float(arr[1, 0]), float(arr[1, 1])))


def _measurement_points(m: hd.sr.Measurement) -> tuple[Segment | None, str | None]:
    coords = m.referenced_coordinates
    if not coords:
        return None, None
    c = coords[0]
    return _points(c.value), str(c.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def _qualitative(group) -> dict[tuple[str, str], tuple[str, str]]:
    return {_code_key(q.name): _code_key(q.value) for q in group.get_qualitative_evaluations()}


def parse_measurement_report(dataset: pydicom.Dataset) -> ReadReport:
    """Parse an SR written by :func:`write_measurement_report` back into plain data."""
    sr = hd.sr.Comprehensive3DSR.from_dataset(dataset)
    content = sr.content

    # Where do referenced instances live (study/series), from the evidence sequences.
    image_index: dict[str, SourceImage] = {}
    for seq_name in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in dataset.get(seq_name, []):
            for series in study.ReferencedSeriesSequence:
                for inst in series.ReferencedSOPSequence:
                    image_index[str(inst.ReferencedSOPInstanceUID)] = SourceImage(
                        study_uid=str(study.StudyInstanceUID),
                        series_uid=str(series.SeriesInstanceUID),
                        sop_instance_uid=str(inst.ReferencedSOPInstanceUID),
                        sop_class_uid=str(inst.ReferencedSOPClassUID),
                    )

    def image_for(uid: str, sop_class: str) -> SourceImage:
        return image_index.get(uid) or SourceImage("", "", uid, sop_class)

    reader_name = observer_role = None
    observers = content.get_observer_contexts(observer_type=codes.DCM.Person)
    if observers:
        attributes = observers[0].observer_identifying_attributes
        reader_name = str(attributes.name).rstrip("^")
        role = attributes.role_in_procedure
        if role is not None and _code_key(role) == _code_key(ADJUDICATOR):
            observer_role = "adjudicator"
    timepoint_code = timepoint_order = None
    timepoint_is_baseline = False
    for item in _walk(dataset.ContentSequence):
        key = _name_key(item) if "ConceptNameCodeSequence" in item else None
        if key == _code_key(codes.DCM.ProtocolTimePointIdentifier) and timepoint_code is None:
            timepoint_code = str(item.TextValue)
        elif key == _code_key(codes.DCM.TimePointOrder) and timepoint_order is None:
            timepoint_order = int(item.MeasuredValueSequence[0].NumericValue)
        elif key == _code_key(codes.DCM.TimePointType):
            code = item.ConceptCodeSequence[0]
            timepoint_is_baseline = (str(code.CodingSchemeDesignator), str(code.CodeValue)) == _code_key(
                BASELINE_TIME_POINT
            )

    lesions: list[LesionMeasurement] = []
    target = non_target = overall = new_lesions = None
    sum_mm = None
    timepoint = None

    groups = list(content.get_planar_roi_measurement_groups()) + list(content.get_image_measurement_groups())
    for group in groups:
        label = str(group.tracking_identifier)
        if timepoint is None:
            timepoint = _find_text(group[0].ContentSequence, TIME_POINT)
        qual = _qualitative(group)
        if label == TIMEPOINT_RESPONSE_LABEL:
            target = _TARGET_BY_CODE.get(qual.get(_code_key(TARGET_RESPONSE)))
            non_target = _NON_TARGET_BY_CODE.get(qual.get(_code_key(NON_TARGET_RESPONSE)))
            overall = _OVERALL_BY_CODE.get(
                qual.get(_code_key(OVERALL_RESPONSE)) or qual.get(_code_key(OVERALL_RESPONSE_LOCAL))
            )
            new_lesions = _NEW_LESIONS_BY_CODE.get(qual.get(_code_key(NEW_LESIONS)))
            for m in group.get_measurements(name=SUM_OF_DIAMETERS):
                sum_mm = _measurement_value(m)
            continue

        category = _BASELINE_BY_CODE.get(qual.get(_code_key(BASELINE_CATEGORY)))
        if category is None:
            category = _CATEGORY_BY_CODE.get(qual.get(_code_key(LESION_CATEGORY)))
        status = _STATUS_BY_CODE.get(qual.get(_code_key(LESION_STATUS)))
        if status is None and category == "target":
            status = "measured"
        non_target_status = _NON_TARGET_STATUS_BY_CODE.get(qual.get(_code_key(NON_TARGET_STATUS)))
        if non_target_status is None:  # SRs written before 2026-12 carry it as text
            non_target_status = _find_text(group[0].ContentSequence, NON_TARGET_STATUS)
        sites = group.finding_sites
        site = (str(sites[0].value.value), str(sites[0].value.meaning)) if sites else ("", "")
        finding_type = group.finding_type
        is_node = finding_type is not None and _code_key(finding_type) in (
            _code_key(LYMPHADENOPATHY),
            _code_key(LYMPH_NODE),
        )

        ref_uid = ref_class = ref = None
        long_pts = short_pts = None
        if isinstance(group, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations):
            roi = group.roi
            ref = roi.ContentSequence[0].ReferencedSOPSequence[0]
            ref_uid, ref_class = str(ref.ReferencedSOPInstanceUID), str(ref.ReferencedSOPClassUID)
            long_pts = _points(roi.value)
        else:
            for item in group[0].ContentSequence:
                if item.get("ValueType") == "IMAGE":
                    ref = item.ReferencedSOPSequence[0]
                    ref_uid, ref_class = str(ref.ReferencedSOPInstanceUID), str(ref.ReferencedSOPClassUID)
                    break
        frames = ref.get("ReferencedFrameNumber") if ref is not None else None
        if frames is not None and not isinstance(frames, list | pydicom.multival.MultiValue):
            frames = [frames]
        frame = int(frames[0]) if frames else None

        long_mm = short_mm = None
        for m in group.get_measurements(name=LONG_AXIS):
            long_mm = _measurement_value(m)
            pts, uid = _measurement_points(m)
            if pts is not None:
                long_pts = pts
                ref_uid = ref_uid or uid
        for m in group.get_measurements(name=SHORT_AXIS):
            short_mm = _measurement_value(m)
            pts, uid = _measurement_points(m)
            if pts is not None:
                short_pts = pts
                ref_uid = ref_uid or uid
                if ref_uid != uid:
                    raise SRError(f"{label}: short axis on another image than the long axis")

        lesions.append(
            LesionMeasurement(
                tracking_uid=str(group.tracking_uid),
                tracking_label=label,
                category=category,
                finding_site=site,
                image=replace(image_for(ref_uid, ref_class), frame=frame) if ref_uid else None,
                is_node=is_node,
                long_axis_mm=long_mm,
                short_axis_mm=short_mm,
                long_axis_points=long_pts,
                short_axis_points=short_pts,
                status=status,
                non_target_status=non_target_status,
            )
        )

    verifier = dataset.VerifyingObserverSequence[0] if "VerifyingObserverSequence" in dataset else None
    return ReadReport(
        study_uid=str(dataset.StudyInstanceUID),
        series_uid=str(dataset.SeriesInstanceUID),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        series_number=int(dataset.SeriesNumber),
        instance_number=int(dataset.InstanceNumber),
        reader_name=reader_name,
        verifying_observer_name=str(verifier.VerifyingObserverName) if verifier else None,
        verification_datetime=_parse_dt(verifier.VerificationDateTime) if verifier else None,
        content_datetime=_parse_dt(
            f"{dataset.ContentDate}{str(dataset.ContentTime)[:6]}{dataset.get('TimezoneOffsetFromUTC', '')}"
        ),
        timepoint_label=timepoint,
        timepoint_code=timepoint_code,
        timepoint_order=timepoint_order,
        timepoint_is_baseline=timepoint_is_baseline,
        observer_role=observer_role,
        lesions=lesions,
        target_response=target,
        non_target_response=non_target,
        overall_response=overall,
        sum_of_diameters_mm=sum_mm,
        new_lesions=new_lesions,
        patient_id=str(dataset.get("PatientID", "")),
        patient_name=str(dataset.get("PatientName", "")),
    )


def _parse_dt(value) -> dt.datetime:
    text = str(value)
    if len(text) > 14 and text[14] in "+-":
        return dt.datetime.strptime(text, "%Y%m%d%H%M%S%z")
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
