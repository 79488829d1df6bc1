"""21 CFR 11.50: wherever a signed read or adjudication is shown or delivered, its signatures show the signer's
printed name, the date and time with its zone, and the meaning of the signature."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from reads import results
from reads.models import Adjudication
from tests.conftest import PASSWORD
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials.models import Membership
from trials.services import api_token_create

READER_MEANING = "I am the author of this assessment"
ADJUDICATOR_MEANING = "I have adjudicated this case and chosen the read I agree with"


def _shown(at: datetime) -> str:
    """How a page shows a moment: the trial's local time with its UTC offset."""
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M %z")


def _agreed_baseline(world):
    ready(world, "BL")
    return {
        reader: save_and_sign(reader, task_of(reader, "BL"), baseline_content(task_of(reader, "BL")))
        for reader in (world.rhea, world.ravi)
    }


def _adjudicated_week_6(world):
    """Both readers sign baseline and week 6, disagreeing at week 6 (PR vs PD); the adjudicator chooses reader 2."""
    _agreed_baseline(world)
    ready(world, "W6", day=42)
    for reader, (t1, t2) in ((world.rhea, ("15.0", "8.0")), (world.ravi, ("30.0", "13.0"))):
        task = task_of(reader, "W6")
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    adjudication = Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True)
    slot = adjudication.subject.reader_assignments.get(reader=world.ravi).slot
    return results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=str(slot),
        reason="Reader 2 measured the true long axes.",
        password=PASSWORD,
        meaning_confirmed=True,
    )


def test_the_read_page_shows_the_signature_with_its_time_zone(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read = save_and_sign(world.rhea, task, baseline_content(task))
    client.force_login(world.rhea)
    page = client.get(reverse("read-task", args=[task.pk])).content.decode()
    assert "Rhea" in page and READER_MEANING in page
    assert _shown(read.signature.at) in page


def test_the_results_csv_names_each_signer_with_the_time_zone_and_meaning(world, client):
    from reads.models import TimepointResult

    _agreed_baseline(world)
    client.force_login(world.sam)
    rows = list(csv.DictReader(client.get("/reads/trials/ALPHA/results.csv").content.decode().splitlines()))
    [row] = rows
    signature = TimepointResult.objects.get().read.signature  # reader 1's, when the readers agree
    assert row["signed_by"] == signature.signer.full_name and row["signature_meaning"] == READER_MEANING
    assert datetime.fromisoformat(row["signed_at"]) == signature.at
    assert datetime.fromisoformat(row["signed_at"]).utcoffset() is not None  # the zone is stated
    assert row["adjudicated_by"] == row["adjudicated_at"] == row["adjudication_meaning"] == ""


def test_the_results_page_and_api_show_the_adjudicators_signature_too(world, client):
    adjudication = _adjudicated_week_6(world)
    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/results/").content.decode()
    assert "Ravi" in page and "Ada" in page and _shown(adjudication.signature.at) in page

    membership = Membership.objects.get(user=world.sam, trial=world.trial)
    _token, secret = api_token_create(actor=world.sam, membership=membership, name="results")
    body = client.get("/api/trials/ALPHA/read-results/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    week_6 = next(row for row in body["results"] if row["visit"] == "W6")
    assert week_6["signed_by"] == "Ravi" and week_6["signature_meaning"] == READER_MEANING
    assert week_6["adjudicated_by"] == "Ada" and week_6["adjudication_meaning"] == ADJUDICATOR_MEANING
    assert datetime.fromisoformat(week_6["adjudicated_at"]) == adjudication.signature.at
    assert datetime.fromisoformat(week_6["signed_at"]).utcoffset() is not None


@pytest.mark.usefixtures("on_commit_now")
def test_the_transfer_tables_name_each_signer_with_the_time_zone_and_meaning(world, client):
    from reads import transfers

    adjudication = _adjudicated_week_6(world)
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer.refresh_from_db()
    client.force_login(world.sam)
    response = client.get(reverse("read-transfer-download", args=["ALPHA", transfer.number]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    [name] = [n for n in archive.namelist() if n.endswith("tables/visits.csv")]
    rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    by_evaluator = {(row["visit"], row["evaluator"]): row for row in rows}
    adjudicator_row = next(
        row for (visit, _e), row in by_evaluator.items() if visit == "W6" and row["signed_by"] == "Ada"
    )
    assert adjudicator_row["signature_meaning"] == ADJUDICATOR_MEANING
    assert datetime.fromisoformat(adjudicator_row["signed_at"]) == adjudication.signature.at
    readers = {
        row["signed_by"]
        for (visit, _e), row in by_evaluator.items()
        if visit == "BL" and row["signature_meaning"] == READER_MEANING
    }
    assert readers == {"Rhea", "Ravi"}
    assert all(datetime.fromisoformat(row["signed_at"]).utcoffset() is not None for row in rows)
