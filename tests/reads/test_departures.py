"""A reader or adjudicator who leaves: their tasks close to them at once, and the trial admin gives each case
they had not signed in to someone else from the pool."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ctims.exceptions import InvalidState, NotFound, ValidationFailed
from ctims.models import AuditEvent
from reads import read_services, results, selectors
from reads.models import Adjudication, Read, ReaderAssignment, TimepointResult
from reads.services import assignment_replace
from tests.conftest import PASSWORD, make_user
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials import services
from trials.models import Membership, Role


def revoke(world, user, role=Role.READER):
    services.membership_revoke(
        actor=world.alice, membership=Membership.objects.get(trial=world.trial, user=user, role=role)
    )


def newcomer(world, name: str, role=Role.READER):
    user = make_user(name)
    services.membership_grant(actor=world.alice, trial=world.trial, user=user, role=role)
    return user


def disagree_at_week_6(world) -> None:
    """Both readers sign the baseline alike; at Week 6 one calls PR and the other SD: an adjudication opens."""
    for reader in (world.rhea, world.ravi):
        save_and_sign(reader, task_of(reader, "BL"), baseline_content(task_of(reader, "BL")))
    save_and_sign(world.rhea, task_of(world.rhea, "W6"), follow_up_content(task_of(world.rhea, "W6"), "16.1", "8.4"))
    save_and_sign(world.ravi, task_of(world.ravi, "W6"), follow_up_content(task_of(world.ravi, "W6"), "22.0", "12.0"))


def test_a_reader_whose_role_is_revoked_loses_every_way_into_their_tasks_until_it_is_granted_again(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    revoke(world, world.rhea)

    assert not any(selectors.worklist(world.rhea).values())
    with pytest.raises(NotFound):
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    with pytest.raises(NotFound):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
        )
    client.force_login(world.rhea)
    assert client.get(reverse("read-task", args=[task.pk])).status_code == 404
    assert client.get(f"/dicomweb/tasks/{task.pk}/studies").status_code == 404

    services.membership_grant(actor=world.alice, trial=world.trial, user=world.rhea, role=Role.READER)
    assert client.get(reverse("read-task", args=[task.pk])).status_code == 200
    assert Read.objects.get(task=task).state == "draft"  # nothing was lost while the role was away


def test_the_trial_admin_gives_the_case_of_a_reader_who_left_to_another_reader(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    revoke(world, world.rhea)
    rita = newcomer(world, "rita")
    assignment = task.assignment

    client.force_login(world.alice)
    page = client.get(reverse("read-design", args=["ALPHA"])).content.decode()
    assert "Cases whose reader left" in page and assignment.case_label in page and "Rita" in page
    assert "Ravi" not in page.split("Cases whose reader left")[1].split("</select>")[0]  # already reads the case

    url = reverse("read-assignment-replace", args=["ALPHA", assignment.pk])
    for nobody in ("", "rita", "999999", "²", "9" * 30):  # a superscript two passed isdigit() and broke int(): 500
        refused = client.post(url, {"reader": nobody}, follow=True).content.decode()
        assert "Choose who takes the case over." in refused or "does not already read this case" in refused
    response = client.post(url, {"reader": rita.pk}, follow=True)
    assert f"Case {assignment.case_label} now goes to Rita." in response.content.decode()
    assert ReaderAssignment.objects.get(pk=assignment.pk).reader == rita
    assert not Read.objects.filter(task=task).exists()  # rhea's unsigned draft is hers, not handed on
    task.refresh_from_db()
    assert task.state == "open" and rita.has_perm("reads.read_task", task)
    assert not world.rhea.has_perm("reads.read_task", task)
    event = AuditEvent.objects.get(action="assignment.replace")
    assert event.summary["from"] == "rhea@example.org"
    assert (event.summary["to"], event.summary["drafts_discarded"], event.actor) == ("rita@example.org", 1, world.alice)
    assert "Cases whose reader left" not in client.get(reverse("read-design", args=["ALPHA"])).content.decode()

    read = save_and_sign(rita, task, baseline_content(task))
    assert read.state == "signed" and read.signature.signer == rita


def test_a_new_reader_reads_again_from_baseline_the_case_of_a_reader_who_left_after_signing(world, client):
    ready(world, "BL")
    ready(world, "W6", day=42)
    for reader in (world.rhea, world.ravi):
        save_and_sign(reader, task_of(reader, "BL"), baseline_content(task_of(reader, "BL")))
    baseline_result = TimepointResult.objects.get(timepoint__visit__code="BL")
    save_and_sign(world.ravi, task_of(world.ravi, "W6"), follow_up_content(task_of(world.ravi, "W6"), "16.1", "8.4"))
    rhea_w6 = task_of(world.rhea, "W6")
    read_services.read_save(actor=world.rhea, task_id=rhea_w6.pk, raw=follow_up_content(rhea_w6, "16.1", "8.4"))
    revoke(world, world.rhea)
    rita = newcomer(world, "rita")

    client.force_login(world.alice)
    page = client.get(reverse("read-design", args=["ALPHA"])).content.decode()
    assert "the new reader reads its 2 visits again from baseline" in page
    old = rhea_w6.assignment
    holder = assignment_replace(actor=world.alice, assignment_id=old.pk, trial=world.trial, reader=rita)

    old.refresh_from_db()
    assert old.retired_at is not None and holder.slot == old.slot and holder.case_label == old.case_label
    rhea_w6.refresh_from_db()
    assert rhea_w6.state == "withdrawn" and not Read.objects.filter(task=rhea_w6).exists()
    assert Read.objects.get(task__assignment=old, state="signed").signature.signer == world.rhea  # stays on record
    assert {t.timepoint.visit.code: t.state for t in holder.tasks.all()} == {"BL": "open", "W6": "waiting"}
    event = AuditEvent.objects.get(action="assignment.replace")
    assert event.summary["read_again_from_baseline"] and event.summary["tasks"] == 2

    rita_bl = task_of(rita, "BL")
    save_and_sign(rita, rita_bl, baseline_content(rita_bl, t1="24.0"))
    assert TimepointResult.objects.get(timepoint__visit__code="BL") == baseline_result  # locked stays locked
    rita_w6 = task_of(rita, "W6")
    assert rita_w6.state == "open"
    save_and_sign(rita, rita_w6, follow_up_content(rita_w6, "16.8", "8.4"))  # PR, as reader 1 called it
    assert TimepointResult.objects.get(timepoint__visit__code="W6").source == "agreement"

    services.membership_grant(actor=world.alice, trial=world.trial, user=world.rhea, role=Role.READER)
    rhea_bl = Read.objects.get(task__assignment=old, state="signed").task
    with pytest.raises(InvalidState, match="went to another reader"):
        read_services.read_correct(actor=world.rhea, task_id=rhea_bl.pk)


def test_a_case_waiting_for_an_adjudication_goes_to_a_new_reader_only_once_it_is_decided(world, client):
    services.visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    for visit, day in (("BL", 0), ("W6", 42), ("W12", 84)):
        ready(world, visit, day=day)
    disagree_at_week_6(world)
    revoke(world, world.rhea)
    rita = newcomer(world, "rita")
    [row] = selectors.departures(world.trial)  # her Week 12 is open, and Week 6 waits for the adjudicator
    assert row["plan"].waits_for_adjudication and not row["candidates"]
    with pytest.raises(InvalidState, match="waits for an adjudication"):
        assignment_replace(actor=world.alice, assignment_id=row["assignment"].pk, trial=world.trial, reader=rita)


def test_a_case_goes_only_to_someone_in_the_role_who_does_not_read_it_already(world):
    ready(world, "BL")
    assignment = task_of(world.rhea, "BL").assignment
    revoke(world, world.rhea)
    for who in (world.ravi, world.quinn, world.otto):  # reads the case; a QC reviewer; from another trial
        with pytest.raises(ValidationFailed, match="who does not already read this case"):
            assignment_replace(actor=world.alice, assignment_id=assignment.pk, trial=world.trial, reader=who)
    with pytest.raises(ValidationFailed, match="No such reader assignment"):
        assignment_replace(actor=world.alice, assignment_id=assignment.pk, trial=world.other, reader=world.ravi)
    assert ReaderAssignment.objects.get(pk=assignment.pk).reader == world.rhea


def test_only_the_trial_admin_gives_a_case_away(world, client):
    ready(world, "BL")
    assignment = task_of(world.rhea, "BL").assignment
    revoke(world, world.rhea)
    rita = newcomer(world, "rita")
    url = reverse("read-assignment-replace", args=["ALPHA", assignment.pk])
    for who, status in ((world.ravi, 403), (world.ada, 403), (world.sam, 403), (world.cora, 403), (world.otto, 404)):
        client.force_login(who)
        assert client.post(url, {"reader": rita.pk}).status_code == status, who
    assert ReaderAssignment.objects.get(pk=assignment.pk).reader == world.rhea


def test_an_adjudication_of_an_adjudicator_who_left_goes_to_another_adjudicator(world):
    for visit, day in (("BL", 0), ("W6", 42)):
        ready(world, visit, day=day)
    disagree_at_week_6(world)
    adjudication = Adjudication.objects.get(subject__code=SUBJECT)
    revoke(world, world.ada, Role.ADJUDICATOR)
    with pytest.raises(NotFound):
        results.adjudicate(
            actor=world.ada,
            task_id=adjudication.task_id,
            choice="1",
            reason="T01",
            password=PASSWORD,
            meaning_confirmed=True,
        )
    abe = newcomer(world, "abe", Role.ADJUDICATOR)
    [row] = selectors.departures(world.trial)
    assert row["assignment"].pk == adjudication.task.assignment_id and row["candidates"] == [abe]

    assignment_replace(actor=world.alice, assignment_id=adjudication.task.assignment_id, trial=world.trial, reader=abe)
    results.adjudicate(
        actor=abe,
        task_id=adjudication.task_id,
        choice="1",
        reason="T01 is measured right.",
        password=PASSWORD,
        meaning_confirmed=True,
    )
    assert Adjudication.objects.get(pk=adjudication.pk).signature.signer == abe


def test_an_adjudicator_who_decided_earlier_visits_hands_on_only_the_open_adjudication(world):
    services.visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    for visit, day in (("BL", 0), ("W6", 42), ("W12", 84)):
        ready(world, visit, day=day)
    disagree_at_week_6(world)
    first = Adjudication.objects.get(subject__code=SUBJECT)
    results.adjudicate(
        actor=world.ada, task_id=first.task_id, choice="1", reason="T01.", password=PASSWORD, meaning_confirmed=True
    )
    save_and_sign(world.rhea, task_of(world.rhea, "W12"), follow_up_content(task_of(world.rhea, "W12"), "16.0", "8.0"))
    ravi_w12 = task_of(world.ravi, "W12")
    save_and_sign(world.ravi, ravi_w12, follow_up_content(ravi_w12, "16.0", "8.0", new="unequivocal"))
    second = Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True)
    assert second.task.assignment_id == first.task.assignment_id  # the subject keeps its adjudicator

    revoke(world, world.ada, Role.ADJUDICATOR)
    abe = newcomer(world, "abe", Role.ADJUDICATOR)
    [row] = selectors.departures(world.trial)
    assert not row["plan"].reread and row["plan"].open == 1 and row["candidates"] == [abe]
    holder = assignment_replace(actor=world.alice, assignment_id=row["assignment"].pk, trial=world.trial, reader=abe)
    results.adjudicate(
        actor=abe, task_id=second.task_id, choice="2", reason="New lesion.", password=PASSWORD, meaning_confirmed=True
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.signature.signer == abe and second.task.assignment == holder
    assert first.signature.signer == world.ada and first.task.assignment.reader == world.ada  # history stays hers
    assert not selectors.departures(world.trial)
