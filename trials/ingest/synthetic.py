"""Realistic CT series made from a real scanner header, for demos, tests and benchmarks.

The header comes from a real CT (pydicom-data's 512x512 `693_UNCI.dcm` when installed, else pydicom's
own `CT_small.dcm`); each slice gets its own UIDs, position and instance number. UIDs are derived from
`seed`, so the same call writes the same files (a re-upload is recognised as such).
"""

from __future__ import annotations

import hashlib
import io
from datetime import date

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

ORG_ROOT = "1.2.826.0.1.3680043.10.543.7"  # an example root for synthetic data, not a scanner's


def real_ct_template(*, large: bool = True) -> Dataset:
    """A real CT's header and pixels: the 512x512 one if pydicom-data is installed and `large`, else CT_small."""
    path = get_testdata_file("693_UNCI.dcm") if large else None
    return pydicom.dcmread(path or get_testdata_file("CT_small.dcm"))


def _uid(seed: str, *parts) -> str:
    digest = int.from_bytes(hashlib.sha256("/".join([seed, *map(str, parts)]).encode()).digest()[:12], "big")
    return f"{ORG_ROOT}.{digest}"


def synthesize_ct_series(
    template: Dataset,
    *,
    slices: int,
    seed: str,
    patient_name: str = "HONG^GILDONG",
    patient_id: str = "PID0001",
    study_date: date = date(2026, 3, 2),
    series_number: int = 2,
    slice_thickness: float = 5.0,
    series_description: str = "CT CHEST ABDOMEN PELVIS PV 5mm",
) -> list[bytes]:
    """`slices` contiguous axial slices of one series as Part 10 bytes, top to bottom."""
    study_uid, series_uid, frame_uid = _uid(seed, "study"), _uid(seed, "series", series_number), _uid(seed, "for")
    files = []
    for n in range(slices):
        ds = template.copy()
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date.strftime("%Y%m%d")
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SOPInstanceUID = _uid(seed, "instance", series_number, n)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber, ds.InstanceNumber = series_number, n + 1
        ds.SeriesDescription = series_description
        ds.StudyDescription = "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
        ds.SliceThickness = slice_thickness
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-250.0, -250.0, round(-slice_thickness * n, 3)]
        ds.SliceLocation = round(-slice_thickness * n, 3)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files
