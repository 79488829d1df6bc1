"""The PHI corpus: every cleanable attribute full of Korean identifiers and the patient's name in five forms.

Every file is accepted; none of the identifying strings is in any output byte; the safe descriptor that
starts each value is intact.
"""

from __future__ import annotations

import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from trials.deid import DeidOptions, deidentify
from trials.deid.profile import CLEAN, IDENTIFYING_TEXT, compile_profile

from .factories import DEFAULT, SUBJECT, ct_image, part10, read, space

SAFE = "CT CHEST W CONTRAST"
CLEANED = f"{SAFE} daughter"  # what cleaning leaves: the words that identify no one
RRNS = ("800101-1234567", "8001011234567")
PHONES = ("010-1234-5678", "01098765432", "02-3410-1234", "+82 10 5555 6666", "(031) 123-4567")
EMAIL = "hong.gildong@example.kr"
ADDRESS = "서울특별시 종로구 세종대로 209"
RELATIVE = "LEE SOYEON"  # the patient's daughter, named in the input as the Responsible Person
NAME_FORMS = ("홍길동", "HONG^GILDONG", "HONG, GILDONG", "G. HONG", "GILDONG HONG")
PHI_TEXT = " ".join((SAFE, *RRNS, *PHONES, EMAIL, ADDRESS, "daughter", RELATIVE, *NAME_FORMS))
# What must not be in any output byte (each address part on its own too).
ABSENT = (*RRNS, "1234567", *PHONES, "1234-5678", "5555 6666", EMAIL, "example.kr", "종로구", "세종대로", "SOYEON")
ABSENT_NAMES = ("홍길동", "길동", "GILDONG", "G. HONG")
TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC")


def _cleanable(options: DeidOptions) -> tuple[list[int], list[int]]:
    """Text attributes and sequences whose action is C under `options`, and the identifying-text ones."""
    texts, sequences = [], []
    for tag, rule in compile_profile(options).rules.items():
        entry = DicomDictionary.get(tag)
        if entry is None or (rule.action != CLEAN and rule.keyword not in IDENTIFYING_TEXT):
            continue
        vr = entry[0].split(" or ")[0]
        if vr in TEXT_VRS:
            texts.append(tag)
        elif vr == "SQ":
            sequences.append(tag)
    return texts, sequences


def _code_item() -> Dataset:
    item = Dataset()
    item.CodeValue = "CT-CHEST"
    item.CodingSchemeDesignator = "99LOCAL"
    item.CodeMeaning = PHI_TEXT
    return item


def _corpus(patient_name: str, options: DeidOptions) -> tuple[Dataset, list[int], list[int]]:
    ds = ct_image(patient_name=patient_name, charset="ISO_IR 192")
    ds.ResponsiblePerson = "LEE^SOYEON"
    ds.ResponsiblePersonRole = "DAUGHTER"
    texts, sequences = _cleanable(options)
    for tag in texts:
        ds.add_new(tag, DicomDictionary[tag][0].split(" or ")[0], PHI_TEXT)
    for tag in sequences:
        ds.add_new(tag, "SQ", Sequence([_code_item()]))
    return ds, texts, sequences


def test_the_corpus_covers_about_a_hundred_attributes():
    texts, sequences = _cleanable(DEFAULT)
    assert len(texts) + len(sequences) >= 90


@pytest.mark.parametrize("patient_name", ["HONG^GILDONG=홍^길동", "HONG^GILDONG", "홍^길동"])
@pytest.mark.parametrize(
    "options",
    [DEFAULT, DeidOptions(kept_text_attributes=IDENTIFYING_TEXT)],
    ids=["default", "identifying-text-kept"],
)
def test_every_file_is_accepted_with_no_identifier_in_any_byte_and_the_descriptor_intact(patient_name, options):
    ds, texts, sequences = _corpus(patient_name, options)
    result = deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=options)
    upper = result.data.upper()
    leaked = [value for value in (*ABSENT, *ABSENT_NAMES) if value.upper().encode() in upper]
    assert not leaked
    assert b"HONG" not in upper.replace(SUBJECT.encode(), b"")
    out = read(result.data)
    kept = 0
    for tag in texts:
        keyword = DicomDictionary[tag][4]
        if keyword in IDENTIFYING_TEXT and keyword not in options.kept_text_attributes:
            assert tag not in out, keyword
        elif tag in out:
            assert out[tag].value == CLEANED, keyword
            kept += 1
    for tag in sequences:
        if tag in out and out[tag].value:
            assert out[tag].value[0].CodeMeaning == CLEANED
            kept += 1
    assert kept >= 60
    reasons = {reason for _where, reason in result.cleaned}
    assert reasons >= {"resident registration number", "phone number", "e-mail address", "street address"}
    assert "PatientName" in reasons and "ResponsiblePerson" in reasons
