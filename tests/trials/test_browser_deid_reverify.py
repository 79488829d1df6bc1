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


def test_every_file_the_engine_makes_from_the_real_corpus_passes(tmp_path):
    corpus = write_corpus(tmp_path)
    options = DeidOptions(
        accepted_sop_classes=OPTIONS.accepted_sop_classes | {SecondaryCaptureImageStorage},
        private_tag_safelist=frozenset({("SIEMENS CSA HEADER", 0x08)}),
    )
    passed = 0
    for path in corpus:
        try:
            result = deidentify(path.read_bytes(), space=SPACE, subject_code=SUBJECT, options=options)
        except DeidRejected:
            continue
        declared = Declared(SPACE.key_check(hashlib.sha256(result.data).hexdigest()), result.source_patient_hash)
        checked = reverify(result.data, space=SPACE, subject_code=SUBJECT, options=options, declared=declared)
        assert checked.index == result.index, path.name
        passed += 1
    assert passed >= 20
