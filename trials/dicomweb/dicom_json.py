"""A dataset as DICOM JSON (PS3.18 F.2), exactly as pydicom's `Dataset.to_json_dict` gives it with every value
inline, made several times faster.

pydicom makes a `DataElement` of each raw element (decoding, typing and validating its value) before it writes
the element's JSON. Most elements of an image header are numbers or plain ASCII text, whose JSON follows from
their bytes alone: those are written here straight from the raw element, as pydicom's converters would read
them. Anything else (person names, binary values, attribute tags, text outside printable ASCII, values pydicom
would correct or warn about, elements it read already) goes through pydicom itself, element by element, so the
answer is pydicom's in every case; sequences are read as pydicom reads them (trials.deid.fastread's reading of a
defined-length sequence, or pydicom's) and their items written here in turn.
`tests/trials/dicomweb/test_dicom_json.py` holds the two equal on every file of pydicom's, pydicom-data's and
deid-data's test data.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from ..deid.fastread import converted_element

# Numbers: the struct code of one value, and its size in bytes.
_NUMBERS = {
    vr: (code, struct.calcsize(f"<{code}"))
    for vr, code in {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}.items()
}
# How pydicom's converter reads each text VR taken here (pydicom.values.converters, datetime conversion off):
# "multi" strips trailing spaces and NULs from the whole value, then splits it at backslashes; "ae" splits, then
# strips each value on both sides; "text" splits, then strips each value's trailing spaces and NULs; "single"
# strips trailing spaces and NULs and never splits.
_STRINGS = {
    "AS": "multi",
    "CS": "multi",
    "DA": "multi",
    "DT": "multi",
    "TM": "multi",
    "UI": "multi",
    "DS": "multi",
    "IS": "multi",
    "AE": "ae",
    "SH": "text",
    "LO": "text",
    "UC": "text",
    "ST": "single",
    "LT": "single",
    "UT": "single",
}
# Printable ASCII, and NULs only as trailing padding: read alike under every character set pydicom knows.
_PLAIN = re.compile(rb"[\x20-\x7e]*\x00*\Z")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*\Z")
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")


def dataset_json(ds: Dataset) -> dict[str, Any]:
    """`ds.to_json_dict(bulk_data_threshold=...)` with no bulk data handler: every value inline."""
    answer: dict[str, Any] = {}
    for tag, elem in ds._dict.items():
        json = _raw_json(elem) if isinstance(elem, RawDataElement) else None
        if json is None:
            element = converted_element(ds, tag)
            if element.VR == "SQ":
                json = {"vr": "SQ", "Value": [dataset_json(item) for item in element.value]}
            else:
                json = element.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=1 << 30)
        answer[f"{tag:08X}"] = json
    return answer


def _raw_json(raw: RawDataElement) -> dict[str, Any] | None:
    """The element's JSON read from its bytes, or None where pydicom must read it."""
    vr, value, tag = raw.VR, raw.value, raw.tag
    if vr is None:  # implicit VR: the dictionary's, where it names exactly one (as pydicom looks it up)
        if tag.is_private or tag.element == 0:
            return None
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if not isinstance(value, bytes):  # a deferred value, or a sequence read whole: pydicom's to read
        return None
    number = _NUMBERS.get(vr)
    if number is not None:
        code, size = number
        if len(value) % size:
            return None
        if not value:
            return {"vr": vr}
        count = len(value) // size
        numbers = struct.unpack(f"{'<' if raw.is_little_endian else '>'}{count}{code}", value)
        return {"vr": vr, "Value": list(numbers)}
    reading = _STRINGS.get(vr)
    if reading is None or not _PLAIN.match(value):
        return None
    text = value.decode("ascii")
    if reading == "multi":
        items = text.rstrip(" \x00").split("\\")
    elif reading == "ae":
        items = [item.strip() for item in text.split("\\")]
    elif reading == "text":
        items = [item.rstrip("\x00 ") for item in text.split("\\")]
    else:
        items = [text.rstrip("\x00 ")]
    if len(items) == 1 and not items[0]:
        return {"vr": vr}  # no value
    if vr == "IS":
        if not all(_INTEGER.match(item) for item in items):
            return None
        return {"vr": vr, "Value": [int(item) for item in items]}
    if vr == "DS":
        if not all(_DECIMAL.match(item) for item in items):
            return None
        return {"vr": vr, "Value": [float(item) for item in items]}
    return {"vr": vr, "Value": items}
