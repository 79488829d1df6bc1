"""De-identification of one DICOM instance into a trial's pseudonym space (PS3.15 Annex E)."""

from __future__ import annotations

import datetime
import io
import os
import re
import struct
from collections import Counter
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.datadict import DicomDictionary, private_dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from . import burned_in
from . import profile as p
from .charsets import (
    CHARSET_VRS,
    OUTPUT_CHARSET,
    STRING_VRS,
    decode_text,
    encode_text,
    encodings_for,
    is_plain_ascii,
    reencode_if_needed,
)
from .errors import (
    FILING_UIDS,
    DeidRejected,
    excess_frames,
    gettext_noop,
    missing_uid,
    pixels_too_long,
    uncompressed_ybr_422,
    undecodable_pixels,
    unsupported_syntax,
)
from .fastread import read_file
from .index import build_index
from .options import REJECT, DeidOptions, sop_class_rejection
from .patterns import remove_identifiers
from .pseudonym import PseudonymSpace
from .verify import IdentifyingValues, verify_bytes
from .writer import UNDEFINED, Encoder, file_meta, raw_element, text_element

SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
FRAME_OF_REFERENCE_UID = 0x00200052
IMAGE_TYPE = 0x00080008
MANUFACTURER = 0x00080070
MANUFACTURER_MODEL_NAME = 0x00081090
BURNED_IN_ANNOTATION = 0x00280301
PHOTOMETRIC_INTERPRETATION = 0x00280004
PLANAR_CONFIGURATION = 0x00280006
PIXEL_DATA = 0x7FE00010

# What a result's `actions` counts, and nothing else: a browser's record of a file declares these counts only.
ACTIONS = frozenset(
    {
        "removed",
        "emptied",
        "dummied",
        "pseudonymized",
        "dates_shifted",
        "uids_remapped",
        "cleaned",
        "reencoded",
        "private_removed",
        "private_kept",
        "pixels_examined",
        "pixels_rewritten",
    }
)
# Text VRs whose values, when kept, are cleaned of identifying values and identifier patterns.
CLEANED_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
# Codes and versions are not free text: a six-digit DCM code value (121320) or a date-like coding scheme version
# is what it says. They are cleaned of the input's values and of the patterns the law names, but their
# numbers are not taken for record numbers or dates.
CODED_TEXT_TAGS = frozenset(
    tag_for_keyword(keyword)
    for keyword in (
        "CodeValue",
        "LongCodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "ContextIdentifier",
        "MappingResource",
        "SoftwareVersions",
        "ContextGroupLocalVersion",
    )
    if tag_for_keyword(keyword) is not None
)
# Type 1 text that cleaning must not leave empty (a code item needs its meaning), and what it becomes.
CLEANED_PLACEHOLDER = "cleaned"
TYPE1_TEXT = frozenset({"CodeMeaning", "CodeValue", "CodingSchemeDesignator"})
# Conditional pairs (PS3.3): the first may be present only while the second is; removing the second
# (Annex E removes an approval number) removes the first too, so the output stays valid for its IOD.
PRESENT_ONLY_WITH = {
    0x00120081: 0x00120082,  # Clinical Trial Protocol Ethics Committee Name / ... Approval Number (Type 1C)
}
# Removed values that name a site or its equipment. When one equals the Manufacturer (or model) the image
# keeps, it names the maker of a device, which identifies no patient: it is not searched for.
_SITE_KEYWORDS = frozenset({"InstitutionName", "InstitutionalDepartmentName", "StationName", "InstitutionAddress"})

# Values of these UI attributes name a class, a transfer syntax or a coding scheme, never an instance: a
# private SOP Class UID referenced from an image must stay what it is. None of them is in the Annex E table.
CLASS_UID_TAGS = frozenset(
    tag
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items()
    if vr == "UI"
    and ("SOPClass" in keyword or "TransferSyntax" in keyword)
    or keyword in ("CodingSchemeUID", "ContextUID", "MappingResourceUID")
)
# Everything under the DICOM root is defined by the standard (classes, syntaxes, well-known frames of
# reference and context groups); pydicom's UID dictionary lists only what pydicom knows of it.
DICOM_ROOT = "1.2.840.10008."

DUMMY_TEXT = "DEIDENTIFIED"
DUMMY_BY_VR = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "UR": "",
}

_DCM_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile", "Basic Profile"),
    "dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
        "Retain Longitudinal Temporal Information Modified Dates",
    ),
    "descriptors": ("113105", "Clean Descriptors Option", "Clean Descriptors"),
    "device": ("113109", "Retain Device Identity Option", "Retain Device Identity"),
    "patient": ("113108", "Retain Patient Characteristics Option", "Retain Patient Characteristics"),
    "private": ("113111", "Retain Safe Private Option", "Retain Safe Private"),
}


@dataclass(frozen=True)
class DeidResult:
    """A de-identified instance: the Part 10 bytes and what the image index needs, read from the output."""

    data: bytes = field(repr=False)
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    source_patient_hash: str
    transfer_syntax_uid: str
    actions: dict[str, int]
    index: dict[str, Any]
    deid_method: str = ""  # the De-identification Method written into the instance, values joined by "; "
    # What cleaning removed from kept text, as (attribute path, reason) pairs: never the value.
    cleaned: tuple[tuple[str, str], ...] = ()
    # How the pixel data were rewritten ("" when they are the input's, byte for byte).
    pixels: str = ""


def _read_source(source: bytes | str | os.PathLike | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return Path(source).read_bytes()
    return source.read()


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A dataset without preamble starts with a group 0002 or 0008 tag, little or big endian."""
    return len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _parse(data: bytes) -> Dataset:
    if not data:
        raise DeidRejected("not_dicom", gettext_noop("The file is empty."))
    # Rejections are raised outside the except blocks: a parser's message may quote a value, and an
    # exception raised inside would carry it along as __context__ into logs and error trackers.
    common = read_file(data)
    if common is not None:
        return common
    try:
        try:
            return dcmread(io.BytesIO(data))
        except InvalidDicomError:
            if not _looks_like_raw_dataset(data):
                raise
            return dcmread(io.BytesIO(data), force=True)
    except InvalidDicomError:
        rejection = DeidRejected("not_dicom", gettext_noop("The file is not a DICOM file."))
    except (EOFError, struct.error, OSError):
        rejection = DeidRejected(
            "truncated", gettext_noop("The file ends before the DICOM data does: it looks cut short.")
        )
    except Exception as exc:  # noqa: BLE001 - any parser failure means the same thing to a coordinator
        rejection = DeidRejected(
            "not_dicom", gettext_noop("The file could not be read as DICOM (%(type)s)."), type=type(exc).__name__
        )
    raise rejection


def _ascii(elem: Any) -> str:
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    if value is None:
        return ""
    return str(value).strip(" \x00")


def _shift_date(date: str, days: int) -> str | None:
    text = date.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + datetime.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_value(vr: str, value: str, days: int) -> str | None:
    """A DA or DT value (each of several) moved by `days`; None when a value is not a full date.

    A DT keeps its time and UTC offset: the shift is whole days, so intervals stay exact.
    """
    shifted = []
    for single in value.split("\\"):
        single = single.strip()
        date = _shift_date(single if vr == "DA" else single[:8], days)
        if date is None:
            return None
        shifted.append(date if vr == "DA" else date + single[8:])
    return "\\".join(shifted)


class _Walker:
    """One pass over the dataset tree: applies the profile and collects the input's identifying values."""

    def __init__(
        self,
        *,
        space: PseudonymSpace,
        subject_code: str,
        options: DeidOptions,
        encodings: list[str],
        implicit: bool,
        little: bool,
        top: Dataset,
    ) -> None:
        self.top = top
        self.space = space
        self.subject_code = subject_code
        self.options = options
        self.profile = p.compile_profile(options)
        self.rules = self.profile.rules
        self.offset = space.date_offset_days(subject_code) if options.retain_longitudinal_modified_dates else 0
        self.implicit = implicit
        self.little = little
        self.identifying = IdentifyingValues(encodings)
        # (item, tag, VR, text, raw bytes or None for a C action, (sequence path, keyword), kept by an option)
        self.to_clean: list[tuple[Dataset, int, str, str, bytes | None, tuple[tuple[str, ...], str], bool]] = []
        self.counts: Counter[str] = Counter()
        self.path: list[str] = []
        self.cleaned: list[tuple[str, str]] = []
        self.shifted: set[str] = set()

    # -- elements -------------------------------------------------------------------------------------

    def _raw(self, tag: int, vr: str, value: bytes) -> RawDataElement:
        return raw_element(tag, vr, value, implicit=self.implicit, little=self.little)

    def _set_text(self, ds: Dataset, tag: int, vr: str, text: str) -> None:
        ds._dict[BaseTag(tag)] = self._raw(tag, vr, encode_text(text, vr))

    @staticmethod
    def _vr(tag: int, elem: Any) -> str:
        vr = elem.VR
        if vr and vr != "UN" and len(vr) == 2:
            return vr
        entry = DicomDictionary.get(tag)
        if entry is not None and len(entry[0]) == 2:
            return entry[0]
        if getattr(elem, "length", 0) == UNDEFINED:
            return "SQ"  # only a sequence has an undefined length outside Pixel Data
        return vr if vr and len(vr) == 2 else "UN"

    @staticmethod
    def _raw_bytes(elem: Any) -> bytes:
        value = elem.value
        if isinstance(value, bytes):
            return value
        if value is None:
            return b""
        if isinstance(value, MutableSequence | tuple):  # pydicom's MultiValue, once it converted an element
            return "\\".join(str(v) for v in value).encode("utf-8")
        return str(value).encode("utf-8")

    def walk(self, ds: Dataset, encodings: list[str], *, clean_all: bool = False, collect_only: bool = False) -> None:
        """Apply the profile to every element of `ds` and its sequences (or only collect, for removed trees)."""
        elements = ds._dict
        own_charset = elements.get(SPECIFIC_CHARACTER_SET)
        if own_charset is not None:
            encodings = encodings_for(self._raw_bytes(own_charset))
        private_kept: set[int] = set()
        private_creators: list[int] = []
        for tag in list(elements):
            # `tag` (pydicom's BaseTag) stays the key of `elements`; comparisons and the tables are asked with a
            # plain int, because BaseTag's == is a Python call (the walk made some 400 of them per CT slice).
            number = int(tag)
            group = number >> 16
            if group & 1:
                if not collect_only:
                    self._private(ds, tag, encodings, private_kept, private_creators, clean_all)
                continue
            if number & 0xFFFF == 0 or group <= 0x0002:
                # Group lengths, command group elements (AffectedSOPInstanceUID...), file meta in the body.
                if not collect_only:
                    del elements[tag]
                continue
            if number == SPECIFIC_CHARACTER_SET:
                continue
            rule = self.rules.get(number)
            if rule is not None:
                action, fallback, searched, keyword = rule.action, rule.fallback, rule.searched, rule.keyword
            elif 0x5000 <= group <= 0x50FF and not group & 1:
                action = fallback = self.profile.curve_action
                searched, keyword = False, "CurveData"
            elif 0x6000 <= group <= 0x60FF and not group & 1:
                # Table rows name (60xx,3000) and (60xx,4000); without its data an overlay plane is invalid
                # and its description and label are free text, so the whole overlay group goes.
                action = fallback = self.profile.overlay_action
                searched, keyword = False, "OverlayData"
            elif not p.defined_by_dicom(number):  # it goes, as a private element off the safelist does
                if not collect_only:
                    del elements[tag]
                    self.counts["removed"] += 1
                continue
            else:
                action = fallback = None
                searched, keyword = False, ""
            self._element(
                ds,
                tag,
                elements[tag],
                action,
                fallback,
                searched,
                keyword,
                encodings,
                clean_all,
                collect_only,
            )
        if collect_only:
            return
        for creator_tag in private_creators:
            if creator_tag not in private_kept:
                del elements[creator_tag]
        if own_charset is not None and ds is not self.top:
            del elements[SPECIFIC_CHARACTER_SET]  # items inherit the UTF-8 of the top level

    def _element(
        self,
        ds: Dataset,
        tag: int,
        elem: Any,
        action: str | None,
        fallback: str | None,
        searched: bool,
        keyword: str,
        encodings: list[str],
        clean_all: bool,
        collect_only: bool,
    ) -> None:
        vr = self._vr(tag, elem)
        if vr == "SQ":
            self._sequence(ds, tag, action, encodings, clean_all, collect_only)
            return
        if vr == "UI":
            self._uid(ds, tag, elem, action, keyword, collect_only)
            return
        if vr not in STRING_VRS:
            if action in (p.CLEAN, p.SHIFT):
                action = fallback  # a binary value can be neither cleaned nor shifted
            if collect_only or action in (None, p.KEEP):
                return
            if action == p.REMOVE:
                del ds._dict[tag]
                self.counts["removed"] += 1
            else:  # Z, D: an empty value is the only safe dummy for binary data
                ds._dict[tag] = self._raw(tag, vr, b"")
                self.counts["emptied"] += 1
            return

        raw = self._raw_bytes(elem)
        if action is None or action == p.KEEP:
            if collect_only:
                return
            if vr in CLEANED_VRS and raw:
                text = decode_text(raw, vr, encodings)
                kept = action == p.KEEP or tag in CODED_TEXT_TAGS
                self.to_clean.append((ds, tag, vr, text, raw, (tuple(self.path), keyword), kept))
                return
            reencoded = reencode_if_needed(raw, vr, encodings)
            if reencoded is not None:
                ds._dict[tag] = self._raw(tag, vr, reencoded)
                self.counts["reencoded"] += 1
            return

        text = decode_text(raw, vr, encodings) if raw else ""
        if action == p.SHIFT:
            if vr == "TM":
                action = p.KEEP  # times are kept: the shift is whole days
            elif vr in ("DA", "DT"):
                pass
            else:
                action = fallback
        if action == p.CLEAN:
            if not collect_only and text:
                self.to_clean.append((ds, tag, vr, text, None, (tuple(self.path), keyword), False))
            return
        if text and searched and vr not in ("TM", "CS", "AS", "DS", "IS"):
            # A name is searched in all its written forms even when its element says another VR (LO).
            entry = DicomDictionary.get(tag)
            self.identifying.add(keyword, "PN" if entry is not None and entry[0] == "PN" else vr, text)
        if collect_only or action == p.KEEP:
            return
        if action == p.PSEUDONYM:
            self._set_text(ds, tag, vr, self.subject_code)
            self.counts["pseudonymized"] += 1
        elif action == p.SHIFT:
            shifted = shift_value(vr, text, self.offset) if text else ""
            if shifted:
                self.shifted.update(shifted.split("\\"))
            self._set_text(ds, tag, vr, shifted or "")
            self.counts["dates_shifted" if shifted else "emptied"] += 1
        elif action == p.REMOVE:
            del ds._dict[tag]
            self.counts["removed"] += 1
        elif action == p.EMPTY:
            self._set_text(ds, tag, vr, "")
            self.counts["emptied"] += 1
        elif action == p.DUMMY:
            self._set_text(ds, tag, vr, DUMMY_BY_VR.get(vr, DUMMY_TEXT) if text else "")
            self.counts["dummied"] += 1
        else:  # pragma: no cover - the profile only produces the actions above
            raise AssertionError(f"unhandled action {action}")

    def _uid(self, ds: Dataset, tag: int, elem: Any, action: str | None, keyword: str, collect_only: bool) -> None:
        text = self._raw_bytes(elem).decode("ascii", "replace").strip(" \x00")
        keep_class = tag in CLASS_UID_TAGS or action == p.KEEP
        if not keep_class and text:
            # The original instance UIDs are searched for in the output too.
            keyword = keyword or (DicomDictionary[tag][4] if tag in DicomDictionary else "private UID")
            for uid in text.split("\\"):
                uid = uid.strip(" \x00")
                if uid and not uid.startswith(DICOM_ROOT):
                    self.identifying.add(keyword, "UI", uid)
        if collect_only:
            return
        if action == p.REMOVE:
            del ds._dict[tag]
            self.counts["removed"] += 1
        elif action == p.EMPTY:
            self._set_text(ds, tag, "UI", "")
            self.counts["emptied"] += 1
        elif not keep_class and text:
            mapped = "\\".join(self.map_uid(uid.strip(" \x00")) for uid in text.split("\\"))
            self._set_text(ds, tag, "UI", mapped)
            self.counts["uids_remapped"] += 1

    @staticmethod
    def _name(tag: int, keyword: str = "") -> str:
        if keyword:
            return keyword
        entry = DicomDictionary.get(tag)
        return entry[4] if entry is not None and entry[4] else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"

    def _where(self, tag: int, where: tuple[tuple[str, ...], str]) -> str:
        """An attribute's path from the top ("ProcedureCodeSequence/CodeMeaning"), made when it is recorded."""
        path, keyword = where
        return "/".join([*path, self._name(tag, keyword)])

    def clean_texts(self) -> None:
        """Clean every kept text value (and every C-action value) once all identifying values are known."""
        for item, tag, vr, text, raw, at, kept in self.to_clean:
            cleaned, reasons = self.identifying.clean_with_reasons(text, keep_numbers=kept)
            if not reasons:
                if raw is None or not is_plain_ascii(raw):
                    item._dict[BaseTag(tag)] = self._raw(tag, vr, encode_text(text, vr))
                    if raw is not None:
                        self.counts["reencoded"] += 1
                continue
            where = self._where(tag, at)
            if not cleaned and where.rsplit("/", 1)[-1] in TYPE1_TEXT:
                cleaned = CLEANED_PLACEHOLDER
            item._dict[BaseTag(tag)] = self._raw(tag, vr, encode_text(cleaned, vr))
            self.counts["cleaned"] += 1
            self.cleaned += [(where, reason) for reason in reasons]

    def map_uid(self, uid: str) -> str:
        if not uid or uid.startswith(DICOM_ROOT):
            return uid
        return self.space.uid(uid)

    def _sequence(
        self,
        ds: Dataset,
        tag: int,
        action: str | None,
        encodings: list[str],
        clean_all: bool,
        collect_only: bool,
    ) -> None:
        elem = ds[tag]  # pydicom parses the items (an UN-encoded sequence too); values stay raw
        items = elem.value or []
        if collect_only or action in (p.REMOVE, p.EMPTY, p.DUMMY):
            for item in items:
                self.walk(item, encodings, collect_only=True)
            if collect_only:
                return
            if action == p.REMOVE:
                del ds._dict[tag]
                self.counts["removed"] += 1
            else:
                # D for a sequence: no dummy items are made up; none of these is Type 1 in CT/MR images.
                ds._dict[tag] = DataElement(BaseTag(tag), "SQ", Sequence())
                self.counts["emptied"] += 1
            return
        self.path.append(self._name(tag))
        for item in items:
            self.walk(item, encodings, clean_all=clean_all or action == p.CLEAN)
        self.path.pop()

    def _private(
        self,
        ds: Dataset,
        tag: int,
        encodings: list[str],
        kept_blocks: set[int],
        creators: list[int],
        clean_all: bool,
    ) -> None:
        element = tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            creators.append(tag)  # kept only if an element of its block is kept
            return
        elem = ds._dict[tag]
        creator_tag = (tag & 0xFFFF0000) | (element >> 8)
        keep = False
        if element > 0x00FF and creator_tag in ds._dict and self.options.private_tag_safelist:
            creator = self._raw_bytes(ds._dict[creator_tag]).decode("latin-1").strip(" \x00")
            keep = (creator, element & 0xFF) in self.options.private_tag_safelist
            if keep:
                vr = elem.VR if elem.VR and elem.VR != "UN" else None
                if vr is None:
                    try:
                        vr = private_dictionary_VR(tag, creator)
                    except KeyError:
                        vr = "SQ" if getattr(elem, "length", 0) == UNDEFINED else "UN"
                if len(vr) != 2:
                    vr = "UN"
                kept_blocks.add(creator_tag)
                self.counts["private_kept"] += 1
                if vr == "SQ":
                    self._sequence(ds, tag, None, encodings, clean_all, False)
                elif vr == "UI":
                    self._uid(ds, tag, elem, None, "", False)
                elif vr in CLEANED_VRS and isinstance(elem.value, bytes) and elem.value:
                    # Kept on the trial's word, and cleaned like every kept text value.
                    text = decode_text(elem.value, vr, encodings)
                    where = (tuple(self.path), f"{creator} ({tag >> 16:04X},xx{tag & 0xFF:02X})")
                    self.to_clean.append((ds, tag, vr, text, elem.value, where, True))
                elif vr in CHARSET_VRS and isinstance(elem.value, bytes):
                    reencoded = reencode_if_needed(elem.value, vr, encodings)
                    if reencoded is not None:
                        ds._dict[tag] = self._raw(tag, vr, reencoded)
                return
        del ds._dict[tag]
        self.counts["private_removed"] += 1


def dataset_encodings(ds: Dataset) -> list[str]:
    """The Python codecs of a data set's Specific Character Set (the default repertoire without one)."""
    charset = ds._dict.get(SPECIFIC_CHARACTER_SET)
    return encodings_for(_Walker._raw_bytes(charset) if charset is not None else None)


def source_patient_id(ds: Dataset, encodings: list[str]) -> str:
    """The data set's own Patient ID as the text its patient hash is made of: decoded in its character set when
    its VR is a text one; "" when it has none, or an empty or non-text one. The engine and the site's first pass
    over a file's header (static/src/deid/ctims_deid_entry.py) both take it from here."""
    elem = ds._dict.get(PATIENT_ID)
    if elem is None:
        return ""
    vr, raw = _Walker._vr(PATIENT_ID, elem), _Walker._raw_bytes(elem)
    return decode_text(raw, vr, encodings) if raw and vr in STRING_VRS and vr != "UI" else ""


def _check_subject_code(subject_code: str) -> None:
    if (
        not isinstance(subject_code, str)
        or not subject_code.strip()
        or len(subject_code) > 64
        or any(c in subject_code for c in "\\^=")
        or not subject_code.isprintable()
    ):
        raise ValueError("a subject code is 1 to 64 printable characters without \\, ^ or =")


def _check_structure(ds: Dataset, data: bytes, *, deflated: bool) -> int:
    """Reject a file cut inside an element (pydicom keeps what it could read without saying so); return
    where the last element read ends."""
    end = 0
    for elem in ds._dict.values():
        if not isinstance(elem, RawDataElement) or elem.value is None:
            continue
        if elem.length != UNDEFINED and len(elem.value) < elem.length:
            raise DeidRejected(
                "truncated", gettext_noop("The file ends in the middle of a DICOM element: it looks cut short.")
            )
        end = max(end, elem.value_tell + len(elem.value) + (8 if elem.length == UNDEFINED else 0))
    return end


def _us(elem: Any, little: bool) -> int:
    if elem is None:
        return 0
    value = elem.value
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little" if little else "big") if len(value) >= 2 else 0
    return int(value or 0)


def _check_pixels(ds: Dataset, encapsulated: bool, little: bool) -> None:
    pixels = ds._dict.get(PIXEL_DATA)
    if pixels is None or not pixels.value:
        raise DeidRejected("pixel_data_missing", gettext_noop("The file has no image data (Pixel Data is missing)."))
    value = pixels.value
    if not isinstance(value, bytes):
        return
    if encapsulated:
        # Items must tile the value exactly: a cut inside a fragment leaves a length that runs past the end.
        item = struct.Struct("<HHL" if little else ">HHL")
        at = 0
        while at < len(value):
            if at + 8 > len(value):
                raise DeidRejected("truncated", gettext_noop("The compressed image data is cut short."))
            group, element, length = item.unpack_from(value, at)
            if (group, element) != (0xFFFE, 0xE000) or at + 8 + length > len(value):
                raise DeidRejected("truncated", gettext_noop("The compressed image data is cut short."))
            at += 8 + length
        return
    if _ascii(ds._dict.get(PHOTOMETRIC_INTERPRETATION)).upper() == "YBR_FULL_422":
        raise uncompressed_ybr_422()
    rows = _us(ds._dict.get(0x00280010), little)
    columns = _us(ds._dict.get(0x00280011), little)
    samples = _us(ds._dict.get(0x00280002), little) or 1
    bits = _us(ds._dict.get(0x00280100), little)
    frames_text = _ascii(ds._dict.get(0x00280008))
    frames = int(frames_text) if frames_text.isdecimal() else 1
    expected = (rows * columns * samples * frames * bits + 7) // 8
    if len(value) < expected:
        raise DeidRejected(
            "truncated", gettext_noop("The image data is shorter than the image size says: the file looks cut short.")
        )
    if excess_frames(len(value), expected, frames):
        raise pixels_too_long()


def _method_values(options: DeidOptions) -> list[tuple[str, str, str]]:
    codes = [_DCM_CODES["basic"]]
    if options.retain_longitudinal_modified_dates:
        codes.append(_DCM_CODES["dates"])
    if options.clean_descriptors:
        codes.append(_DCM_CODES["descriptors"])
    if options.retain_device_identity:
        codes.append(_DCM_CODES["device"])
    if options.retain_patient_characteristics:
        codes.append(_DCM_CODES["patient"])
    if options.private_tag_safelist:
        codes.append(_DCM_CODES["private"])
    return codes


def method_text(options: DeidOptions) -> list[str]:
    """De-identification Method values: one per profile or option, as LO holds 64 characters."""
    codes = _method_values(options)
    return [f"CTIMS PS3.15 Annex E {p.PROFILE_EDITION}: {codes[0][2]}"] + [c[2] for c in codes[1:]]


def _add_deid_attributes(ds: Dataset, walker: _Walker, options: DeidOptions) -> str:
    """Record what was done (PS3.15 E.1.1 and PS3.3 C.7.1.1); return the text we wrote, for the verifier."""
    implicit, little = walker.implicit, walker.little
    codes = _method_values(options)
    method = method_text(options)
    items = []
    for value, meaning, _ in codes:
        item = Dataset()
        for tag, vr, text in (
            (0x00080100, "SH", value),
            (0x00080102, "SH", "DCM"),
            (0x00080104, "LO", meaning),
        ):
            item._dict[BaseTag(tag)] = text_element(tag, vr, text, implicit=implicit, little=little)
        items.append(item)
    temporal = "MODIFIED" if options.retain_longitudinal_modified_dates else "REMOVED"
    for tag, vr, text in (
        (SPECIFIC_CHARACTER_SET, "CS", OUTPUT_CHARSET),
        (0x00100010, "PN", walker.subject_code),
        (PATIENT_ID, "LO", walker.subject_code),
        (0x00120062, "CS", "YES"),
        (0x00120063, "LO", "\\".join(method)),
        (0x00280303, "CS", temporal),
    ):
        ds._dict[BaseTag(tag)] = text_element(tag, vr, text, implicit=implicit, little=little)
    ds._dict[BaseTag(0x00120064)] = DataElement(BaseTag(0x00120064), "SQ", Sequence(items))
    return "\n".join([walker.subject_code, DUMMY_TEXT, *DUMMY_BY_VR.values(), *method, *(c[1] for c in codes)])


def _parser_message(exc: BaseException) -> str:
    """An exception's message with anything that could be a value taken out: quoted text, identifier
    patterns, long runs of digits. What is left says what the parser stumbled on."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    message = re.sub(r"'[^']*'|\"[^\"]*\"|<[^>]*>", "...", message)
    message, _ = remove_identifiers(message)
    message = re.sub(r"\s{2,}", " ", message).strip()[:160]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def deidentify(
    source: bytes | str | os.PathLike | BinaryIO,
    *,
    space: PseudonymSpace,
    subject_code: str,
    options: DeidOptions,
) -> DeidResult:
    """De-identify one CT or MR instance into `space` for subject `subject_code`.

    Raises DeidRejected, and nothing else, for any file: one that is not an acceptable image, cannot be read,
    or whose output would still hold an identifying value. Pixel data are written back byte for byte except
    when bits above Bits Stored are set or text in them is redacted (the trial's option), as the result says.
    """
    _check_subject_code(subject_code)
    data = _read_source(source)
    try:
        ds = _parse(data)
        return _deidentify(data, ds, space=space, subject_code=subject_code, options=options)
    except DeidRejected:
        raise
    except burned_in.OcrUnavailable as exc:
        rejection = DeidRejected(
            "ocr_unavailable",
            gettext_noop(
                "This image may carry text in its pixels and could not be read to check it (the OCR program failed: "
                "%(error)s); it was not accepted. Please tell the trial's imaging team."
            ),
            error=str(exc),
        )
    except (EOFError, struct.error):
        rejection = DeidRejected(
            "truncated", gettext_noop("The file ends before the DICOM data does: it looks cut short.")
        )
    except Exception as exc:  # noqa: BLE001 - one bad file is its own rejection, never a crash of the batch
        # Raised outside the except block, so the parser's exception (which may quote a value) is not
        # carried along as __context__ into logs and error trackers.
        rejection = DeidRejected(
            "unreadable",
            gettext_noop("The file could not be read as a DICOM image (%(message)s); please resend it."),
            message=_parser_message(exc),
        )
    raise rejection


def _deidentify(
    data: bytes, ds: Dataset, *, space: PseudonymSpace, subject_code: str, options: DeidOptions
) -> DeidResult:
    meta = getattr(ds, "file_meta", None)
    if not ds._dict:
        if meta is not None and len(meta._dict):
            raise DeidRejected(
                "truncated", gettext_noop("The file holds only its header: the image data set is cut short.")
            )
        raise DeidRejected("not_dicom", gettext_noop("The file is not a DICOM file."))

    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        raise DeidRejected("not_dicom", gettext_noop("The file is not a DICOM file."))
    ts = _ascii(meta._dict.get(0x00020010)) if meta is not None else ""
    deflated = ts == DeflatedExplicitVRLittleEndian
    if deflated or not ts:
        # Deflate is undone on read; without a file meta the syntax is what the parser found.
        ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    end = _check_structure(ds, data, deflated=deflated)
    sop_class = _ascii(ds._dict.get(SOP_CLASS_UID))
    if sop_class:
        # An intact structured report or structure set has no pixel data: its class says what it is before
        # a missing image could be taken for a file cut short.
        refused = sop_class_rejection(sop_class, options.accepted_sop_classes)
        if refused is not None:
            raise DeidRejected("sop_class_not_accepted", refused)
    # A non-image object (a structured report, say) that the trial accepts has no image data to check.
    image = not sop_class or "Image" in UID(sop_class).name
    if image and not deflated and PIXEL_DATA not in ds._dict and 0 < end < len(data) - 8:
        raise DeidRejected("truncated", gettext_noop("The file stops before the image data: it looks cut short."))

    for tag in FILING_UIDS:
        if not _ascii(ds._dict.get(tag)):
            raise missing_uid(tag)
    sop_instance = _ascii(ds._dict.get(SOP_INSTANCE_UID))
    refused = sop_class_rejection(sop_class, options.accepted_sop_classes)
    if refused is not None:
        raise DeidRejected("sop_class_not_accepted", refused)
    declared = _ascii(ds._dict.get(BURNED_IN_ANNOTATION)).upper() == "YES"
    if declared and options.burned_in_text == REJECT:
        raise DeidRejected(
            "burned_in_annotation",
            gettext_noop(
                "The image says it has burned-in annotation (text drawn into the pixels, which may identify the "
                "patient); please send the original images without annotation."
            ),
        )
    if not UID(ts).is_transfer_syntax:  # one newer than pydicom's dictionary, or none at all
        raise unsupported_syntax(ts)
    encapsulated = UID(ts).is_encapsulated
    if image:
        _check_pixels(ds, encapsulated, little)

    encodings = dataset_encodings(ds)
    patient_id = source_patient_id(ds, encodings)  # before the walk replaces it
    walker = _Walker(
        space=space,
        subject_code=subject_code,
        options=options,
        encodings=encodings,
        implicit=implicit,
        little=little,
        top=ds,
    )
    # Overlay groups are removed by the walk; that an image had one is a reason to read its pixels.
    has_overlay = any(0x6000 <= tag >> 16 <= 0x60FF and not (tag >> 16) & 1 for tag in ds._dict)
    walker.walk(ds, encodings)
    for dependent, partner in PRESENT_ONLY_WITH.items():
        if dependent in ds._dict and partner not in ds._dict:
            del ds._dict[dependent]
            walker.counts["removed"] += 1
    for device in (MANUFACTURER, MANUFACTURER_MODEL_NAME):
        elem = ds._dict.get(device)
        if elem is not None and elem.value:
            walker.identifying.allow_values(_SITE_KEYWORDS, decode_text(_Walker._raw_bytes(elem), "LO", encodings))
    walker.clean_texts()
    pixels = ""
    if image:
        ts, pixels = _examine_pixels(
            ds, walker, options, ts=ts, sop_class=sop_class, little=little, has_overlay=has_overlay
        )
    allowed = _add_deid_attributes(ds, walker, options)
    walker.identifying.allow(allowed)
    for date in walker.shifted:
        # A shifted date that happens to equal an input date (the birth date, say) is ours, not a leak.
        walker.identifying.allow_values(None, date)

    new_instance = walker.map_uid(sop_instance)
    parts = [file_meta(sop_class_uid=sop_class, sop_instance_uid=new_instance, transfer_syntax_uid=ts)]
    span = Encoder(implicit=implicit, little=little).dataset(ds, parts, top=True)
    output = b"".join(parts)
    verify_bytes(output, walker.identifying, span)

    return DeidResult(
        data=output,
        sop_class_uid=sop_class,
        sop_instance_uid=new_instance,
        study_instance_uid=_ascii(ds._dict.get(STUDY_INSTANCE_UID)) or None,
        series_instance_uid=_ascii(ds._dict.get(SERIES_INSTANCE_UID)) or None,
        frame_of_reference_uid=_ascii(ds._dict.get(FRAME_OF_REFERENCE_UID)) or None,
        # "" when the input has no Patient ID: hashing "" would make every such file the same patient.
        source_patient_hash=space.patient_hash(patient_id) if patient_id else "",
        transfer_syntax_uid=str(ts),
        actions=dict(walker.counts),
        index=build_index(ds, little=little),
        deid_method="; ".join(method_text(options)),
        cleaned=tuple(walker.cleaned),
        pixels=pixels,
    )


def _pixel_module(ds: Dataset, little: bool, frames: int) -> burned_in.PixelModule:
    elements = ds._dict
    return burned_in.PixelModule(
        rows=_us(elements.get(0x00280010), little),
        columns=_us(elements.get(0x00280011), little),
        samples=_us(elements.get(0x00280002), little) or 1,
        frames=frames,
        bits_allocated=_us(elements.get(0x00280100), little),
        bits_stored=_us(elements.get(0x00280101), little) or _us(elements.get(0x00280100), little),
        signed=_us(elements.get(0x00280103), little) == 1,
        little=little,
        photometric=_ascii(elements.get(PHOTOMETRIC_INTERPRETATION)).upper(),
        planar=_us(elements.get(PLANAR_CONFIGURATION), little) == 1,
    )


def _decoded(ds: Dataset, ts: str, module: burned_in.PixelModule) -> Any:
    """Compressed pixel data decoded into frames (colour as RGB), through pydicom's decoders."""
    from pydicom.dataset import FileMetaDataset

    pixel_ds = Dataset()
    for tag, elem in ds._dict.items():
        if tag >> 16 == 0x0028 or tag == PIXEL_DATA:
            pixel_ds._dict[tag] = elem
    pixel_ds.file_meta = FileMetaDataset()
    pixel_ds.file_meta.TransferSyntaxUID = ts
    try:
        array = pixel_ds.pixel_array
        return array.reshape(module.shape)  # fewer fragments than frames decode to fewer frames than the shape
    except (RuntimeError, ValueError, StopIteration):  # damaged; the decoder's message can carry the file's bytes
        raise undecodable_pixels() from None


def _examine_pixels(
    ds: Dataset,
    walker: _Walker,
    options: DeidOptions,
    *,
    ts: str,
    sop_class: str,
    little: bool,
    has_overlay: bool = False,
) -> tuple[str, str]:
    """Zero bits above Bits Stored, and find text in the pixels of the instances that may carry it:
    reject the instance, or redact the text, as the trial chose. Returns the output transfer syntax and
    how the pixels were rewritten ("" when they were not)."""
    elements = ds._dict
    reasons = burned_in.ocr_reasons(
        image_type=_ascii(elements.get(IMAGE_TYPE)).split("\\"),
        sop_class_uid=sop_class,
        burned_in_annotation=_ascii(elements.get(BURNED_IN_ANNOTATION)),
        has_overlay=has_overlay,
    )
    encapsulated = UID(ts).is_encapsulated
    frames_text = _ascii(elements.get(0x00280008))
    module = _pixel_module(ds, little, int(frames_text) if frames_text.isdecimal() else 1)
    array, changes = None, []
    high_bits = (
        not encapsulated
        and 0 < module.bits_stored < module.bits_allocated
        and burned_in.high_bits_set(elements[PIXEL_DATA].value, module)
    )
    if high_bits:
        reasons.append("bits above Bits Stored")
    if reasons:
        burned_in.require_examinable(module.photometric)
        burned_in.require_ocr(compressed=encapsulated)  # where the pixels cannot be examined, the image is held back
    if high_bits:
        view = burned_in.native_array(elements[PIXEL_DATA].value, module, writable=False)
        array = burned_in.zero_high_bits(view, module)
        changes.append("bits above Bits Stored zeroed")
    if reasons:
        if array is None:
            array = (
                _decoded(ds, ts, module) if encapsulated else burned_in.native_array(elements[PIXEL_DATA].value, module)
            )
        walker.counts["pixels_examined"] += 1
        if options.burned_in_text == REJECT:
            if burned_in.has_text(array, module.photometric):
                raise DeidRejected(
                    "burned_in_text",
                    gettext_noop(
                        "Text was found in the image's pixels (examined as a %(reason)s), which may identify the "
                        "patient; this trial does not accept such images. Please send the images without text, or "
                        "ask the trial's imaging team to have such text redacted."
                    ),
                    reason=reasons[0],
                )
        else:
            words, clean = burned_in.redact_frames(array, module.photometric)
            if not clean:
                raise DeidRejected(
                    "burned_in_text",
                    gettext_noop(
                        "Text in the image's pixels could not be removed completely; the image was not accepted. "
                        "Please send the images without text."
                    ),
                )
            if words:
                changes.append(f"{words} text regions redacted")
                elements[BURNED_IN_ANNOTATION] = walker._raw(BURNED_IN_ANNOTATION, "CS", encode_text("NO", "CS"))
    if not changes:
        return ts, ""
    if encapsulated:
        # Redacted pixels are written uncompressed: re-encoding lossy data would degrade it again.
        ts = ExplicitVRLittleEndian
        if module.samples == 3:
            elements[PHOTOMETRIC_INTERPRETATION] = walker._raw(
                PHOTOMETRIC_INTERPRETATION, "CS", encode_text("RGB", "CS")
            )
            elements[PLANAR_CONFIGURATION] = raw_element(PLANAR_CONFIGURATION, "US", b"\x00\x00", little=little)
        array = array.astype(array.dtype.newbyteorder("<"))
    elif module.planar and module.samples > 1:
        # burned_in read the colour planes colour-by-pixel, and that is how they are written.
        elements[PLANAR_CONFIGURATION] = raw_element(PLANAR_CONFIGURATION, "US", b"\x00\x00", little=little)
    value = array.tobytes()
    if len(value) % 2:
        value += b"\x00"
    elements[PIXEL_DATA] = walker._raw(PIXEL_DATA, "OB" if module.bits_allocated <= 8 else "OW", value)
    walker.counts["pixels_rewritten"] += 1
    return ts, "; ".join(changes)


__all__ = ["DeidResult", "deidentify", "shift_value"]
