"""The QIDO index columns: filled by ingest from the de-identified file, and backfilled for what was stored
before them by a migration that reads each study's and series' kept metadata."""

from __future__ import annotations

import importlib

import pydicom
import pytest
from django.apps import apps
from django.db import connection

from tests.conftest import build_world
from tests.trials.test_dicomweb import upload
from trials import services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Series, Study

backfill = importlib.import_module("trials.migrations.0014_qido_matching_keys_backfill").backfill


def scanner_files() -> list[bytes]:
    """A scanner's slices with the attributes the new keys match on (what de-identification keeps of them)."""
    files = []
    for data in synthesize_ct_series(real_ct_template(large=False), slices=2, seed="qido-index"):
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        ds.PatientSex, ds.StudyTime = "F", "101500"
        ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20260302", "101000"
        ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "A-77", "9", "REF^DOC"
        buffer = pydicom.filebase.DicomBytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


@pytest.fixture
def stored(db, stores, on_commit_now):
    world = build_world()
    services.trial_update(actor=world.alice, trial=world.trial, deid_retain_patient_characteristics=True)
    upload(world, "ALPHA-SEO-001", scanner_files(), world.cora)
    return world


def test_ingest_fills_the_new_columns_with_what_the_stored_file_says(stored):
    study = Study.objects.get()
    series = Series.objects.get()
    assert study.patient_sex == "F" and study.study_time == "101500"
    # Annex E empties these: the index says what the stored file says, never the scanner's value.
    assert (study.accession_number, study.study_id, study.referring_physician_name) == ("", "", "")
    assert series.performed_procedure_step_start_date == study.study_date  # shifted like every date
    assert series.performed_procedure_step_start_time
    assert set(Instance.objects.values_list("bits_allocated", flat=True)) == {16}


def test_the_backfill_fills_the_columns_of_what_was_stored_before_them(stored):
    before = Study.objects.values().get(), Series.objects.values().get()
    Study.objects.update(patient_sex="", study_id="")
    Series.objects.update(performed_procedure_step_start_date=None, performed_procedure_step_start_time="")
    Instance.objects.update(bits_allocated=None)
    first = Instance.objects.first()
    first.metadata["00200010"] = {"vr": "SH", "Value": ["S-1"]}
    Instance.objects.update(metadata=first.metadata)
    with connection.schema_editor() as editor:
        backfill(apps, editor)
    study, series = Study.objects.values().get(), Series.objects.values().get()
    assert study | {"study_id": ""} == before[0] and study["study_id"] == "S-1"
    assert series == before[1]
    assert set(Instance.objects.values_list("bits_allocated", flat=True)) == {16}


def test_the_backfill_leaves_rows_without_metadata_as_they_are(stored):
    Instance.objects.update(metadata=None, bits_allocated=None)
    Study.objects.update(patient_sex="")
    with connection.schema_editor() as editor:
        backfill(apps, editor)
    assert Study.objects.get().patient_sex == ""
    assert set(Instance.objects.values_list("bits_allocated", flat=True)) == {None}
