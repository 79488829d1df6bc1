"""The PHI canary corpus: every identifying value put into an instance, none of it in any output byte."""

from __future__ import annotations

import logging
import traceback

import pytest
from pydicom.uid import UltrasoundImageStorage

from trials.deid import DeidOptions, DeidRejected, deidentify

from .factories import BASIC, DEFAULT, KOREAN_NAME, SUBJECT, canary_instance, part10, read, space, uid

KOREAN_PARTS = ("김희중", "철수")


def _deid(data: bytes, options: DeidOptions = DEFAULT):
    return deidentify(data, space=space(), subject_code=SUBJECT, options=options)


def _assert_absent(output: bytes, values: dict[str, str]) -> None:
    upper = output.upper()
    leaked = sorted(keyword for value, keyword in values.items() if value.upper().encode() in upper)
    assert not leaked, f"canaries of {leaked} survived"


def _assert_korean_name_absent(output: bytes) -> None:
    for part in (KOREAN_NAME, *KOREAN_PARTS):
        for encoding in ("utf-8", "euc_kr"):
            assert part.encode(encoding) not in output
    assert "김희중 철수".encode() not in output


def test_no_canary_survives_the_basic_profile():
    canaries = canary_instance()
    result = _deid(part10(canaries.dataset), BASIC)
    _assert_absent(result.data, canaries.all_absent_values(descriptors_removed=True, times_removed=True))
    _assert_korean_name_absent(result.data)


def test_no_identifying_canary_survives_the_default_options():
    canaries = canary_instance()
    result = _deid(part10(canaries.dataset))
    _assert_absent(result.data, canaries.all_absent_values(descriptors_removed=False, times_removed=False))
    _assert_korean_name_absent(result.data)


def test_clean_descriptors_keeps_the_words_of_a_description_and_removes_the_identifiers_in_it():
    canaries = canary_instance()
    output = read(_deid(part10(canaries.dataset)).data)
    assert output.StudyDescription == "CT follow-up acc"
    assert output.SeriesDescription == "Chest AX"
    assert output.ProtocolName == "CHEST"
    # Under Clean Descriptors, a description that names no one is kept (PS3.15 E.3.5).
    assert output.RequestAttributesSequence[0].PersonName == "DEIDENTIFIED"
    assert "RequestedProcedureID" not in output.RequestAttributesSequence[0]


def test_it_finds_canaries_three_sequences_deep():
    canaries = canary_instance()
    output = read(_deid(part10(canaries.dataset)).data)
    deepest = output.SharedFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert deepest.PatientID == SUBJECT
    assert deepest.AccessionNumber == ""
    assert deepest.PersonName == "DEIDENTIFIED"
    assert deepest.ReferencedSOPInstanceUID == space().uid(uid(77, 9003))
    assert deepest.Date != "19500501" and len(deepest.Date) == 8


def test_it_removes_private_tags_and_their_creators():
    canaries = canary_instance()
    output = read(_deid(part10(canaries.dataset)).data)
    assert not [elem for elem in output.iterall() if elem.tag.is_private]


def test_times_are_kept_under_modified_dates_and_removed_by_the_basic_profile():
    canaries = canary_instance()
    kept = _deid(part10(canaries.dataset)).data
    removed = _deid(part10(canaries.dataset), BASIC).data
    assert any(value.encode() in kept for value in canaries.times)
    _assert_absent(removed, canaries.times)


def _rejections(canary_file: bytes) -> list[DeidRejected]:
    """One rejection of each kind, each from an instance full of canaries."""
    burned = canary_instance().dataset
    burned.BurnedInAnnotation = "YES"
    ultrasound = canary_instance().dataset
    ultrasound.SOPClassUID = UltrasoundImageStorage
    leaky = canary_instance().dataset
    # A kept binary attribute echoing an identifier: text is cleaned, binary values can only be refused.
    leaky.RedPaletteColorLookupTableData = f"{leaky.PatientID} ".encode()
    no_uid = canary_instance().dataset
    del no_uid.SOPInstanceUID
    inputs = [
        part10(burned),
        part10(ultrasound),
        part10(leaky),
        part10(no_uid),
        canary_file[:-9],
        canary_file[:4000],
    ]
    errors = []
    for data in inputs:
        with pytest.raises(DeidRejected) as caught:
            _deid(data)
        errors.append(caught.value)
    return errors


def test_rejection_messages_logs_and_tracebacks_never_hold_a_canary(caplog, capsys):
    canaries = canary_instance()
    values = canaries.all_absent_values(descriptors_removed=True, times_removed=True)
    caplog.set_level(logging.DEBUG)
    errors = _rejections(part10(canaries.dataset))
    assert {e.code for e in errors} >= {
        "burned_in_annotation",
        "sop_class_not_accepted",
        "phi_found",
        "no_sop_instance_uid",
        "truncated",
    }
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, caplog.text]
    for error in errors:
        texts += [str(error), repr(error), error.reason, "".join(traceback.format_exception(error))]
    for text in texts:
        for value in (*values, KOREAN_NAME, *KOREAN_PARTS):
            assert value not in text


def test_a_kept_text_attribute_holding_the_patients_id_is_cleaned():
    ds = canary_instance().dataset
    patient_id = ds.PatientID
    ds.SoftwareVersions = f"build for {patient_id}"
    result = _deid(part10(ds))
    assert read(result.data).SoftwareVersions == "build for"
    assert ("SoftwareVersions", "PatientID") in result.cleaned
    assert patient_id.encode() not in result.data


def test_a_kept_binary_attribute_holding_the_patients_id_is_caught_and_named_without_its_value():
    ds = canary_instance().dataset
    patient_id = ds.PatientID
    ds.RedPaletteColorLookupTableData = f"build for {patient_id} ".encode()
    with pytest.raises(DeidRejected) as caught:
        _deid(part10(ds))
    assert caught.value.code == "phi_found"
    assert "PatientID" in caught.value.reason
    assert patient_id not in str(caught.value)
