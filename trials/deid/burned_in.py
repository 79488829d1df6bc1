"""Text in the pixels: which instances may carry it, finding it with OCR, and redacting it.

Deciding is cheap and reads only header values: a primary CT or MR slice (ORIGINAL or DERIVED\\PRIMARY) is
not examined (it would pay a second or so of OCR for nothing). Examined are secondary images (dose reports
and protocol screens come as CT DERIVED\\SECONDARY), secondary captures, screen saves, localizers, images
with an overlay, images that declare burned-in annotation, and images with bits set above Bits Stored (an
overlay drawn into the unused bits).

OCR is Tesseract with Debian's trained data for Hangul and Latin (tesseract-ocr-kor, tesseract-ocr-eng),
through tesserocr: its wheel carries Tesseract's library, so the image goes to the recogniser in memory.
pytesseract was tried first: it writes each image to a temporary file for the `tesseract` program, and an
image with a patient's name drawn in it must not leave the process outside the quarantine; it also paid a
process start per image (about four times slower here).
"""

from __future__ import annotations

import array
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

try:  # the site's browser (Pyodide) carries pydicom only: no numpy, no OCR there (require_ocr says so)
    import numpy as np
except ImportError:  # pragma: no cover - exercised by the Pyodide bundle's test under Node
    np = None

OCR_LANGUAGES = "kor+eng"
_DEBIAN_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")
_ENGINES = threading.local()
# Tesseract reads shapes in anatomy as short words of low confidence ("La" 72, "=F" 75 in a perfusion CT);
# text drawn into an image reads at 90 or more. A word is text when it is read with TEXT_CONFIDENCE and
# has three letters or digits, or a Hangul syllable. Once a frame has text, every word read with
# BLANK_CONFIDENCE is blanked with it (the parts of a line Tesseract is less sure of).
TEXT_CONFIDENCE = 80
BLANK_CONFIDENCE = 40
PAD = 4  # pixels added around a detected word before it is blanked
MAX_PASSES = 3

SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
_SCREEN_WORDS = ("SCREEN", "SAVE", "DOSE", "REPORT", "PROTOCOL", "CAPTURE")


class OcrUnavailable(Exception):
    """OCR could not run (Tesseract missing, or it failed): an instance that needed reading was not read."""


@dataclass(frozen=True)
class Word:
    """A word OCR found in a frame, in the frame's pixel coordinates."""

    left: int
    top: int
    width: int
    height: int
    confidence: float
    text: str = field(default="", repr=False)  # what was read: possibly identifying, never logged

    @property
    def is_text(self) -> bool:
        if self.confidence < TEXT_CONFIDENCE:
            return False
        return sum(c.isalnum() for c in self.text) >= 3 or any("\uac00" <= c <= "\ud7a3" for c in self.text)


def ocr_reasons(
    *, image_type: list[str], sop_class_uid: str, burned_in_annotation: str, has_overlay: bool = False
) -> list[str]:
    """Why an instance may carry text in its pixels, from header values alone (empty: it need not be read)."""
    reasons = []
    upper = [v.strip().upper() for v in image_type]
    if "LOCALIZER" in upper[2:]:
        reasons.append("localizer")  # scouts often carry the scanner's annotation (a few per study)
    if has_overlay:
        reasons.append("overlay")  # annotation was drawn for this image: it may be in the pixels too
    # DERIVED\PRIMARY is an ordinary reconstruction; SECONDARY is made after the fact (dose reports,
    # protocol screens, captures), the images that carry text.
    if upper[1:2] == ["SECONDARY"]:
        reasons.append("secondary image")
    if any(word in value for value in upper[2:] for word in _SCREEN_WORDS):
        reasons.append("screen save")
    if sop_class_uid in SECONDARY_CAPTURE_CLASSES:
        reasons.append("secondary capture")
    if burned_in_annotation.strip().upper() == "YES":
        reasons.append("burned-in annotation declared")
    return reasons


def require_ocr() -> None:
    """Raise OcrUnavailable where pixels cannot be examined for text (no numpy or no Tesseract, as in the site's
    browser): such an image is held back with the reason, never passed unexamined."""
    if np is None:
        raise OcrUnavailable("no OCR where this runs; the image must be examined on the server")
    _api()


@dataclass
class PixelModule:
    """The values needed to read native pixel data."""

    rows: int
    columns: int
    samples: int
    frames: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    little: bool
    photometric: str

    @property
    def dtype(self) -> np.dtype:
        if self.bits_allocated not in (8, 16, 32):
            raise ValueError("unsupported Bits Allocated")
        return np.dtype(f"{'<' if self.little else '>'}{'i' if self.signed else 'u'}{self.bits_allocated // 8}")

    @property
    def shape(self) -> tuple[int, ...]:
        if self.samples > 1:
            return (self.frames, self.rows, self.columns, self.samples)
        return (self.frames, self.rows, self.columns)


def native_array(value: bytes, module: PixelModule, *, writable: bool = True) -> np.ndarray:
    """Native pixel data as an array of frames (a copy that may be written, unless not `writable`)."""
    count = math.prod(module.shape)
    array = np.frombuffer(value, dtype=module.dtype, count=count).reshape(module.shape)
    return array.copy() if writable else array


def high_bits_set(value: bytes, module: PixelModule) -> bool:
    """Whether bits above Bits Stored of native pixel data hold anything (an overlay drawn into the unused bits).

    Read from the extremes only, so a normal slice pays two passes over its pixels and no copy: unsigned
    values must stay below 2**Bits Stored, signed ones (sign-extended) within +-2**(Bits Stored - 1). Without
    numpy (the site's browser) the same extremes come from a memoryview.
    """
    if module.bits_stored >= module.bits_allocated:
        return False
    if np is not None:
        values = native_array(value, module, writable=False)
        low, high = int(values.min()), int(values.max())
    else:
        low, high = _extremes(value, module)
    if module.signed:
        half = 1 << (module.bits_stored - 1)
        return low < -half or high >= half
    return high >= 1 << module.bits_stored


def _extremes(value: bytes, module: PixelModule) -> tuple[int, int]:
    """The least and greatest pixel value, read with the standard library only."""
    size = module.bits_allocated // 8
    code = {1: "b", 2: "h", 4: "i"}[size]
    code = code if module.signed else code.upper()
    count = math.prod(module.shape)
    data = bytes(value[: count * size])
    if module.little != (sys.byteorder == "little") and size > 1:
        swapped = array.array(code, data)
        swapped.byteswap()
        values = memoryview(swapped)
    else:
        values = memoryview(data).cast(code)
    return (min(values), max(values)) if len(values) else (0, 0)


def zero_high_bits(array: np.ndarray, module: PixelModule) -> np.ndarray:
    """The array with bits above Bits Stored cleared (sign-extended for signed pixels)."""
    bits = module.bits_stored
    kept = array.astype(np.int64) & ((1 << bits) - 1)
    if module.signed:
        kept = np.where(kept >= 1 << (bits - 1), kept - (1 << bits), kept)
    return kept.astype(array.dtype)


def _to_image(frame: np.ndarray, photometric: str) -> Any:
    from PIL import Image

    data = frame.astype(np.float64)
    if data.ndim == 3:
        data = data.mean(axis=2)
    low, high = float(data.min()), float(data.max())
    scaled = np.zeros_like(data) if high <= low else (data - low) * (255.0 / (high - low))
    if photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.width < 512:
        image = image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
    return image


def tessdata_path() -> str:
    """Where Tesseract's trained data are: $TESSDATA_PREFIX, or Debian's tesseract-ocr-kor/-eng location."""
    candidates = [os.environ.get("TESSDATA_PREFIX", ""), *_DEBIAN_TESSDATA]
    for path in candidates:
        if path and all(os.path.exists(os.path.join(path, f"{lang}.traineddata")) for lang in ("kor", "eng")):
            return path
    raise OcrUnavailable("no Korean and English trained data (install tesseract-ocr-kor)")


def _api() -> Any:
    """This thread's Tesseract engine, made once (loading the Korean model takes a while)."""
    api = getattr(_ENGINES, "api", None)
    if api is None:
        import tesserocr

        try:
            api = tesserocr.PyTessBaseAPI(path=tessdata_path(), lang=OCR_LANGUAGES, psm=tesserocr.PSM.SPARSE_TEXT)
        except RuntimeError as exc:
            raise OcrUnavailable(type(exc).__name__) from None
        _ENGINES.api = api
    return api


def ocr_words(image: Any) -> list[Word]:
    """Words Tesseract reads in a greyscale PIL image (Hangul and Latin), in the image's coordinates.

    The one place OCR runs: tests replace it to count calls.
    """
    import tesserocr

    api = _api()
    level = tesserocr.RIL.WORD
    try:
        api.SetImage(image)
        api.Recognize()
        found = []
        for result in tesserocr.iterate_level(api.GetIterator(), level):
            box = result.BoundingBox(level)
            if box is not None:
                found.append((result.GetUTF8Text(level) or "", result.Confidence(level), box))
    except RuntimeError as exc:
        raise OcrUnavailable(type(exc).__name__) from None
    finally:
        api.Clear()
    words = []
    for text, conf, (left, top, right, bottom) in found:
        if conf < BLANK_CONFIDENCE or not any(c.isalnum() for c in text):
            continue
        words.append(Word(left, top, right - left, bottom - top, float(conf), text))
    return words


def find_text(frame: np.ndarray, photometric: str) -> list[Word]:
    """Words in one frame, in the frame's pixel coordinates."""
    image = _to_image(frame, photometric)
    scale = image.width / frame.shape[1]
    return [
        Word(
            int(w.left / scale),
            int(w.top / scale),
            int(np.ceil(w.width / scale)),
            int(np.ceil(w.height / scale)),
            w.confidence,
            w.text,
        )
        for w in ocr_words(image)
    ]


def blank(frame: np.ndarray, words: list[Word]) -> None:
    """Fill each word's box (with a margin) with the frame's darkest value, in place."""
    fill = frame.min()
    rows, columns = frame.shape[:2]
    for w in words:
        top, left = max(0, w.top - PAD), max(0, w.left - PAD)
        bottom, right = min(rows, w.top + w.height + PAD), min(columns, w.left + w.width + PAD)
        frame[top:bottom, left:right] = fill


def redact_frames(frames: np.ndarray, photometric: str) -> tuple[int, bool]:
    """Blank every word OCR finds in each frame, in place, until it finds none (at most MAX_PASSES passes).

    Returns the number of words blanked and whether every frame reads clean at the end.
    """
    blanked = 0
    for index in range(frames.shape[0]):
        frame = frames[index]
        for _ in range(MAX_PASSES):
            words = find_text(frame, photometric)
            if not any(w.is_text for w in words):
                break
            blank(frame, words)
            blanked += len(words)
        else:
            if any(w.is_text for w in find_text(frame, photometric)):
                return blanked, False
    return blanked, True


def has_text(frames: np.ndarray, photometric: str) -> bool:
    return any(w.is_text for index in range(frames.shape[0]) for w in find_text(frames[index], photometric))
