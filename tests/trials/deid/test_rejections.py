"""Inputs that cannot be de-identified safely: each gets a clear code and a reason with no PHI in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import SecondaryCaptureImageStorage, UltrasoundImageStorage

from trials.deid import DeidRejected, deidentify

from .factories import DEFAULT, SUBJECT, ct_image, file_bytes, part10, space

PHI = ("DOE", "JOHN", "MRN4455667", "20240105", "HOUSE", "Princeton")


def _rejection(data) -> DeidRejected:
    with pytest.raises(DeidRejected) as caught:
        deidentify(data, space=space(), subject_code=SUBJECT, options=DEFAULT)
    error = caught.value
    for value in PHI:
        assert value not in str(error) and value not in repr(error)
    assert error.reason.endswith(".")
    return error


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is not an image" * 20, b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, b"\x00" * 132 + b"DICX"],
    ids=["empty", "text", "png", "bad-magic"],
)
def test_it_rejects_what_is_not_dicom(data):
    assert _rejection(data).code == "not_dicom"


def test_it_rejects_a_file_cut_anywhere():
    data = file_bytes()
    for cut in (len(data) - 1, len(data) - 20, len(data) // 2, 700, 400):
        assert _rejection(data[:cut]).code == "truncated", cut


def test_it_rejects_pydicoms_truncated_files():
    assert _rejection(Path(get_testdata_file("MR_truncated.dcm")).read_bytes()).code == "truncated"
    rle = Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes()
    for cut in (len(rle) - 150, len(rle) // 2):  # inside the encapsulated fragments
        assert _rejection(rle[:cut]).code == "truncated", cut


@pytest.mark.parametrize(
    ("keyword", "code"),
    [
        ("SOPInstanceUID", "no_sop_instance_uid"),
        ("StudyInstanceUID", "no_study_instance_uid"),
        ("SeriesInstanceUID", "no_series_instance_uid"),
    ],
)
def test_it_rejects_an_image_without_one_of_the_uids_it_is_filed_by(keyword, code):
    """The site's browser holds such a file back with the reason, as the server refuses it."""
    ds = ct_image()
    delattr(ds, keyword)
    assert _rejection(part10(ds)).code == code
    if keyword != "SOPInstanceUID":  # an empty one cannot be written into the file meta information
        setattr(ds, keyword, "")
        assert _rejection(part10(ds)).code == code


@pytest.mark.parametrize(
    ("sop_class", "name"),
    [
        (SecondaryCaptureImageStorage, "Secondary Capture Image Storage"),
        (UltrasoundImageStorage, "Ultrasound Image Storage"),
    ],
)
def test_it_rejects_images_that_are_not_ct_or_mr(sop_class, name):
    error = _rejection(part10(ct_image(sop_class_uid=sop_class)))
    assert error.code == "sop_class_not_accepted"
    assert error.reason == f"{name} is not accepted: this trial takes CT and MR images."


def test_it_rejects_burned_in_annotation():
    ds = ct_image()
    ds.BurnedInAnnotation = "YES"
    assert _rejection(part10(ds)).code == "burned_in_annotation"
    ds.BurnedInAnnotation = "NO"
    deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)


def test_it_rejects_an_image_without_pixel_data():
    ds = ct_image()
    del ds.PixelData
    assert _rejection(part10(ds)).code == "pixel_data_missing"


def test_it_rejects_pixel_data_shorter_than_the_image():
    ds = ct_image()
    ds.PixelData = b"\x00" * 16  # 4x4x16 bits needs 32 bytes
    assert _rejection(part10(ds)).code == "truncated"


def test_it_rejects_pixel_data_longer_than_the_image():
    """Bytes past the image are read by no check and shown to no reader, so the engine (in the site's browser
    as on the server) refuses them; padding to an even length is the standard's and passes."""
    ds = ct_image()
    expected = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    ds.PixelData = bytes(expected * 50)
    assert _rejection(part10(ds)).code == "pixels_too_long"
    ds.PixelData = bytes(expected)
    deidentify(part10(ds), space=space(), subject_code=SUBJECT, options=DEFAULT)
