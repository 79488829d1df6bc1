"""Clean means clean: kept text loses identifiers in every form, and what can be cleaned is not refused."""

from __future__ import annotations

import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from trials.deid import DeidOptions, deidentify
from trials.deid.pseudonym import PseudonymSpace

from .factories import DEFAULT, SUBJECT, ct_image, part10, read, space

IMAGE_COMMENTS = "홍길동 800101-1234567 010-1234-5678 hong@example.kr 서울시 종로구 DOB 17-Mar-1958 id 83726451"
IDENTIFIERS = ("800101", "1234567", "010-1234-5678", "hong@example.kr", "서울시", "종로구", "17-Mar-1958", "83726451")


def _deid(ds: Dataset, options: DeidOptions = DEFAULT):
    return deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=options)


def _korean(ds: Dataset) -> Dataset:
    ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _code(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = "CT-CHEST"
    item.CodingSchemeDesignator = "99LOCAL"
    item.CodeMeaning = meaning
    return item


# -- kept free text is cleaned -----------------------------------------------------------------------------


def test_image_comments_lose_the_name_rrn_phone_email_address_date_and_record_number():
    ds = _korean(ct_image(patient_name="홍^길동", charset=None))
    ds.ImageComments = IMAGE_COMMENTS
    result = _deid(ds)
    out = read(result.data)
    assert out.ImageComments == "DOB id"
    for value in (*IDENTIFIERS, "홍길동"):
        assert value.encode() not in result.data
    reasons = {reason for where, reason in result.cleaned if where == "ImageComments"}
    assert reasons >= {
        "PatientName",
        "resident registration number",
        "phone number",
        "e-mail address",
        "street address",
        "date",
        "long number",
    }


def test_what_was_cleaned_is_recorded_by_attribute_and_reason_never_by_value():
    ds = _korean(ct_image(patient_name="홍^길동", charset=None))
    ds.ImageComments = IMAGE_COMMENTS
    result = _deid(ds)
    record = repr(result.cleaned) + repr(result.actions)
    for value in (*IDENTIFIERS, "홍", "길동", "hong"):
        assert value not in record
    assert result.actions["cleaned"] >= 1


def test_identifying_text_attributes_are_removed_whatever_the_options():
    ds = ct_image()
    ds.PatientComments = "lives with daughter LEE SOYEON 010-9876-5432"
    ds.Occupation = "teacher at Hana school"
    ds.IdentifyingComments = "tattoo on left arm"
    ds.MedicalAlerts = "allergic, call wife 010-1111-2222"
    ds.AdditionalPatientHistory = "former patient of Dr Park"
    for options in (DEFAULT, DeidOptions(retain_patient_characteristics=True)):
        out = read(_deid(ds, options).data)
        for keyword in ("PatientComments", "Occupation", "IdentifyingComments", "MedicalAlerts"):
            assert keyword not in out
        assert "AdditionalPatientHistory" not in out


def test_a_trial_may_keep_an_identifying_text_attribute_by_name_and_it_is_cleaned():
    ds = ct_image()
    ds.PatientComments = "lives with daughter LEE SOYEON 010-9876-5432"
    options = DeidOptions(kept_text_attributes=frozenset({"PatientComments"}))
    out = read(_deid(ds, options).data)
    assert out.PatientComments == "lives with daughter LEE SOYEON"


def test_a_safe_descriptor_survives_untouched():
    ds = ct_image()
    ds.StudyDescription = "CT CHEST W CONTRAST"
    ds.SeriesDescription = "AX 5mm 0.625 120 kV B30f"
    ds.ProtocolName = "흉부 CT 조영 증강"
    ds.ImageComments = "밀도 각도 정도"
    result = _deid(_korean(ds))
    out = read(result.data)
    assert out.StudyDescription == "CT CHEST W CONTRAST"
    assert out.SeriesDescription == "AX 5mm 0.625 120 kV B30f"
    assert out.ProtocolName == "흉부 CT 조영 증강"
    assert out.ImageComments == "밀도 각도 정도"
    assert result.cleaned == ()


# -- names in other forms ----------------------------------------------------------------------------------


def test_a_hangul_name_is_removed_from_text_when_the_patient_name_is_romanised():
    ds = _korean(ct_image(patient_name="HONG^GILDONG", charset=None))
    ds.StudyDescription = "흉부 CT 홍길동"
    assert read(_deid(ds).data).StudyDescription == "흉부 CT"


def test_a_hangul_name_is_removed_whole_not_down_to_its_surname():
    ds = _korean(ct_image(patient_name="홍^길동", charset=None))
    ds.StudyDescription = "흉부 CT 홍길동"
    assert read(_deid(ds).data).StudyDescription == "흉부 CT"


def test_a_romanised_name_is_removed_when_the_patient_name_is_in_hangul():
    ds = _korean(ct_image(patient_name="홍^길동", charset=None))
    ds.StudyDescription = "CT for Hong Gil-dong"
    assert read(_deid(ds).data).StudyDescription == "CT for"


def test_comma_forms_and_single_name_parts_are_removed_from_kept_attributes_and_code_meanings():
    ds = ct_image(patient_name="KIM^MINSU")
    ds.ProcedureCodeSequence = Sequence([_code("CT chest Kim, Minsu")])
    ds.WindowCenterWidthExplanation = "KIM, MINSU"
    ds.ImageComments = "M. Kim follow-up"
    result = _deid(ds)
    out = read(result.data)
    assert out.ProcedureCodeSequence[0].CodeMeaning == "CT chest"
    assert out.WindowCenterWidthExplanation == ""
    assert out.ImageComments == "follow-up"
    assert b"MINSU" not in result.data.upper()
    assert ("ProcedureCodeSequence/CodeMeaning", "PatientName") in result.cleaned


def test_a_patient_name_with_explicit_vr_lo_is_still_searched_as_a_name():
    ds = ct_image()
    del ds.PatientName
    ds.add_new(0x00100010, "LO", "KIM^MINSU")
    ds.StudyDescription = "CT for KIM MINSU"
    result = _deid(ds)
    assert read(result.data).StudyDescription == "CT for"
    assert b"MINSU" not in result.data.upper()


# -- clean, don't refuse -----------------------------------------------------------------------------------


def test_a_patient_name_in_a_code_meaning_of_a_kept_reference_sequence_is_cleaned_not_refused():
    ds = ct_image(patient_name="KIM^MINSU")
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = ds.SOPInstanceUID + ".9"
    reference.PurposeOfReferenceCodeSequence = Sequence([_code("KIM MINSU")])
    ds.ReferencedImageSequence = Sequence([reference])
    out = read(_deid(ds).data)
    meaning = out.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeMeaning
    assert meaning == "cleaned"  # a code item keeps a meaning (Type 1)


def test_a_shifted_date_that_equals_the_birth_date_is_not_a_leak():
    key = bytes(range(32))
    offset = PseudonymSpace(key).date_offset_days(SUBJECT)
    study = datetime.date(2024, 1, 5)
    ds = ct_image(study_date=study.strftime("%Y%m%d"))
    ds.PatientBirthDate = (study + datetime.timedelta(days=offset)).strftime("%Y%m%d")
    result = deidentify(part10(ds), space=PseudonymSpace(key), subject_code=SUBJECT, options=DEFAULT)
    assert read(result.data).StudyDate == ds.PatientBirthDate


def test_a_manufacturer_equal_to_the_institution_name_is_accepted_and_kept():
    ds = ct_image()
    ds.InstitutionName = ds.Manufacturer = "Seoul Medical Systems"
    out = read(_deid(ds).data)
    assert out.Manufacturer == "Seoul Medical Systems"
    assert "InstitutionName" not in out


def test_a_device_serial_number_kept_under_retain_device_identity_keeps_its_digits():
    ds = ct_image()
    out = read(_deid(ds, DeidOptions(retain_device_identity=True)).data)
    assert out.DeviceSerialNumber == "SN998877"


# -- valid output ------------------------------------------------------------------------------------------


def test_an_ethics_committee_name_goes_with_its_approval_number():
    ds = ct_image()
    ds.ClinicalTrialProtocolEthicsCommitteeName = "Seoul IRB"
    ds.ClinicalTrialProtocolEthicsCommitteeApprovalNumber = "IRB-2024-77"
    out = read(_deid(ds).data)
    assert "ClinicalTrialProtocolEthicsCommitteeApprovalNumber" not in out
    assert "ClinicalTrialProtocolEthicsCommitteeName" not in out


def test_a_code_meaning_cleaned_to_nothing_keeps_a_meaning():
    ds = ct_image(patient_name="KIM^MINSU")
    ds.ProcedureCodeSequence = Sequence([_code("Kim, Minsu")])
    out = read(_deid(ds).data)
    assert out.ProcedureCodeSequence[0].CodeMeaning == "cleaned"


def test_ids_are_removed_with_or_without_their_separators():
    ds = ct_image(patient_id="MRN-4455-667")
    ds.AccessionNumber = "83726451"
    ds.StudyDescription = "CT MRN4455667 acc 8372-6451"
    ds.ImageComments = "MRN 4455 667 and 8372 6451"
    result = _deid(ds)
    out = read(result.data)
    assert out.StudyDescription == "CT acc"
    assert out.ImageComments == "and"
    assert ("StudyDescription", "PatientID") in result.cleaned


def test_a_safelisted_private_text_value_is_cleaned_too():
    ds = ct_image(patient_name="KIM^MINSU")
    block = ds.private_block(0x0019, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "recon for KIM MINSU 010-1234-5678 B30f")
    result = _deid(ds, DeidOptions(private_tag_safelist=frozenset({("ACME 1.0", 0x01)})))
    out = read(result.data)
    assert out[0x00191001].value == "recon for B30f"
    assert {reason for _where, reason in result.cleaned} == {"PatientName", "phone number"}


def test_code_values_and_versions_keep_their_numbers():
    ds = ct_image()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121320", "DCM", "Uncompressed predecessor"
    code.CodingSchemeVersion = "20240105"
    ds.DerivationCodeSequence = Sequence([code])
    ds.SoftwareVersions = "VA48A 20190311"
    result = _deid(ds)
    out = read(result.data)
    item = out.DerivationCodeSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == (
        "121320",
        "DCM",
        "Uncompressed predecessor",
    )
    assert out.SoftwareVersions == "VA48A 20190311"
