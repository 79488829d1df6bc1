"""What QC knows about a series: the header values the rules read, gathered from datasets or DICOM JSON."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# Values written into ContrastBolusAgent by scanners and sites that mean "no contrast was given".
_NO_AGENT = frozenset({"", "NONE", "NO", "N/A", "NA", "0", "-", "NIL", "NON", "NOT APPLICABLE"})


@dataclass(frozen=True)
class InstanceInfo:
    """One image (a classic instance, or one frame of an enhanced multi-frame instance)."""

    instance_number: int | None = None
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, ...] | None = None
    slice_thickness: float | None = None
    acquisition_time: str | None = None


@dataclass(frozen=True)
class SeriesInfo:
    """The header values of one series that classification and protocol compliance look at.

    `study_day` is the scan's day counted from the subject's baseline study (day 0); the caller computes it
    from the shifted dates, whose intervals de-identification keeps exact. Nothing identifying is held.
    """

    series_uid: str
    modality: str
    description: str = ""
    protocol_name: str = ""
    body_part: str = ""
    series_number: int | None = None
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    image_type: tuple[str, ...] = ()
    contrast_agent: str = ""
    contrast_route: str = ""
    contrast_start_time: str | None = None
    acquisition_time: str | None = None
    manufacturer: str = ""
    model_name: str = ""
    station_name: str = ""
    study_day: int | None = None
    # MR sequence parameters (empty or None for CT).
    scanning_sequence: str = ""
    sequence_variant: str = ""
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    diffusion_b_values: tuple[float, ...] = ()
    instances: tuple[InstanceInfo, ...] = ()

    @property
    def has_contrast_agent(self) -> bool:
        """Whether the headers record a contrast agent (or a bolus start time) for this series."""
        return self.contrast_agent.strip().upper() not in _NO_AGENT or bool(self.contrast_start_time)

    @property
    def contrast_delay_seconds(self) -> float | None:
        """Seconds from the contrast bolus start to the acquisition, when both times are known."""
        start, acquired = tm_seconds(self.contrast_start_time), tm_seconds(self.acquisition_time)
        if start is None or acquired is None:
            return None
        delay = acquired - start
        # A scan that runs over midnight: the times are of one day, the interval is short.
        if delay < -12 * 3600:
            delay += 24 * 3600
        elif delay > 12 * 3600:
            delay -= 24 * 3600
        return delay

    @property
    def image_count(self) -> int:
        return len(self.instances)


def tm_seconds(value: str | None) -> float | None:
    """Seconds since midnight of a DICOM TM value (HHMMSS.FFFFFF, HHMM, HH, or the old HH:MM:SS); None if unreadable."""
    if not value:
        return None
    text = str(value).strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if not whole.isdecimal() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdecimal()):
        return None
    hours, minutes, seconds = int(whole[:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    return hours * 3600 + minutes * 60 + seconds + (float(f"0.{fraction}") if fraction else 0.0)


# -- building from headers -----------------------------------------------------------------------------------


def series_info_from_datasets(datasets: Sequence[Header], *, study_day: int | None = None) -> SeriesInfo:
    """A SeriesInfo from the datasets (headers are enough) of one series, classic or enhanced multi-frame.

    Raises ValueError for an empty list or datasets of more than one series.
    """
    if not datasets:
        raise ValueError("A series needs at least one dataset.")
    uids = {_text(ds, "SeriesInstanceUID") for ds in datasets}
    if len(uids) > 1:
        raise ValueError(f"The datasets belong to {len(uids)} series; pass one series at a time.")

    instances: list[InstanceInfo] = []
    for ds in datasets:
        instances.extend(_instances_of(ds))
    instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0))

    def first(getter) -> Any:
        for ds in datasets:
            value = getter(ds)
            if value not in (None, "", ()):
                return value
        return None

    times = [t for t in (i.acquisition_time for i in instances) if tm_seconds(t) is not None]
    b_values = sorted({b for ds in datasets for b in _b_values(ds)})
    return SeriesInfo(
        series_uid=uids.pop(),
        modality=_text(datasets[0], "Modality").upper(),
        description=first(lambda ds: _text(ds, "SeriesDescription")) or "",
        protocol_name=first(lambda ds: _text(ds, "ProtocolName")) or "",
        body_part=first(lambda ds: _text(ds, "BodyPartExamined") or _anatomy_meaning(ds)) or "",
        series_number=first(lambda ds: _int(ds, "SeriesNumber")),
        slice_thickness=first(lambda ds: _float(ds, "SliceThickness") or _float(_pixel_measures(ds), "SliceThickness")),
        spacing_between_slices=first(
            lambda ds: _float(ds, "SpacingBetweenSlices") or _float(_pixel_measures(ds), "SpacingBetweenSlices")
        ),
        image_type=first(lambda ds: tuple(v.strip().upper() for v in _multi(ds, "ImageType"))) or (),
        contrast_agent=first(_contrast_agent) or "",
        contrast_route=first(_contrast_route) or "",
        contrast_start_time=first(lambda ds: _text(ds, "ContrastBolusStartTime")),
        acquisition_time=min(times, key=tm_seconds) if times else None,
        manufacturer=first(lambda ds: _text(ds, "Manufacturer")) or "",
        model_name=first(lambda ds: _text(ds, "ManufacturerModelName")) or "",
        station_name=first(lambda ds: _text(ds, "StationName")) or "",
        study_day=study_day,
        scanning_sequence=first(_scanning_sequence) or "",
        sequence_variant=first(lambda ds: "\\".join(_multi(ds, "SequenceVariant"))) or "",
        repetition_time=first(
            lambda ds: (
                _float(ds, "RepetitionTime")
                or _float(_frame_item(ds, "MRTimingAndRelatedParametersSequence"), "RepetitionTime")
            )
        ),
        echo_time=first(
            lambda ds: _float(ds, "EchoTime") or _float(_frame_item(ds, "MREchoSequence"), "EffectiveEchoTime")
        ),
        inversion_time=first(_inversion_time),
        flip_angle=first(
            lambda ds: (
                _float(ds, "FlipAngle") or _float(_frame_item(ds, "MRTimingAndRelatedParametersSequence"), "FlipAngle")
            )
        ),
        diffusion_b_values=tuple(b_values),
        instances=tuple(instances),
    )


def series_info_from_dicom_json(metadata: Iterable[Mapping[str, Any]], *, study_day: int | None = None) -> SeriesInfo:
    """A SeriesInfo from the DICOM JSON metadata (PS3.18 F.2) of each instance of one series.

    The JSON is read where it lies (JsonHeader), not made into pydicom datasets first: QC reads a few dozen
    attributes of headers with a hundred or more, and building the datasets was most of the upload's final checks
    (0.5 s of a 300-slice series). Bulk data (BulkDataURI, InlineBinary) is neither fetched nor decoded: QC reads
    no such attribute, and such an element counts as empty.
    """
    return series_info_from_datasets([JsonHeader(item) for item in metadata], study_day=study_day)


class JsonHeader:
    """One DICOM JSON object, read by keyword as the accessors below read a Dataset: an element's value as
    pydicom would give it (one value alone, several as a list, a sequence as its items, a person name as its
    alphabetic form), None where the element is absent or has no value."""

    __slots__ = ("_item",)

    def __init__(self, item: Mapping[str, Any]) -> None:
        self._item = item

    def value(self, keyword: str) -> Any:
        tag = _json_tag(keyword)
        element = self._item.get(tag) if tag else None
        values = element.get("Value") if isinstance(element, Mapping) else None
        if not values or not isinstance(values, list):
            return None
        vr = element.get("vr")
        if vr == "SQ":
            return [JsonHeader(item) for item in values if isinstance(item, Mapping)]
        if vr == "PN":
            values = [v.get("Alphabetic", "") if isinstance(v, Mapping) else v for v in values]
        return values[0] if len(values) == 1 else values


Header = Dataset | JsonHeader


@functools.cache
def _json_tag(keyword: str) -> str | None:
    tag = tag_for_keyword(keyword)
    return f"{tag:08X}" if tag is not None else None


def _instances_of(ds: Header) -> list[InstanceInfo]:
    """One InstanceInfo per image: the instance itself, or each frame of an enhanced multi-frame instance."""
    number = _int(ds, "InstanceNumber")
    time = _text(ds, "AcquisitionTime") or _dt_time(_text(ds, "AcquisitionDateTime")) or None
    per_frame = _sequence(ds, "PerFrameFunctionalGroupsSequence")
    frames = max(_int(ds, "NumberOfFrames") or 1, len(per_frame))
    if frames <= 1 and not per_frame:
        return [
            InstanceInfo(
                instance_number=number,
                image_position=_vector(ds, "ImagePositionPatient", 3),
                image_orientation=_vector(ds, "ImageOrientationPatient", 6),
                slice_thickness=_float(ds, "SliceThickness"),
                acquisition_time=time,
            )
        ]
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    out = []
    for index in range(frames):
        frame = per_frame[index] if index < len(per_frame) else None
        position = _vector(_group(frame, shared, "PlanePositionSequence"), "ImagePositionPatient", 3)
        orientation = _vector(_group(frame, shared, "PlaneOrientationSequence"), "ImageOrientationPatient", 6)
        thickness = _float(_group(frame, shared, "PixelMeasuresSequence"), "SliceThickness")
        frame_time = _dt_time(_text(_group(frame, shared, "FrameContentSequence"), "FrameAcquisitionDateTime"))
        out.append(
            InstanceInfo(
                # Frames carry no instance number of their own; their order is their position.
                instance_number=None,
                # A frame without its own position has none we can know (a top-level one would be the
                # same for every frame and fake duplicates).
                image_position=position,
                image_orientation=orientation if orientation is not None else _vector(ds, "ImageOrientationPatient", 6),
                slice_thickness=thickness if thickness is not None else _float(ds, "SliceThickness"),
                acquisition_time=frame_time or time,
            )
        )
    return out


# -- tolerant attribute access: a bad value in one header must not stop QC of the series -------------------


def _value(ds: Header | None, keyword: str) -> Any:
    if isinstance(ds, JsonHeader):
        return ds.value(keyword)
    if ds is None or keyword not in ds:
        return None
    try:
        return ds[keyword].value
    except Exception:  # an undecodable value is as good as an absent one here
        return None


def _text(ds: Header | None, keyword: str) -> str:
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple | MultiValue):
        value = "\\".join(str(v) for v in value)
    return " ".join(str(value).split())


def _multi(ds: Header | None, keyword: str) -> list[str]:
    value = _value(ds, keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [str(value)]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def _float(ds: Header | None, keyword: str) -> float | None:
    value = _value(ds, keyword)
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _int(ds: Header | None, keyword: str) -> int | None:
    number = _float(ds, keyword)
    return int(number) if number is not None else None


def _vector(ds: Header | None, keyword: str, size: int) -> tuple[float, ...] | None:
    value = _value(ds, keyword)
    try:
        numbers = tuple(float(v) for v in value) if value is not None else ()
    except (TypeError, ValueError):
        return None
    if len(numbers) != size or not all(math.isfinite(n) for n in numbers):
        return None
    return numbers


def _sequence(ds: Header | None, keyword: str) -> list[Header]:
    value = _value(ds, keyword)
    return list(value) if value else []


def _first_item(ds: Header | None, keyword: str) -> Header | None:
    items = _sequence(ds, keyword)
    return items[0] if items else None


def _group(frame: Header | None, shared: Header | None, keyword: str) -> Header | None:
    """A functional group's item, per-frame first, then shared."""
    return _first_item(frame, keyword) or _first_item(shared, keyword)


def _frame_item(ds: Header, keyword: str) -> Header | None:
    """A functional group of an enhanced instance, from the shared groups or else the first frame."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    return _group(_first_item(ds, "PerFrameFunctionalGroupsSequence"), shared, keyword)


def _pixel_measures(ds: Header) -> Header | None:
    return _frame_item(ds, "PixelMeasuresSequence")


def _dt_time(value: str) -> str:
    """The time part (HHMMSS.FFFFFF) of a DICOM DT value."""
    digits = value.split("+")[0].split("-")[0]
    return digits[8:] if len(digits) > 8 else ""


def _anatomy_meaning(ds: Header) -> str:
    """Enhanced instances name the anatomy in a coded Frame Anatomy Sequence rather than BodyPartExamined."""
    anatomy = _frame_item(ds, "FrameAnatomySequence")
    return _text(_first_item(anatomy, "AnatomicRegionSequence"), "CodeMeaning").upper()


def _contrast_agent(ds: Header) -> str:
    text = _text(ds, "ContrastBolusAgent")
    if text:
        return text
    # Enhanced CT/MR: a coded agent, and per frame whether it was actually administered.
    agent = _first_item(ds, "ContrastBolusAgentSequence")
    usage = _frame_item(ds, "ContrastBolusUsageSequence")
    if usage is not None and _text(usage, "ContrastBolusAgentAdministered").upper() == "NO":
        return ""
    if agent is not None:
        return _text(agent, "CodeMeaning") or "administered"
    return ""


def _contrast_route(ds: Header) -> str:
    route = _text(ds, "ContrastBolusRoute")
    if route:
        return route
    agent = _first_item(ds, "ContrastBolusAgentSequence")
    return _text(_first_item(agent, "ContrastBolusAdministrationRouteSequence"), "CodeMeaning")


def _scanning_sequence(ds: Header) -> str:
    values = _multi(ds, "ScanningSequence")
    if values:
        return "\\".join(v.strip().upper() for v in values)
    # Enhanced MR describes the echo type instead: GRADIENT, SPIN or BOTH.
    echo = _text(ds, "EchoPulseSequence").upper()
    parts = {"GRADIENT": ["GR"], "SPIN": ["SE"], "BOTH": ["SE", "GR"]}.get(echo, [])
    if _text(_frame_item(ds, "MRModifierSequence"), "InversionRecovery").upper() == "YES":
        parts.append("IR")
    return "\\".join(parts)


def _inversion_time(ds: Header) -> float | None:
    value = _float(ds, "InversionTime")
    if value is not None:
        return value
    return _float(_frame_item(ds, "MRModifierSequence"), "InversionTimes")


def _b_values(ds: Header) -> list[float]:
    values = []
    top = _float(ds, "DiffusionBValue")
    if top is not None:
        values.append(top)
    for frame in _sequence(ds, "PerFrameFunctionalGroupsSequence"):
        b = _float(_first_item(frame, "MRDiffusionSequence"), "DiffusionBValue")
        if b is not None:
            values.append(b)
    shared = _float(
        _first_item(_first_item(ds, "SharedFunctionalGroupsSequence"), "MRDiffusionSequence"), "DiffusionBValue"
    )
    if shared is not None:
        values.append(shared)
    return values
