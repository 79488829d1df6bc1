"""deidentify(): references, dates, pixel data, determinism, options and character sets."""

from __future__ import annotations

import datetime
import io

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage

from trials.deid import DeidOptions, DeidResult, PseudonymSpace, deidentify
from trials.deid.writer import IMPLEMENTATION_CLASS_UID

from .factories import (
    BASIC,
    DEFAULT,
    KEY_OMEGA,
    SUBJECT,
    ct_image,
    file_bytes,
    part10,
    pixel_bytes,
    read,
    space,
    uid,
)


def _deid(data, options: DeidOptions = DEFAULT, subject: str = SUBJECT, key_space=None) -> DeidResult:
    return deidentify(data, space=key_space or space(), subject_code=subject, options=options)


def _pixel_value(data: bytes) -> bytes:
    return pydicom.dcmread(io.BytesIO(data))._dict[0x7FE00010].value


def test_it_maps_every_reference_consistently():
    a = ct_image(sop_instance_uid=uid(1, 1, 1))
    b = ct_image(sop_instance_uid=uid(1, 1, 2))
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = a.SOPInstanceUID
    b.ReferencedImageSequence = Sequence([reference])
    b.SourceImageSequence = Sequence([reference])
    series = Dataset()
    series.SeriesInstanceUID = a.SeriesInstanceUID
    b.ReferencedSeriesSequence = Sequence([series])
    result_a, result_b = _deid(part10(a)), _deid(part10(b))
    out_a, out_b = read(result_a.data), read(result_b.data)
    assert out_b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == result_a.sop_instance_uid
    assert out_b.SourceImageSequence[0].ReferencedSOPInstanceUID == result_a.sop_instance_uid
    assert out_b.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    assert out_b.ReferencedSeriesSequence[0].SeriesInstanceUID == out_a.SeriesInstanceUID
    assert out_a.FrameOfReferenceUID == out_b.FrameOfReferenceUID == result_b.frame_of_reference_uid
    assert out_a.StudyInstanceUID == out_b.StudyInstanceUID == result_a.study_instance_uid
    assert out_a.SOPInstanceUID == result_a.sop_instance_uid == space().uid(a.SOPInstanceUID)
    assert out_a.file_meta.MediaStorageSOPInstanceUID == out_a.SOPInstanceUID
    assert out_a.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert out_a.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert "SourceApplicationEntityTitle" not in out_a.file_meta


def test_it_remaps_uids_at_any_depth_except_well_known_ones():
    ds = ct_image()
    ds.SOPInstanceUIDOfConcatenationSource = uid(8, 1)  # a UI not in the Annex E table
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
        "121320",
        "DCM",
        "Uncompressed predecessor",
    )
    item.ContextUID = "1.2.840.10008.6.1.1"
    item.CodingSchemeUID = "2.16.840.1.113883.6.1"
    inner = Dataset()
    inner.ReferencedSOPClassUID = "1.3.12.2.1107.5.9.1"  # a private SOP class stays what it is
    inner.ReferencedSOPInstanceUID = uid(8, 2)
    inner.PurposeOfReferenceCodeSequence = Sequence([item])
    outer = Dataset()
    outer.ReferencedInstanceSequence = Sequence([inner])
    ds.ReferencedSeriesSequence = Sequence([outer])
    out = read(_deid(part10(ds)).data)
    assert out.SOPInstanceUIDOfConcatenationSource == space().uid(uid(8, 1))
    deep = out.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert deep.ReferencedSOPInstanceUID == space().uid(uid(8, 2))
    assert deep.ReferencedSOPClassUID == "1.3.12.2.1107.5.9.1"
    assert deep.PurposeOfReferenceCodeSequence[0].ContextUID == "1.2.840.10008.6.1.1"
    assert deep.PurposeOfReferenceCodeSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.1"
    assert out.SOPClassUID == CTImageStorage


def test_two_visits_keep_their_exact_interval():
    first = _deid(file_bytes(study_date="20240105", sop_instance_uid=uid(1, 1)))
    second = _deid(file_bytes(study_date="20240419", sop_instance_uid=uid(1, 2)))
    offset = space().date_offset_days(SUBJECT)
    assert first.index["study_date"] == datetime.date(2024, 1, 5) + datetime.timedelta(days=offset)
    assert second.index["study_date"] - first.index["study_date"] == datetime.timedelta(days=105)
    out = read(second.data)
    assert out.StudyDate == out.SeriesDate == out.ContentDate == second.index["study_date"].strftime("%Y%m%d")
    assert out.AcquisitionDateTime == second.index["study_date"].strftime("%Y%m%d") + "101700.250000"
    assert out.StudyTime == "101500"  # times are kept: the shift is whole days
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_pixel_data_is_byte_identical():
    data = file_bytes()
    result = _deid(data)
    assert _pixel_value(result.data) == pixel_bytes()
    assert result.index["rows"] == 4 and result.index["number_of_frames"] == 1


def test_the_same_input_twice_gives_the_same_bytes():
    data = file_bytes()
    assert _deid(data).data == _deid(data).data


def test_two_trials_cannot_be_linked():
    data = file_bytes()
    alpha, omega = _deid(data), _deid(data, key_space=PseudonymSpace(KEY_OMEGA))
    assert alpha.sop_instance_uid != omega.sop_instance_uid
    assert alpha.study_instance_uid != omega.study_instance_uid
    assert alpha.frame_of_reference_uid != omega.frame_of_reference_uid
    assert alpha.source_patient_hash != omega.source_patient_hash
    assert alpha.index["study_date"] != omega.index["study_date"]


def test_it_reports_the_source_patient_hash_and_names_the_patient_with_the_subject_code():
    result = _deid(file_bytes(patient_id="MRN4455667"))
    assert result.source_patient_hash == space().patient_hash("MRN4455667")
    out = read(result.data)
    assert out.PatientName == out.PatientID == SUBJECT
    assert out.PatientIdentityRemoved == "YES"
    assert b"MRN4455667" not in result.data
    assert _deid(file_bytes(patient_id="")).source_patient_hash == ""


def test_it_records_the_profile_and_options_it_applied():
    out = read(_deid(file_bytes()).data)
    assert out.DeidentificationMethod == [
        "CTIMS PS3.15 Annex E 2024b: Basic Profile",
        "Retain Longitudinal Temporal Information Modified Dates",
        "Clean Descriptors",
    ]
    assert _deid(file_bytes()).deid_method == "; ".join(out.DeidentificationMethod)
    codes = [(item.CodeValue, item.CodingSchemeDesignator) for item in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113107", "DCM"), ("113105", "DCM")]
    everything = DeidOptions(
        retain_device_identity=True,
        retain_patient_characteristics=True,
        private_tag_safelist=frozenset({("ACME 1.0", 0x01)}),
    )
    out = read(_deid(file_bytes(), everything).data)
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113105", "113109", "113108", "113111"]
    assert out.DeidentificationMethodCodeSequence[3].CodeMeaning == "Retain Device Identity Option"


def test_the_basic_profile_removes_dates_and_descriptions():
    result = _deid(file_bytes(), BASIC)
    out = read(result.data)
    assert out.StudyDate == "" and out.StudyTime == ""
    assert "SeriesDate" not in out and "StudyDescription" not in out and "SeriesDescription" not in out
    assert out.ContentDate == "19000101"  # Type 1 in multi-frame images: a dummy, not a real date
    assert out.AcquisitionDateTime == "19000101000000"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert [item.CodeValue for item in out.DeidentificationMethodCodeSequence] == ["113100"]
    assert b"20240105" not in result.data


def test_it_keeps_device_identity_and_patient_characteristics_only_when_the_trial_asks():
    default = read(_deid(file_bytes()).data)
    assert "StationName" not in default and default.DeviceSerialNumber == "DEIDENTIFIED"
    assert default.PatientSex == "" and "PatientAge" not in default and "PatientWeight" not in default
    device = read(_deid(file_bytes(), DeidOptions(retain_device_identity=True)).data)
    assert device.StationName == "CTSCAN-EAST-2" and device.DeviceSerialNumber == "SN998877"
    patient = read(_deid(file_bytes(), DeidOptions(retain_patient_characteristics=True)).data)
    assert patient.PatientSex == "M" and patient.PatientAge == "063Y" and patient.PatientWeight == 81.5


def test_it_keeps_safelisted_private_tags_and_removes_the_others():
    ds = ct_image()
    kept = ds.private_block(0x0019, "ACME 1.0", create=True)
    kept.add_new(0x01, "DS", "2.5")
    kept.add_new(0x02, "LO", "vendor note")
    dropped = ds.private_block(0x0029, "OTHER VENDOR", create=True)
    dropped.add_new(0x01, "LO", "internal")
    options = DeidOptions(private_tag_safelist=frozenset({("ACME 1.0", 0x01)}))
    out = read(_deid(part10(ds), options).data)
    assert out.private_block(0x0019, "ACME 1.0")[0x01].value == "2.5"
    assert (0x0019, 0x1002) not in out
    assert (0x0029, 0x0010) not in out and (0x0029, 0x1001) not in out
    out = read(_deid(part10(ds)).data)
    assert not [elem for elem in out if elem.tag.is_private]


def test_it_removes_overlays_and_curves():
    ds = ct_image()
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000022, "LO", "overlay drawn by DOE")
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 4)
    ds.add_new(0x60004000, "LT", "comment")
    ds.add_new(0x50000005, "US", 2)
    out = read(_deid(part10(ds)).data)
    assert not [elem for elem in out if elem.tag.group in (0x6000, 0x5000)]


def test_it_removes_public_elements_dicom_does_not_define():
    """Nothing says what such an element holds (a damaged tag, a public group used as a private one): a date
    there would be kept as it is, unshifted, and the verifier sees only the input's own identifying values."""
    ds = ct_image()
    ds.add_new(0x0008AC20, "DA", "19990312")
    ds.add_new(0x0020EE01, "OB", b"\x19\x99\x03\x12")
    ds.add_new(0x0040FF01, "LO", "seen on the ward")
    item = Dataset()
    item.add_new(0x0008AC21, "TM", "101010")
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D0050", "SRT", "Tissue"
    ds.AnatomicRegionSequence = Sequence([item])
    result = _deid(part10(ds))
    out = read(result.data)
    assert not [elem.tag for elem in out.iterall() if elem.tag in (0x0008AC20, 0x0020EE01, 0x0040FF01, 0x0008AC21)]
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Tissue"
    assert result.actions["removed"] >= 4


@pytest.mark.parametrize(
    ("charset", "name", "kept_text"),
    [
        ("ISO_IR 100", "Müller^Jürgen", "Société Médicale"),
        ("ISO_IR 192", "Wang^XiaoDong=王^小東", "Gerät für Köpfe 頭部"),
        (["", "ISO 2022 IR 149"], "김희중^철수", "두부 CT"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "頭部単純"),
        ("GB18030", "Wang^XiaoDong=王^小东", "头部平扫"),
        ("ISO_IR 144", "Люксембург^Иван", "Голова"),
    ],
)
def test_it_reads_any_character_set_and_writes_utf8(charset, name, kept_text):
    ds = ct_image(charset=charset, patient_name=name)
    ds.Manufacturer = kept_text  # kept as is
    family = name.split("=")[-1].split("^")[0]
    given = name.split("=")[-1].split("^")[1]
    ds.StudyDescription = f"{kept_text} {given}"  # cleaned of the name
    source = part10(ds)
    result = _deid(source)
    out = read(result.data)
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert out.Manufacturer == kept_text
    assert out.StudyDescription == kept_text
    for text in (name, name.replace("^", " "), given):
        assert text.encode("utf-8") not in result.data
    if len(family) > 1 or family.isascii():
        assert family.encode("utf-8") not in result.data
    assert pydicom.dcmread(io.BytesIO(source)).PatientName == name  # the source really held the name


def test_an_item_with_its_own_character_set_is_written_in_utf8():
    ds = ct_image(charset="ISO_IR 192")
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D1100", "SRT", "Schädel"
    ds.AnatomicRegionSequence = Sequence([item])
    out = read(_deid(part10(ds)).data)
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Schädel"
    assert "SpecificCharacterSet" not in out.AnatomicRegionSequence[0]


def test_it_accepts_a_dataset_without_preamble_in_implicit_or_explicit_vr():
    for implicit in (True, False):
        result = _deid(part10(ct_image(), implicit=implicit, preamble=False))
        out = read(result.data)
        assert out.PatientID == SUBJECT and out.PixelData == pixel_bytes()
        assert (result.transfer_syntax_uid == ImplicitVRLittleEndian) is implicit


def test_a_deflated_file_comes_out_in_explicit_vr_little_endian():
    ds = ct_image()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    result = _deid(buffer.getvalue())
    assert result.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert read(result.data).PixelData == pixel_bytes()


def test_it_takes_its_source_as_bytes_a_path_or_a_file(tmp_path):
    data = file_bytes()
    path = tmp_path / "image.dcm"
    path.write_bytes(data)
    expected = _deid(data).data
    assert _deid(path).data == _deid(str(path)).data == _deid(io.BytesIO(data)).data == expected


def test_it_refuses_a_subject_code_that_is_not_a_code():
    for code in ("", "A^B", "A\\B", "x" * 65, "A\nB"):
        with pytest.raises(ValueError):
            _deid(file_bytes(), subject=code)


def test_the_index_is_read_from_the_output():
    result = _deid(file_bytes(sop_class_uid=MRImageStorage))
    index = result.index
    assert index["modality"] == "MR"
    assert index["study_date"] == datetime.date(2024, 1, 5) + datetime.timedelta(days=space().date_offset_days(SUBJECT))
    assert index["study_time"] == "101500"
    assert index["study_description"] == "CT CHEST ABDOMEN"
    assert index["series_description"] == "AX 5mm"
    assert index["series_number"] == 3 and index["instance_number"] == 1 and index["acquisition_number"] == 1
    assert index["slice_thickness"] == 5.0 and index["spacing_between_slices"] is None
    assert index["image_position_patient"] == [-100.0, -120.5, 30.0]
    assert index["image_orientation_patient"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert index["pixel_spacing"] == [0.75, 0.75]
    assert index["rows"] == index["columns"] == 4
    assert index["manufacturer"] == "ACME Medical" and index["manufacturer_model_name"] == "Spiral 64"
    assert index["contrast_bolus_agent"] == "IOPAMIDOL" and index["body_part_examined"] == "CHEST"
    assert result.actions["uids_remapped"] >= 4 and result.actions["pseudonymized"] == 2


def test_every_action_the_engine_counts_is_one_a_browser_record_may_declare():
    """The server takes a browser's record only with counts named in ACTIONS: a counter the engine gains must be
    named there too, or every record of a file that uses it would be refused."""
    import re
    from pathlib import Path

    from trials.deid import engine

    counted = set()
    for source in Path(engine.__file__).parent.glob("*.py"):
        for subscript in re.findall(r"counts\[(.+?)\]", source.read_text()):
            counted.update(re.findall(r'"(\w+)"', subscript))
    assert counted and counted <= engine.ACTIONS, counted - engine.ACTIONS
    result = _deid(part10(ct_image()))
    assert result.actions and set(result.actions) <= engine.ACTIONS
