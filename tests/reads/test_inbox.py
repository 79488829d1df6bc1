"""The inbox, read side: a new read waits for each of its readers (blinded), an adjudication for the adjudicator,
a built transfer for the sponsor until they download it; signing, deciding and downloading take them out."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from reads import read_services, transfers
from reads.models import ReaderAssignment, ReadTask
from reads.services import read_design_set
from tests.reads.flow import SUBJECT, baseline_content, ready, save_and_sign, task_of
from tests.reads.test_adjudication import PR, SD, _decide, _read
from trials import services as trial_services
from trials.access import Actor
from trials.inbox import inbox_counts, inbox_entries

NOBODY_ELSE = ("alice", "cora", "bruno", "quinn", "sam", "otto")


def counts(user):
    return inbox_counts(Actor(user=user))


def entries(user, **kw):
    return inbox_entries(Actor(user=user), **kw)


def blinded(text: str, due=None) -> bool:
    """Nothing a reader may not know: no subject code, no site, no date but the task's due date."""
    dates = set(re.findall(r"\d{4}-\d{2}-\d{2}", text)) - ({due.isoformat()} if due else set())
    return not dates and not any(s in text for s in ("ALPHA-SEO", "SEO", "Seoul", "BUS", "Busan"))


def test_a_new_read_waits_for_each_of_its_readers_with_what_their_worklist_shows(world):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        [entry] = entries(reader)
        task = task_of(reader, "BL")
        label = ReaderAssignment.objects.get(reader=reader, subject__code=SUBJECT).case_label
        assert (entry.kind, entry.trial, entry.title) == ("read", "ALPHA", "New read")
        assert entry.about == f"{label} · Baseline"
        assert entry.url == reverse("read-task", args=[task.pk])
        assert entry.due == task.due_date and entry.since is None
        assert blinded(f"{entry.title} {entry.about} {entry.url}")
        assert counts(reader).by_kind["read"] == 1
    for name in (*NOBODY_ELSE, "ada"):
        assert counts(world.people[name]).total == 0, name


def test_a_started_read_stays_until_it_is_signed_and_then_the_next_visit_opens(world):
    ready(world, "BL")
    ready(world, "W6", day=42)
    assert [e.about.split(" · ")[1] for e in entries(world.rhea)] == ["Baseline"]  # week 6 waits: not listed
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    assert [e.title for e in entries(world.rhea)] == ["Read in progress"]
    save_and_sign(world.rhea, task, baseline_content(task))
    [entry] = entries(world.rhea)
    assert (entry.title, entry.url) == ("New read", reverse("read-task", args=[task_of(world.rhea, "W6").pk]))


def test_hidden_visit_labels_stay_hidden_in_the_inbox(world):
    read_design_set(actor=world.alice, trial=world.trial, show_visit_label=False)
    ready(world, "BL")
    [entry] = entries(world.rhea)
    assert "Baseline" not in entry.about and entry.about.endswith("Current visit (visit 1)")


def test_the_inbox_of_a_reader_takes_the_same_few_queries_for_many_cases(world, django_assert_max_num_queries):
    read_design_set(actor=world.alice, trial=world.trial, show_visit_label=False)
    ready(world, "BL")
    ready(world, "BL", subject="ALPHA-SEO-002")
    ready(world, "BL", subject="ALPHA-BUS-001")
    with django_assert_max_num_queries(5):  # one a kind of entry, not one a case
        got = entries(world.rhea)
    assert len(got) == 3 and all(e.about.endswith("Current visit (visit 1)") for e in got)


def test_a_read_past_its_due_date_is_overdue(world):
    ready(world, "BL")
    ReadTask.objects.filter(assignment__reader=world.rhea).update(due_date=timezone.localdate() - timedelta(days=1))
    assert (counts(world.rhea).total, counts(world.rhea).overdue) == (1, 1)
    assert entries(world.rhea)[0].overdue
    assert counts(world.ravi).overdue == 0


def test_a_reader_whose_role_is_revoked_loses_the_entry(world):
    from trials.models import Membership

    ready(world, "BL")
    trial_services.membership_revoke(actor=world.alice, membership=Membership.objects.get(user=world.rhea))
    assert counts(world.rhea).total == 0 and entries(world.rhea) == []


def test_an_adjudication_waits_for_the_adjudicator_until_decided(world):
    trial_services.visit_create(
        actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84
    )
    _read(world, {"W6": {1: PR, 2: SD}})
    [entry] = entries(world.ada)
    task = ReadTask.objects.get(kind="adjudication")
    assert (entry.kind, entry.title, entry.url) == (
        "adjudication",
        "New adjudication",
        reverse("read-task", args=[task.pk]),
    )
    assert entry.since is None and blinded(f"{entry.title} {entry.about}")
    assert counts(world.ada).by_kind["adjudication"] == 1
    for name in ("rhea", "ravi", *NOBODY_ELSE):
        assert counts(world.people[name]).total == 0, name
    _decide(world, 2)
    assert counts(world.ada).total == 0 and entries(world.ada) == []


def test_a_built_transfer_waits_for_the_sponsor_until_downloaded(world):
    first = transfers.transfer_request(actor=world.sam, trial=world.trial)
    first.refresh_from_db()
    assert first.state == "ready"
    [entry] = entries(world.sam)
    assert (entry.kind, entry.url) == ("transfer", reverse("read-transfers", args=["ALPHA"]))
    assert entry.title == f"Transfer {first.number} is ready to download" and entry.about == first.filename
    for name in ("alice", "cora", "quinn", "rhea", "ada", "otto"):
        assert counts(world.people[name]).total == 0, name
    # A newer transfer (the trial admin's) replaces the older one in the sponsor's inbox and is in hers too.
    second = transfers.transfer_request(actor=world.alice, trial=world.trial)
    second.refresh_from_db()
    assert [e.about for e in entries(world.sam)] == [second.filename]
    assert [e.about for e in entries(world.alice)] == [second.filename]
    # Downloading it is acting on it: gone for the one who downloaded, still there for the other.
    transfers.transfer_open(actor=world.sam, transfer=second).close()
    assert counts(world.sam).total == 0 and counts(world.alice).total == 1


def test_the_readers_inbox_page_and_api_carry_nothing_identifying(world, client, api):
    ready(world, "BL")
    label = ReaderAssignment.objects.get(reader=world.rhea, subject__code=SUBJECT).case_label
    client.force_login(world.rhea)
    page = client.get(reverse("inbox")).content.decode()
    assert label in page and 'id="inbox-count">1<' in page
    body = page[page.index('<main id="content"') :]
    assert blinded(body, due=task_of(world.rhea, "BL").due_date), body
    data = api.as_(world.rhea).get(reverse("api-inbox")).json()
    assert data["counts"] == {"read": 1} and data["results"][0]["about"].startswith(label)
    assert blinded(str(data["results"]), due=task_of(world.rhea, "BL").due_date)


def test_a_readers_api_token_never_reaches_their_tasks(world):
    from rest_framework.test import APIClient

    from trials.models import Membership

    ready(world, "BL")
    _token, key = trial_services.api_token_create(
        actor=world.rhea, membership=Membership.objects.get(user=world.rhea), name="mine"
    )
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get(reverse("api-inbox")).json()["total"] == 0
