"""`manage.py recheck`: files stored before a check existed are put through today's checks again."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from django.core.management import CommandError, call_command

from tests.conftest import upload_files
from trials.ingest import store
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Membership, Role, Series, Site, Subject, Visit

RESIDENT_NUMBER = "850101-1234567"


@pytest.fixture
def stored(world, stores, on_commit_now):
    """Three slices of ALPHA-SEO-001 uploaded through the real pipeline; their index rows."""
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="recheck")
    upload_files(world.cora, "ALPHA-SEO-001", files)
    rows = list(Instance.objects.order_by("instance_number"))
    assert len(rows) == 3
    return rows


def recheck(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("recheck", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def replace_stored(instance: Instance, data: bytes, *, index_too: bool) -> None:
    """Put other bytes under the instance's key, as an older release might have stored them; with `index_too`,
    its index row says so too (the file is what was stored, not damaged since)."""
    path = store.image_storage().path(instance.storage_key)
    with open(path, "wb") as f:
        f.write(data)
    if index_too:
        Instance.objects.filter(pk=instance.pk).update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def test_files_that_pass_today_s_checks_are_counted_and_nothing_is_listed(stored):
    code, out = recheck()
    assert code == 0
    assert out.strip() == "Checked 3 stored files: 3 pass today's checks. 0 records outside today's rules."


def test_a_file_stored_with_an_identifier_that_today_s_checks_find_is_listed_by_pseudonyms_only(stored):
    first = stored[0]
    ds = pydicom.dcmread(store.image_storage().path(first.storage_key))
    ds.SeriesDescription = f"CT CAP {RESIDENT_NUMBER}"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    replace_stored(first, buffer.getvalue(), index_too=True)

    code, out = recheck("--trial", "alpha")
    assert code == 1
    [line, summary] = out.strip().splitlines()
    assert line.split("\t")[:2] == ["ALPHA", "ALPHA-SEO-001"]
    assert f"instance {first.sop_instance_uid}" in line and f"series {first.series.series_instance_uid}" in line
    assert "identifying_text: refused by today's receipt checks" in line and "SeriesDescription holds" in line
    assert RESIDENT_NUMBER not in out and "850101" not in out
    assert (
        summary
        == "Checked 3 stored files: 2 pass today's checks; 1 refused (1 identifying_text). 0 records outside today's rules."
    )


def test_a_changed_file_and_a_missing_one_are_listed_and_nothing_is_changed(stored):
    changed, missing = stored[1], stored[2]
    replace_stored(changed, b"DICM" * 10, index_too=False)
    store.image_storage().delete(missing.storage_key)

    code, out = recheck()
    assert code == 1
    assert f"instance {changed.sop_instance_uid}\tchanged: " in out
    assert f"instance {missing.sop_instance_uid}\tmissing: " in out
    assert out.strip().endswith("2 refused (1 changed, 1 missing). 0 records outside today's rules.")
    assert Instance.objects.count() == 3 and store.image_storage().exists(changed.storage_key)


def test_only_sites_uploads_are_walked_and_other_trials_are_left_out(stored):
    Series.objects.filter(pk=stored[0].series_id).update(origin=Series.Origin.READ)  # as a read's SR series
    assert recheck()[1].strip() == "Checked 0 stored files: 0 pass today's checks. 0 records outside today's rules."
    Series.objects.filter(pk=stored[0].series_id).update(origin=Series.Origin.UPLOAD)
    assert (
        recheck("--trial", "OMEGA")[1].strip()
        == "Checked 0 stored files: 0 pass today's checks. 0 records outside today's rules."
    )
    with pytest.raises(CommandError, match="No trial with the code 'NOPE'"):
        call_command("recheck", "--trial", "NOPE")


def test_records_made_before_today_s_rules_are_listed_by_the_codes_people_use(world):
    """Rows as an older release could leave them (written here past the services that now refuse them)."""
    trial = world.trial
    Membership.objects.create(user=world.rhea, trial=trial, role=Role.QC_REVIEWER)
    first, second = trial.visits.order_by("order")[:2]
    Visit.objects.filter(pk=second.pk).update(label=f" {first.label.upper()} ")
    Subject.objects.filter(code="ALPHA-SEO-001").update(code="ALPHA/SEO/001")
    Site.objects.filter(pk=world.seo.pk).update(country="ZZ")

    code, out = recheck("--trial", "ALPHA")
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[:-1] == [
        "ALPHA\trecord\tblinded_and_unblinded_roles: rhea@example.org is QC reviewer, Reader: a reader or "
        "adjudicator reads blind and cannot also hold a role that sees sites, real dates or results; take one of "
        "the roles away",
        f"ALPHA\trecord\tvisit_label_taken: visits {first.code} and {second.code} have one label: give each a label "
        "of its own",
        f"ALPHA\trecord\tvisit_sdtm_name_taken: visits {first.code} and {second.code} go to the SDTM files as one "
        f"VISIT ({first.sdtm_visit}): give one of them another SDTM visit name",  # the label is its SDTM name
        "ALPHA\trecord\tsubject_code_form: subject 'ALPHA/SEO/001' has a code outside today's form (English "
        "letters, digits, '-', '_' and '.', starting with a letter or digit, at most 64 characters), under which "
        "its files are filed and delivered: tell the trial admin",
        "ALPHA\trecord\tsite_country: site SEO has the country 'ZZ', which is not an ISO 3166-1 country: choose it "
        "again",
    ]
    assert lines[-1] == "Checked 0 stored files: 0 pass today's checks. 5 records outside today's rules."
    assert recheck("--trial", "OMEGA") == (
        0,
        "Checked 0 stored files: 0 pass today's checks. 0 records outside today's rules.\n",
    )
