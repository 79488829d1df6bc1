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


DOSE_SCREEN_LINES = (
    "Dose Report  홍길동  HONG GILDONG",
    "Patient ID 83726451  2026-03-02",
    "CTDIvol 12.3 mGy  DLP 456 mGy*cm",
    "서울대학교병원 영상의학과",
)


def nanum_font_path() -> str:
    """The NanumGothic TrueType file (Debian's fonts-nanum, installed by `make system-deps`)."""
    import shutil
    import subprocess

    fc_list = shutil.which("fc-list")
    if fc_list is None:
        raise FileNotFoundError("fc-list is missing: `make system-deps` installs fonts-nanum and fontconfig")
    listed = subprocess.run(  # noqa: S603 - a fixed argument list
        [fc_list, ":family=NanumGothic", "file"], capture_output=True, text=True, check=False
    )
    paths = sorted(line.split(":")[0].strip() for line in listed.stdout.splitlines() if line.strip())
    regular = [p for p in paths if p.endswith("NanumGothic.ttf")]
    if not (regular or paths):
        raise FileNotFoundError("the Nanum fonts are missing: `make system-deps` installs fonts-nanum")
    return (regular or paths)[0]


def draw_text_screen(
    template: Dataset,
    *,
    lines: tuple[str, ...] = DOSE_SCREEN_LINES,
    size: int = 512,
    image_type: tuple[str, ...] = ("DERIVED", "SECONDARY", "OTHER"),
    font_size: int = 22,
) -> Dataset:
    """A CT dose-report-like screen: `template`'s header with `lines` of text drawn into its pixels (Nanum).

    The background is air (0, MONOCHROME2, 12 bits stored), the text the brightest value, as scanners draw
    their dose and protocol screens; there is no Burned In Annotation attribute, as often in practice.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(nanum_font_path(), font_size)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for n, line in enumerate(lines):
        draw.text((24, 24 + n * (font_size * 2)), line, font=font, fill=255)
    pixels = np.where(np.asarray(canvas) > 127, 4095, 0).astype("<u2")
    ds = template.copy()
    ds.ImageType = list(image_type)
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    for keyword in (
        "BurnedInAnnotation",
        "WindowCenter",
        "WindowWidth",
        "LargestImagePixelValue",
        "SmallestImagePixelValue",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = pixels.tobytes()
    if "PixelData" in ds:
        ds["PixelData"].VR = "OW"
    return ds


def synthesize_dose_screens(template: Dataset, *, count: int, seed: str) -> list[bytes]:
    """`count` dose report screens of one series (CT DERIVED\\SECONDARY with text in the pixels), as Part 10."""
    files = []
    screen = draw_text_screen(template)
    study_uid, series_uid = _uid(seed, "study"), _uid(seed, "series", 999)
    for n in range(count):
        ds = screen.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = _uid(seed, "instance", 999, n)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber, ds.InstanceNumber = 999, n + 1
        ds.SeriesDescription = "Dose Report"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files
