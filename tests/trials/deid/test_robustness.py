"""Never crash on a file, and say the right reason: unreadable files, non-image objects, the SOP class rule."""

from __future__ import annotations

import io
import traceback
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    JPEGBaseline8Bit,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from trials.deid import CT_MR_SOP_CLASSES, DeidOptions, DeidRejected, deidentify, engine, sop_class_rejection

from .factories import DEFAULT, SUBJECT, ct_image, file_bytes, space, uid

PHI = ("DOE", "JOHN", "MRN4455667", "20240105", "HOUSE", "Princeton")


def _rejection(data: bytes, options: DeidOptions = DEFAULT) -> DeidRejected:
    with pytest.raises(DeidRejected) as caught:
        deidentify(data, space=space(), subject_code=SUBJECT, options=options)
    error = caught.value
    text = str(error) + repr(error) + "".join(traceback.format_exception(error))
    for value in PHI:
        assert value not in text
    return error


def _implicit_with_jpeg_meta() -> bytes:
    ds = ct_image()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    meta.ImplementationClassUID = uid(99)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta)
    fp.is_implicit_VR = True
    write_dataset(fp, ds)
    return fp.getvalue()


def test_an_implicit_vr_dataset_whose_file_meta_says_jpeg_baseline_is_rejected_not_a_crash():
    error = _rejection(_implicit_with_jpeg_meta())
    assert error.code in ("truncated", "unreadable")


def test_any_exception_while_de_identifying_is_the_files_rejection_with_the_parsers_message(monkeypatch):
    def broken(*args, **kwargs):
        raise AttributeError("'MultiValue' object has no attribute 'DOE^JOHN' near MRN4455667")

    monkeypatch.setattr(engine, "build_index", broken)
    error = _rejection(file_bytes())
    assert error.code == "unreadable"
    assert error.reason.startswith("The file could not be read as a DICOM image (AttributeError:")
    assert error.__context__ is None and error.__cause__ is None


def test_the_parser_message_loses_quoted_values_and_identifier_patterns():
    message = engine._parser_message(ValueError("bad value 'KIM^MINSU' for 800101-1234567 at 0x1234"))
    assert message.startswith("ValueError: bad value") and "KIM" not in message and "800101" not in message


@pytest.mark.parametrize(
    ("name", "label"), [("test-SR.dcm", "Comprehensive SR Storage"), ("rtstruct.dcm", "RT Structure Set Storage")]
)
def test_intact_sr_and_rtstruct_are_not_images_this_trial_accepts_never_truncated(name, label):
    error = _rejection(Path(get_testdata_file(name)).read_bytes())
    assert error.code == "sop_class_not_accepted"
    assert error.reason == f"{label} is not an image this trial accepts: this trial takes CT and MR images."


def test_a_trial_that_accepts_structured_reports_takes_an_intact_sr():
    from pydicom.uid import ComprehensiveSRStorage

    options = DeidOptions(accepted_sop_classes=CT_MR_SOP_CLASSES | {ComprehensiveSRStorage})
    data = Path(get_testdata_file("test-SR.dcm")).read_bytes()
    result = deidentify(data, space=space(), subject_code=SUBJECT, options=options)
    assert result.sop_class_uid == ComprehensiveSRStorage and result.pixels == ""


def test_the_sop_class_rule_is_a_function_ingest_can_call():
    assert sop_class_rejection(CTImageStorage) is None
    assert sop_class_rejection(SegmentationStorage) == (
        "Segmentation Storage is not an image this trial accepts: this trial takes CT and MR images."
    )
    assert sop_class_rejection(RTStructureSetStorage).startswith("RT Structure Set Storage is not an image")
    assert sop_class_rejection(SecondaryCaptureImageStorage) == (
        "Secondary Capture Image Storage is not accepted: this trial takes CT and MR images."
    )
    assert sop_class_rejection(SegmentationStorage, CT_MR_SOP_CLASSES | {SegmentationStorage}) is None
    assert sop_class_rejection("").startswith("An image without a SOP Class UID")


def test_a_file_from_a_stream_is_read_like_bytes():
    result = deidentify(io.BytesIO(file_bytes()), space=space(), subject_code=SUBJECT, options=DEFAULT)
    assert result.sop_class_uid == CTImageStorage
