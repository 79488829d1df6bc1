"""DICOM instances built for the de-identification tests: small CT/MR images and the PHI canary corpus."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from trials.deid import DeidOptions, PseudonymSpace
from trials.deid.profile import parse_tag, profile_rows

KEY_ALPHA = bytes(range(32))
KEY_OMEGA = bytes(range(100, 132))
SUBJECT = "SEO-001"
ORG_ROOT = "1.2.826.0.1.3680043.10.543"  # test UIDs, never well-known

BASIC = DeidOptions(retain_longitudinal_modified_dates=False, clean_descriptors=False)
DEFAULT = DeidOptions()


def space(key: bytes = KEY_ALPHA) -> PseudonymSpace:
    return PseudonymSpace(key)


def uid(*parts: int | str) -> str:
    return ".".join([ORG_ROOT, *map(str, parts)])


def pixel_bytes(rows: int = 4, columns: int = 4, seed: int = 7) -> bytes:
    """Distinct little-endian 12-bit pixels (in 16 bits), so byte identity means the very same image."""
    return bytes((seed * 31 + i * 17) % 251 & (0x0F if i % 2 else 0xFF) for i in range(rows * columns * 2))


def ct_image(
    *,
    sop_instance_uid: str | None = None,
    patient_name: str = "DOE^JOHN",
    patient_id: str = "MRN4455667",
    study_date: str = "20240105",
    sop_class_uid: str = CTImageStorage,
    charset: str | list[str] | None = "ISO_IR 100",
) -> Dataset:
    """A 4x4 CT image with the identifying attributes a scanner writes."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid or uid(1, 1, 1)
    ds.StudyInstanceUID = uid(2, 1)
    ds.SeriesInstanceUID = uid(3, 1)
    ds.FrameOfReferenceUID = uid(4, 1)
    ds.Modality = "CT" if sop_class_uid == CTImageStorage else "MR"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610203"
    ds.PatientSex = "M"
    ds.PatientAge = "063Y"
    ds.PatientWeight = "81.5"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
    ds.StudyTime = "101500"
    ds.SeriesTime = "101600"
    ds.AcquisitionDateTime = study_date + "101700.250000"
    ds.AccessionNumber = "ACC20240105X"
    ds.StudyID = "ST77"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.InstitutionName = "Princeton Plainsboro Teaching Hospital"
    ds.InstitutionAddress = "1 Hospital Road, Princeton"
    ds.StationName = "CTSCAN-EAST-2"
    ds.DeviceSerialNumber = "SN998877"
    ds.OperatorsName = "CAMERON^ALLISON"
    ds.Manufacturer = "ACME Medical"
    ds.ManufacturerModelName = "Spiral 64"
    ds.StudyDescription = "CT CHEST ABDOMEN"
    ds.SeriesDescription = "AX 5mm"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.BodyPartExamined = "CHEST"
    ds.ContrastBolusAgent = "IOPAMIDOL"
    ds.SeriesNumber = 3
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.SliceThickness = "5.0"
    ds.ImagePositionPatient = ["-100.0", "-120.5", "30.0"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.75", "0.75"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixel_bytes()
    return ds


def part10(ds: Dataset, *, implicit: bool = False, preamble: bool = True) -> bytes:
    """Encode `ds` as a file (or as a bare dataset) without pydicom's file-format checks."""
    ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    if preamble:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", uid(9, 9))
        meta.TransferSyntaxUID = ts
        meta.ImplementationClassUID = uid(99)
        meta.SourceApplicationEntityTitle = "SITE_PACS_AE"
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, meta)
    fp.is_implicit_VR = implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def file_bytes(**kwargs) -> bytes:
    return part10(ct_image(**kwargs))


# -- the PHI canary corpus --------------------------------------------------------------------------------

KOREAN_NAME = "김희중^철수"
KOREAN_CHARSET = ["", "ISO 2022 IR 149"]
_CANARY_DATE_START = datetime.date(1950, 1, 1)
# Attributes that must be left as they are for the instance to be an image we accept.
_STRUCTURAL = {0x00020003, 0x00080018}


@dataclass
class Canaries:
    """A canary instance and what must not survive de-identification."""

    dataset: Dataset
    text: dict[str, str] = field(default_factory=dict)  # canary -> attribute it was put in
    dates: dict[str, str] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    times: dict[str, str] = field(default_factory=dict)
    descriptors: dict[str, str] = field(default_factory=dict)  # canaries that Clean Descriptors may keep

    def all_absent_values(self, *, descriptors_removed: bool, times_removed: bool) -> dict[str, str]:
        values = {**self.text, **self.dates, **self.uids}
        if descriptors_removed:
            values.update(self.descriptors)
        if times_removed:
            values.update(self.times)
        return values


def _identifying_item(n: int, canaries: Canaries) -> Dataset:
    """A sequence item holding identifying attributes, each with its own canary."""
    item = Dataset()
    person, pid, acc = f"CANARY{n:04d}P", f"CANARY{n:04d}I", f"CANARY{n:04d}A"
    item.PersonName = person
    item.PatientID = pid
    item.AccessionNumber = acc
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = uid(77, n)
    canaries.text.update({person: "PersonName", pid: "PatientID", acc: "AccessionNumber"})
    canaries.uids[uid(77, n)] = "ReferencedSOPInstanceUID"
    return item


def canary_instance(*, study_date: str = "20240105", sop_instance_uid: str | None = None) -> Canaries:
    """Every Annex E attribute with a VR in pydicom's dictionary, each holding a unique canary value.

    Also: identifiers echoed into descriptors, nested sequences with canaries (3 levels deep), private tags,
    and a Korean patient name in ISO 2022 IR 149.
    """
    ds = ct_image(charset=KOREAN_CHARSET, study_date=study_date, sop_instance_uid=sop_instance_uid)
    canaries = Canaries(dataset=ds)
    n = 0
    for row in profile_rows():
        tag = parse_tag(row.tag)
        if tag is None or tag in _STRUCTURAL or tag >> 16 in (0x0000, 0x0002) or tag not in DicomDictionary:
            continue
        n += 1
        vr = DicomDictionary[tag][0].split(" or ")[0]
        keyword = DicomDictionary[tag][4]
        descriptor = "cleanDescOpt" in row.options or "rtnPatCharsOpt" in row.options
        target = canaries.descriptors if descriptor else canaries.text
        if vr in ("LO", "SH", "CS", "AE", "LT", "ST", "UT", "UC", "UR", "PN"):
            value = f"CANARY{n:04d}"
            target[value] = keyword
        elif vr == "DA":
            value = (_CANARY_DATE_START + datetime.timedelta(days=n)).strftime("%Y%m%d")
            canaries.dates[value] = keyword
        elif vr == "DT":
            value = (_CANARY_DATE_START + datetime.timedelta(days=n)).strftime("%Y%m%d") + "101010"
            canaries.dates[value] = keyword
        elif vr == "TM":
            value = f"235959.{n:06d}"
            canaries.times[value] = keyword
        elif vr == "UI":
            value = uid(5, n)
            canaries.uids[value] = keyword
        elif vr == "DS":
            value = f"9{n:04d}.5"
            target[value] = keyword
        elif vr == "IS":
            value = f"9{n:05d}"
            target[value] = keyword
        elif vr == "AS":
            value = "042Y"
        elif vr in ("US", "SS", "UL", "SL"):
            value = 4
        elif vr in ("OB", "UN", "OW"):
            value = f"CANARY{n:04d}".encode()
            target[value.decode()] = keyword
        elif vr == "SQ":
            value = Sequence([_identifying_item(n, canaries)])
        else:
            continue
        ds.add_new(tag, vr, value)

    # Structural attributes the image needs, with canary UIDs that must be remapped.
    ds.SOPInstanceUID = sop_instance_uid or uid(5, 9000)
    canaries.uids[ds.SOPInstanceUID] = "SOPInstanceUID"
    ds.PatientName = KOREAN_NAME
    patient_id = ds.PatientID
    accession = ds.AccessionNumber
    # Identifiers echoed into free text that Clean Descriptors keeps.
    ds.StudyDescription = f"CT 김희중 follow-up {patient_id} acc {accession}"
    ds.SeriesDescription = f"Chest {ds.StudyDate[:4]}-{ds.StudyDate[4:6]}-{ds.StudyDate[6:]} 철수 AX"
    ds.ProtocolName = f"{accession} CHEST"
    # Nested sequences: Referenced Study (removed), Request Attributes (cleaned), three levels deep (kept).
    ds.ReferencedStudySequence = Sequence([_identifying_item(9001, canaries)])
    request = _identifying_item(9002, canaries)
    request.RequestedProcedureID = "CANARY9002R"
    request.ScheduledProcedureStepID = "CANARY9002S"
    canaries.text.update({"CANARY9002R": "RequestedProcedureID", "CANARY9002S": "ScheduledProcedureStepID"})
    ds.RequestAttributesSequence = Sequence([request])
    deepest = _identifying_item(9003, canaries)
    deepest.Date = "19500501"  # canary date in an item
    canaries.dates["19500501"] = "Date"
    derivation = Dataset()
    derivation.SourceImageSequence = Sequence([deepest])
    shared = Dataset()
    shared.DerivationImageSequence = Sequence([derivation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    # Private tags: a creator block with text, a sequence and a UID, all to be removed.
    block = ds.private_block(0x0009, "CANARY VENDOR 1.0", create=True)
    block.add_new(0x01, "LO", "CANARY9101")
    block.add_new(0x02, "LO", patient_id)
    private_item = Dataset()
    private_item.PatientName = "CANARY9102^PRIVATE"
    block.add_new(0x03, "SQ", Sequence([private_item]))
    canaries.text.update({"CANARY9101": "private", "CANARY9102": "private", "CANARY VENDOR": "private creator"})
    return canaries


def deid_data_files() -> list:
    """Every DICOM file shipped in the deid-data package."""
    root = files("deid_data") / "data"
    return sorted(
        (
            path
            for folder in root.iterdir()
            if folder.is_dir()
            for path in folder.iterdir()
            if path.name.endswith(".dcm")
        ),
        key=lambda p: p.name,
    )


def real_dicom_files() -> list[Path]:
    """pydicom's and pydicom-data's test files, and deid-data's, found in their folders (pydicom's own finder
    tries to download files it lacks first): CT, MR, enhanced multi-frame, compressed, big endian, implicit VR,
    Korean, Japanese and other character sets, private and retired elements, sequences nested three deep, and
    files that test pydicom's own error handling."""
    import data_store
    import deid_data
    import pydicom.data

    roots = [
        Path(pydicom.data.__file__).parent / "test_files",
        Path(pydicom.data.__file__).parent / "charset_files",
        Path(data_store.__file__).parent,
        Path(deid_data.__file__).parent,
    ]
    return sorted(path for root in roots for path in root.rglob("*.dcm"))


def colour_screen(*, planar: int, bits: int = 8, **kwargs) -> bytes:
    """The dose screen in colour (grey text in RGB), its samples stored by pixel (0) or plane by plane (1)."""
    import numpy as np

    from trials.ingest.synthetic import draw_text_screen

    ds = draw_text_screen(ct_image(charset="ISO_IR 192"), **kwargs)
    grey = (
        np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).astype(np.int64) * (2**bits - 1) // 4095
    )
    rgb = np.stack([grey, grey // 2, grey], axis=-1).astype(f"<u{bits // 8}")
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", planar
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.PixelData = (rgb.transpose(2, 0, 1) if planar else rgb).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    return part10(ds)


def read(data: bytes) -> Dataset:
    import pydicom

    return pydicom.dcmread(io.BytesIO(data))
