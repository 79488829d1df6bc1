"""Text in the pixels: secondary CT screens are read by OCR and rejected or redacted; normal slices are not read."""

from __future__ import annotations

import io

import numpy as np
import pytest

from trials.deid import REDACT, DeidOptions, DeidRejected, burned_in, deidentify
from trials.ingest.synthetic import DOSE_SCREEN_LINES, draw_text_screen

from .factories import DEFAULT, SUBJECT, colour_screen, ct_image, part10, read, space

REDACTING = DeidOptions(burned_in_text=REDACT)


def _deid(data: bytes, options: DeidOptions = DEFAULT):
    return deidentify(data, space=space(), subject_code=SUBJECT, options=options)


@pytest.fixture
def ocr_calls(monkeypatch):
    """Counts the OCR runs (the real OCR still runs)."""
    calls = []
    real = burned_in.ocr_words

    def counted(image):
        calls.append(image.size)
        return real(image)

    monkeypatch.setattr(burned_in, "ocr_words", counted)
    return calls


def _words(pixels: np.ndarray) -> list[burned_in.Word]:
    return [w for w in burned_in.find_text(pixels, "MONOCHROME2") if w.is_text]


def _screen(**kwargs) -> bytes:
    return part10(draw_text_screen(ct_image(charset="ISO_IR 192"), **kwargs))


def test_the_synthetic_screen_has_text_that_ocr_reads():
    ds = read(_screen())
    assert len(_words(ds.pixel_array)) >= 5


def test_a_secondary_ct_screen_with_text_is_rejected_by_default_with_the_reason(ocr_calls):
    with pytest.raises(DeidRejected) as caught:
        _deid(_screen())
    assert caught.value.code == "burned_in_text"
    assert "Text was found in the image's pixels" in caught.value.reason
    assert "홍길동" not in caught.value.reason and "HONG" not in caught.value.reason
    assert ocr_calls


def test_a_secondary_ct_screen_with_text_is_redacted_when_the_trial_says_so():
    source = read(_screen())
    result = _deid(_screen(), REDACTING)
    out = read(result.data)
    assert _words(out.pixel_array) == []  # OCR finds no text after
    assert "text regions redacted" in result.pixels
    assert result.actions["pixels_rewritten"] == 1
    assert out.BurnedInAnnotation == "NO"
    # Only the text regions changed: the rest of the image is the input's.
    changed = out.pixel_array != source.pixel_array
    assert 0 < changed.mean() < 0.25


def test_hangul_alone_is_found_and_redacted():
    data = _screen(lines=("서울대학교병원 영상의학과", "홍길동 환자"))
    with pytest.raises(DeidRejected):
        _deid(data)
    out = read(_deid(data, REDACTING).data)
    assert _words(out.pixel_array) == []


def dim_text_screen() -> bytes:
    """Grey text (a quarter of the brightest value) beside a white bar, as annotation beside bright anatomy."""
    ds = read(_screen())
    pixels = ds.pixel_array // 4
    pixels[400:500, :] = 4095
    ds.PixelData = pixels.astype("<u2").tobytes()
    return part10(ds)


def test_text_dimmer_than_the_brightest_part_of_the_frame_is_found():
    """Tesseract's one threshold for the whole image (Otsu) fell between the text and the bar: nothing was read,
    and the screen passed with the name in it. The image is also read with Leptonica's tiled threshold."""
    with pytest.raises(DeidRejected) as caught:
        _deid(dim_text_screen())
    assert caught.value.code == "burned_in_text"
    out = read(_deid(dim_text_screen(), REDACTING).data)
    assert _words(out.pixel_array) == []


def test_a_secondary_ct_screen_without_text_is_accepted_with_its_pixels_unchanged():
    data = _screen(lines=())
    result = _deid(data)
    assert read(result.data).PixelData == read(data).PixelData
    assert result.pixels == ""


def test_a_normal_ct_slice_is_not_read_by_ocr_and_its_pixels_are_untouched(ocr_calls):
    data = _screen(image_type=("ORIGINAL", "PRIMARY", "AXIAL"))  # text and all: a primary slice is not read
    result = _deid(data, REDACTING)
    assert ocr_calls == []
    assert read(result.data).PixelData == read(data).PixelData
    derived_primary = _screen(image_type=("DERIVED", "PRIMARY", "AXIAL"))
    _deid(derived_primary, REDACTING)
    assert ocr_calls == []


def test_an_overlay_in_the_bits_above_bits_stored_is_zeroed(ocr_calls):
    ds = ct_image()
    ds.Rows = ds.Columns = 64
    pixels = np.full((64, 64), 1000, dtype="<u2")
    pixels[10:20, 10:50] |= 1 << 15  # an overlay plane drawn into bit 15 (Bits Stored is 12)
    ds.PixelData = pixels.tobytes()
    ds.add_new(0x60000010, "US", 64)  # Overlay Rows
    ds.add_new(0x60000011, "US", 64)  # Overlay Columns
    ds.add_new(0x60000102, "US", 15)  # Overlay Bit Position: the retired way of saying where it lives
    result = _deid(part10(ds))
    out = read(result.data).pixel_array
    assert int(out.max()) == 1000 and (out == 1000).all()
    assert "bits above Bits Stored zeroed" in result.pixels
    assert ocr_calls  # an overlay may carry text: the instance was read as well


def test_signed_pixels_keep_their_sign_when_nothing_is_above_bits_stored(ocr_calls):
    ds = ct_image()
    ds.Rows = ds.Columns = 8
    ds.PixelRepresentation = 1
    ds.PixelData = np.full((8, 8), -1000, dtype="<i2").tobytes()
    result = _deid(part10(ds))
    assert result.pixels == "" and ocr_calls == []


def test_a_declared_burned_in_annotation_is_redacted_when_the_trial_redacts():
    ds = draw_text_screen(ct_image(charset="ISO_IR 192"), image_type=("ORIGINAL", "PRIMARY", "AXIAL"))
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DeidRejected) as caught:
        _deid(part10(ds))
    assert caught.value.code == "burned_in_annotation"
    out = read(_deid(part10(ds), REDACTING).data)
    assert _words(out.pixel_array) == [] and out.BurnedInAnnotation == "NO"


def test_the_lines_drawn_are_what_the_issue_names():
    assert any("홍길동" in line for line in DOSE_SCREEN_LINES)


def test_localizers_and_images_with_an_overlay_are_read(ocr_calls):
    _deid(_screen(lines=(), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")))
    assert len(ocr_calls) == 1
    ds = draw_text_screen(ct_image(charset="ISO_IR 192"), lines=(), image_type=("ORIGINAL", "PRIMARY", "AXIAL"))
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    _deid(part10(ds))
    assert len(ocr_calls) == 2


@pytest.mark.parametrize("planar", [0, 1])
def test_a_colour_screen_is_read_for_text_whichever_order_its_samples_are_stored_in(planar):
    """Planar Configuration 1 (all red, then all green, then all blue) was read as if colour-by-pixel: OCR saw
    a scrambled image, found nothing, and the screen passed with the patient's name in it."""
    data = colour_screen(planar=planar)
    with pytest.raises(DeidRejected) as caught:
        _deid(data)
    assert caught.value.code == "burned_in_text"
    source = read(data)
    result = _deid(data, REDACTING)
    out = read(result.data)
    assert out.PlanarConfiguration == 0  # redacted pixels are written colour-by-pixel
    assert _words(out.pixel_array) == []
    changed = (out.pixel_array != source.pixel_array).any(axis=-1)
    assert 0 < changed.mean() < 0.25  # only the text's boxes were blanked


def test_a_compressed_screen_is_redacted_and_written_uncompressed():
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    ds = read(_screen())
    ds.compress(RLELossless)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    result = _deid(buffer.getvalue(), REDACTING)
    out = read(result.data)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian == result.transfer_syntax_uid
    assert _words(out.pixel_array) == []


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, about the damage
def test_a_damaged_compressed_screen_is_rejected_as_undecodable_with_the_whole_reason(ocr_calls):
    """Its pixels must be read for text and cannot be: the same code and sentence as ingest gives a primary image
    whose compressed pixels do not decode, never the decoder's own message."""
    from pydicom.encaps import encapsulate, generate_fragments
    from pydicom.uid import RLELossless

    from tests.trials.test_decodable import rle_segment_misplaced

    ds = read(_screen())
    ds.compress(RLELossless)
    _table, fragment = generate_fragments(ds.PixelData)
    frames = [bytearray(fragment)]
    rle_segment_misplaced(frames)
    ds.PixelData = encapsulate([bytes(frames[0])])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    for options in (DEFAULT, REDACTING):
        with pytest.raises(DeidRejected) as caught:
            _deid(buffer.getvalue(), options)
        assert caught.value.code == "pixels_undecodable"
        assert caught.value.reason.endswith("Please export it again from the scanner or PACS and resend it.")
    assert not ocr_calls


def test_a_redacted_screen_passes_dciodvfy_with_no_new_error(tmp_path):
    from .test_real_files import _dciodvfy_errors

    data = _screen()
    (tmp_path / "in.dcm").write_bytes(data)
    (tmp_path / "out.dcm").write_bytes(_deid(data, REDACTING).data)
    assert _dciodvfy_errors(tmp_path / "out.dcm") - _dciodvfy_errors(tmp_path / "in.dcm") == set()


def test_an_image_that_needs_ocr_is_rejected_when_ocr_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setattr(burned_in, "_DEBIAN_TESSDATA", (str(tmp_path),))  # no trained data there
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(burned_in, "_models_dir", str(tmp_path))  # nor where the browser's models are
    monkeypatch.setattr(burned_in, "_ENGINES", type(burned_in._ENGINES)())
    with pytest.raises(DeidRejected) as caught:
        _deid(_screen())
    assert caught.value.code == "ocr_unavailable" and "tesseract-ocr-kor" in caught.value.reason


def _palette_screen(image_type: str) -> bytes:
    """pydicom's palette-colour ultrasound frame (indices into a colour table), labelled as a CT image of the
    given type, the SOP class the trial takes."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import CTImageStorage

    ds = pydicom.dcmread(get_testdata_file("OBXXXX1A.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.Modality, ds.ImageType = "CT", image_type.split("\\")
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.mark.parametrize("options", [DEFAULT, REDACTING], ids=["reject", "redact"])
def test_a_palette_colour_image_that_must_be_examined_is_refused_with_what_to_export_instead(ocr_calls, options):
    """OCR read the palette's indices as if they were grey levels: text drawn in a colour whose index is near its
    background's was not seen, and a redaction filled with the lowest index, whatever colour it names."""
    with pytest.raises(DeidRejected) as caught:
        _deid(_palette_screen("DERIVED\\SECONDARY\\SCREEN SAVE"), options)
    assert caught.value.code == "palette_colour"
    assert "palette colour" in caught.value.reason and "RGB" in caught.value.reason
    assert not ocr_calls


def test_a_palette_colour_image_that_need_not_be_examined_is_not_refused_for_its_colours(ocr_calls):
    result = _deid(_palette_screen("ORIGINAL\\PRIMARY\\AXIAL"))
    assert read(result.data).PhotometricInterpretation == "PALETTE COLOR" and not ocr_calls
