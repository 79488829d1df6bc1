"""Text in the pixels: which instances may carry it, finding it with OCR, and redacting it.

Deciding is cheap and reads only header values: a primary CT or MR slice (ORIGINAL or DERIVED\\PRIMARY) is
not examined (it would pay a second or so of OCR for nothing). Examined are secondary images (dose reports
and protocol screens come as CT DERIVED\\SECONDARY), secondary captures, screen saves, localizers, images
with an overlay, images that declare burned-in annotation, and images with bits set above Bits Stored (an
overlay drawn into the unused bits).

OCR is Tesseract with trained data for Hangul and Latin through tesserocr: its wheel carries Tesseract's library,
so the image goes to the recogniser in memory. The trained data are the site's browser's (the "best_int" models
the front-end build writes into static/dist/deid/ocr/, `use_models`), or where those are missing the system's
(Debian's tesseract-ocr-kor/-eng: other models, `models_in_use` says which and `manage.py check` warns).
pytesseract was tried first: it writes each image to a temporary file for the `tesseract` program, and an
image with a patient's name drawn in it must not leave the process outside the quarantine; it also paid a
process start per image (about four times slower here).

In the site's browser (Pyodide: pydicom only, no numpy, no Pillow) the same decision and the same redaction
run on `Frames`, the pixel data's own bytes, and OCR is Tesseract compiled to WebAssembly (tesseract.js-core,
bundled with the same models), installed with `use_external_ocr`; without it, an image that needs reading is
held back with the reason. Both are handed the same grey image (`_to_image`, ocr.mjs's `greyImage`) with the
same settings (LSTM only, sparse text, OCR_DPI); the browser's bars are BROWSER_MARGIN lower.
"""

from __future__ import annotations

import array
import array as _array_module
import dataclasses
import functools
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import palette_colour

try:  # the site's browser (Pyodide) carries pydicom only: no numpy there (Frames stand in for arrays)
    import numpy as np
except ImportError:  # pragma: no cover - exercised by the Pyodide bundle's test under Node
    np = None

OCR_LANGUAGES = "kor+eng"
LANGUAGES = OCR_LANGUAGES.split("+")
# The resolution Tesseract assumes (ocr.mjs sets the same): a frame carries none, and each way of handing it an
# image said another (tesserocr's BMP from PIL 96 dpi, the browser's PNM none: Tesseract's estimate from the
# text's size, which read other words). 96 read the most words of the agreement screens (70 to 300 tried).
OCR_DPI = 96
_models_dir: str | None = None
_DEBIAN_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")
_ENGINES = threading.local()
logger = logging.getLogger(__name__)
# OCR from outside Python (the site's browser): frame bytes and PixelModule -> (scale, words found) as
# (left, top, width, height, confidence, text) in the coordinates of the image read, `scale` times the frame.
ExternalOcr = Callable[[bytes, "PixelModule"], tuple[float, Iterable[tuple[int, int, int, int, float, str]]]]
_external_ocr: ExternalOcr | None = None
_external_margin: float = 0
# Tesseract reads shapes in anatomy as short words of low confidence ("La" 72, "=F" 75 in a perfusion CT);
# text drawn into an image reads at 90 or more. A word is text when it is read with TEXT_CONFIDENCE and
# has three letters or digits, or a Hangul syllable. Once a frame has text, every word read with
# BLANK_CONFIDENCE is blanked with it (the parts of a line Tesseract is less sure of).
TEXT_CONFIDENCE = 80
BLANK_CONFIDENCE = 40
# The site's browser runs another build of Tesseract (tesseract.js-core's, 5.1) than the server (tesserocr's,
# 5.5) on the same models and the same image: both find the same words in the same boxes, but a word's
# confidence may differ by up to about 18 points (tests/trials/deid/test_ocr_agreement.py: median 0.4, 95th
# percentile 10). The browser therefore takes text, and blanks words, this much below the server's bars: what
# the server's re-check would call text, the browser has found first, so nothing it misses crosses the network.
BROWSER_MARGIN = 20
# Tesseract binarises an image with one threshold for all of it (Otsu): text dimmer than the brightest part of
# the frame (grey annotation beside bright anatomy or a white bar) falls below it and is not read at all. Each
# image is read twice, with that threshold and with Leptonica's tiled one (Tesseract's thresholding_method 1),
# which finds such text but reads large and Hangul text worse; the words of both are merged (`_kept_words`).
THRESHOLD_METHODS = (0, 1)
SAME_WORD = 0.5  # two words read in one place (intersection over union) are one: the more confident is kept
PAD = 4  # pixels added around a detected word before it is blanked
MIN_WIDTH = 512  # narrower frames are read at twice their size (small text reads better)
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
    margin: float = field(default=0, repr=False, compare=False)  # read by the browser: BROWSER_MARGIN

    @property
    def is_text(self) -> bool:
        if self.confidence < TEXT_CONFIDENCE - self.margin:
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


def use_external_ocr(ocr: ExternalOcr | None, *, margin: float = 0) -> None:
    """Read pixels with `ocr` (the site's browser's Tesseract) instead of tesserocr; None: no OCR here.

    `margin`: how far below the server's confidence bars its words count (BROWSER_MARGIN for another build of
    Tesseract than the server's)."""
    global _external_ocr, _external_margin
    _external_ocr, _external_margin = ocr, margin


def require_examinable(photometric: str) -> None:
    """Raise the palette_colour rejection for an image whose pixels must be examined but are indices into a colour
    table: OCR reads grey levels and colours (`_to_image`, ocr.mjs's greyImage), and indices are neither. The
    engine and the server's re-verification of the site's browser's files ask it alike."""
    if photometric == "PALETTE COLOR":
        raise palette_colour()


def require_ocr(*, compressed: bool = False) -> None:
    """Raise OcrUnavailable where pixels cannot be examined for text (no Tesseract, or in the site's browser
    no OCR or a compressed image it cannot decode): such an image is held back with the reason, never passed
    unexamined."""
    if np is None:
        if _external_ocr is None:
            raise OcrUnavailable("no OCR where this runs; the image must be examined on the server")
        if compressed:
            # The upload page has no server path to offer instead: the coordinator can only resend it uncompressed.
            raise OcrUnavailable("a compressed image cannot be decoded for OCR in the browser; send it uncompressed")
        return
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
    planar: bool = False  # colour stored plane by plane (Planar Configuration 1), not colour-by-pixel

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

    @property
    def typecode(self) -> str:
        """The `array` type code of one sample (the standard library's view of `dtype`)."""
        if self.bits_allocated not in (8, 16, 32):
            raise ValueError("unsupported Bits Allocated")
        code = {8: "b", 16: "h", 32: "i"}[self.bits_allocated]
        return code if self.signed else code.upper()


class Frames:
    """Native pixel data as frames without numpy (the site's browser): the value's bytes, in its byte order.

    Offers what the redaction uses of an array: `shape`, a frame by index, its least value, filling a box
    of a frame, `tobytes`.
    """

    def __init__(self, data: bytearray, module: PixelModule) -> None:
        self.data = data
        self.module = module
        self.shape = module.shape
        self.frame_size = module.rows * module.columns * module.samples * (module.bits_allocated // 8)

    def __getitem__(self, index: int) -> Frame:
        return Frame(self, index)

    def samples(self, start: int = 0, stop: int | None = None) -> memoryview:
        """The samples of bytes [start, stop) as numbers in this machine's order."""
        module = self.module
        data = bytes(self.data[start:stop])
        values = array.array(module.typecode, data)
        if module.little != (sys.byteorder == "little") and module.bits_allocated > 8:
            values.byteswap()
        return memoryview(values)

    def encode(self, values: array.array) -> bytes:
        if self.module.little != (sys.byteorder == "little") and self.module.bits_allocated > 8:
            values.byteswap()
        return values.tobytes()

    def tobytes(self) -> bytes:
        return bytes(self.data)


@dataclass
class Frame:
    """One frame of `Frames`."""

    frames: Frames
    index: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.frames.shape[1:]

    def tobytes(self) -> bytes:
        start = self.index * self.frames.frame_size
        return bytes(self.frames.data[start : start + self.frames.frame_size])

    def min(self) -> int:
        start = self.index * self.frames.frame_size
        values = self.frames.samples(start, start + self.frames.frame_size)
        return min(values) if len(values) else 0

    def fill(self, top: int, left: int, bottom: int, right: int, value: int) -> None:
        """Set rows [top, bottom) and columns [left, right) of the frame, every sample, to `value`."""
        module = self.frames.module
        width = (right - left) * module.samples
        if width <= 0:
            return
        row_bytes = module.columns * module.samples * (module.bits_allocated // 8)
        run = self.frames.encode(array.array(module.typecode, [value] * width))
        base = self.index * self.frames.frame_size
        for row in range(top, bottom):
            start = base + row * row_bytes + left * module.samples * (module.bits_allocated // 8)
            self.frames.data[start : start + len(run)] = run


def native_array(value: bytes, module: PixelModule, *, writable: bool = True) -> np.ndarray | Frames:
    """Native pixel data as an array of frames (a copy that may be written, unless not `writable`); without
    numpy, as `Frames` (always a copy). Colour stored plane by plane comes colour-by-pixel (a copy), as OCR
    reads and redaction blanks it: written back, it is colour-by-pixel (Planar Configuration 0)."""
    count = math.prod(module.shape)
    planar = module.planar and module.samples > 1
    if np is None:
        data = bytearray(value[: count * (module.bits_allocated // 8)])
        if planar:
            data = bytearray(_interleaved(data, module))
            module = dataclasses.replace(module, planar=False)
        return Frames(data, module)
    if planar:
        f, rows, columns, samples = module.shape
        planes = np.frombuffer(value, dtype=module.dtype, count=count).reshape(f, samples, rows, columns)
        return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
    array = np.frombuffer(value, dtype=module.dtype, count=count).reshape(module.shape)
    return array.copy() if writable else array


def _interleaved(data: bytes | bytearray, module: PixelModule) -> bytes:
    """Plane-by-plane colour samples (each frame: every red, then every green, then every blue) colour-by-pixel,
    with the standard library only. Samples are moved whole, so their byte order does not matter."""
    values = _array_module.array(module.typecode, bytes(data))
    out = _array_module.array(module.typecode, bytes(len(values) * values.itemsize))
    pixels = module.rows * module.columns
    frame = pixels * module.samples
    for start in range(0, len(values), frame):
        for sample in range(module.samples):
            plane = values[start + sample * pixels : start + (sample + 1) * pixels]
            out[start + sample : start + frame : module.samples] = plane
    return out.tobytes()


def high_bits_set(value: bytes, module: PixelModule) -> bool:
    """Whether bits above Bits Stored of native pixel data hold anything (an overlay drawn into the unused bits).

    Read from the extremes only, so a normal slice pays two passes over its pixels and no copy: unsigned
    values must stay below 2**Bits Stored, signed ones (sign-extended) within +-2**(Bits Stored - 1). Without
    numpy (the site's browser), 16-bit pixels are judged by their high bytes alone (`_high_bytes_set`), other
    sizes by extremes from a memoryview.
    """
    if module.bits_stored >= module.bits_allocated:
        return False
    if np is not None:
        values = native_array(value, dataclasses.replace(module, planar=False), writable=False)  # extremes only
        low, high = int(values.min()), int(values.max())
    elif module.bits_allocated == 16 and module.bits_stored >= (9 if module.signed else 8):
        return _high_bytes_set(value, module)
    else:
        low, high = _extremes(value, module)
    if module.signed:
        half = 1 << (module.bits_stored - 1)
        return low < -half or high >= half
    return high >= 1 << module.bits_stored


def _high_bytes_set(value: bytes, module: PixelModule) -> bool:
    """high_bits_set for 16-bit pixels without numpy, at the speed of bytes methods (the site's browser reads
    every CT slice this way; iterating over 262,144 values in Pyodide cost more than the rest of the engine).

    A 16-bit value keeps within Bits Stored when the bits of its high byte above Bits Stored are all clear
    (unsigned), or all equal to its sign bit (signed): deleting every such byte from the high bytes leaves
    nothing, and any byte left is a bit set above Bits Stored. (Signed pixels need their sign bit in the high
    byte: Bits Stored of 9 or more.)
    """
    count = math.prod(module.shape)
    high = bytes(value[1 if module.little else 0 : count * 2 : 2])
    return bool(high.translate(None, _kept_high_bytes(module.bits_stored - 8, module.signed)))


@functools.cache
def _kept_high_bytes(kept: int, signed: bool) -> bytes:
    """The high bytes of 16-bit values within Bits Stored, `kept` of whose bits are within it."""
    if signed:  # the bits from the sign bit (bit kept - 1) up are all 0 or all 1
        top = 0xFF >> (kept - 1) << (kept - 1) & 0xFF
        return bytes(b for b in range(256) if b & top in (0, top))
    return bytes(b for b in range(256) if b >> kept == 0)


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


def zero_high_bits(array: np.ndarray | Frames, module: PixelModule) -> np.ndarray | Frames:
    """The array with bits above Bits Stored cleared (sign-extended for signed pixels)."""
    bits = module.bits_stored
    if isinstance(array, Frames):
        mask, half, full = (1 << bits) - 1, 1 << (bits - 1), 1 << bits
        kept = [v & mask for v in array.samples()]
        if module.signed:
            kept = [v - full if v >= half else v for v in kept]
        return Frames(bytearray(array.encode(_array_module.array(module.typecode, kept))), module)
    kept = array.astype(np.int64) & ((1 << bits) - 1)
    if module.signed:
        kept = np.where(kept >= 1 << (bits - 1), kept - (1 << bits), kept)
    return kept.astype(array.dtype)


def _to_image(frame: np.ndarray, photometric: str) -> Any:
    """The 8-bit grey image OCR reads: colour averaged, the frame's range stretched to 0-255, MONOCHROME1
    inverted, a frame narrower than MIN_WIDTH read at twice its size (`doubled`). The browser's ocr.mjs
    (`greyImage`) makes the very same bytes, so both Tesseracts are handed one image."""
    from PIL import Image

    data = frame.astype(np.float64)
    if data.ndim == 3:
        data = data.mean(axis=2)
    low, high = float(data.min()), float(data.max())
    scaled = np.zeros_like(data) if high <= low else (data - low) * (255.0 / (high - low))
    if photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    grey = scaled.astype(np.uint8)
    if grey.shape[1] < MIN_WIDTH:
        grey = doubled(grey)
    return Image.fromarray(grey, mode="L")


def doubled(grey: np.ndarray) -> np.ndarray:
    """An 8-bit image at twice its size, bilinear with pixel centres aligned, rounded half up: the arithmetic
    of ocr.mjs's `doubled`, step for step, so the browser's image is byte for byte this one."""
    rows, columns = grey.shape

    def taps(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.clip((np.arange(size * 2) + 0.5) / 2 - 0.5, 0, size - 1)
        first = np.floor(source).astype(np.intp)
        return first, np.minimum(first + 1, size - 1), source - first

    y0, y1, fy = taps(rows)
    x0, x1, fx = taps(columns)
    values = grey.astype(np.float64)
    top = values[y0][:, x0] * (1 - fx) + values[y0][:, x1] * fx
    bottom = values[y1][:, x0] * (1 - fx) + values[y1][:, x1] * fx
    fy = fy[:, None]
    return np.floor(top * (1 - fy) + bottom * fy + 0.5).astype(np.uint8)


def use_models(path: str | os.PathLike | None) -> None:
    """Read pixels with the trained data in `path` (the browser bundle's, static/dist/deid/ocr/: settings'
    OCR_MODELS_DIR), where they are; None: the system's. Engines made before are made again."""
    global _models_dir
    _models_dir = os.fspath(path) if path else None


def _has_models(path: str) -> bool:
    return bool(path) and all(os.path.isfile(os.path.join(path, f"{lang}.traineddata")) for lang in LANGUAGES)


def models_in_use() -> tuple[str, str]:
    """Which trained data the server's OCR reads with: ("bundle", path) when the browser's models are there,
    ("system", path) for $TESSDATA_PREFIX's or Debian's (tesseract-ocr-kor/-eng: other models than the
    browser's, which may read a frame otherwise), ("none", "") without Korean and English models."""
    if _models_dir and _has_models(_models_dir):
        return "bundle", _models_dir
    for path in (os.environ.get("TESSDATA_PREFIX", ""), *_DEBIAN_TESSDATA):
        if _has_models(path):
            return "system", path
    return "none", ""


def tessdata_path() -> str:
    """Where Tesseract's trained data are (models_in_use)."""
    source, path = models_in_use()
    if source == "none":
        raise OcrUnavailable("no Korean and English trained data (build the front end, or install tesseract-ocr-kor)")
    return path


def _api() -> Any:
    """This thread's Tesseract engine, made once per model folder (loading the Korean model takes a while),
    set as the browser's (ocr.mjs): LSTM only, sparse text, the same resolution."""
    path = tessdata_path()
    api = getattr(_ENGINES, "api", None)
    if api is None or getattr(_ENGINES, "path", None) != path:
        import tesserocr

        if models_in_use()[0] == "system":  # each worker says so once per thread, where manage.py check is not run
            logger.warning("OCR reads with the system's trained data in %s, not the upload page's", path)

        try:
            api = tesserocr.PyTessBaseAPI(
                path=path, lang=OCR_LANGUAGES, oem=tesserocr.OEM.LSTM_ONLY, psm=tesserocr.PSM.SPARSE_TEXT
            )
            api.SetVariable("user_defined_dpi", str(OCR_DPI))
        except RuntimeError as exc:
            raise OcrUnavailable(type(exc).__name__) from None
        _ENGINES.api, _ENGINES.path = api, path
    return api


def ocr_words(image: Any) -> list[Word]:
    """Words Tesseract reads in a greyscale PIL image (Hangul and Latin), in the image's coordinates.

    The one place OCR runs: tests replace it to count calls.
    """
    import tesserocr

    api = _api()
    level = tesserocr.RIL.WORD
    found = []
    try:
        for method in THRESHOLD_METHODS:
            api.SetVariable("thresholding_method", str(method))
            api.SetImage(image)
            api.Recognize()
            for result in tesserocr.iterate_level(api.GetIterator(), level):
                box = result.BoundingBox(level)
                if box is not None:
                    found.append((result.GetUTF8Text(level) or "", result.Confidence(level), box))
            api.Clear()
    except RuntimeError as exc:
        raise OcrUnavailable(type(exc).__name__) from None
    finally:
        api.Clear()
    return _kept_words(
        (text, conf, left, top, right - left, bottom - top) for text, conf, (left, top, right, bottom) in found
    )


def _kept_words(found: Iterable[tuple[str, float, int, int, int, int]], margin: float = 0) -> list[Word]:
    """The words OCR read that may be text: read with BLANK_CONFIDENCE (less `margin`), with a letter or digit;
    of words read in one place (the passes of THRESHOLD_METHODS), the most confident."""
    words = sorted(
        (
            Word(left, top, width, height, float(conf), text, margin)
            for text, conf, left, top, width, height in found
            if conf >= BLANK_CONFIDENCE - margin and any(c.isalnum() for c in text)
        ),
        key=lambda w: (-w.confidence, w.top, w.left, w.width, w.height, w.text),
    )
    kept: list[Word] = []
    for word in words:
        if not any(_overlap(word, other) >= SAME_WORD for other in kept):
            kept.append(word)
    return kept


def _overlap(a: Word, b: Word) -> float:
    """Intersection over union of two words' boxes."""
    width = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    height = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    shared = width * height
    return shared / (a.width * a.height + b.width * b.height - shared)


def _in_frame(words: list[Word], scale: float) -> list[Word]:
    """Words read in an image `scale` times the frame, in the frame's pixel coordinates."""
    return [
        Word(
            int(w.left / scale),
            int(w.top / scale),
            math.ceil(w.width / scale),
            math.ceil(w.height / scale),
            w.confidence,
            w.text,
            w.margin,
        )
        for w in words
    ]


def find_text(frame: np.ndarray | Frame, photometric: str) -> list[Word]:
    """Words in one frame, in the frame's pixel coordinates."""
    if isinstance(frame, Frame):
        if _external_ocr is None:
            raise OcrUnavailable("no OCR where this runs")
        scale, found = _external_ocr(frame.tobytes(), frame.frames.module)
        found = ((text, conf, left, top, width, height) for left, top, width, height, conf, text in found)
        return _in_frame(_kept_words(found, _external_margin), scale)
    image = _to_image(frame, photometric)
    return _in_frame(ocr_words(image), image.width / frame.shape[1])


def blank(frame: np.ndarray | Frame, words: list[Word]) -> None:
    """Fill each word's box (with a margin) with the frame's darkest value, in place."""
    fill = frame.min()
    rows, columns = frame.shape[:2]
    for w in words:
        top, left = max(0, w.top - PAD), max(0, w.left - PAD)
        bottom, right = min(rows, w.top + w.height + PAD), min(columns, w.left + w.width + PAD)
        if isinstance(frame, Frame):
            frame.fill(top, left, bottom, right, int(fill))
        else:
            frame[top:bottom, left:right] = fill


def redact_frames(frames: np.ndarray | Frames, photometric: str) -> tuple[int, bool]:
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


def has_text(frames: np.ndarray | Frames, photometric: str) -> bool:
    return any(w.is_text for index in range(frames.shape[0]) for w in find_text(frames[index], photometric))
