"""The top bar's inbox count, counted in one query for every kind of entry, stays exactly what each kind's own
count says, for every role, in a world of two trials where some people hold a role in both.

The reference is the count as it was made before, one query a kind: each kind's queryset counted on its own.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from reads import transfers
from reads.inbox import tasks_to_do, transfers_ready
from reads.models import Adjudication, ReadTask, Transfer
from tests.conftest import upload_files
from tests.reads.flow import (
    SUBJECT,
    adjudicate,
    baseline_content,
    follow_up_content,
    ready,
    save_and_sign,
    task_of,
)
from trials import qc_services
from trials import services as trial_services
from trials.access import Actor
from trials.inbox import inbox_counts, queries_to_answer, queries_to_review
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import ApiToken, Membership, Query, Role, Site, Timepoint


def one_kind(qs, overdue: Q | None = None) -> tuple[int, int]:
    """A kind counted on its own, as inbox_counts counted each before: (total, overdue)."""
    if overdue is None:
        return qs.order_by().count(), 0
    counts = qs.order_by().aggregate(total=Count("pk"), overdue=Count("pk", filter=overdue))
    return counts["total"], counts["overdue"]


def kind_by_kind(actor: Actor) -> dict[str, tuple[int, int]]:
    late = Q(due_date__lt=timezone.localdate())
    return {
        "query": one_kind(queries_to_answer(actor), late),
        "answered": one_kind(queries_to_review(actor)),
        "read": one_kind(tasks_to_do(actor, ReadTask.Kind.READ), late),
        "adjudication": one_kind(tasks_to_do(actor, ReadTask.Kind.ADJUDICATION), late),
        "transfer": one_kind(transfers_ready(actor)),
    }


class Inboxes:
    """Every person's inbox counts, checked against each kind counted on its own at every look."""

    def __init__(self, world, tokens: dict[str, ApiToken]):
        self.world, self.tokens = world, tokens
        self.last: dict[str, dict[str, int]] = {}

    def actors(self):
        for name, user in self.world.people.items():
            yield name, Actor(user=user)
        for name, token in self.tokens.items():
            yield f"{name}'s token", Actor(user=token.membership.user, token=token)

    def look(self) -> dict[str, dict[str, int]]:
        """Each actor's counts by kind, after checking them (and the total and overdue) against the reference."""
        seen = {}
        for name, actor in self.actors():
            counts, reference = inbox_counts(actor), kind_by_kind(actor)
            assert counts.by_kind == {kind: total for kind, (total, _) in reference.items()}, name
            assert counts.total == sum(total for total, _ in reference.values()), name
            assert counts.overdue == sum(overdue for _, overdue in reference.values()), name
            seen[name] = counts.by_kind
        return seen

    def changed(self) -> dict[tuple[str, str], int]:
        """What moved since the last look: {(person, kind): by how much}."""
        now = self.look()
        moved = {
            (name, kind): n - self.last.get(name, {}).get(kind, 0)
            for name, by_kind in now.items()
            for kind, n in by_kind.items()
            if n != self.last.get(name, {}).get(kind, 0)
        }
        self.last = now
        return moved


def files(seed: str) -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=3, seed=seed, study_date=date(2026, 3, 2))


def query_at(world, coordinator, subject_code: str, seed: str) -> Query:
    timepoint = upload_files(coordinator, subject_code, files(seed))
    reviewer = world.quinn
    return qc_services.qc_fail(
        actor=reviewer, timepoint=Timepoint.objects.get(pk=timepoint.pk), series=[], reason="Slices missing"
    )


@pytest.fixture
def two_trials(world):
    """OMEGA (otto's) takes some of ALPHA's cast too: Seoul's coordinator at its site, the QC reviewer, a reader of
    ALPHA as its QC reviewer, the sponsor viewer."""
    omega_site = Site.objects.get(trial=world.other)
    grants = [("cora", Role.SITE_COORDINATOR, [omega_site]), ("quinn", Role.QC_REVIEWER, [])]
    grants += [("rhea", Role.QC_REVIEWER, []), ("sam", Role.SPONSOR_VIEWER, [])]
    for name, role, sites in grants:
        trial_services.membership_grant(
            actor=world.otto, trial=world.other, user=world.people[name], role=role, sites=sites
        )
    tokens = {}
    for name, trial in (("cora", world.trial), ("sam", world.trial), ("quinn", world.other)):
        membership = Membership.objects.get(user=world.people[name], trial=trial)
        tokens[name], _key = trial_services.api_token_create(
            actor=world.alice if trial == world.trial else world.otto, membership=membership, name="client"
        )
    return world


def test_every_kind_goes_up_when_an_entry_appears_and_down_when_it_is_done_for_every_role(two_trials):
    world = two_trials
    omega_subject = world.subjects["OMEGA"].code
    tokens = {t.membership.user.email.split("@")[0]: t for t in ApiToken.objects.all()}
    inboxes = Inboxes(world, tokens)
    assert inboxes.changed() == {}  # nothing waits for anyone

    # Queries: one at Seoul in ALPHA, one at OMEGA's site; Seoul's coordinator has both to answer.
    alpha_query = query_at(world, world.cora, "ALPHA-SEO-002", "q-alpha")
    assert inboxes.changed() == {("cora", "query"): 1, ("cora's token", "query"): 1}
    omega_query = query_at(world, world.cora, omega_subject, "q-omega")
    assert inboxes.changed() == {("cora", "query"): 1}  # her token is ALPHA's
    # Past its due date: overdue (checked in look()).
    Query.objects.filter(pk=omega_query.pk).update(due_date=timezone.localdate() - timedelta(days=1))
    assert inboxes.changed() == {} and inbox_counts(Actor(user=world.cora)).overdue == 1

    # Answered: out of the coordinator's inbox, into the QC reviewers' (each trial's own).
    qc_services.query_answer(actor=world.cora, query=alpha_query, body="Sent again.")
    assert inboxes.changed() == {
        ("cora", "query"): -1,
        ("cora's token", "query"): -1,
        ("quinn", "answered"): 1,
    }
    qc_services.query_answer(actor=world.cora, query=omega_query, body="Sent again.")
    assert inboxes.changed() == {
        ("cora", "query"): -1,
        ("quinn", "answered"): 1,
        ("quinn's token", "answered"): 1,
        ("rhea", "answered"): 1,  # ALPHA's reader reviews OMEGA's QC
    }
    qc_services.query_close(actor=world.quinn, query=Query.objects.get(pk=alpha_query.pk))
    assert inboxes.changed() == {("quinn", "answered"): -1}
    qc_services.query_close(actor=world.rhea, query=Query.objects.get(pk=omega_query.pk))
    assert inboxes.changed() == {("quinn", "answered"): -1, ("quinn's token", "answered"): -1, ("rhea", "answered"): -1}

    # Reads: baseline ready, a read for each reader; signing takes it out.
    ready(world, "BL")
    assert inboxes.changed() == {("rhea", "read"): 1, ("ravi", "read"): 1}
    ReadTask.objects.filter(assignment__reader=world.ravi).update(due_date=timezone.localdate() - timedelta(days=3))
    assert inboxes.changed() == {} and inbox_counts(Actor(user=world.ravi)).overdue == 1
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    assert inboxes.changed() == {("rhea", "read"): -1, ("ravi", "read"): -1}

    # Week 6 read apart: an adjudication for the adjudicator, until she decides.
    ready(world, "W6", day=42)
    assert inboxes.changed() == {("rhea", "read"): 1, ("ravi", "read"): 1}
    for reader, (t1, t2) in ((world.rhea, ("15.0", "8.0")), (world.ravi, ("30.0", "13.0"))):
        task = task_of(reader, "W6")
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    assert inboxes.changed() == {("rhea", "read"): -1, ("ravi", "read"): -1, ("ada", "adjudication"): 1}
    adjudicate(world, Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True), "1", "Closer.")
    assert inboxes.changed() == {("ada", "adjudication"): -1}

    # Transfers: the sponsor's of each trial; the admin's own request is hers too; downloading takes it out.
    alpha_transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    assert inboxes.changed() == {("sam", "transfer"): 1, ("sam's token", "transfer"): 1}
    omega_transfer = transfers.transfer_request(actor=world.otto, trial=world.other)
    assert inboxes.changed() == {("sam", "transfer"): 1, ("otto", "transfer"): 1}
    transfers.transfer_open(actor=world.sam, transfer=Transfer.objects.get(pk=alpha_transfer.pk)).close()
    assert inboxes.changed() == {("sam", "transfer"): -1, ("sam's token", "transfer"): -1}
    transfers.transfer_open(actor=world.otto, transfer=Transfer.objects.get(pk=omega_transfer.pk)).close()
    assert inboxes.changed() == {("otto", "transfer"): -1}


def test_the_inbox_is_counted_in_one_query_whatever_waits(two_trials, django_assert_num_queries):
    world = two_trials
    query_at(world, world.cora, "ALPHA-SEO-002", "q-one")
    ready(world, "BL")
    inbox_counts(Actor(user=world.cora))  # the content types' cache
    for person in world.people.values():
        with django_assert_num_queries(1):
            inbox_counts(Actor(user=person))
