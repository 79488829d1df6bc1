"""WADO-RS (PS3.18 10.4) building blocks: stored files as DICOM, DICOM JSON metadata, frames and rendered images."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator

import numpy as np
import pydicom
from django.db import transaction
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from ..ingest.store import image_storage
from ..models import Instance
from .negotiation import EXPLICIT_VR_LE

CHUNK = 1 << 20


class NotAcceptable(Exception):
    """No representation the client accepts can be made (406)."""


def read_instance(instance: Instance, *, pixels: bool = True) -> pydicom.Dataset:
    """A stored instance as a dataset. pydicom reads the storage's underlying file object: given Django's File
    wrapper it would keep that closed wrapper as the dataset's buffer (and warn whenever the dataset is copied)."""
    with image_storage().open(instance.storage_key, "rb") as f:
        return pydicom.dcmread(getattr(f, "file", f), stop_before_pixels=not pixels)


def file_chunks(instance: Instance) -> Iterator[bytes]:
    with image_storage().open(instance.storage_key, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def multipart_stream(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body, one part at a time: memory stays flat however many instances it carries."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def new_boundary() -> str:
    return uuid.uuid4().hex


# -- metadata ---------------------------------------------------------------------------------------------


def instance_metadata(instance: Instance) -> dict:
    """Every attribute but the pixel data as DICOM JSON, made once and kept with the index row."""
    if instance.metadata is None:
        ds = read_instance(instance, pixels=False)
        metadata = ds.to_json_dict(bulk_data_threshold=1 << 30)
        metadata["00083002"] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
        Instance.objects.filter(pk=instance.pk).update(metadata=metadata)
        instance.metadata = metadata
    return instance.metadata


def with_bulk_data(metadata: dict, instance: Instance, instance_url: str) -> dict:
    """The metadata with the pixel data's BulkDataURI for this root."""
    encapsulated = UID(instance.transfer_syntax_uid).is_compressed
    bits = (metadata.get("00280100") or {}).get("Value", [16])[0]
    vr = "OB" if encapsulated or bits <= 8 else "OW"
    return metadata | {"7FE00010": {"vr": vr, "BulkDataURI": f"{instance_url}/bulkdata/7FE00010"}}


def load_metadata(instances: list[Instance]) -> None:
    """Give each instance its metadata: read in one query, made (and kept) for those that have none yet."""
    stored = dict(Instance.objects.filter(pk__in=[i.pk for i in instances]).values_list("pk", "metadata"))
    with transaction.atomic():
        for instance in instances:
            instance.metadata = stored.get(instance.pk)
            instance_metadata(instance)


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
        try:
            return native_frames(ds, numbers), EXPLICIT_VR_LE
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            raise NotAcceptable(f"this instance cannot be decoded here: {exc}") from None
    raise NotAcceptable(f"frames are available as stored ({stored}) or as {EXPLICIT_VR_LE}")


def native_layout(instance: Instance) -> dict | None:
    """Where the frames of a natively encoded little-endian instance lie in its file; None for other encodings.

    Found once with a header-only parse and kept with the index row, so that later frame requests read just
    the bytes of the frame.
    """
    if instance.pixel_layout is not None:
        return instance.pixel_layout or None
    layout: dict = {}
    if instance.transfer_syntax_uid in (EXPLICIT_VR_LE, "1.2.840.10008.1.2"):
        with image_storage().open(instance.storage_key, "rb") as f:
            ds = pydicom.dcmread(f, defer_size=1024)
            element = ds.get_item("PixelData") if "PixelData" in ds else None
            if (
                element is not None
                and getattr(element, "value_tell", None) is not None
                and element.length != 0xFFFFFFFF
            ):
                frame_bytes = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
                frames = _frame_count(ds)
                if ds.BitsAllocated % 8 == 0 and frame_bytes * frames <= element.length:
                    layout = {"offset": element.value_tell, "frame_bytes": frame_bytes, "frames": frames}
    Instance.objects.filter(pk=instance.pk).update(pixel_layout=layout)
    instance.pixel_layout = layout
    return layout or None


def read_native_frames(instance: Instance, layout: dict, numbers: list[int]) -> list[bytes]:
    if any(n < 1 or n > layout["frames"] for n in numbers):
        raise IndexError(f"this instance has {layout['frames']} frame(s)")
    out = []
    with image_storage().open(instance.storage_key, "rb") as f:
        for n in numbers:
            f.seek(layout["offset"] + (n - 1) * layout["frame_bytes"])
            out.append(f.read(layout["frame_bytes"]))
    return out


# -- rendered ---------------------------------------------------------------------------------------------


def _window(ds: pydicom.Dataset, window: tuple[float, float] | None) -> tuple[float, float] | None:
    if window:
        return window
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)  # noqa: E731
    return first(center), first(width)


def render(
    ds: pydicom.Dataset,
    *,
    frame: int = 1,
    window: tuple[float, float] | None = None,
    viewport: tuple[int, int] | None = None,
    media_type: str = "image/png",
    quality: int = 90,
) -> bytes:
    """A consumer-format picture of one frame: modality LUT, VOI window (given or the instance's), scaled to fit."""
    count = _frame_count(ds)
    if frame < 1 or frame > count:
        raise IndexError(f"this instance has {count} frame(s)")
    array = ds.pixel_array if count == 1 else ds.pixel_array[frame - 1]
    if ds.get("PhotometricInterpretation", "MONOCHROME2").startswith("MONOCHROME"):
        values = array.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(
            ds.get("RescaleIntercept", 0) or 0
        )
        voi = _window(ds, window)
        if voi:
            center, width = voi
            low, high = center - width / 2, center + width / 2
        else:
            low, high = float(values.min()), float(values.max())
        scaled = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            scaled = 255 - scaled
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
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
