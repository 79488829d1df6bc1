"""The read results API: locked results only, for sponsors' tokens and trial admins; the SR of each."""

from __future__ import annotations

import io

import pydicom

from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
from trials.models import Membership
from trials.services import api_token_create


def _sponsor_token(world) -> str:
    membership = Membership.objects.get(user=world.sam, trial=world.trial)
    _token, secret = api_token_create(actor=world.sam, membership=membership, name="results export")
    return secret


def test_a_sponsor_token_reads_locked_results_and_their_srs_only(world, client):
    ready(world, "BL")
    ready(world, "BL", subject="ALPHA-SEO-002")
    # One subject's baseline is read by both readers (locked); the other's by one reader (not locked).
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    half = task_of(world.rhea, "BL", subject="ALPHA-SEO-002")
    save_and_sign(world.rhea, half, baseline_content(half))

    auth = {"HTTP_AUTHORIZATION": f"Bearer {_sponsor_token(world)}"}
    body = client.get("/api/trials/ALPHA/read-results/", **auth).json()
    assert body["count"] == 1
    [row] = body["results"]
    assert (row["subject"], row["visit"], row["source"]) == ("ALPHA-SEO-001", "BL", "agreement")
    assert row["sum_of_diameters_mm"] == "35.0" and row["overall_response"] == ""

    sr = client.get(f"/api/trials/ALPHA/read-results/{row['id']}/sr/", **auth)
    assert sr.status_code == 200 and sr["Content-Type"] == "application/dicom"
    dataset = pydicom.dcmread(io.BytesIO(b"".join(sr.streaming_content)))
    assert dataset.Modality == "SR" and dataset.SOPInstanceUID == row["sr_sop_instance_uid"]
    assert client.get("/api/trials/ALPHA/read-results/999999/sr/", **auth).status_code == 404


def test_nobody_else_reads_results_through_the_api(world, api):
    for name in ("rhea", "ada", "quinn", "cora", "otto"):
        assert api.as_(world.people[name]).get("/api/trials/ALPHA/read-results/").status_code == 404, name
    assert api.as_(world.alice).get("/api/trials/ALPHA/read-results/").status_code == 200


def test_the_lesion_table_holds_the_measurements_of_locked_results_only(world, client):
    import csv

    ready(world, "BL")
    ready(world, "BL", subject="ALPHA-SEO-002")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task, t1="23.4"))
    half = task_of(world.rhea, "BL", subject="ALPHA-SEO-002")
    save_and_sign(world.rhea, half, baseline_content(half))

    client.force_login(world.sam)
    response = client.get("/reads/trials/ALPHA/lesions.csv")
    rows = list(csv.DictReader(response.content.decode().splitlines()))
    assert {row["subject"] for row in rows} == {"ALPHA-SEO-001"}
    assert [(row["lesion"], row["category"], row["long_axis_mm"]) for row in rows] == [
        ("NT01", "non_target", ""),
        ("T01", "target", "23.4"),
        ("T02", "target", "12.0"),
    ]
    assert rows[1]["site"] == "Liver" and rows[1]["tracking_uid"].startswith("2.25.")
    client.force_login(world.cora)
    assert client.get("/reads/trials/ALPHA/lesions.csv").status_code == 404


def test_the_result_tables_write_a_cell_a_spreadsheet_would_run_as_text(world, client):
    import csv

    from trials.models import Subject

    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    # A code from a pattern of before subject codes were checked: ASCII was all that was asked.
    hostile = '=HYPERLINK("http://attacker.example/")'
    Subject.objects.filter(trial=world.trial, code="ALPHA-SEO-001").update(code=hostile)

    client.force_login(world.sam)
    for url in ("/reads/trials/ALPHA/results.csv", "/reads/trials/ALPHA/lesions.csv"):
        rows = list(csv.DictReader(client.get(url).content.decode().splitlines()))
        assert rows and {row["subject"] for row in rows} == {"'" + hostile}, url


def test_after_a_replacement_each_result_names_the_reader_whose_read_it_holds(world, client):
    import csv

    from tests.reads.flow import follow_up_content
    from tests.reads.test_transfers import AGREE, _accepted_reader_replaced, scripted_trial
    from trials.services import visit_create

    facts = scripted_trial(world)
    rita = _accepted_reader_replaced(world, facts, w6=("22.0", "12.0"))
    other = world.ravi if facts["agree_slot_of_rhea"] == 1 else world.rhea
    visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    ready(world, "W12", day=84, subject=AGREE)
    for reader in (rita, other):
        task = task_of(reader, "W12", AGREE)
        save_and_sign(reader, task, follow_up_content(task, "22.0", "5.0"))

    # Baseline and week 6 stand on the retired reader's reads (reader 1); week 12 on the newcomer's, who is
    # reader 3 as in the sponsor's transfer, not a second "reader 1".
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_sponsor_token(world)}"}
    rows = client.get("/api/trials/ALPHA/read-results/", **auth).json()["results"]
    assert {r["visit"]: r["reader"] for r in rows if r["subject"] == AGREE} == {"BL": 1, "W6": 1, "W12": 3}
    client.force_login(world.sam)
    for path in ("/reads/trials/ALPHA/results.csv", "/reads/trials/ALPHA/lesions.csv"):
        table = csv.DictReader(client.get(path).content.decode().splitlines())
        readers = {(row["visit"], row["reader"]) for row in table if row["subject"] == AGREE}
        assert readers == {("BL", "1"), ("W6", "1"), ("W12", "3")}, path


def test_the_api_and_the_responses_csv_say_which_visits_an_adjudicator_decided(world, client):
    """`source` says "adjudication" for every visit whose result follows a decision (the baseline the readers
    agreed on too, as consumers have always had it); `adjudicated` says which visits the adjudicator decided."""
    import csv

    from tests.reads.test_transfers import ADJUDICATED, AGREE, scripted_trial

    scripted_trial(world)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_sponsor_token(world)}"}
    rows = client.get("/api/trials/ALPHA/read-results/", **auth).json()["results"]
    got = {(r["subject"], r["visit"]): (r["source"], r["adjudicated"]) for r in rows}
    assert got == {
        (AGREE, "BL"): ("agreement", False),
        (AGREE, "W6"): ("agreement", False),
        (ADJUDICATED, "BL"): ("adjudication", False),
        (ADJUDICATED, "W6"): ("adjudication", True),
    }
    client.force_login(world.sam)
    table = csv.DictReader(io.StringIO(client.get("/reads/trials/ALPHA/results.csv").content.decode("utf-8-sig")))
    got = {(r["subject"], r["visit"]): (r["source"], r["adjudicated"]) for r in table}
    assert got == {
        (AGREE, "BL"): ("agreement", "N"),
        (AGREE, "W6"): ("agreement", "N"),
        (ADJUDICATED, "BL"): ("adjudication", "N"),
        (ADJUDICATED, "W6"): ("adjudication", "Y"),
    }


def test_the_api_schema_says_what_source_and_adjudicated_mean(db, client):
    body = client.get("/api/schema/", {"format": "json"}).json()
    fields = body["components"]["schemas"]["ReadResultOut"]["properties"]
    assert fields["adjudicated"]["type"] == "boolean" and "adjudicator decided" in fields["adjudicated"]["description"]
    assert "adjudicated" in fields["source"]["description"]
    assert "evaluator number" in fields["reader"]["description"] and "mm" not in fields["reader"]["description"]
    assert "millimetres" in fields["sum_of_diameters_mm"]["description"]
    transfer = body["components"]["schemas"]["TransferOut"]["properties"]
    assert "visits_added" in transfer["changes"]["description"]


def test_the_result_csvs_come_plain_for_programs_and_with_a_byte_order_mark_for_excel(world, client):
    """Excel opens a CSV without a byte-order mark in the system's code page (Korean garbled on a Korean
    Windows); Python's csv with utf-8, R's read.csv and SAS without ENCODING= take a mark for part of the first
    column's name. So the plain download stays as it was and the Excel one carries the mark."""
    import csv

    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    client.force_login(world.sam)
    for path in ("/reads/trials/ALPHA/results.csv", "/reads/trials/ALPHA/lesions.csv"):
        plain = client.get(path).content
        assert not plain.startswith(b"\xef\xbb\xbf") and plain.startswith(b"subject,"), path
        excel = client.get(path, {"excel": "1"})
        assert excel.status_code == 200 and excel.content == b"\xef\xbb\xbf" + plain, path
        assert next(csv.reader(io.StringIO(excel.content.decode("utf-8-sig"))))[0] == "subject"
        assert client.get(path, {"excel": "yes please"}).status_code == 400, path
    html = client.get("/reads/trials/ALPHA/results/").content.decode()
    assert "/reads/trials/ALPHA/results.csv?excel=1" in html and "/reads/trials/ALPHA/lesions.csv?excel=1" in html
    client.cookies["django_language"] = "ko"
    assert "엑셀용 파일" in client.get("/reads/trials/ALPHA/results/").content.decode()


def test_the_results_page_says_which_time_zone_its_lock_times_are_in(world, client, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/results/").content.decode()
    assert "Times on this page are in Asia/Seoul (UTC+09:00)." in page


def _locked(world, subject: str) -> None:
    ready(world, "BL", subject=subject)
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL", subject=subject)
        save_and_sign(reader, task, baseline_content(task))


def test_a_page_of_results_builds_its_own_rows_only_in_a_bounded_number_of_queries(world, client, monkeypatch):
    """The API pages in the database: a page of one result builds one row, in as many queries whether the trial
    has one locked result or three."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reads import selectors

    built = []
    result_rows = selectors.result_rows

    def counted(trial, **kwargs):
        rows = result_rows(trial, **kwargs)
        built.append(len(rows))
        return rows

    monkeypatch.setattr(selectors, "result_rows", counted)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_sponsor_token(world)}"}

    def page(offset: int) -> tuple[dict, int]:
        with CaptureQueriesContext(connection) as queries:
            body = client.get("/api/trials/ALPHA/read-results/", {"limit": "1", "offset": offset}, **auth).json()
        return body, len(queries)

    _locked(world, "ALPHA-SEO-001")
    page(0)  # the token's first use records when it was used (a write it makes at most once a minute)
    built.clear()
    small, small_queries = page(0)
    _locked(world, "ALPHA-SEO-002")
    _locked(world, "ALPHA-BUS-001")
    first, first_queries = page(0)
    last, last_queries = page(2)
    assert small["count"] == 1 and first["count"] == last["count"] == 3
    assert [r["subject"] for r in first["results"] + last["results"]] == ["ALPHA-BUS-001", "ALPHA-SEO-002"]
    assert built == [1, 1, 1]  # each page's row, never the trial's
    assert small_queries == first_queries == last_queries
