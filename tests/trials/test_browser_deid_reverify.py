"""The server re-verifies what the browser de-identified: what it can tell without the originals."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from trials.deid import DeidOptions, DeidRejected, deidentify
from trials.deid.pseudonym import PseudonymSpace, subject_key
from trials.ingest.reverify import Declared, reverify
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series

from .deid.factories import KEY_ALPHA
from .test_browser_deid_identity import write_corpus

SUBJECT = "ALPHA-SEO-001"
OPTIONS = DeidOptions()
SPACE = PseudonymSpace(subject_key(KEY_ALPHA, SUBJECT))


@pytest.fixture(scope="module")
def original() -> bytes:
    return synthesize_ct_series(real_ct_template(large=False), slices=1, seed="reverify")[0]


def browser(original: bytes, *, space: PseudonymSpace = SPACE) -> tuple[bytes, Declared]:
    """What the browser sends: the engine's output and its declaration, made with `space`'s key."""
    result = deidentify(original, space=space, subject_code=SUBJECT, options=OPTIONS)

    check = space.key_check(hashlib.sha256(result.data).hexdigest())
    return result.data, Declared(key_check=check, patient_hash=result.source_patient_hash, actions=result.actions)


def edited(data: bytes, **changes) -> tuple[bytes, Declared]:
    """The file with attributes changed, declared honestly with the right subject key."""

    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    return data, Declared(key_check=SPACE.key_check(hashlib.sha256(data).hexdigest()), patient_hash="")


def check(data: bytes, declared: Declared | None):
    return reverify(data, space=SPACE, subject_code=SUBJECT, options=OPTIONS, declared=declared)


def rejection(data: bytes, declared: Declared | None) -> DeidRejected:
    with pytest.raises(DeidRejected) as caught:
        check(data, declared)
    return caught.value


def test_a_file_the_browser_de_identified_for_the_subject_passes_as_the_server_would_store_it(original):
    data, declared = browser(original)
    result = check(data, declared)
    server = deidentify(original, space=SPACE, subject_code=SUBJECT, options=OPTIONS)
    assert result.data == server.data
    assert (result.sop_instance_uid, result.study_instance_uid, result.series_instance_uid) == (
        server.sop_instance_uid,
        server.study_instance_uid,
        server.series_instance_uid,
    )
    assert result.source_patient_hash == server.source_patient_hash
    assert result.index == server.index and result.deid_method == server.deid_method


def test_a_file_de_identified_with_another_subjects_key_is_rejected(original):
    data, declared = browser(original, space=PseudonymSpace(subject_key(KEY_ALPHA, "ALPHA-SEO-002")))
    error = rejection(data, declared)
    assert error.code == "wrong_subject_key" and SUBJECT in error.reason


def test_a_file_with_an_attribute_the_profile_removes_is_rejected_naming_it(original):
    error = rejection(*edited(browser(original)[0], OtherPatientIDs="MRN-OTHER"))
    assert error.code == "extra_attribute" and "OtherPatientIDs" in error.reason
    assert "MRN-OTHER" not in error.reason


def test_a_file_keeping_a_public_element_dicom_does_not_define_is_rejected(original):
    """The engine removes such an element (nothing says what it holds): a file that keeps one was not made by it."""
    ds = pydicom.dcmread(io.BytesIO(browser(original)[0]))
    ds.add_new(0x0008AC20, "DA", "19990312")
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    error = rejection(data, Declared(key_check=SPACE.key_check(hashlib.sha256(data).hexdigest()), patient_hash=""))
    assert error.code == "extra_attribute" and "(0008,AC20)" in error.reason and "1999" not in error.reason


def test_a_file_with_a_birth_date_the_profile_empties_is_rejected(original):
    error = rejection(*edited(browser(original)[0], PatientBirthDate="19700101"))
    assert error.code == "extra_attribute" and "PatientBirthDate" in error.reason


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("CT CAP 850101-1234567", "resident registration number"),
        ("call 010-1234-5678", "phone number"),
        ("Seoul 02-3410-2114", "phone number"),
        ("by kim.hj@hospital.example.kr", "e-mail address"),
    ],
)
def test_a_file_with_an_identifier_left_in_a_description_is_rejected(original, text, what):
    error = rejection(*edited(browser(original)[0], SeriesDescription=text))
    assert error.code == "identifying_text" and "SeriesDescription" in error.reason and what in error.reason
    assert text not in error.reason


def test_numbers_that_only_look_long_are_not_identifiers(original):
    data, declared = edited(browser(original)[0], SeriesDescription="AX 5.0 B30f 120kV 2024-01-05 1234567")
    assert check(data, declared).sop_instance_uid


def test_an_unchanged_original_is_rejected(original):

    declared = Declared(key_check=SPACE.key_check(hashlib.sha256(original).hexdigest()), patient_hash="")
    error = rejection(original, declared)
    assert error.code == "not_deidentified"


def test_a_file_whose_name_is_not_the_subject_code_is_rejected(original):
    error = rejection(*edited(browser(original)[0], PatientName="ALPHA-SEO-002"))
    assert error.code == "not_subject_code" and "PatientName" in error.reason


def test_a_file_keeping_an_original_uid_is_rejected(original):
    source = pydicom.dcmread(io.BytesIO(original))
    error = rejection(*edited(browser(original)[0], FrameOfReferenceUID=source.FrameOfReferenceUID))
    assert error.code == "uid_not_pseudonymous" and "FrameOfReferenceUID" in error.reason


def test_a_file_declaring_another_method_is_rejected(original):
    error = rejection(*edited(browser(original)[0], DeidentificationMethod="my own script"))
    assert error.code == "deid_method"


def test_a_file_sent_without_its_record_is_rejected(original):
    assert rejection(browser(original)[0], None).code == "no_browser_record"


def corpus_reverified(tmp_path):
    """(file name, the engine's result, the server's re-verification of it) for each file of the real corpus the
    engine takes."""
    options = DeidOptions(
        accepted_sop_classes=OPTIONS.accepted_sop_classes | {SecondaryCaptureImageStorage},
        private_tag_safelist=frozenset({("SIEMENS CSA HEADER", 0x08)}),
    )
    for path in write_corpus(tmp_path):
        try:
            result = deidentify(path.read_bytes(), space=SPACE, subject_code=SUBJECT, options=options)
        except DeidRejected:
            continue
        declared = Declared(SPACE.key_check(hashlib.sha256(result.data).hexdigest()), result.source_patient_hash)
        yield (
            path.name,
            result,
            reverify(result.data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared),
        )


def test_every_file_the_engine_makes_from_the_real_corpus_passes(tmp_path):
    passed = 0
    for name, result, checked in corpus_reverified(tmp_path):
        assert checked.index == result.index, name
        passed += 1
    assert passed >= 20


def test_the_dicom_json_comes_from_the_reverifying_read_as_a_read_of_the_stored_file_gives_it(tmp_path):
    """The server made each browser file's DICOM JSON and frame layout from a second parse of its bytes (as
    much again as the re-verification's own read): they come from the re-verification's read, the same as a
    read of the stored file gives them, for every file the engine makes from the real corpus (compressed,
    multi-frame, big endian inputs, Korean character sets)."""
    from trials.dicomweb import wado
    from trials.models import Instance

    layouts = set()
    for name, result, checked in corpus_reverified(tmp_path):
        read = Instance(transfer_syntax_uid=result.transfer_syntax_uid)
        assert wado.metadata_from_bytes(read, result.data), name
        assert checked.metadata == read.metadata, name
        assert checked.pixel_layout == read.pixel_layout, name
        layouts.add(next(iter(read.pixel_layout), None))
    assert layouts >= {"offset", "fragments"}  # native and encapsulated pixels both seen


def _screen(lines=None) -> bytes:
    from trials.ingest.synthetic import draw_text_screen

    from .deid.factories import ct_image, part10

    kwargs = {} if lines is None else {"lines": lines}
    return part10(draw_text_screen(ct_image(charset="ISO_IR 192"), **kwargs))


def _with_pixels_of(data: bytes, source: bytes) -> tuple[bytes, Declared]:
    """`data` with the pixels of `source` (what a browser that skipped or botched OCR would send)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PixelData = pydicom.dcmread(io.BytesIO(source)).PixelData
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    check = SPACE.key_check(hashlib.sha256(data).hexdigest())
    return data, Declared(key_check=check, patient_hash="", actions={"pixels_examined": 1})


@pytest.mark.parametrize("burned_in_text", ["reject", "redact"])
def test_a_screen_still_carrying_text_is_rejected_by_the_servers_own_ocr(burned_in_text):
    options = DeidOptions(burned_in_text=burned_in_text)
    blank = deidentify(_screen(lines=()), space=SPACE, subject_code=SUBJECT, options=options)
    data, declared = _with_pixels_of(blank.data, _screen())
    with pytest.raises(DeidRejected) as caught:
        reverify(data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    assert caught.value.code == "burned_in_text"
    assert "HONG" not in caught.value.reason and "홍길동" not in caught.value.reason


def test_a_colour_screen_stored_plane_by_plane_still_carrying_text_is_rejected():
    from .deid.factories import colour_screen

    options = DeidOptions(burned_in_text="redact")
    blank = deidentify(colour_screen(planar=1, lines=()), space=SPACE, subject_code=SUBJECT, options=options)
    data, declared = _with_pixels_of(blank.data, colour_screen(planar=1))
    assert pydicom.dcmread(io.BytesIO(data)).PlanarConfiguration == 1
    with pytest.raises(DeidRejected) as caught:
        reverify(data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    assert caught.value.code == "burned_in_text"


def test_a_screen_the_browser_redacted_passes_the_servers_ocr(monkeypatch):
    from trials.deid import burned_in

    options = DeidOptions(burned_in_text="redact")
    redacted = deidentify(_screen(), space=SPACE, subject_code=SUBJECT, options=options)
    declared = Declared(
        key_check=SPACE.key_check(hashlib.sha256(redacted.data).hexdigest()), patient_hash="", actions=redacted.actions
    )
    reads = []
    real = burned_in.ocr_words
    monkeypatch.setattr(burned_in, "ocr_words", lambda image: reads.append(image.size) or real(image))
    result = reverify(redacted.data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    assert result.data == redacted.data and reads  # read again on the server, and found clean


def test_a_primary_slice_is_not_read_again(original, monkeypatch):
    from trials.deid import burned_in

    monkeypatch.setattr(burned_in, "ocr_words", lambda image: pytest.fail("a primary CT slice was read by OCR"))
    check(*browser(original))


def test_a_screen_that_needs_reading_is_rejected_when_the_servers_ocr_cannot_run(monkeypatch, tmp_path):
    from trials.deid import burned_in

    options = DeidOptions(burned_in_text="redact")
    redacted = deidentify(_screen(), space=SPACE, subject_code=SUBJECT, options=options)
    declared = Declared(
        key_check=SPACE.key_check(hashlib.sha256(redacted.data).hexdigest()), patient_hash="", actions=redacted.actions
    )
    monkeypatch.setattr(burned_in, "_DEBIAN_TESSDATA", (str(tmp_path),))
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(burned_in, "_models_dir", str(tmp_path))  # nor where the browser's models are
    monkeypatch.setattr(burned_in, "_ENGINES", type(burned_in._ENGINES)())
    with pytest.raises(DeidRejected) as caught:
        reverify(redacted.data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    assert caught.value.code == "ocr_unavailable"


def test_bits_above_bits_stored_left_set_are_rejected():
    import numpy as np

    from .deid.factories import ct_image, part10

    source = ct_image()  # 12 bits stored in 16
    source.Rows = source.Columns = 64
    source.PixelData = np.full((64, 64), 1000, dtype="<u2").tobytes()
    ds = pydicom.dcmread(
        io.BytesIO(deidentify(part10(source), space=SPACE, subject_code=SUBJECT, options=OPTIONS).data)
    )
    pixels = np.frombuffer(ds.PixelData, dtype="<u2").reshape(64, 64).copy()
    pixels[10:20, 10:50] |= 1 << 15  # an overlay drawn into the unused bits after de-identification
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    declared = Declared(key_check=SPACE.key_check(hashlib.sha256(data).hexdigest()), patient_hash="")
    assert rejection(data, declared).code == "high_bits"


def _rewritten(data: bytes, change) -> tuple[bytes, Declared]:
    """The file with `change(ds)` applied, declared honestly with the right subject key."""
    ds = pydicom.dcmread(io.BytesIO(data))
    change(ds)
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    return data, Declared(key_check=SPACE.key_check(hashlib.sha256(data).hexdigest()), patient_hash="")


@pytest.mark.parametrize(
    ("change", "code", "name"),
    [
        (
            lambda ds: ds.add_new(0x00081190, "UR", "https://pacs.example/patient?rrn=850101-1234567"),
            "identifying_text",
            "RetrieveURL",
        ),
        (lambda ds: ds.add_new(0x00180015, "CS", "01012345678"), "identifying_text", "BodyPartExamined"),
        (
            lambda ds: setattr(ds.file_meta, "ImplementationVersionName", "8501011234567"),
            "identifying_text",
            "ImplementationVersionName",
        ),
        # Written by the engine: any other value is a record of another method.
        (lambda ds: ds.add_new(0x00280303, "CS", "8501011234567"), "deid_method", "method"),
    ],
)
def test_an_identifier_in_a_value_other_than_a_description_is_rejected(original, change, code, name):
    """The server path's verifier searches every byte of the output for these identifiers; the re-verification
    looked only at descriptions and names, and let them through in coded values, URLs and the file meta."""
    error = rejection(*_rewritten(browser(original)[0], change))
    assert error.code == code, error
    assert name in error.reason
    assert "8501011234567" not in error.reason and "01012345678" not in error.reason


def test_a_file_meta_holding_more_than_the_engine_writes_is_rejected(original):
    def change(ds):
        ds.file_meta.SourceApplicationEntityTitle = "SNUH_PACS"

    error = rejection(*_rewritten(browser(original)[0], change))
    assert error.code == "extra_attribute" and "SourceApplicationEntityTitle" in error.reason


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: ds.add_new(0x00280303, "CS", "UNMODIFIED"),
        lambda ds: setattr(ds.DeidentificationMethodCodeSequence[0], "CodeMeaning", "Seen by Dr Kim"),
    ],
)
def test_a_de_identification_record_other_than_the_engines_is_rejected(original, change):
    error = rejection(*_rewritten(browser(original)[0], change))
    assert error.code == "deid_method", error


def test_text_the_servers_ocr_still_reads_after_the_browser_blanked_text_says_what_the_site_can_do():
    """Two OCR programs read alike but not the same: when the browser blanked the text it read and the server's
    OCR still reads some, the coordinator is told so and what to do (the reason once told them to remove text
    at the site, which their browser had just done), in Korean too."""
    from django.utils import translation

    from ctims.i18n import text_display, text_json

    options = DeidOptions(burned_in_text="redact")
    blank = deidentify(_screen(lines=()), space=SPACE, subject_code=SUBJECT, options=options)
    data, declared = _with_pixels_of(blank.data, _screen())
    declared = Declared(declared.key_check, "", actions={"pixels_examined": 1, "pixels_rewritten": 1})
    with pytest.raises(DeidRejected) as caught:
        reverify(data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    error = caught.value
    assert error.code == "burned_in_text"
    assert "your browser blanked" in error.reason and "export the image without" in error.reason
    with translation.override("ko"):
        korean = text_display(text_json(error.reason), error.reason)
    assert korean != error.reason and "브라우저" in korean


def test_a_palette_colour_screen_a_browser_let_through_is_refused_not_read_as_grey_levels():
    """The engine refuses a palette-colour image that must be examined (palette_colour); a browser that skipped
    that sent one the server's OCR read as colour-table indices."""
    from .deid.test_burned_in import _palette_screen

    options = DeidOptions()
    primary = deidentify(
        _palette_screen("ORIGINAL\\PRIMARY\\AXIAL"), space=SPACE, subject_code=SUBJECT, options=options
    )
    ds = pydicom.dcmread(io.BytesIO(primary.data))
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    out = io.BytesIO()
    ds.save_as(out)
    data = out.getvalue()
    declared = Declared(
        key_check=SPACE.key_check(hashlib.sha256(data).hexdigest()), patient_hash="", actions={"pixels_examined": 1}
    )
    with pytest.raises(DeidRejected) as caught:
        reverify(data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
    assert caught.value.code == "palette_colour"
