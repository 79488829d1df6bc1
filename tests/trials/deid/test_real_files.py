"""Real files: pydicom's and pydicom-data's CT/MR images (native and compressed) and deid-data's traps."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import UID, UltrasoundImageStorage

from trials.deid import CT_MR_SOP_CLASSES, DeidOptions, DeidRejected, deidentify

from .factories import DEFAULT, SUBJECT, deid_data_files, space

ACCEPTED_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "693_UNCI.dcm",
    "693_J2KR.dcm",
    "693_J2KI.dcm",
    "eCT_Supplemental.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_big_endian.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
]


def _path(name: str) -> str:
    path = get_testdata_file(name)
    assert path, f"{name} is part of pydicom / pydicom-data"
    return path


def _instance_uids(ds: pydicom.Dataset) -> set[str]:
    uids = set()
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value and elem.keyword not in ("SOPClassUID", "ReferencedSOPClassUID"):
            for value in elem.value if elem.VM > 1 else [elem.value]:
                if not str(value).startswith("1.2.840.10008."):
                    uids.add(str(value))
    return uids


@pytest.mark.parametrize("name", ACCEPTED_FILES)
def test_it_deidentifies_pydicom_ct_and_mr_files(name):
    data = Path(_path(name)).read_bytes()
    source = pydicom.dcmread(io.BytesIO(data))
    result = deidentify(data, space=space(), subject_code=SUBJECT, options=DEFAULT)
    out = pydicom.dcmread(io.BytesIO(result.data))
    # Every value of the output can be decoded.
    for elem in out.iterall():
        str(elem.value)
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert out.PatientName == out.PatientID == SUBJECT
    assert out.SOPClassUID == source.SOPClassUID == result.sop_class_uid
    assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID == result.transfer_syntax_uid
    assert out.SOPInstanceUID == out.file_meta.MediaStorageSOPInstanceUID == space().uid(source.SOPInstanceUID)
    # Pixel data pass through byte for byte, compressed or not.
    assert out._dict[0x7FE00010].value == source._dict[0x7FE00010].value
    # No original instance UID, name or ID is left anywhere.
    for value in _instance_uids(source):
        assert value.encode() not in result.data
    for value in (str(source.get("PatientName", "")), source.get("PatientID", "")):
        if len(value) >= 5:
            assert value.encode() not in result.data
    assert result.index["rows"] == source.Rows and result.index["columns"] == source.Columns


def test_an_enhanced_ct_is_indexed_from_its_functional_groups():
    result = deidentify(_path("eCT_Supplemental.dcm"), space=space(), subject_code=SUBJECT, options=DEFAULT)
    source = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    shared = source.SharedFunctionalGroupsSequence[0]
    first_frame = source.PerFrameFunctionalGroupsSequence[0]
    assert result.index["number_of_frames"] == int(source.NumberOfFrames) == 2
    assert result.index["pixel_spacing"] == [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    assert result.index["image_orientation_patient"] == [float(v) for v in orientation]
    position = first_frame.PlanePositionSequence[0].ImagePositionPatient
    assert result.index["image_position_patient"] == [float(v) for v in position]
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out.AcquisitionContextSequence == []  # Type 2 in Enhanced CT: emptied, not removed


def test_it_removes_the_overlay_of_a_siemens_mr():
    result = deidentify(
        _path("MR-SIEMENS-DICOM-WithOverlays.dcm"), space=space(), subject_code=SUBJECT, options=DEFAULT
    )
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert not [elem for elem in out if 0x6000 <= elem.tag.group <= 0x60FF]


@pytest.mark.parametrize("path", deid_data_files(), ids=lambda p: p.name)
def test_it_rejects_every_deid_data_trap_because_of_its_sop_class(path):
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    assert ds.SOPClassUID not in CT_MR_SOP_CLASSES
    with pytest.raises(DeidRejected) as caught:
        deidentify(str(path), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert caught.value.code == "sop_class_not_accepted"
    assert caught.value.reason.startswith(f"{UID(ds.SOPClassUID).name} is not accepted")
    assert "CT and MR" in caught.value.reason


def test_a_trial_taking_ultrasound_still_rejects_burned_in_annotation():
    path = next(p for p in deid_data_files() if p.name == "GREYSCALE_IMAGE.dcm")
    options = DeidOptions(accepted_sop_classes=CT_MR_SOP_CLASSES | {UltrasoundImageStorage})
    with pytest.raises(DeidRejected) as caught:
        deidentify(str(path), space=space(), subject_code=SUBJECT, options=options)
    assert caught.value.code == "burned_in_annotation"


def test_pydicom_secondary_captures_and_ultrasound_are_rejected():
    for name, label in (("JPEG2000.dcm", "Secondary Capture Image Storage"), ("US1_UNCI.dcm", "Ultrasound")):
        with pytest.raises(DeidRejected) as caught:
            deidentify(_path(name), space=space(), subject_code=SUBJECT, options=DEFAULT)
        assert caught.value.code == "sop_class_not_accepted"
        assert caught.value.reason.startswith(label)


def _dciodvfy_errors(path: Path) -> set[str]:
    import re
    import shutil
    import subprocess

    assert shutil.which("dciodvfy"), "dciodvfy is missing: `make system-deps` installs Debian's dicom3tools"
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, check=False)  # noqa: S603, S607
    return {re.sub(r"\s+", " ", line) for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")}


def _new_errors(data: bytes, tmp_path: Path, options: DeidOptions = DEFAULT) -> set[str]:
    source, output = tmp_path / "in.dcm", tmp_path / "out.dcm"
    source.write_bytes(data)
    output.write_bytes(deidentify(data, space=space(), subject_code=SUBJECT, options=options).data)
    return _dciodvfy_errors(output) - _dciodvfy_errors(source)


@pytest.mark.parametrize("name", ACCEPTED_FILES)
def test_dciodvfy_reports_no_error_the_input_did_not_have(name, tmp_path):
    assert _new_errors(Path(_path(name)).read_bytes(), tmp_path) == set()


def test_dciodvfy_reports_no_new_error_after_cleaning_conditional_pairs_and_code_meanings(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from .factories import ct_image, part10

    ds = ct_image(patient_name="KIM^MINSU")
    ds.ClinicalTrialSponsorName, ds.ClinicalTrialProtocolID, ds.ClinicalTrialProtocolName = "S", "P1", "Trial"
    ds.ClinicalTrialSiteID, ds.ClinicalTrialSiteName, ds.ClinicalTrialSubjectID = "1", "Seoul", "SUB1"
    ds.ClinicalTrialProtocolEthicsCommitteeName = "Seoul IRB"
    ds.ClinicalTrialProtocolEthicsCommitteeApprovalNumber = "IRB-2024-77"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CT-CHEST", "99LOCAL", "Kim, Minsu"
    ds.ProcedureCodeSequence = Sequence([code])
    assert _new_errors(part10(ds), tmp_path) == set()
