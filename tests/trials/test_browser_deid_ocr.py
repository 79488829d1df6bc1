"""Text burned into pixels, at the site: the browser's engine reads it with its bundled Tesseract and redacts it
with the engine's own rule (trials/deid/burned_in.py), or holds the image back with the reason."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import RLELossless

from trials.deid import REDACT, REJECT, DeidOptions, burned_in, deidentify
from trials.deid.pseudonym import PseudonymSpace, subject_key
from trials.ingest.browser import deid_options_payload
from trials.ingest.synthetic import draw_text_screen

from .deid.factories import KEY_ALPHA, colour_screen, ct_image, part10, read
from .test_browser_deid_identity import _run_node

SUBJECT = "ALPHA-SEO-001"
KEY = subject_key(KEY_ALPHA, SUBJECT)


def _text_words(pixels: np.ndarray) -> list[burned_in.Word]:
    """What the server's OCR reads as text in a frame."""
    return [w for w in burned_in.find_text(pixels, "MONOCHROME2") if w.is_text]


def _screens(folder: Path) -> dict[str, Path]:
    compressed = read(part10(draw_text_screen(ct_image(charset="ISO_IR 192"))))
    compressed.compress(RLELossless)
    buffer = io.BytesIO()
    compressed.save_as(buffer)
    files = {
        "text": part10(draw_text_screen(ct_image(charset="ISO_IR 192"))),  # Hangul and Latin, a name and an ID
        "blank": part10(draw_text_screen(ct_image(charset="ISO_IR 192"), lines=())),
        "compressed": buffer.getvalue(),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.dcm"
        paths[name].write_bytes(data)
    return paths


def _browser(paths: dict[str, Path], options: DeidOptions, *, ocr: bool = True) -> dict[str, dict]:
    answer = _run_node(
        {
            "key": KEY.hex(),
            "subject": SUBJECT,
            "options": deid_options_payload(options),
            "files": [str(p) for p in paths.values()],
            "ocr": ocr,
        }
    )
    return {name: got["record"] for name, got in zip(paths, answer["results"], strict=True)}


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> dict[str, Path]:
    return _screens(tmp_path_factory.mktemp("screens"))


def test_the_browser_redacts_text_in_a_screen_and_the_servers_ocr_then_reads_none(screens):
    records = _browser(screens, DeidOptions(burned_in_text=REDACT))
    record = records["text"]
    assert record["ok"] is True and record["actions"]["pixels_rewritten"] == 1, record
    source = read(screens["text"].read_bytes())
    assert len(_text_words(source.pixel_array)) >= 5
    out_bytes = Path(f"{screens['text']}.out").read_bytes()
    assert hashlib.sha256(out_bytes).hexdigest() == record["sha256"]
    out = read(out_bytes)
    assert _text_words(out.pixel_array) == []  # the server's own OCR finds nothing left
    assert out.BurnedInAnnotation == "NO"
    changed = out.pixel_array != source.pixel_array
    assert 0 < changed.mean() < 0.25  # only the text's boxes were blanked
    # A screen without text passes with its pixels untouched: the same bytes as the server makes.
    server = deidentify(
        screens["blank"].read_bytes(),
        space=PseudonymSpace(KEY),
        subject_code=SUBJECT,
        options=DeidOptions(burned_in_text=REDACT),
    )
    assert records["blank"]["sha256"] == hashlib.sha256(server.data).hexdigest()
    # A compressed one cannot be decoded for OCR in the browser: held back, saying so.
    assert records["compressed"]["code"] == "ocr_unavailable"
    assert "compressed image" in records["compressed"]["reason"]
    # What the coordinator can do about it, and only that: the page has no way to send it to the server instead.
    assert "send it uncompressed" in records["compressed"]["reason"]
    assert "server" not in records["compressed"]["reason"]


def test_a_trial_that_rejects_text_in_pixels_has_the_browser_hold_the_screen_back(screens):
    records = _browser(screens, DeidOptions(burned_in_text=REJECT))
    assert records["text"]["ok"] is False and records["text"]["code"] == "burned_in_text"
    assert "HONG" not in records["text"]["reason"] and "홍길동" not in records["text"]["reason"]
    assert records["blank"]["ok"] is True


def test_without_ocr_the_browser_holds_back_images_that_need_reading(screens):
    records = _browser(screens, DeidOptions(burned_in_text=REDACT), ocr=False)
    for name in ("text", "blank"):
        assert records[name]["code"] == "ocr_unavailable", name
        assert "OCR could not start in this browser" in records[name]["reason"]


@pytest.fixture
def numpy_free(monkeypatch):
    """burned_in as in the site's browser (no numpy), reading pixels through the external OCR hook, here
    backed by the server's Tesseract, so the Frames path can be compared with the array path."""

    def server_ocr(frame: bytes, module: burned_in.PixelModule):
        with monkeypatch.context() as with_numpy:
            with_numpy.setattr(burned_in, "np", np)
            pixels = np.frombuffer(frame, dtype=module.dtype).reshape(module.shape[1:])
            image = burned_in._to_image(pixels, module.photometric)
            words = burned_in.ocr_words(image)
        return image.width / module.columns, [(w.left, w.top, w.width, w.height, w.confidence, w.text) for w in words]

    monkeypatch.setattr(burned_in, "np", None)
    monkeypatch.setattr(burned_in, "_external_ocr", server_ocr)


def test_the_numpy_free_redaction_gives_the_servers_bytes(numpy_free, monkeypatch):
    options = DeidOptions(burned_in_text=REDACT)
    space = PseudonymSpace(KEY)
    high = ct_image()
    high.Rows = high.Columns = 64
    pixels = np.full((64, 64), 1000, dtype="<u2")
    pixels[10:20, 10:50] |= 1 << 15  # bits above Bits Stored
    high.PixelData = pixels.tobytes()
    small = draw_text_screen(ct_image(charset="ISO_IR 192"), size=256, font_size=14)  # read at twice its size
    screens = [part10(ds) for ds in (draw_text_screen(ct_image(charset="ISO_IR 192")), small, high)]
    # Colour stored plane by plane, 8 and 16 bits: read and written colour-by-pixel in both.
    screens += [colour_screen(planar=1, size=256, font_size=14), colour_screen(planar=1, bits=16, size=256)]
    for data in screens:
        browser = deidentify(data, space=space, subject_code=SUBJECT, options=options)
        with monkeypatch.context() as server_side:
            server_side.setattr(burned_in, "np", np)
            server = deidentify(data, space=space, subject_code=SUBJECT, options=options)
        assert browser.data == server.data and browser.pixels == server.pixels
        assert server.pixels  # each was rewritten: text redacted, or high bits zeroed


def test_without_an_ocr_hook_a_numpy_free_engine_holds_the_image_back(monkeypatch):
    monkeypatch.setattr(burned_in, "np", None)
    monkeypatch.setattr(burned_in, "_external_ocr", None)
    with pytest.raises(burned_in.OcrUnavailable):  # the engine makes it the "ocr_unavailable" rejection
        burned_in.require_ocr()


def _one_word_ocr(confidence: float):
    """An external OCR that reads one word, "HONG", at `confidence` in the frame's top left corner."""

    def read(frame: bytes, module: burned_in.PixelModule):
        return 1.0, [(2, 2, 20, 8, confidence, "HONG")]

    return read


def test_the_browser_takes_a_word_as_text_below_the_servers_bar_by_its_margin(monkeypatch):
    """Its Tesseract scores words up to ~18 points otherwise than the server's (test_ocr_agreement): a word the
    browser reads at 70 the server may read at 85 and call text, so the browser calls it text too."""
    monkeypatch.setattr(burned_in, "np", None)
    module = burned_in.PixelModule(64, 64, 1, 1, 16, 12, False, True, "MONOCHROME2")
    frames = burned_in.native_array(bytes(64 * 64 * 2), module)
    read_at = burned_in.TEXT_CONFIDENCE - burned_in.BROWSER_MARGIN + 1
    monkeypatch.setattr(burned_in, "_external_ocr", _one_word_ocr(read_at))
    assert burned_in.has_text(frames, "MONOCHROME2") is False  # an OCR of the server's own build: its bar
    burned_in.use_external_ocr(_one_word_ocr(read_at), margin=burned_in.BROWSER_MARGIN)
    try:
        assert burned_in.has_text(frames, "MONOCHROME2") is True
        monkeypatch.setattr(burned_in, "_external_ocr", _one_word_ocr(read_at - 2))
        assert burned_in.has_text(frames, "MONOCHROME2") is False  # below the margin: not text there either
    finally:
        burned_in.use_external_ocr(None)


def test_the_browsers_engine_installs_its_ocr_with_the_margin(monkeypatch):
    from .test_browser_deid_identity import _entry

    monkeypatch.setattr(burned_in, "np", None)  # as in Pyodide
    try:
        _entry()
        assert burned_in._external_margin == burned_in.BROWSER_MARGIN
    finally:
        burned_in.use_external_ocr(None)
