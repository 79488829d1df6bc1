"""The attributes the image index needs, read from the de-identified dataset (never from the input)."""

from __future__ import annotations

import datetime
from collections.abc import MutableSequence
from typing import Any

from pydicom.dataset import Dataset

SHARED_FUNCTIONAL_GROUPS = 0x52009229
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230
PIXEL_MEASURES = 0x00289110
PLANE_POSITION = 0x00209113
PLANE_ORIENTATION = 0x00209116

# index key -> (tag, kind); kinds: str, strs, float, floats, int (IS), us (binary), date
FIELDS: dict[str, tuple[int, str]] = {
    "modality": (0x00080060, "str"),
    "image_type": (0x00080008, "strs"),
    "study_date": (0x00080020, "date"),
    "study_time": (0x00080030, "str"),
    "series_date": (0x00080021, "date"),
    "acquisition_date": (0x00080022, "date"),
    "content_date": (0x00080023, "date"),
    "study_description": (0x00081030, "str"),
    "series_description": (0x0008103E, "str"),
    "protocol_name": (0x00181030, "str"),
    "series_number": (0x00200011, "int"),
    "acquisition_number": (0x00200012, "int"),
    "instance_number": (0x00200013, "int"),
    "body_part_examined": (0x00180015, "str"),
    "patient_position": (0x00185100, "str"),
    "slice_thickness": (0x00180050, "float"),
    "spacing_between_slices": (0x00180088, "float"),
    "slice_location": (0x00201041, "float"),
    "image_position_patient": (0x00200032, "floats"),
    "image_orientation_patient": (0x00200037, "floats"),
    "pixel_spacing": (0x00280030, "floats"),
    "rows": (0x00280010, "us"),
    "columns": (0x00280011, "us"),
    "bits_allocated": (0x00280100, "us"),
    "number_of_frames": (0x00280008, "int"),
    "photometric_interpretation": (0x00280004, "str"),
    "manufacturer": (0x00080070, "str"),
    "manufacturer_model_name": (0x00081090, "str"),
    "contrast_bolus_agent": (0x00180010, "str"),
    "kvp": (0x00180060, "float"),
    "convolution_kernel": (0x00181210, "strs"),
    "magnetic_field_strength": (0x00180087, "float"),
    "echo_time": (0x00180081, "float"),
    "repetition_time": (0x00180080, "float"),
    # QIDO-RS matching keys and return attributes (PS3.18 Table 10.6.1-5, 10.6.3-3/4).
    "accession_number": (0x00080050, "str"),
    "study_id": (0x00200010, "str"),
    "referring_physician_name": (0x00080090, "str"),
    "patient_birth_date": (0x00100030, "date"),
    "patient_sex": (0x00100040, "str"),
    "performed_procedure_step_start_date": (0x00400244, "date"),
    "performed_procedure_step_start_time": (0x00400245, "str"),
}

REQUEST_ATTRIBUTES = 0x00400275
# Keys read from the first item of the Request Attributes Sequence.
REQUEST_FIELDS: dict[str, tuple[int, str]] = {
    "requested_procedure_id": (0x00401001, "str"),
    "scheduled_procedure_step_id": (0x00400009, "str"),
}

# In Enhanced and Legacy Converted images the geometry is in functional group macros.
_FUNCTIONAL = {
    "pixel_spacing": PIXEL_MEASURES,
    "slice_thickness": PIXEL_MEASURES,
    "spacing_between_slices": PIXEL_MEASURES,
    "image_position_patient": PLANE_POSITION,
    "image_orientation_patient": PLANE_ORIENTATION,
}


def _text(elem: Any) -> str | None:
    value = elem.value
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace").strip(" \x00")
    elif value is None:
        return None
    elif isinstance(value, MutableSequence | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value).strip()
    return text or None


def _floats(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.split("\\")]
    except ValueError:
        return None


def _value(elem: Any, kind: str, little: bool) -> Any:
    if kind == "us":
        value = elem.value
        if isinstance(value, bytes):
            return int.from_bytes(value[:2], "little" if little else "big") if len(value) >= 2 else None
        return int(value) if value is not None else None
    text = _text(elem)
    if text is None:
        return None
    if kind == "str":
        return text
    if kind == "strs":
        return [v.strip() for v in text.split("\\")]
    if kind == "date":
        try:
            return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return None
    if kind == "int":
        try:
            return int(float(text.split("\\")[0]))
        except ValueError:
            return None
    values = _floats(text)
    if values is None:
        return None
    return values[0] if kind == "float" else values


def _first_item(ds: Dataset, tag: int) -> Dataset | None:
    elem = ds._dict.get(tag)
    if elem is None or elem.VR != "SQ" or isinstance(elem.value, bytes) or not elem.value:
        return None
    return elem.value[0]


def build_index(ds: Dataset, *, little: bool = True) -> dict[str, Any]:
    """Index attributes of a de-identified dataset whose values are raw output bytes (UTF-8)."""
    elements = ds._dict
    index: dict[str, Any] = {}
    for key, (tag, kind) in FIELDS.items():
        elem = elements.get(tag)
        index[key] = _value(elem, kind, little) if elem is not None else None
    if index["number_of_frames"] is None:
        index["number_of_frames"] = 1
    request = _first_item(ds, REQUEST_ATTRIBUTES)
    for key, (tag, kind) in REQUEST_FIELDS.items():
        elem = request._dict.get(tag) if request is not None else None
        index[key] = _value(elem, kind, little) if elem is not None else None
    groups = [g for g in (_first_item(ds, SHARED_FUNCTIONAL_GROUPS), _first_item(ds, PER_FRAME_FUNCTIONAL_GROUPS)) if g]
    for key, macro in _FUNCTIONAL.items():
        if index[key] is not None:
            continue
        for group in groups:
            item = _first_item(group, macro)
            elem = item._dict.get(FIELDS[key][0]) if item is not None else None
            if elem is not None:
                index[key] = _value(elem, FIELDS[key][1], little)
                break
    return index
