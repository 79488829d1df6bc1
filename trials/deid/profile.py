"""The PS3.15 Annex E table (kept as data) compiled into one action per tag for a trial's options."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType

from pydicom.datadict import DicomDictionary, repeater_has_tag

from .options import DeidOptions

PROFILE_EDITION = "2024b"
TABLE_PATH = Path(__file__).with_name(f"annex_e_{PROFILE_EDITION}.json")

# Effective actions. Annex E's letters, plus S (shift a date by the subject's offset) and P (the subject
# code, for the attributes that name the patient).
REMOVE, EMPTY, DUMMY, KEEP, CLEAN, UID, SHIFT, PSEUDONYM = "X", "Z", "D", "K", "C", "U", "S", "P"

# Combined actions (X/Z, X/D, Z/D, X/Z/D) depend on the attribute's Type in the IOD. We only accept CT and
# MR image storage (classic, Enhanced and Legacy Converted Enhanced), so the choice is made for those IODs:
# Z where one of them requires the attribute as Type 2, D where one requires it as Type 1 (the dummy keeps
# the object valid), X otherwise; a Z/D row with neither falls back to Z. X/Z/U* (Referenced/Source Image
# Sequence) keeps the sequence: its UIDs are remapped like every UID, so references stay consistent.
_TYPE2_IN_CT_MR = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "AccessionNumber",
        "StudyID",
        "ContrastBolusAgent",  # Contrast/Bolus module
        "AcquisitionContextSequence",  # Acquisition Context module of Enhanced CT/MR
    }
)
_TYPE1_IN_CT_MR = frozenset(
    {
        "ContentDate",  # Multi-frame Functional Groups module
        "ContentTime",
        "AcquisitionDateTime",  # Enhanced CT/MR Image modules (1C, original images)
        "DeviceSerialNumber",  # Enhanced General Equipment module
    }
)
# Attributes that name the patient take the trial's subject code rather than an empty or dummy value.
_PSEUDONYM_KEYWORDS = frozenset({"PatientName", "PatientID", "ClinicalTrialSubjectID"})

# Rows whose values are removed because they *may* hold something identifying (descriptions) or are patient
# characteristics. Their values are not searched for in the output: a series description or an ethnic
# group legitimately reappears in kept text (code meanings, protocol names) and is not an identifier.
_NOT_SEARCHED_COLUMNS = ("cleanDescOpt", "rtnPatCharsOpt")
_SEARCHED_ACTIONS = frozenset({REMOVE, EMPTY, DUMMY, SHIFT, PSEUDONYM})

# Attributes whose purpose is free text about the patient (history, comments, occupation, alerts): cleaning
# cannot know what in them is identifying ("lives with daughter LEE SOYEON"), so they are removed whatever
# the options, unless the trial keeps them by name (DeidOptions.kept_text_attributes); then they are cleaned.
IDENTIFYING_TEXT = frozenset(
    {
        "PatientComments",
        "Occupation",
        "IdentifyingComments",
        "MedicalAlerts",
        "AdditionalPatientHistory",
        "Allergies",
        "PatientState",
        "SpecialNeeds",
        "AdmittingDiagnosesDescription",
        "ReasonForVisit",
        "ReasonForStudy",
        "ReasonForTheRequestedProcedure",
        "ReasonForTheImagingServiceRequest",
        "ImagingServiceRequestComments",
        "RequestedProcedureComments",
        "VisitComments",
        "PatientReligiousPreference",
        "InterpretationText",
        "ServiceEpisodeDescription",
        "TextComments",
        "CommentsOnThePerformedProcedureStep",
    }
)

CURVE_GROUP_PATTERN = "(50XX,XXXX)"
OVERLAY_PATTERNS = ("(60XX,3000)", "(60XX,4000)")
PRIVATE_PATTERN_PREFIX = "(GGGG,EEEE)"


@dataclass(frozen=True)
class Row:
    """One row of the Annex E table."""

    tag: str
    name: str
    basic: str
    options: Mapping[str, str]


@dataclass(frozen=True)
class TagRule:
    """What to do with one tag, and whether its input value is searched for in the output."""

    action: str
    fallback: str
    searched: bool
    vr: str
    keyword: str


@dataclass(frozen=True)
class CompiledProfile:
    """The table for one set of options: exact tags, repeating groups and private tags."""

    rules: Mapping[int, TagRule]
    curve_action: str
    overlay_action: str
    private_action: str
    rows_covered: int


def defined_by_dicom(tag: int) -> bool:
    """Whether DICOM defines the public element `tag` (in its data dictionary, or a repeating group's): one it does
    not define (a damaged tag, a public group used as a private one) says nothing of what it holds, so it is
    removed, and a de-identified file may not keep one. Not cached: the tags come from the files received."""
    return tag in DicomDictionary or repeater_has_tag(tag)


@cache
def profile_rows() -> tuple[Row, ...]:
    """The Annex E rows of PROFILE_EDITION, as published."""
    with TABLE_PATH.open(encoding="utf-8") as f:
        data = json.load(f)
    return tuple(
        Row(
            tag=row["tag"],
            name=row["name"],
            basic=row["basicProfile"],
            options=MappingProxyType({k: v for k, v in row.items() if k.endswith("Opt") and v}),
        )
        for row in data
    )


def parse_tag(text: str) -> int | None:
    """``(gggg,eeee)`` as an int, or None for a pattern with XX or GGGG."""
    digits = text[1:5] + text[6:10]
    try:
        return int(digits, 16)
    except ValueError:
        return None


def _basic_action(keyword: str, basic: str) -> str:
    if "/" not in basic:
        return basic
    choices = basic.split("/")
    if "U*" in choices:
        return KEEP
    if keyword in _TYPE2_IN_CT_MR and "Z" in choices:
        return EMPTY
    if keyword in _TYPE1_IN_CT_MR and "D" in choices:
        return DUMMY
    if "X" in choices:
        return REMOVE
    return EMPTY


def resolve_action(row: Row, keyword: str, options: DeidOptions) -> str:
    """The action for `row` under `options`, before the subject-code override."""
    opts = row.options
    if keyword in IDENTIFYING_TEXT:
        return CLEAN if keyword in options.kept_text_attributes else REMOVE
    if "rtnLongModifDatesOpt" in opts:
        # Temporal rows follow the temporal option only: retaining device identity or patient
        # characteristics must not bring back a real calibration date next to shifted study dates.
        if options.retain_longitudinal_modified_dates:
            return SHIFT
        return _basic_action(keyword, row.basic)
    if options.retain_device_identity and opts.get("rtnDevIdOpt") in (KEEP, CLEAN):
        return opts["rtnDevIdOpt"]
    if options.retain_patient_characteristics and opts.get("rtnPatCharsOpt") in (KEEP, CLEAN):
        return opts["rtnPatCharsOpt"]
    if options.clean_descriptors and opts.get("cleanDescOpt") == CLEAN:
        return CLEAN
    return _basic_action(keyword, row.basic)


@lru_cache(maxsize=32)
def compile_profile(options: DeidOptions) -> CompiledProfile:
    """One rule per tag of the table for `options`; repeating groups and private tags as group rules."""
    rules: dict[int, TagRule] = {}
    covered = 0
    curve = overlay = private = None
    for row in profile_rows():
        tag = parse_tag(row.tag)
        if tag is None:
            if row.tag == CURVE_GROUP_PATTERN:
                curve = _basic_action("", row.basic)
            elif row.tag in OVERLAY_PATTERNS:
                overlay = _basic_action("", row.basic)
            elif row.tag.startswith(PRIVATE_PATTERN_PREFIX):
                # Retain Safe Private is realised as the trial's explicit safelist, checked per element.
                private = _basic_action("", row.basic)
            else:
                raise ValueError(f"unexpected pattern in the Annex E table: {row.tag}")
            covered += 1
            continue
        entry = DicomDictionary.get(tag)
        vr, keyword = (entry[0], entry[4]) if entry else ("UN", "")
        action = resolve_action(row, keyword, options)
        if keyword in _PSEUDONYM_KEYWORDS:
            action = PSEUDONYM
        searched = action in _SEARCHED_ACTIONS and not any(c in row.options for c in _NOT_SEARCHED_COLUMNS)
        # The basic action stands in where the chosen one cannot apply to the value: shifting a binary
        # timestamp, cleaning binary data.
        fallback = _basic_action(keyword, row.basic)
        rules[tag] = TagRule(action=action, fallback=fallback, searched=searched, vr=vr, keyword=keyword or row.name)
        covered += 1
    if curve is None or overlay is None or private is None:
        raise ValueError("the Annex E table lacks its curve, overlay or private rows")
    return CompiledProfile(
        rules=MappingProxyType(rules),
        curve_action=curve,
        overlay_action=overlay,
        private_action=private,
        rows_covered=covered,
    )
