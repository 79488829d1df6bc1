"""The verifier: an identifying value of the input anywhere in the output bytes rejects the instance."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.charset import convert_encodings
from pydicom.data import get_testdata_file
from pydicom.valuerep import PersonName

from trials.deid import DeidRejected, IdentifyingValues, deidentify, verify_no_phi
from trials.deid.verify import find_needle

from .factories import DEFAULT, SUBJECT, ct_image, part10, read, space


def _output(**changes) -> bytes:
    ds = ct_image(charset="ISO_IR 192")
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return part10(ds)


def _found(output: bytes, values) -> str | None:
    try:
        verify_no_phi(output, values)
    except DeidRejected as error:
        assert error.code == "phi_found"
        return error.reason
    return None


def test_it_accepts_what_deidentify_wrote():
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    result = deidentify(get_testdata_file("CT_small.dcm"), space=space(), subject_code=SUBJECT, options=DEFAULT)
    verify_no_phi(result.data, {"PatientName": [str(source.PatientName)], "PatientID": [source.PatientID]})


def test_it_names_the_attribute_and_never_the_value():
    reason = _found(_output(SoftwareVersions="scan of DOE^JANE"), {"OtherPatientNames": ["DOE^JANE"]})
    assert reason is not None and "OtherPatientNames" in reason
    assert "DOE" not in reason and "JANE" not in reason


@pytest.mark.parametrize("written", ["JANE DOE", "doe jane", "Doe^Jane", "DOE JANE"])
def test_it_finds_a_name_written_another_way(written):
    assert _found(_output(SoftwareVersions=f"for {written}."), {"PatientName": "DOE^JANE"})


@pytest.mark.parametrize("written", ["2024-01-05", "05/01/2024", "20240105", "2024.01.05"])
def test_it_finds_a_date_written_another_way(written):
    assert _found(_output(SoftwareVersions=f"v {written}"), {"StudyDate": "20240105"})


def test_it_finds_a_value_in_the_input_character_set_and_in_utf8():
    charset = ["", "ISO 2022 IR 149"]
    as_in_input = PersonName("김희중^철수").encode(convert_encodings(charset))
    output = b"\x00" * 8 + as_in_input + b"\x00" * 8
    assert not _found(output, {"PatientName": "김희중^철수"})
    with pytest.raises(DeidRejected):
        verify_no_phi(output, {"PatientName": "김희중^철수"}, specific_character_set=charset)
    assert _found(b"xx " + "김희중 철수".encode() + b" xx", {"PatientName": "김희중^철수"})


def test_a_value_must_stand_alone():
    hay = b"SOFTWARE DOES NOT MATTER MRN12345678 1.2.3.123456789.4 TOSHIBA_MEC"
    assert not find_needle(hay, b"DOE")
    assert find_needle(hay, b"12345678")
    assert not find_needle(hay, b"23456789")
    assert not find_needle(hay, b"TOSHIBA")
    assert find_needle(hay, b"MATTER")


def test_short_values_common_numbers_and_placeholders_are_not_searched():
    values = IdentifyingValues()
    for keyword, vr, value in [
        ("PatientName", "PN", "LI"),
        ("StudyID", "SH", "1234"),
        ("OperatorsName", "PN", "----"),
        ("PatientID", "LO", "AB"),
    ]:
        values.add(keyword, vr, value)
    assert len(values) == 0
    values.add("PatientName", "PN", "홍^길동")
    assert values.clean("검사 길동 님") == "검사 님"


def test_it_does_not_look_into_pixel_data():
    ds = ct_image(charset="ISO_IR 192")
    ds.PixelData = b"ZX9Q81".ljust(32, b"\x00")
    assert not _found(part10(ds), {"OtherPatientIDs": "ZX9Q81"})
    ds.SoftwareVersions = "ZX9Q81"
    assert _found(part10(ds), {"OtherPatientIDs": "ZX9Q81"})


def test_the_cleaner_removes_what_the_verifier_would_find():
    values = IdentifyingValues()
    values.add("PatientName", "PN", "DOE^JANE")
    values.add("AccessionNumber", "SH", "ACC778899")
    values.add("StudyDate", "DA", "20240105")
    cleaned = values.clean("Jane Doe acc ACC778899 on 2024-01-05, Doe follow-up; Does well")
    assert cleaned == "acc on , follow-up; Does well"
    assert values.first_found_in(cleaned.encode().upper()) is None


def test_its_repr_hides_the_values():
    values = IdentifyingValues()
    values.add("PatientName", "PN", "DOE^JANE")
    assert "DOE" not in repr(values)


def test_deidentify_cleans_kept_text_that_names_the_patient_and_records_why():
    ds = ct_image()
    ds.SoftwareVersions = "HOUSE GREGORY build"  # the referring physician, in a kept attribute
    result = deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert read(result.data).SoftwareVersions == "build"
    assert result.cleaned == (("SoftwareVersions", "ReferringPhysicianName"),)
    assert b"HOUSE" not in result.data


def test_an_original_uid_left_in_kept_text_is_cleaned():
    ds = ct_image()
    ds.SoftwareVersions = f"v1 {ds.SOPInstanceUID}"
    result = deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert read(result.data).SoftwareVersions == "v1"
    assert ("SoftwareVersions", "SOPInstanceUID") in result.cleaned


def test_the_verifier_still_refuses_an_original_uid_in_a_kept_binary_value():
    ds = ct_image()
    ds.RedPaletteColorLookupTableData = ds.SOPInstanceUID.encode() + b"\x00"
    with pytest.raises(DeidRejected) as caught:
        deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert "SOPInstanceUID" in caught.value.reason and ds.SOPInstanceUID not in caught.value.reason
