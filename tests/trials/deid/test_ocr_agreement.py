"""The server's OCR and the site's browser's read the same frames alike: the same models, the same image handed
to Tesseract, the same words found, so both decide alike which images carry text (redact or hold back).

The browser's side is its own bundle (static/dist/deid/ocr.mjs with the models the build wrote) run under Node
by scripts/ocr-node.mjs; the server's is trials.deid.burned_in with the models it found. The screens cover
what sites send: dose-report screens in Hangul and Latin, small and large fonts (a small frame is read at twice
its size), an inverted MONOCHROME1 screen, a screen without text, and deid-data's ultrasound images with
their burned-in annotation (greyscale, colour, a frame of a multi-frame cine).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from tests.once import once_per_run
from trials.deid import burned_in
from trials.ingest.synthetic import draw_text_screen

from .factories import ct_image

ROOT = Path(__file__).resolve().parents[3]
BUNDLE = ROOT / "static" / "dist" / "deid"


@dataclass
class Screen:
    name: str
    frame: np.ndarray  # one frame's pixels, as burned_in reads them
    module: burned_in.PixelModule


def _module(ds, frame: np.ndarray) -> burned_in.PixelModule:
    return burned_in.PixelModule(
        rows=frame.shape[0],
        columns=frame.shape[1],
        samples=frame.shape[2] if frame.ndim == 3 else 1,
        frames=1,
        bits_allocated=frame.dtype.itemsize * 8,
        bits_stored=int(ds.BitsStored),
        signed=frame.dtype.kind == "i",
        little=True,
        photometric=str(ds.PhotometricInterpretation),
    )


def _synthetic(name: str, **kwargs) -> Screen:
    ds = draw_text_screen(ct_image(charset="ISO_IR 192"), **kwargs)
    frame = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).copy()
    return Screen(name, frame, _module(ds, frame))


def _inverted() -> Screen:
    """Dark text on a bright field, stored as MONOCHROME1 (the reader sees it as bright text on black)."""
    screen = _synthetic("monochrome1", lines=("DOSE REPORT 2024-01-05", "홍길동 HONG GILDONG"))
    screen.frame = (4095 - screen.frame).astype("<u2")
    screen.module.photometric = "MONOCHROME1"
    return screen


def _dim() -> Screen:
    """Grey text beside a white bar (annotation beside bright anatomy): Otsu's one threshold falls between them."""
    screen = _synthetic("dim text beside a bright bar")
    screen.frame //= 4
    screen.frame[400:500, :] = 4095
    return screen


def _deid_data(name: str) -> Screen:
    ds = dcmread(str(files("deid_data") / "data" / "ultrasounds" / name))
    pixels = ds.pixel_array
    frame = pixels[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels
    frame = np.ascontiguousarray(frame.astype(frame.dtype.newbyteorder("<")))
    return Screen(name.removesuffix(".dcm"), frame, _module(ds, frame))


def screens() -> list[Screen]:
    return [
        _synthetic("dose report"),  # Latin and Hangul, 22 px on 512
        _synthetic("hangul", lines=("서울대학교병원 영상의학과", "홍길동 환자 2024-01-05")),
        _synthetic("small font, read doubled", size=256, font_size=12),
        _synthetic("large font", lines=("HONG GILDONG", "MRN4455667"), font_size=48),
        _synthetic("blank", lines=()),
        _inverted(),
        _dim(),
        _deid_data("GREYSCALE_IMAGE.dcm"),
        _deid_data("RGB_IMAGE.dcm"),
        _deid_data("ultrasound-multiframe.dcm"),
    ]


@dataclass
class BrowserRead:
    words: list[burned_in.Word]
    image: dict  # the grey image handed to Tesseract: width, height, sha256


def browser_reads(batch: list[Screen], folder: Path) -> list[BrowserRead]:
    """What the site's browser reads in each frame, kept and placed by the engine's own rule."""
    if not (BUNDLE / "manifest.json").exists():
        pytest.fail("static/dist/deid/ is not built: run `node scripts/build-frontend.mjs` (make test does)")
    request = []
    for n, screen in enumerate(batch):
        path = folder / f"frame-{n}.raw"
        path.write_bytes(screen.frame.tobytes())
        m = screen.module
        request.append(
            {
                "path": str(path),
                "rows": m.rows,
                "columns": m.columns,
                "samples": m.samples,
                "bitsAllocated": m.bits_allocated,
                "signed": m.signed,
                "little": m.little,
                "photometric": m.photometric,
            }
        )
    answer = subprocess.run(
        ["node", str(ROOT / "scripts" / "ocr-node.mjs"), str(BUNDLE)],
        input=json.dumps({"frames": request}).encode(),
        capture_output=True,
        timeout=600,
        check=False,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    assert answer.returncode == 0, answer.stderr.decode()[-2000:]
    reads = []
    for got in json.loads(answer.stdout)["results"]:
        found = ((t, c, x, y, w, h) for x, y, w, h, c, t in got["words"])
        kept = burned_in._kept_words(found, burned_in.BROWSER_MARGIN)  # as the browser's engine keeps them
        reads.append(BrowserRead(burned_in._in_frame(kept, got["scale"]), got["image"]))
    return reads


def server_words(screen: Screen) -> list[burned_in.Word]:
    return burned_in.find_text(screen.frame, screen.module.photometric)


def server_image(screen: Screen) -> dict:
    image = burned_in._to_image(screen.frame, screen.module.photometric)
    return {"width": image.width, "height": image.height, "sha256": hashlib.sha256(image.tobytes()).hexdigest()}


def _boxes(words: list[burned_in.Word]) -> list[tuple[int, int, int, int, str]]:
    return sorted((w.left, w.top, w.width, w.height, w.text) for w in words if w.is_text)


def uncovered(ours: list[burned_in.Word], theirs: list[burned_in.Word], shape: tuple[int, ...]) -> int:
    """How many of the server's text words the browser's text words, as it blanks them (PAD around), do not cover
    (nine tenths of the box)."""
    mask = np.zeros(shape[:2], dtype=bool)
    pad = burned_in.PAD
    for w in theirs:
        if w.is_text:
            mask[max(0, w.top - pad) : w.top + w.height + pad, max(0, w.left - pad) : w.left + w.width + pad] = True
    boxes = (mask[w.top : w.top + w.height, w.left : w.left + w.width] for w in ours if w.is_text)
    return sum(box.mean() < 0.9 for box in boxes)


@dataclass
class Compared:
    screen: Screen
    same_image: bool  # the same grey image handed to Tesseract
    server_text: bool
    browser_text: bool
    same_text_words: bool  # the same words taken as text, in the same boxes
    uncovered: int  # the server's text words the browser did not take as text


def compare(folder: Path) -> list[Compared]:
    batch = screens()
    compared = []
    for screen, read in zip(batch, browser_reads(batch, folder), strict=True):
        ours, theirs = server_words(screen), read.words
        compared.append(
            Compared(
                screen,
                server_image(screen) == read.image,
                any(w.is_text for w in ours),
                any(w.is_text for w in theirs),
                _boxes(ours) == _boxes(theirs),
                uncovered(ours, theirs, screen.frame.shape),
            )
        )
    return compared


@pytest.fixture(scope="module")
def compared(tmp_path_factory, worker_id) -> list[Compared]:
    assert burned_in.models_in_use()[0] == "bundle"  # the server reads with the browser's models
    return once_per_run(
        tmp_path_factory, worker_id, "ocr-agreement", lambda: compare(tmp_path_factory.mktemp("frames"))
    )


def test_the_server_and_the_browser_hand_tesseract_the_same_image(compared):
    assert [c.screen.name for c in compared if not c.same_image] == []


def test_the_server_and_the_browser_decide_alike_which_screens_carry_text(compared):
    assert [c.screen.name for c in compared if c.server_text != c.browser_text] == []
    assert [c.screen.name for c in compared if not c.server_text] == ["blank"]


def test_every_word_the_server_takes_as_text_the_browser_takes_as_text_first(compared):
    """The two Tesseracts' confidences differ by a few points: the browser's bar is lower by BROWSER_MARGIN, so
    its redaction or refusal leaves nothing the server's re-check would find."""
    assert {c.screen.name: c.uncovered for c in compared if c.uncovered} == {}
