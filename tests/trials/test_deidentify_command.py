"""`manage.py deidentify` runs the ingest de-identification on a folder, stores nothing, and reports per file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_file_that_breaks_the_engine_is_rejected_and_the_rest_of_the_folder_goes_on(db, folder, monkeypatch):
    from trials.deid import engine

    load_demo()
    src, dest = folder
    real, calls = engine.build_index, []

    def breaks_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise AttributeError("'NoneType' object has no attribute 'value'")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "build_index", breaks_once)
    records, summary = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    unreadable = [r for r in records if r.get("code") == "unreadable"]
    assert len(unreadable) == 1 and "AttributeError" in unreadable[0]["reason"]
    assert summary.strip() == "2 accepted, 3 rejected"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, about the damaged RLE segment
def test_it_refuses_what_ingest_refuses_before_and_after_de_identifying(db, folder):
    """'Exactly as ingest does': a file ingest refuses before de-identification (validate.py) or whose compressed
    pixels do not decode (decodable.py) is rejected with ingest's code, not written as if it were fine."""
    import struct

    from tests.trials.test_decodable import rle_segment_misplaced, the_subjects
    from tests.trials.test_validate import ct

    load_demo()
    src, dest = folder
    template = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="cmd")[0]
    (src / "NAN").write_bytes(ct(template, x00181271=("FD", struct.pack("<d", float("nan")))))
    (src / "RLE").write_bytes(the_subjects("MR_small_RLE.dcm", 3, rle_segment_misplaced))
    records, _summary = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    by_file = {r["file"]: r for r in records}
    assert (by_file["NAN"]["status"], by_file["NAN"]["code"]) == ("rejected", "bad_number")
    assert (by_file["RLE"]["status"], by_file["RLE"]["code"]) == ("rejected", "pixels_undecodable")
    assert len(list(dest.iterdir())) == 3  # the folder's three whole slices only


def test_a_second_different_file_under_a_uid_already_written_is_refused(db, folder):
    load_demo()
    src, dest = folder
    first = (src / "SERIES2" / "IM0000").read_bytes()
    changed = pydicom.dcmread(io.BytesIO(first))
    changed.SeriesDescription = "a different image under the same UID"
    buffer = io.BytesIO()
    changed.save_as(buffer)
    (src / "SERIES2" / "IM0000b").write_bytes(buffer.getvalue())
    (src / "SERIES2" / "IM0000c").write_bytes(first)  # the same file twice is no conflict
    records, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    by_file = {r["file"]: r for r in records}
    assert by_file["SERIES2/IM0000"]["status"] == "accepted"
    assert by_file["SERIES2/IM0000b"]["code"] == "duplicate_uid"
    assert "same SOP Instance UID" in by_file["SERIES2/IM0000b"]["reason"]
    assert by_file["SERIES2/IM0000c"]["status"] == "accepted"
    written = pydicom.dcmread(by_file["SERIES2/IM0000"]["output"])
    assert written.SeriesDescription != "a different image under the same UID"
    # A later run into the same folder refuses it too, rather than overwriting the first.
    again, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    assert {r["file"]: r for r in again}["SERIES2/IM0000b"]["code"] == "duplicate_uid"


def test_intact_sr_is_not_an_image_this_trial_accepts(db, folder):
    from pathlib import Path

    from pydicom.data import get_testdata_file

    load_demo()
    src, dest = folder
    (src / "SR.dcm").write_bytes(Path(get_testdata_file("test-SR.dcm")).read_bytes())
    records, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest))
    sr = {r["file"]: r for r in records}["SR.dcm"]
    assert sr["code"] == "sop_class_not_accepted" and "is not an image this trial accepts" in sr["reason"]


def test_the_trials_burned_in_text_option_reaches_the_engine(db, folder):
    from trials import services
    from trials.ingest.synthetic import synthesize_dose_screens
    from trials.models import Trial

    load_demo()
    src, dest = folder
    template = real_ct_template(large=False)
    (src / "DOSE").mkdir()
    (src / "DOSE" / "IM0001").write_bytes(synthesize_dose_screens(template, count=1, seed="cmd")[0])
    records, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest / "a"))
    assert {r["file"]: r for r in records}["DOSE/IM0001"]["code"] == "burned_in_text"
    trial = Trial.objects.get(code="DEMO")
    admin = trial.memberships.filter(role="trial_admin").first().user
    services.trial_update(actor=admin, trial=trial, deid_burned_in_text="redact")
    records, _ = run("--trial", "DEMO", "--subject", "DEMO-SEO-001", str(src), str(dest / "b"))
    dose = {r["file"]: r for r in records}["DOSE/IM0001"]
    assert dose["status"] == "accepted" and "text regions redacted" in dose["pixels"]


def test_a_trial_keeps_only_known_identifying_text_attributes(db):
    from ctims.exceptions import ValidationFailed
    from trials import services
    from trials.models import Trial

    load_demo()
    trial = Trial.objects.get(code="DEMO")
    admin = trial.memberships.filter(role="trial_admin").first().user
    services.trial_update(actor=admin, trial=trial, deid_kept_text_attributes=["PatientComments"])
    with pytest.raises(ValidationFailed):
        services.trial_update(actor=admin, trial=trial, deid_kept_text_attributes=["PatientName"])


def test_the_command_works_on_the_embedded_default(tmp_path):
    """As an operator runs it after `make run`: its own process, SQLite and a var folder of its own."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "CTIMS_VAR_DIR": str(tmp_path)}
    env["PASSWORD_HASHERS"] = "django.contrib.auth.hashers.MD5PasswordHasher"  # the demo's accounts, as in tests
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, check=True
        )

    manage("migrate", "-v0")
    manage("load_demo")
    manage("demo_scans", str(tmp_path / "scans"), "--slices", "3")
    out = manage(
        "deidentify",
        "--trial",
        "DEMO",
        "--subject",
        "DEMO-SEO-001",
        str(tmp_path / "scans/DEMO-SEO-001/BL"),
        str(tmp_path / "out"),
    )
    assert out.stdout.count('"status": "accepted"') == 3 and "other_patient" in out.stdout
