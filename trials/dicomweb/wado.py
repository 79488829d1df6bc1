"""WADO-RS (PS3.18 10.4) building blocks: stored files as DICOM, DICOM JSON metadata, frames and rendered images."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pydicom
from django.db import DataError, transaction
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ..ingest.store import image_storage
from ..models import Instance
from .dicom_json import dataset_json
from .negotiation import EXPLICIT_VR_LE

CHUNK = 1 << 20
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
# What a stored file may fail to be read with: missing or unreadable bytes, or not DICOM after all.
UNREADABLE = (OSError, EOFError, ValueError, KeyError, AttributeError, InvalidDicomError)
METADATA_BATCH = 100  # instances whose new metadata one UPDATE statement keeps
# Where pydicom's read that stops before the pixels stops (pydicom.filereader: Pixel Data, Float and Double Float).
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

log = logging.getLogger(__name__)


class NotAcceptable(Exception):
    """No representation the client accepts can be made (406)."""


class Unreadable(Exception):
    """The stored file of one instance cannot be read: that instance's error, never its series'."""

    def __init__(self, instance: Instance):
        super().__init__(f"The stored file of instance {instance.sop_instance_uid} cannot be read.")


def read_instance(instance: Instance, *, pixels: bool = True) -> pydicom.Dataset:
    """A stored instance as a dataset. pydicom reads the storage's underlying file object: given Django's File
    wrapper it would keep that closed wrapper as the dataset's buffer (and warn whenever the dataset is copied)."""
    with image_storage().open(instance.storage_key, "rb") as f:
        return pydicom.dcmread(getattr(f, "file", f), stop_before_pixels=not pixels)


def file_chunks(instance: Instance) -> Iterator[bytes]:
    with image_storage().open(instance.storage_key, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def open_chunks(instance: Instance) -> Iterator[bytes]:
    """The stored file in chunks, opened now: a missing file fails the caller, not the stream half-way."""
    stored = image_storage().open(instance.storage_key, "rb")

    def chunks():
        with stored:
            while chunk := stored.read(CHUNK):
                yield chunk

    return chunks()


def multipart_stream(parts: Iterable[tuple], boundary: str) -> Iterator[bytes]:
    """A multipart/related body, one part at a time: memory stays flat however many instances it carries.

    Each part is (content type, chunks) or (content type, chunks, Content-Location)."""
    for content_type, chunks, *location in parts:
        where = f"\r\nContent-Location: {location[0]}" if location else ""
        yield f"--{boundary}\r\nContent-Type: {content_type}{where}\r\n\r\n".encode("ascii")
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def new_boundary() -> str:
    return uuid.uuid4().hex


# -- metadata ---------------------------------------------------------------------------------------------


def instance_metadata(instance: Instance) -> dict:
    """Every attribute but the pixel data as DICOM JSON, made once and kept with the index row (with the place
    of each frame in the file, found in the same read: a later frame request is a byte range)."""
    if instance.metadata is None:
        _make_metadata(instance)
        _keep_metadata([instance])
    return instance.metadata


def _make_metadata(instance: Instance) -> None:
    """Set the instance's metadata and pixel layout from its stored file (not saved)."""
    with image_storage().open(instance.storage_key, "rb") as f:
        _metadata_from(instance, getattr(f, "file", f))


def _metadata_from(instance: Instance, raw) -> None:
    """Set the instance's metadata and pixel layout from its file's bytes in `raw` (a file object, at its start)."""
    ds = pydicom.dcmread(raw, stop_before_pixels=True)
    layout = _layout_at(raw, ds) if instance.pixel_layout is None else instance.pixel_layout
    _set_metadata(instance, dataset_json(ds), layout)  # pydicom's to_json_dict, every value inline, made faster


def metadata_from_read(instance: Instance, ds: pydicom.Dataset, data: bytes) -> None:
    """Set (not save) the metadata and pixel layout of an instance from `ds`, the whole of its file `data` as
    pydicom (or trials.deid.fastread) reads it, pixels included, by one who read it already (the server's
    re-verification of a browser's file): the same as `metadata_from_bytes` gives, without parsing the bytes
    again. The elements are those a read that stops before the pixels takes (in file order, up to the first
    pixel data element); the layout is read from the bytes at that element. Raises what a read of them would."""
    head, pixels = {}, None
    for tag, elem in ds._dict.items():
        if tag in PIXEL_DATA_TAGS:
            pixels = elem
            break
        head[tag] = elem
    header = pydicom.Dataset(head)
    header.file_meta = ds.file_meta
    header.set_original_encoding(*ds.original_encoding, ds.original_character_set)
    raw = io.BytesIO(data)
    if pixels is not None:
        # Where pydicom's stopped read leaves its file: at the pixel element's tag (its value's offset, as read or
        # as kept by the element it was converted into, less the element's header).
        value_at = pixels.value_tell if isinstance(pixels, RawDataElement) else pixels.file_tell
        if value_at is None:
            raise ValueError("the pixel data's place in the file is not known")
        raw.seek(value_at - (8 if ds.original_encoding[0] else 12))
    else:
        raw.seek(len(data))
    layout = _layout_at(raw, ds) if instance.pixel_layout is None else instance.pixel_layout
    _set_metadata(instance, dataset_json(header), layout)


def _set_metadata(instance: Instance, metadata: dict, layout: dict) -> None:
    metadata["00083002"] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
    metadata = dict(sorted(metadata.items()))  # PS3.18 F.2.2: in tag order (pixel data, last, is added later)
    instance.metadata, instance.pixel_layout = metadata, layout


def metadata_keep_stored(stored: list[tuple[Instance, bytes]]) -> None:
    """Make and keep the metadata of instances just stored, from the bytes of their files still in hand, so that
    QC and the first viewer find it instead of reading the files back. An instance whose bytes do not give it
    (for whatever reason) is left without: its first read makes it, as for any instance.
    """
    made = [
        instance
        for instance, data in stored
        if instance.pk is not None and instance.metadata is None and metadata_from_bytes(instance, data)
    ]
    _keep_metadata(made)


def metadata_from_bytes(instance: Instance, data: bytes) -> bool:
    """Set (not save) the metadata and pixel layout of an instance about to be stored, or just stored, from its
    file's bytes in hand; False where they do not give it (its first read then makes it, as for any instance)."""
    try:
        _metadata_from(instance, io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - only the type is logged; the first read makes it or says why
        log.warning("instance %s: its metadata is left for its first read (%s)", instance.pk, type(exc).__name__)
        instance.metadata = None
        return False
    return True


def with_bulk_data(metadata: dict, instance: Instance, instance_url: str) -> dict:
    """The metadata with the pixel data's BulkDataURI for this root."""
    encapsulated = UID(instance.transfer_syntax_uid).is_compressed
    bits = (metadata.get("00280100") or {}).get("Value", [16])[0]
    vr = "OB" if encapsulated or bits <= 8 else "OW"
    return metadata | {"7FE00010": {"vr": vr, "BulkDataURI": f"{instance_url}/bulkdata/7FE00010"}}


def load_metadata(instances: list[Instance], *, skip_unreadable: bool = False) -> list[Instance]:
    """Give each instance its metadata: read in one query, made (and kept) for those that have none yet.

    With `skip_unreadable`, an instance whose stored file cannot be read keeps no metadata and is returned in
    the list of those that failed (one broken file is that instance's error, not its series'); otherwise the
    error propagates.
    """
    stored = dict(Instance.objects.filter(pk__in=[i.pk for i in instances]).values_list("pk", "metadata"))
    failed, made = [], []
    for instance in instances:
        instance.metadata = stored.get(instance.pk)
        if instance.metadata is not None:
            continue
        try:
            _make_metadata(instance)
        except UNREADABLE as exc:
            if not skip_unreadable:
                raise
            log.warning("instance %s could not be read: %s", instance.pk, type(exc).__name__)
            failed.append(instance)
        else:
            made.append(instance)
    _keep_metadata(made)
    return failed


def _keep_metadata(instances: list[Instance]) -> None:
    """Keep newly made metadata with the index rows, in statements of many rows each (a series' worth of single-row
    updates was a fifth of its first read).

    An instance whose DICOM JSON PostgreSQL cannot hold (a NUL inside a text value, which releases before ingest
    refused it took in) keeps its pixel layout only: its JSON is made again at each read, and the others' are kept.
    """
    try:
        with transaction.atomic():
            Instance.objects.bulk_update(instances, ["metadata", "pixel_layout"], batch_size=METADATA_BATCH)
        return
    except DataError:
        pass
    for instance in instances:
        try:
            with transaction.atomic():
                Instance.objects.filter(pk=instance.pk).update(
                    metadata=instance.metadata, pixel_layout=instance.pixel_layout
                )
        except DataError:
            log.warning("instance %s: its DICOM JSON cannot be kept, so it is made at each read", instance.pk)
            Instance.objects.filter(pk=instance.pk).update(pixel_layout=instance.pixel_layout)


# -- transfer syntaxes --------------------------------------------------------------------------------------


def produce_syntax(stored: str, asked: list[str]) -> str | None:
    """The transfer syntax to answer in, given the client's acceptable ones in preference order ('*' = any,
    '' = the default, Explicit VR Little Endian, PS3.18 8.7.3); None if this server can make none of them."""
    for syntax in asked:
        if syntax in ("*", stored):
            return stored
        if syntax in ("", EXPLICIT_VR_LE):
            return EXPLICIT_VR_LE
    return None


@contextmanager
def decoding() -> Iterator[None]:
    """Decoding stored pixel data: where this server cannot (no decoder for its syntax, or data a decoder refuses
    as damaged, in an instance stored before ingest decoded compressed pixels; StopIteration: fewer fragments
    than frames), the request is NotAcceptable with the reason."""
    try:
        yield
    except (RuntimeError, NotImplementedError, ValueError, StopIteration) as exc:
        raise NotAcceptable(f"this instance cannot be decoded here: {exc}") from None


def as_explicit_vr_le(ds: pydicom.Dataset) -> pydicom.Dataset:
    """The data set re-encoded in Explicit VR Little Endian: decompressed, or byte-swapped from Big Endian.

    Raises NotAcceptable when the compressed pixel data cannot be decoded here."""
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax == EXPLICIT_VR_LE:
        return ds
    if syntax.is_encapsulated:
        frames = _frame_count(ds)
        with decoding():
            ds.decompress()
        if _frame_count(ds) != frames:  # pydicom decodes the fragments there are and says so in Number of Frames
            raise NotAcceptable(f"this instance cannot be decoded here: {frames} frames, fewer fragments")
    elif not syntax.is_little_endian:
        for _ in ds.iterall():  # parse every element, so that none is written in its original byte order
            pass
        if "PixelData" in ds:
            array = ds.pixel_array
            ds.PixelData = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        ds.set_original_encoding(False, True, ds.original_character_set)
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
    return ds


def transcoded_chunks(instance: Instance) -> Iterator[bytes]:
    """The instance as a Part 10 file in Explicit VR Little Endian."""
    buffer = io.BytesIO()
    as_explicit_vr_le(read_instance(instance)).save_as(buffer, enforce_file_format=True)
    yield buffer.getvalue()


def blinded_part10(instance: Instance, syntax: str, blind) -> bytes:
    """The instance as a Part 10 file in `syntax` (as stored or Explicit VR Little Endian), rebuilt through `blind`
    (a blinded root's allowlist: Allowlist.dataset) so that it holds nothing that root's metadata does not."""
    ds = read_instance(instance)
    if syntax != str(ds.file_meta.TransferSyntaxUID):
        ds = as_explicit_vr_le(ds)
    buffer = io.BytesIO()
    blind(ds).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# -- frames -----------------------------------------------------------------------------------------------


def _frame_count(ds: pydicom.Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def stored_frames(ds: pydicom.Dataset, numbers: list[int]) -> list[bytes]:
    """Frames as stored: compressed fragments for encapsulated syntaxes, raw pixel bytes otherwise."""
    count = _frame_count(ds)
    if any(n < 1 or n > count for n in numbers):
        raise IndexError(f"this instance has {count} frame(s)")
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_encapsulated:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        return [frames[n - 1] for n in numbers]
    if ts.is_compressed:  # deflated: the data set was inflated when read, pixels are native
        ts = EXPLICIT_VR_LE
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
    data = ds.PixelData
    if not ds.file_meta.TransferSyntaxUID.is_little_endian and ds.BitsAllocated > 8:
        data = np.frombuffer(data, dtype=f">u{ds.BitsAllocated // 8}").astype(f"<u{ds.BitsAllocated // 8}").tobytes()
    return [data[(n - 1) * size : n * size] for n in numbers]


def native_frames(ds: pydicom.Dataset, numbers: list[int]) -> list[bytes]:
    """Frames decoded to native little-endian pixels (Explicit VR Little Endian)."""
    if not ds.file_meta.TransferSyntaxUID.is_compressed or not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return stored_frames(ds, numbers)
    count = _frame_count(ds)
    if any(n < 1 or n > count for n in numbers):
        raise IndexError(f"this instance has {count} frame(s)")
    out = []
    for n in numbers:
        array = ds.pixel_array if count == 1 else ds.pixel_array[n - 1]
        out.append(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return out


def frames_for(ds: pydicom.Dataset, numbers: list[int], transfer_syntax: str) -> tuple[list[bytes], str]:
    """The frames in the requested transfer syntax ('*' = as stored, '' = the default, uncompressed)."""
    stored = str(ds.file_meta.TransferSyntaxUID)
    if transfer_syntax in ("*", stored) or (not transfer_syntax and not ds.file_meta.TransferSyntaxUID.is_encapsulated):
        uncompressed = not ds.file_meta.TransferSyntaxUID.is_encapsulated
        return stored_frames(ds, numbers), EXPLICIT_VR_LE if uncompressed else stored
    if transfer_syntax in ("", EXPLICIT_VR_LE):
        with decoding():
            return native_frames(ds, numbers), EXPLICIT_VR_LE
    raise NotAcceptable(f"frames are available as stored ({stored}) or as {EXPLICIT_VR_LE}")


def _layout_at(f, ds: pydicom.Dataset) -> dict:
    """Where each frame lies in a file positioned at its Pixel Data element (after a stop_before_pixels read).

    Native little-endian data: {"offset", "frame_bytes", "frames"}. Encapsulated data whose fragments map to
    frames (one fragment per frame, or every fragment of a single frame): {"fragments": [[[offset, length],
    ...] per frame], "frames"}. Anything else: {} (frames are then cut by pydicom from the whole data set).
    """
    syntax = ds.file_meta.TransferSyntaxUID
    if "Rows" not in ds or not syntax.is_little_endian:
        return {}
    start = f.tell()
    head = f.read(12)
    if len(head) < 8 or head[:4] != b"\xe0\x7f\x10\x00":
        return {}
    frames = _frame_count(ds)
    if syntax.is_implicit_VR:
        length, offset = int.from_bytes(head[4:8], "little"), start + 8
    else:
        length, offset = int.from_bytes(head[8:12], "little"), start + 12
    if length != 0xFFFFFFFF:
        if syntax.is_compressed or ds.get("BitsAllocated", 0) % 8:
            return {}
        frame_bytes = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated // 8
        if frame_bytes * frames > length:
            return {}
        return {"offset": offset, "frame_bytes": frame_bytes, "frames": frames}
    f.seek(offset)
    fragments, first = [], True
    while True:
        item = f.read(8)
        if len(item) < 8 or item[:4] != b"\xfe\xff\x00\xe0":
            break  # a sequence delimiter, or the end
        size = int.from_bytes(item[4:8], "little")
        if not first:
            fragments.append([f.tell(), size])
        first = False
        f.seek(size, io.SEEK_CUR)
    if frames == 1 and fragments:
        return {"fragments": [fragments], "frames": 1}
    if len(fragments) == frames:
        return {"fragments": [[fragment] for fragment in fragments], "frames": frames}
    return {}


def frame_layout(instance: Instance) -> dict | None:
    """Where the frames of an instance lie in its file (see `_layout_at`), kept with the index row; None when
    they cannot be read as byte ranges."""
    if instance.pixel_layout is None:
        with image_storage().open(instance.storage_key, "rb") as f:
            raw = getattr(f, "file", f)
            layout = _layout_at(raw, pydicom.dcmread(raw, stop_before_pixels=True))
        Instance.objects.filter(pk=instance.pk).update(pixel_layout=layout)
        instance.pixel_layout = layout
    return instance.pixel_layout or None


def read_layout_frames(instance: Instance, layout: dict, numbers: list[int]) -> list[bytes]:
    """The frames as stored (native pixels, or each frame's compressed bytes), read as byte ranges."""
    if any(n < 1 or n > layout["frames"] for n in numbers):
        raise IndexError(f"this instance has {layout['frames']} frame(s)")
    out = []
    with image_storage().open(instance.storage_key, "rb") as f:
        for n in numbers:
            if "fragments" in layout:
                parts = []
                for offset, length in layout["fragments"][n - 1]:
                    f.seek(offset)
                    parts.append(f.read(length))
                out.append(b"".join(parts))
            else:
                f.seek(layout["offset"] + (n - 1) * layout["frame_bytes"])
                out.append(f.read(layout["frame_bytes"]))
    return out


# -- rendered ---------------------------------------------------------------------------------------------


WINDOW_FUNCTIONS = ("linear", "linear-exact", "sigmoid")


def _window(ds: pydicom.Dataset, window: tuple[float, float, str] | None) -> tuple[float, float, str] | None:
    if window:
        return window
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)  # noqa: E731
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").lower().replace("_", "-")
    return first(center), first(width), function if function in WINDOW_FUNCTIONS else "linear"


def apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI LUT function of PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID) onto 0..1."""
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "linear-exact":
        return np.clip((values - center) / width + 0.5, 0, 1)
    if width <= 1:  # LINEAR with a width of 1 is a threshold at the centre
        return (values > center - 0.5).astype(np.float32)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)


def render(
    ds: pydicom.Dataset,
    *,
    frame: int = 1,
    window: tuple[float, float, str] | None = None,
    viewport: tuple[int, int] | None = None,
    media_type: str = "image/png",
    quality: int = 90,
) -> bytes:
    """A consumer-format picture of one frame: modality LUT, VOI window (given or the instance's), scaled to fit."""
    count = _frame_count(ds)
    if frame < 1 or frame > count:
        raise IndexError(f"this instance has {count} frame(s)")
    with decoding():
        array = ds.pixel_array if count == 1 else ds.pixel_array[frame - 1]
    if ds.get("PhotometricInterpretation", "MONOCHROME2").startswith("MONOCHROME"):
        values = array.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(
            ds.get("RescaleIntercept", 0) or 0
        )
        voi = _window(ds, window)
        if voi:
            scaled = apply_window(values, *voi) * 255
        else:
            low, high = float(values.min()), float(values.max())
            scaled = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            scaled = 255 - scaled
        image = Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if viewport:
        image.thumbnail(viewport, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        image.convert("L" if image.mode == "L" else "RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def frame_count(ds: pydicom.Dataset) -> int:
    return _frame_count(ds)
