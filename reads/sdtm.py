"""CDISC SDTM TU, TR and RS from a trial's locked reads: plain data in, datasets out. No Django.

The datasets follow the SDTM oncology domains of SDTMIG 3.2 (TU, TR, RS) and the CDISC therapeutic
area user guide's RECIST 1.1 conventions:

- TU identifies each lesion once per evaluator, at the visit it was first recorded (TUTESTCD TUMIDENT, TUORRES
  TARGET / NON-TARGET / NEW); TULNKID is the lesion's label, the same in TR (TRLNKID), so within one subject and
  evaluator (TUEVALID / TREVALID) a lesion's identification and its measurements link. TUREFID carries the
  lesion's tracking UID, as in the evaluator's DICOM SR.
- TR holds each evaluator's measurements per visit: TRTESTCD LDIAM (longest diameter) for a non-nodal target,
  LPERP (longest perpendicular, the short axis) for a nodal one, TUMSTATE for non-target and new lesions, and
  SUMDIAM, the sum of diameters. Lengths are millimetres with their tenth, in TRORRES, TRSTRESC and TRSTRESN
  alike ("23.0", 23.0). A lesion "too small to measure" has TRORRES "TOO SMALL TO MEASURE" and the standard
  result 5.0 mm (RECIST 1.1 section 3.2.2's default); one that disappeared measures 0.0 mm.
- RS holds each evaluator's responses per follow-up visit (TRGRESP, NTRGRESP, NEWLPROG, OVRLRESP) and the best
  overall response per subject (BESTRESP). RSACPTFL = "Y" marks the assessment that stands (the accepted one).
- --EVAL is "INDEPENDENT ASSESSOR"; --EVALID is "RADIOLOGIST 1", "RADIOLOGIST 2" or "ADJUDICATOR". A reader who
  took over a case from a reader retired from it after signing is an evaluator of their own, "RADIOLOGIST 3" (then
  4, ...): the retired reader's records keep their identifier, so each EVALID is one reader's series throughout.
- --DY is the study day counted from the subject's baseline scan (day 1). --DTC is the scan date only when the
  trial delivers real dates; otherwise it is empty.

SAS transport version 5 has limits that the writer (pyreadstat) does not check: variable names of at most 8
characters, labels of at most 40, character values of at most 200 bytes, and ASCII text. `check_dataset` checks
them and `xport_bytes` refuses a dataset that breaks one.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime

from ctims import safe_csv

from .criteria.recist11 import TOO_SMALL_DEFAULT

ASSESSOR = "INDEPENDENT ASSESSOR"
ADJUDICATOR = 0  # the adjudicator's evaluator number; readers are 1, 2 and, after a replacement, 3, 4, ...
EVALUATORS = {1: "RADIOLOGIST 1", 2: "RADIOLOGIST 2", ADJUDICATOR: "ADJUDICATOR"}  # the EVALID code list's own


def evaluator_id(evaluator: int) -> str:
    """--EVALID of an evaluator number."""
    return EVALUATORS.get(evaluator) or f"RADIOLOGIST {evaluator}"


CATEGORY = "RECIST 1.1"
TOO_SMALL = "TOO SMALL TO MEASURE"
TOO_SMALL_TENTHS = TOO_SMALL_DEFAULT  # RECIST 1.1 section 3.2.2: a lesion too small to measure counts 5 mm
NOT_EVALUABLE = "NOT EVALUABLE"
# The engine's response codes as the RECIST supplement writes them.
RESPONSES = {"CR": "CR", "PR": "PR", "SD": "SD", "PD": "PD", "NE": "NE", "NON_CR_NON_PD": "NON-CR/NON-PD"}
RESPONSES_NOT_APPLICABLE = "NA"
NEW_LESION_PROGRESSION = {"NONE": "N", "EQUIVOCAL": "EQUIVOCAL", "UNEQUIVOCAL": "Y"}
TUMOUR_STATES = {
    "present": "PRESENT",
    "absent": "ABSENT",
    "unequivocal_progression": "UNEQUIVOCAL PROGRESSION",
}
ROLE_OF_CATEGORY = {"target": "TARGET", "non_target": "NON-TARGET", "new": "NEW"}
RS_TESTS = {
    "TRGRESP": "Target Response",
    "NTRGRESP": "Non-target Response",
    "NEWLPROG": "New Lesion Progression",
    "OVRLRESP": "Overall Response",
    "BESTRESP": "Best Overall Response",
}
TR_TESTS = {
    "LDIAM": "Longest Diameter",
    "LPERP": "Longest Perpendicular",
    "SUMDIAM": "Sum of Diameter",
    "TUMSTATE": "Tumor State",
}

MAX_NAME, MAX_LABEL, MAX_VALUE_BYTES = 8, 40, 200
# What the readers recorded reaches the sponsor by electronic data transfer: Define-XML 2.0's origin "eDT" (2.1
# calls it "Collected", which 2.0 does not know).
EDT = "eDT"
NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


# --- what goes in ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitRef:
    code: str
    label: str  # what people see, in any language (the plain tables)
    number: int
    name: str = ""  # SDTM VISIT, the protocol's visit name in ASCII (the code when empty)


@dataclass(frozen=True)
class LesionObservation:
    """One lesion as one evaluator recorded it at one visit (lengths in tenths of a millimetre)."""

    label: str
    tracking_uid: str
    category: str  # target | non_target | new
    location: str
    is_node: bool
    status: str  # measured | too_small | disappeared | not_evaluable | present | absent | ...
    long_axis: int | None = None
    short_axis: int | None = None
    identified_here: bool = False  # the visit where the evaluator first recorded the lesion
    method: str = ""  # how the image it was drawn on was made (CT SCAN, MRI); empty: the visit's method


@dataclass(frozen=True)
class VisitAssessment:
    """One evaluator's assessment of one visit. An adjudicator's carries no lesions: it names the reader chosen."""

    subject: str
    visit: VisitRef
    evaluator: int  # the reader's evaluator number (1, 2, 3, ...) or ADJUDICATOR
    accepted: bool
    baseline: bool
    study_day: int | None
    scan_date: date | None  # real date, only when the trial delivers them
    method: str
    target_response: str = ""
    non_target_response: str = ""
    new_lesions: str = ""
    overall_response: str = ""
    sum_of_diameters: int | None = None  # tenths of a millimetre
    lesions: tuple[LesionObservation, ...] = ()


@dataclass(frozen=True)
class SubjectEndpoint:
    """One evaluator's best overall response for a subject."""

    subject: str
    evaluator: int
    accepted: bool
    best_response: str


@dataclass(frozen=True)
class Delivery:
    study_id: str
    assessments: tuple[VisitAssessment, ...]
    endpoints: tuple[SubjectEndpoint, ...] = ()


# --- dataset descriptions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    type: str  # text | integer | float | date (ISO 8601 text)
    origin: str = "Assigned"  # Define-XML 2.0 def:Origin Type: CRF, Derived, Assigned, Protocol, eDT or Predecessor
    codelist: str | None = None
    method: str | None = None
    mandatory: bool = False
    origin_description: str | None = None  # Define-XML def:Origin Description

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "float")


@dataclass(frozen=True)
class Domain:
    name: str
    label: str
    structure: str
    keys: tuple[str, ...]
    variables: tuple[Variable, ...]

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)


def _common_head(prefix: str) -> tuple[Variable, ...]:
    return (
        Variable("STUDYID", "Study Identifier", "text", mandatory=True),
        Variable("DOMAIN", "Domain Abbreviation", "text", codelist="DOMAIN", mandatory=True),
        Variable("USUBJID", "Unique Subject Identifier", "text", mandatory=True),
        Variable(f"{prefix}SEQ", "Sequence Number", "integer", origin="Derived", method="SEQ", mandatory=True),
    )


def _common_tail(prefix: str, what: str) -> tuple[Variable, ...]:
    return (
        Variable(f"{prefix}EVAL", "Evaluator", "text", codelist="EVAL"),
        Variable(f"{prefix}EVALID", "Evaluator Identifier", "text", codelist="EVALID"),
        Variable(f"{prefix}ACPTFL", "Accepted Record Flag", "text", origin="Derived", codelist="NY", method="ACPTFL"),
        Variable("VISITNUM", "Visit Number", "float"),
        Variable(
            "VISIT",
            "Visit Name",
            "text",
            origin="Protocol",
            origin_description=(
                "The SDTM visit name of the protocol's visit as set in the trial schedule (ASCII): the visit label "
                "when it is ASCII, else the visit code, unless the trial admin named it."
            ),
        ),
        Variable(f"{prefix}DTC", f"Date/Time of {what}", "date", origin=EDT),
        Variable(f"{prefix}DY", f"Study Day of {what}", "integer", origin="Derived", method="DY"),
    )


TU = Domain(
    "TU",
    "Tumor Identification",
    "One record per identified tumor per subject per evaluator",
    ("STUDYID", "USUBJID", "TUEVALID", "TULNKID"),
    _common_head("TU")
    + (
        Variable("TUREFID", "Reference ID", "text"),
        Variable("TULNKID", "Link ID", "text", mandatory=True),
        Variable("TUTESTCD", "Tumor Identification Short Name", "text", codelist="TUTESTCD", mandatory=True),
        Variable("TUTEST", "Tumor Identification Test Name", "text", codelist="TUTEST", mandatory=True),
        Variable("TUORRES", "Tumor Identification Result", "text", origin=EDT, codelist="TUORRES"),
        Variable("TUSTRESC", "Tumor Identification Result Std. Format", "text", codelist="TUORRES"),
        Variable("TULOC", "Location of the Tumor", "text", origin=EDT),
        Variable("TUMETHOD", "Method of Identification", "text", codelist="METHOD"),
    )
    + _common_tail("TU", "Tumor Identification"),
)

TR = Domain(
    "TR",
    "Tumor Results",
    "One record per tumor measurement/assessment per visit per subject per evaluator",
    ("STUDYID", "USUBJID", "TREVALID", "VISITNUM", "TRLNKID", "TRTESTCD"),
    _common_head("TR")
    + (
        Variable("TRGRPID", "Group ID", "text", codelist="TRGRPID"),
        Variable("TRREFID", "Reference ID", "text"),
        Variable("TRLNKGRP", "Link Group ID", "text"),
        Variable("TRLNKID", "Link ID", "text"),
        Variable("TRTESTCD", "Tumor Assessment Short Name", "text", codelist="TRTESTCD", mandatory=True),
        Variable("TRTEST", "Tumor Assessment Test Name", "text", codelist="TRTEST", mandatory=True),
        Variable("TRORRES", "Result or Finding in Original Units", "text", origin=EDT),
        Variable("TRORRESU", "Original Units", "text", codelist="UNIT"),
        Variable("TRSTRESC", "Character Result/Finding in Std Format", "text", origin="Derived", method="STRES"),
        Variable("TRSTRESN", "Numeric Result/Finding in Standard Units", "float", origin="Derived", method="STRES"),
        Variable("TRSTRESU", "Standard Units", "text", codelist="UNIT"),
        Variable("TRSTAT", "Completion Status", "text", codelist="ND"),
        Variable("TRREASND", "Reason Not Done", "text"),
        Variable("TRMETHOD", "Method Used to Identify the Tumor", "text", codelist="METHOD"),
    )
    + _common_tail("TR", "Tumor Measurement"),
)

RS = Domain(
    "RS",
    "Disease Response",
    "One record per response assessment per visit per subject per evaluator",
    ("STUDYID", "USUBJID", "RSEVALID", "VISITNUM", "RSTESTCD"),
    _common_head("RS")
    + (
        Variable("RSLNKGRP", "Link Group ID", "text"),
        Variable("RSTESTCD", "Response Assessment Short Name", "text", codelist="RSTESTCD", mandatory=True),
        Variable("RSTEST", "Response Assessment Name", "text", codelist="RSTEST", mandatory=True),
        Variable("RSCAT", "Category for Response Assessment", "text", codelist="RSCAT"),
        Variable("RSORRES", "Response Assessment Original Result", "text", origin="Derived", method="RESPONSE"),
        Variable("RSSTRESC", "Response Assessment Result in Std Format", "text", codelist="RESPONSE"),
    )
    + _common_tail("RS", "Response Assessment"),
)

DOMAINS = (TU, TR, RS)

# Code lists: name -> (data type, {coded value: decode or None}).
CODELISTS: dict[str, tuple[str, dict[str, str | None]]] = {
    "DOMAIN": ("text", {"TU": "Tumor Identification", "TR": "Tumor Results", "RS": "Disease Response"}),
    "EVAL": ("text", {ASSESSOR: None}),
    "EVALID": ("text", dict.fromkeys(EVALUATORS.values())),
    "NY": ("text", {"Y": "Yes"}),
    "TUTESTCD": ("text", {"TUMIDENT": "Tumor Identification"}),
    "TUTEST": ("text", {"Tumor Identification": None}),
    "TUORRES": ("text", dict.fromkeys(ROLE_OF_CATEGORY.values())),
    "TRGRPID": ("text", dict.fromkeys(ROLE_OF_CATEGORY.values())),
    "METHOD": ("text", {"CT SCAN": None, "MRI": None}),
    "TRTESTCD": ("text", dict(TR_TESTS)),
    "TRTEST": ("text", dict.fromkeys(TR_TESTS.values())),
    "UNIT": ("text", {"mm": "Millimeter"}),
    "ND": ("text", {"NOT DONE": None}),
    "RSTESTCD": ("text", dict(RS_TESTS)),
    "RSTEST": ("text", dict.fromkeys(RS_TESTS.values())),
    "RSCAT": ("text", {CATEGORY: None}),
    "RESPONSE": (
        "text",
        {
            **dict.fromkeys(RESPONSES.values()),
            RESPONSES_NOT_APPLICABLE: "Not applicable",
            "Y": "New lesion progression",
            "N": "No new lesion",
            "EQUIVOCAL": "Equivocal new lesion",
        },
    ),
}

# Code lists that grow with the data: a reader who took over a case is delivered as "RADIOLOGIST 3" (4, ...), and
# define.xml lists every evaluator identifier the datasets hold.
GROWING_CODELISTS = {"EVALID"}


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def codelist(name: str, sets: list[Dataset]) -> tuple[str, dict[str, str | None]]:
    """A code list as define.xml describes it for `sets`: its own values, and for a growing one the values the
    datasets also hold, in natural order ("RADIOLOGIST 3" before "RADIOLOGIST 10")."""
    data_type, values = CODELISTS[name]
    if name not in GROWING_CODELISTS:
        return data_type, values
    held = {
        str(value)
        for dataset in sets
        for variable in dataset.domain.variables
        if variable.codelist == name
        for value in dataset.column(variable.name)
        if value not in (None, "")
    }
    return data_type, values | dict.fromkeys(sorted(held - set(values), key=_natural))


METHODS = {
    "SEQ": "Numbered from 1 within each subject after sorting the dataset by its keys.",
    "DY": "Days from the subject's baseline scan to this scan, plus 1 on or after the baseline scan (no day 0).",
    "ACPTFL": "Y on the records of the assessment that stands: the readers' agreement or the adjudicator's choice.",
    "STRES": (
        "The length in millimetres with one decimal (TRSTRESC the text of TRSTRESN): a measured lesion's and the sum's "
        "as measured, a lesion TOO SMALL TO MEASURE 5.0 (RECIST 1.1 section 3.2.2), one that disappeared 0.0."
    ),
    "RESPONSE": "Computed by the RECIST 1.1 engine from the evaluator's measurements and signed by the evaluator.",
}


# --- building rows ---------------------------------------------------------------------------------------


def mm(tenths: int) -> str:
    """Tenths of a millimetre as millimetre text with its tenth ("14.0")."""
    return f"{tenths // 10}.{tenths % 10}"


def _base(a: VisitAssessment, domain: str, study_id: str, prefix: str) -> dict:
    return {
        "STUDYID": study_id,
        "DOMAIN": domain,
        "USUBJID": a.subject,
        f"{prefix}EVAL": ASSESSOR,
        f"{prefix}EVALID": evaluator_id(a.evaluator),
        f"{prefix}ACPTFL": "Y" if a.accepted else "",
        "VISITNUM": float(a.visit.number),
        "VISIT": (a.visit.name or a.visit.code).upper(),
        f"{prefix}DTC": a.scan_date.isoformat() if a.scan_date else "",
        f"{prefix}DY": a.study_day,
    }


def tu_rows(delivery: Delivery) -> list[dict]:
    rows = []
    for a in delivery.assessments:
        for lesion in a.lesions:
            if not lesion.identified_here:
                continue
            role = ROLE_OF_CATEGORY[lesion.category]
            rows.append(
                _base(a, "TU", delivery.study_id, "TU")
                | {
                    "TUREFID": lesion.tracking_uid,
                    "TULNKID": lesion.label,
                    "TUTESTCD": "TUMIDENT",
                    "TUTEST": "Tumor Identification",
                    "TUORRES": role,
                    "TUSTRESC": role,
                    "TULOC": lesion.location.upper(),
                    "TUMETHOD": lesion.method or a.method,
                }
            )
    return rows


def _target_result(lesion: LesionObservation) -> dict:
    axis = lesion.short_axis if lesion.is_node else lesion.long_axis
    if lesion.status == "measured" and axis is not None:
        return {"TRORRES": mm(axis), "TRORRESU": "mm"} | _standard_mm(axis)
    if lesion.status == "too_small":
        return {"TRORRES": TOO_SMALL} | _standard_mm(TOO_SMALL_TENTHS)
    if lesion.status == "disappeared":
        return {"TRORRES": mm(0), "TRORRESU": "mm"} | _standard_mm(0)
    return {"TRSTAT": "NOT DONE", "TRREASND": NOT_EVALUABLE}


def _standard_mm(tenths: int) -> dict:
    """A length's standard result: TRSTRESN in millimetres, and TRSTRESC the same number as text, written as every
    length of the datasets is, with its tenth ("23.0", "5.0", "0.0"): SDTMIG 3.2 4.5.1, TRSTRESC is the
    character form of TRSTRESN, so one value never reads "5" beside another's "23.0"."""
    return {"TRSTRESC": mm(tenths), "TRSTRESN": tenths / 10, "TRSTRESU": "mm"}


def _state_result(lesion: LesionObservation, new_lesions: str) -> dict:
    if lesion.category == "new":
        state = "EQUIVOCAL" if new_lesions == "EQUIVOCAL" else "PRESENT"
        return {"TRORRES": state, "TRSTRESC": state}
    if lesion.status == "not_evaluable":
        return {"TRSTAT": "NOT DONE", "TRREASND": NOT_EVALUABLE}
    state = TUMOUR_STATES[lesion.status]
    return {"TRORRES": state, "TRSTRESC": state}


def _link_group(a: VisitAssessment) -> str:
    return f"{a.visit.code}-{'A' if a.evaluator == ADJUDICATOR else f'R{a.evaluator}'}"


def tr_rows(delivery: Delivery) -> list[dict]:
    rows = []
    for a in delivery.assessments:
        if not a.lesions:
            continue
        base = _base(a, "TR", delivery.study_id, "TR") | {"TRMETHOD": a.method, "TRLNKGRP": _link_group(a)}
        for lesion in a.lesions:
            row = base | {
                "TRGRPID": ROLE_OF_CATEGORY[lesion.category],
                "TRREFID": lesion.tracking_uid,
                "TRLNKID": lesion.label,
                "TRMETHOD": lesion.method or a.method,
            }
            if lesion.category == "target":
                code = "LPERP" if lesion.is_node else "LDIAM"
                rows.append(row | {"TRTESTCD": code, "TRTEST": TR_TESTS[code]} | _target_result(lesion))
            else:
                rows.append(
                    row
                    | {"TRTESTCD": "TUMSTATE", "TRTEST": TR_TESTS["TUMSTATE"]}
                    | _state_result(lesion, a.new_lesions)
                )
        if a.sum_of_diameters is not None:
            total = a.sum_of_diameters
            rows.append(
                base
                | {
                    "TRGRPID": "TARGET",
                    "TRTESTCD": "SUMDIAM",
                    "TRTEST": TR_TESTS["SUMDIAM"],
                    "TRORRES": mm(total),
                    "TRORRESU": "mm",
                }
                | _standard_mm(total)
            )
    return rows


def _response(code: str) -> str:
    if not code:
        return ""
    return RESPONSES.get(code, RESPONSES_NOT_APPLICABLE)


def rs_rows(delivery: Delivery) -> list[dict]:
    rows = []
    for a in delivery.assessments:
        if a.baseline:
            continue
        base = _base(a, "RS", delivery.study_id, "RS") | {"RSLNKGRP": _link_group(a), "RSCAT": CATEGORY}
        if a.evaluator == ADJUDICATOR:
            results = {"OVRLRESP": _response(a.overall_response)}
        else:
            results = {
                "TRGRESP": _response(a.target_response),
                "NTRGRESP": _response(a.non_target_response),
                "NEWLPROG": NEW_LESION_PROGRESSION.get(a.new_lesions, ""),
                "OVRLRESP": _response(a.overall_response),
            }
        for code, value in results.items():
            rows.append(base | {"RSTESTCD": code, "RSTEST": RS_TESTS[code], "RSORRES": value, "RSSTRESC": value})
    for e in delivery.endpoints:
        value = _response(e.best_response)
        rows.append(
            {
                "STUDYID": delivery.study_id,
                "DOMAIN": "RS",
                "USUBJID": e.subject,
                "RSTESTCD": "BESTRESP",
                "RSTEST": RS_TESTS["BESTRESP"],
                "RSCAT": CATEGORY,
                "RSORRES": value,
                "RSSTRESC": value,
                "RSEVAL": ASSESSOR,
                "RSEVALID": evaluator_id(e.evaluator),
                "RSACPTFL": "Y" if e.accepted else "",
            }
        )
    return rows


# --- datasets --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    domain: Domain
    rows: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.domain.name

    def column(self, name: str) -> list:
        variable = self.domain.variable(name)
        missing = None if variable.numeric else ""
        return [row.get(name, missing) for row in self.rows]

    def length(self, variable: Variable) -> int:
        """The stored length: 8 bytes for a number, the longest value (at least 1) for text."""
        if variable.numeric:
            return 8
        return max([1] + [len(str(v).encode("utf-8")) for v in self.column(variable.name)])


_TEST_ORDER = {code: n for n, code in enumerate(list(TR_TESTS) + list(RS_TESTS))}


def _sort_key(domain: Domain, row: dict) -> tuple:
    prefix = domain.name
    visit = row.get("VISITNUM")
    return (
        row["USUBJID"],
        row.get(f"{prefix}EVALID", ""),
        float("inf") if visit is None else visit,
        row.get(f"{prefix}LNKID") or "~",  # lesions first, then the sum (TR)
        _TEST_ORDER.get(row.get(f"{prefix}TESTCD", ""), 0),
    )


def datasets(delivery: Delivery) -> list[Dataset]:
    """TU, TR and RS, each sorted by its keys and numbered (--SEQ) within each subject."""
    out = []
    for domain, rows in ((TU, tu_rows(delivery)), (TR, tr_rows(delivery)), (RS, rs_rows(delivery))):
        rows.sort(key=lambda row, d=domain: _sort_key(d, row))
        seq: dict[str, int] = {}
        for row in rows:
            seq[row["USUBJID"]] = seq.get(row["USUBJID"], 0) + 1
            row[f"{domain.name}SEQ"] = seq[row["USUBJID"]]
        out.append(Dataset(domain, rows))
    return out


# --- checks and writers ----------------------------------------------------------------------------------


class DatasetError(ValueError):
    """A dataset breaks a rule of SAS transport version 5; `problems` says where (never a value)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _ascii(text: str) -> bool:
    return text.isascii()


def check_dataset(dataset: Dataset) -> list[str]:
    """Every place where `dataset` breaks a transport v5 limit: names, labels, value lengths, ASCII."""
    problems = []
    name, label = dataset.domain.name, dataset.domain.label
    if len(name) > MAX_NAME or not NAME.match(name):
        problems.append(f"dataset name {name!r} is not 1-8 letters, digits or underscores")
    if len(label) > MAX_LABEL or not _ascii(label):
        problems.append(f"{name}: the dataset label is over {MAX_LABEL} characters or not ASCII")
    for variable in dataset.domain.variables:
        where = f"{name}.{variable.name}"
        if len(variable.name) > MAX_NAME or not NAME.match(variable.name):
            problems.append(f"{where}: the variable name is not 1-8 letters, digits or underscores")
        if len(variable.label) > MAX_LABEL or not _ascii(variable.label):
            problems.append(f"{where}: the label is over {MAX_LABEL} characters or not ASCII")
        if variable.numeric:
            for n, value in enumerate(dataset.column(variable.name), start=1):
                if value is not None and not isinstance(value, int | float):
                    problems.append(f"{where} row {n}: not a number")
            continue
        for n, value in enumerate(dataset.column(variable.name), start=1):
            text = str(value)
            if not _ascii(text):
                problems.append(f"{where} row {n}: the value is not ASCII")
            elif len(text.encode("ascii")) > MAX_VALUE_BYTES:
                problems.append(f"{where} row {n}: the value is over {MAX_VALUE_BYTES} bytes")
    return problems


def _frame(dataset: Dataset):
    import numpy as np
    import pandas as pd

    columns = {}
    for variable in dataset.domain.variables:
        values = dataset.column(variable.name)
        if variable.numeric:
            columns[variable.name] = pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        else:
            columns[variable.name] = pd.Series([str(v) for v in values], dtype=object)
    return pd.DataFrame(columns)


# Transport v5 headers carry "created" and "modified" stamps (ddMMMyy:hh:mm:ss) at these offsets of a one-member
# file: the library header's second and third records and the member's descriptor records.
_STAMPS = (80 + 64, 160, 400 + 64, 480)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _stamp(at: datetime) -> bytes:
    return f"{at.day:02d}{_MONTHS[at.month - 1]}{at.year % 100:02d}:{at:%H:%M:%S}".encode("ascii")


def xport_bytes(dataset: Dataset, *, stamped: datetime) -> bytes:
    """The dataset as SAS transport version 5, its header stamped `stamped` (the same data gives the same bytes).

    Raises DatasetError if the dataset breaks a transport v5 limit.
    """
    import pyreadstat

    problems = check_dataset(dataset)
    if problems:
        raise DatasetError(problems)
    frame = _frame(dataset)
    fd, path = tempfile.mkstemp(suffix=".xpt")
    os.close(fd)
    try:
        pyreadstat.write_xport(
            frame,
            path,
            file_label=dataset.domain.label,
            column_labels=[v.label for v in dataset.domain.variables],
            table_name=dataset.domain.name,
            file_format_version=5,
        )
        with open(path, "rb") as f:
            data = bytearray(f.read())
    finally:
        os.unlink(path)
    stamp = _stamp(stamped)
    for offset in _STAMPS:
        if not re.fullmatch(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d", bytes(data[offset : offset + 16])):
            raise DatasetError([f"{dataset.name}: the transport header is not laid out as expected"])
        data[offset : offset + 16] = stamp
    return bytes(data)


def csv_bytes(dataset: Dataset) -> bytes:
    """The dataset as CSV with its variable names as the header; numbers as written in the transport file."""
    out = io.StringIO()
    writer = safe_csv.Writer(out, lineterminator="\n")
    names = [v.name for v in dataset.domain.variables]
    writer.writerow(names)
    for row in dataset.rows:
        writer.writerow([_csv_value(row.get(name)) for name in names])
    return out.getvalue().encode("utf-8")


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
