"""Per-subject keys: the subject scheme for new trials, the one-key scheme kept by trials that have images."""

from __future__ import annotations

import hashlib
import hmac
import importlib

import pydicom
import pytest
from django.apps import apps
from django.core.files.storage import storages

from tests.conftest import upload_files
from trials.deid.pseudonym import SCHEME_SUBJECT, SCHEME_TRIAL, PseudonymSpace, subject_key
from trials.ingest.subject_keys import browser_subject_key, subject_space
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Trial

from .deid.factories import KEY_ALPHA, uid

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")
migration = importlib.import_module("trials.migrations.0011_subject_keys_and_browser_deid")


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=2, seed="subject-keys")


def test_a_subject_key_is_the_hmac_of_the_subject_code_under_the_trial_key():
    expected = hmac.new(KEY_ALPHA, b"ctims:subject-key:ALPHA-SEO-001", hashlib.sha256).digest()
    assert subject_key(KEY_ALPHA, "ALPHA-SEO-001") == expected
    assert subject_key(KEY_ALPHA, "ALPHA-SEO-002") != expected


def test_the_subject_scheme_maps_uids_patient_hash_and_dates_with_the_subject_key():
    space = PseudonymSpace.for_subject(KEY_ALPHA, "ALPHA-SEO-001", scheme=SCHEME_SUBJECT)
    own = PseudonymSpace(subject_key(KEY_ALPHA, "ALPHA-SEO-001"))
    assert space.uid(uid(1)) == own.uid(uid(1))
    assert space.patient_hash("MRN1") == own.patient_hash("MRN1")
    assert space.date_offset_days("ALPHA-SEO-001") == own.date_offset_days("ALPHA-SEO-001")


def test_two_subjects_of_one_trial_map_the_same_uid_and_patient_differently():
    one = PseudonymSpace.for_subject(KEY_ALPHA, "ALPHA-SEO-001")
    two = PseudonymSpace.for_subject(KEY_ALPHA, "ALPHA-SEO-002")
    assert one.uid(uid(1)) != two.uid(uid(1))
    assert one.patient_hash("MRN1") != two.patient_hash("MRN1")


def test_the_trial_scheme_is_the_old_derivation_from_the_trial_key():
    space = PseudonymSpace.for_subject(KEY_ALPHA, "ALPHA-SEO-001", scheme=SCHEME_TRIAL)
    old = PseudonymSpace(KEY_ALPHA)
    assert space.uid(uid(1)) == old.uid(uid(1))
    assert space.patient_hash("MRN1") == old.patient_hash("MRN1")
    assert space.date_offset_days("ALPHA-SEO-001") == old.date_offset_days("ALPHA-SEO-001")


def test_an_unknown_scheme_or_a_text_key_is_refused():
    with pytest.raises(ValueError):
        PseudonymSpace.for_subject(KEY_ALPHA, "ALPHA-SEO-001", scheme="site")
    with pytest.raises(ValueError):
        subject_key(KEY_ALPHA.hex().encode(), "ALPHA-SEO-001")


def test_a_new_trial_uses_subject_keys(world):
    assert world.trial.pseudonym_scheme == Trial.PseudonymScheme.SUBJECT
    assert browser_subject_key(world.trial, "ALPHA-SEO-001") == subject_key(
        bytes(world.trial.pseudonym_key), "ALPHA-SEO-001"
    )


def _stored_uids(code: str) -> set[str]:
    return set(Instance.objects.filter(series__study__subject__code=code).values_list("sop_instance_uid", flat=True))


def test_the_server_path_stores_a_subjects_images_under_the_subject_key(world, series):
    upload_files(world.cora, "ALPHA-SEO-001", series)
    space = PseudonymSpace(subject_key(bytes(world.trial.pseudonym_key), "ALPHA-SEO-001"))
    originals = {pydicom.dcmread(pydicom.filebase.DicomBytesIO(f)).SOPInstanceUID for f in series}
    assert _stored_uids("ALPHA-SEO-001") == {space.uid(u) for u in originals}
    subject = world.subjects["ALPHA-SEO-001"]
    subject.refresh_from_db()
    source = pydicom.dcmread(pydicom.filebase.DicomBytesIO(series[0]))
    assert subject.source_patient_hash == space.patient_hash(str(source.PatientID))


def test_a_trial_of_the_old_scheme_keeps_its_pseudonyms_and_gives_no_browser_key(world, series):
    Trial.objects.filter(pk=world.trial.pk).update(pseudonym_scheme=SCHEME_TRIAL)
    world.trial.refresh_from_db()
    upload_files(world.cora, "ALPHA-SEO-001", series)
    old = PseudonymSpace(bytes(world.trial.pseudonym_key))
    originals = {pydicom.dcmread(pydicom.filebase.DicomBytesIO(f)).SOPInstanceUID for f in series}
    assert _stored_uids("ALPHA-SEO-001") == {old.uid(u) for u in originals}
    assert browser_subject_key(world.trial, "ALPHA-SEO-001") is None
    assert subject_space(world.trial, "ALPHA-SEO-002").uid(uid(1)) == old.uid(uid(1))


def test_the_migration_keeps_the_trial_key_for_trials_with_images_and_moves_empty_ones(world, series):
    upload_files(world.cora, "ALPHA-SEO-001", series)
    assert storages["images"].listdir("")  # ALPHA has images; OMEGA has none
    Trial.objects.update(pseudonym_scheme=SCHEME_SUBJECT)
    migration.keep_the_trial_key_where_images_exist(apps, None)
    assert Trial.objects.get(code="ALPHA").pseudonym_scheme == SCHEME_TRIAL
    assert Trial.objects.get(code="OMEGA").pseudonym_scheme == SCHEME_SUBJECT
