"""`manage.py deidentify` runs the ingest de-identification on a folder, stores nothing, and reports per file."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from django.core.management import CommandError, call_command

from trials.demo import load_demo
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Subject


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "scanner export"
    (src / "SERIES2").mkdir(parents=True)
    template = real_ct_template(large=False)
    for n, data in enumerate(synthesize_ct_series(template, slices=3, seed="cmd")):
        (src / "SERIES2" / f"IM{n:04d}").write_bytes(data)
    (src / "README.txt").write_text("export notes")
    other = synthesize_ct_series(template, slices=1, seed="cmd-other", patient_id="OTHER77", patient_name="KIM^MINSU")
    (src / "SERIES2" / "IM9999").write_bytes(other[0])
    return src, tmp_path / "out"


def run(*args) -> tuple[list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("deidentify", *args, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_it_de_identifies_a_folder_against_the_demo_trial(db, folder):
    load_demo()
    src, dest = folder
    records, summary = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    by_file = {r["file"]: r for r in records}
    assert by_file["README.txt"]["status"] == "rejected" and by_file["README.txt"]["code"] == "not_dicom"
    assert by_file["SERIES2/IM9999"]["code"] == "other_patient"
    accepted = [r for r in records if r["status"] == "accepted"]
    assert len(accepted) == 3 and summary.strip() == "3 accepted, 2 rejected"
    for record in accepted:
        ds = pydicom.dcmread(record["output"])
        assert ds.PatientID == "DEMO-SEO-001" and ds.SOPInstanceUID == record["sop_instance_uid"]
    assert "OTHER77" not in json.dumps(records) and "KIM" not in json.dumps(records)
    assert Instance.objects.count() == 0 and not Subject.objects.exclude(source_patient_hash="").exists()


def test_it_gives_the_same_pseudonyms_as_ingest_would(db, folder):
    load_demo()
    src, dest = folder
    first, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest / "a"))
    second, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest / "b"))
    assert [r.get("sop_instance_uid") for r in first] == [r.get("sop_instance_uid") for r in second]


def test_it_names_an_unknown_trial_or_subject(db, folder):
    load_demo()
    src, dest = folder
    with pytest.raises(CommandError, match="No trial"):
        run("--trial", "NOPE", "--subject", "X", str(src), str(dest))
    with pytest.raises(CommandError, match="No subject"):
        run("--trial", "DEMO", "--subject", "DEMO-XXX-001", str(src), str(dest))
