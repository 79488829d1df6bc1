"""Series synthesized as pydicom headers for the QC tests: N parallel slices with the fields QC reads."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage

from trials.qc import ProtocolInfo, SeriesInfo, series_info_from_datasets

ORG_ROOT = "1.2.826.0.1.3680043.10.543.77"  # test UIDs, never well-known
PATIENT_NAME = "KIM^MINJUN"
PATIENT_ID = "SNUH-88412093"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def tm(seconds: float) -> str:
    """A DICOM TM for seconds since midnight."""
    seconds = int(seconds) % 86400
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


BOLUS = 10 * 3600 + 15 * 60  # 10:15:00, the contrast bolus starts


def slices(
    n: int = 40,
    *,
    modality: str = "CT",
    series_number: int = 3,
    description: str = "AX 5mm",
    protocol_name: str = "",
    body_part: str = "",
    thickness: float | None = 5.0,
    spacing: float = 5.0,
    first_z: float = -300.0,
    skip: Iterable[int] = (),
    duplicate: Iterable[int] = (),
    orientation: tuple[float, ...] = AXIAL,
    orientations: dict[int, tuple[float, ...]] | None = None,
    spacing_changes: dict[int, float] | None = None,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    contrast_agent: str | None = None,
    contrast_delay_s: float | None = None,
    acquisition_time: str | None = None,
    manufacturer: str = "ACME Medical",
    model_name: str = "Spiral 128",
    station_name: str = "",
    repetition_time: float | None = None,
    echo_time: float | None = None,
    inversion_time: float | None = None,
    scanning_sequence: str | None = None,
    b_values: Iterable[float] = (),
    series_uid: str | None = None,
) -> list[Dataset]:
    """`n` slices at `spacing` mm along the normal from `first_z`; slice indexes in `skip` are left out (their
    instance numbers too), those in `duplicate` are sent twice. `spacing_changes` maps a slice index to the
    step before it. `contrast_delay_s` sets ContrastBolusStartTime that long before the acquisition.
    """
    skip, duplicate = set(skip), list(duplicate)
    uid = series_uid or f"{ORG_ROOT}.3.{series_number}"
    acquired = BOLUS + contrast_delay_s if contrast_delay_s is not None else 11 * 3600
    b_values = list(b_values) or [None]
    out = []
    z = first_z
    number = 0
    for index in range(n):
        if index:
            z += (spacing_changes or {}).get(index, spacing)
        for b in b_values:
            number += 1
            if index in skip:
                continue
            copies = 2 if index in duplicate else 1
            for _ in range(copies):
                out.append(
                    _image(
                        modality=modality,
                        uid=uid,
                        instance=f"{uid}.{number}.{len(out)}",
                        number=number,
                        z=z,
                        orientation=(orientations or {}).get(index, orientation),
                    )
                )
                ds = out[-1]
                ds.SeriesNumber = series_number
                ds.SeriesDescription = description
                if protocol_name:
                    ds.ProtocolName = protocol_name
                if body_part:
                    ds.BodyPartExamined = body_part
                if thickness is not None:
                    ds.SliceThickness = thickness
                ds.SpacingBetweenSlices = spacing
                ds.ImageType = list(image_type)
                ds.Manufacturer = manufacturer
                ds.ManufacturerModelName = model_name
                if station_name:
                    ds.StationName = station_name
                ds.AcquisitionTime = acquisition_time or tm(acquired + index * 0.5)
                if contrast_agent is not None:
                    ds.ContrastBolusAgent = contrast_agent
                    ds.ContrastBolusRoute = "IV"
                if contrast_delay_s is not None:
                    ds.ContrastBolusStartTime = tm(BOLUS)
                if modality == "MR":
                    ds.ScanningSequence = scanning_sequence or "SE"
                    ds.SequenceVariant = "NONE"
                    if repetition_time is not None:
                        ds.RepetitionTime = repetition_time
                    if echo_time is not None:
                        ds.EchoTime = echo_time
                    if inversion_time is not None:
                        ds.InversionTime = inversion_time
                    ds.FlipAngle = 90
                    if b is not None:
                        ds.DiffusionBValue = b
    return out


def _image(*, modality: str, uid: str, instance: str, number: int, z: float, orientation: tuple[float, ...]) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    ds.SOPInstanceUID = instance
    ds.StudyInstanceUID = f"{ORG_ROOT}.2.1"
    ds.SeriesInstanceUID = uid
    ds.FrameOfReferenceUID = f"{ORG_ROOT}.4.1"
    ds.Modality = modality
    # Identifying values a scanner writes: QC must never echo them.
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.StudyDate = "20240105"
    ds.InstanceNumber = number
    row, col = orientation[:3], orientation[3:]
    normal = (row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0])
    ds.ImagePositionPatient = [round(-180.0 * (row[i] + col[i]) + z * normal[i], 4) for i in range(3)]
    ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows = ds.Columns = 512
    return ds


def series(n: int = 40, *, study_day: int | None = 42, **kwargs) -> SeriesInfo:
    """A SeriesInfo built through the real header reader."""
    return series_info_from_datasets(slices(n, **kwargs), study_day=study_day)


def cap_portal_venous(**kwargs) -> SeriesInfo:
    """A complete, compliant CT chest-abdomen-pelvis series in the portal venous phase."""
    defaults = {
        "n": 130,
        "description": "CAP PV 5mm",
        "body_part": "CHEST_TO_PELVIS",
        "contrast_agent": "IOPAMIDOL 370",
        "contrast_delay_s": 70,
        "series_number": 3,
    }
    return series(**(defaults | kwargs))


def localizer(**kwargs) -> SeriesInfo:
    defaults = {
        "n": 1,
        "description": "Topogram 0.6 T20s",
        "image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER"),
        "series_number": 1,
        "thickness": 0.6,
    }
    return series(**(defaults | kwargs))


def cap_protocol(**kwargs) -> ProtocolInfo:
    """The DEMO trial's protocol: CT chest-abdomen-pelvis with contrast, slices <= 5 mm, Week 6 (day 42 +/- 7)."""
    defaults = {
        "modality": "CT",
        "body_region": "cap",
        "contrast": "required",
        "max_slice_thickness_mm": 5.0,
        "window": (35, 49),
        "target_day": 42,
        "same_scanner_as_baseline": False,
        "visit_label": "Week 6",
    }
    return ProtocolInfo(**(defaults | kwargs))
