"""The instances' DICOM JSON (kept as their metadata) is pydicom's `to_json_dict`, made from the raw bytes where
that gives the same answer: every value as pydicom gives it, on real files and on values that need care."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from trials.dicomweb.dicom_json import dataset_json
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

from ..deid.factories import real_dicom_files

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def pydicoms(ds: Dataset):
    return ds.to_json_dict(bulk_data_threshold=1 << 30)


def same(a: dict, b: dict) -> bool:
    """Equal as JSON text, so that a number's type counts (1 is not 1.0) and NaN equals NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_every_real_file_gives_pydicoms_dicom_json():
    compared, differ = 0, []
    for path in real_dicom_files():
        try:
            expected = pydicoms(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception:  # noqa: S112 - files that test pydicom's own error handling
            continue
        compared += 1
        if not same(dataset_json(pydicom.dcmread(path, stop_before_pixels=True)), expected):
            differ.append(path.name)
    # CT, MR, enhanced multi-frame, big endian, implicit VR, Korean, Japanese and other character sets, private
    # and retired elements, sequences nested three deep.
    assert compared >= 120
    assert differ == []


# Values whose reading needs care: each as a raw element of its VR.
ODD_VALUES = [
    (0x00080005, "CS", b"ISO 2022 IR 149"),
    (0x00080008, "CS", b"ORIGINAL\\PRIMARY\\AXIAL"),
    (0x00080060, "CS", b"CT\\"),  # an empty last value
    (0x00081030, "LO", b"A\\ B "),  # text: each value loses its trailing spaces only
    (0x00081090, "LO", b"\x00\x00"),  # only padding: no value
    (0x00081040, "LO", "서울".encode("euc_kr")),  # not ASCII: pydicom decodes it
    (0x0008103E, "LO", b"\x1b$)C\xbc\xad"),  # an escape sequence
    (0x00080054, "AE", b" AE1 \\AE2 "),  # leading spaces are not significant either
    (0x00080018, "UI", b"1.2.3\x00"),
    (0x00100010, "PN", b"Doe^John"),
    (0x00090010, "LO", b"ACME"),
    (0x00091010, "LO", b"private"),
    (0x00091011, "UN", b"\x01\x02"),
    (0x00280010, "US", b"\x00\x02"),
    (0x00280106, "SS", b"\x00\x80"),
    (0x00189087, "FD", b"\x00" * 16),
    (0x00281052, "DS", b""),
    (0x00280030, "DS", b" 1e3\\+.5 "),
    (0x00200032, "DS", b"-1.5\\2\\ 3 "),
    (0x00201041, "DS", b"NaN "),  # not a decimal string pydicom reads plainly: pydicom's answer
    (0x00200013, "IS", b"+012 "),
    (0x00280034, "IS", b"1.0 "),  # an integer string pydicom accepts in its own way
    (0x00204000, "LT", b"a\\b \x00"),  # text with a backslash is one value
]


def _file_of(values, transfer_syntax: str) -> bytes:
    ds = Dataset()
    for tag, vr, raw in values:
        ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    if transfer_syntax != ExplicitVRLittleEndian:
        ds = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_values_that_need_care_come_out_as_pydicom_gives_them(transfer_syntax):
    data = _file_of(ODD_VALUES, transfer_syntax)
    expected = pydicoms(pydicom.dcmread(io.BytesIO(data)))
    assert len(expected) == len(ODD_VALUES)
    assert same(dataset_json(pydicom.dcmread(io.BytesIO(data))), expected)


def test_a_value_pydicom_cannot_write_as_json_fails_here_too():
    data = _file_of([(0x00181050, "DS", b"1\\\\2 ")], ExplicitVRLittleEndian)  # an empty decimal among two
    with pytest.raises(ValueError):
        pydicoms(pydicom.dcmread(io.BytesIO(data)))
    with pytest.raises(ValueError):
        dataset_json(pydicom.dcmread(io.BytesIO(data)))


def test_a_ct_header_is_read_from_its_bytes_not_element_by_element_by_pydicom(monkeypatch):
    """The point of it: of a real CT header's elements, pydicom writes only the person names, and the character
    set it read already to read the file."""
    [data] = synthesize_ct_series(real_ct_template(large=True), slices=1, seed="dicom-json")
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    expected = pydicoms(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
    made: list[str] = []
    original = DataElement.to_json_dict

    def counted(self, *args, **kwargs):
        made.append(self.VR if self.VR == "PN" else self.keyword)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DataElement, "to_json_dict", counted)
    assert same(dataset_json(ds), expected)
    assert len(expected) > 60
    assert set(made) == {"PN", "SpecificCharacterSet"}, made
    assert len(made) <= 4, made
