"""The inbox, query side: a query reaches the coordinators of its site in the application (top bar, inbox, home,
overview, Queries tab), not only by email; the site's answer puts it in the QC reviewers' inbox and the QC
worklist says so; acting on an entry takes it out."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import build_world, upload_files
from trials import qc_services, selectors
from trials.access import Actor
from trials.inbox import inbox_counts, inbox_entries
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Query, Timepoint

SUBJECT = "ALPHA-SEO-001"


@pytest.fixture
def world(db, stores, on_commit_now):
    return build_world()


def files(seed: str, slices: int = 3) -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=slices, seed=seed, study_date=date(2026, 3, 2))


@pytest.fixture
def query(world) -> Query:
    """The QC reviewer failed Seoul's baseline: a query waits for Seoul's coordinator."""
    timepoint = upload_files(world.cora, SUBJECT, files("inbox"))
    return qc_services.qc_fail(
        actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk), series=[], reason="Slices missing"
    )


def counts(user):
    return inbox_counts(Actor(user=user))


def entries(user, **kw):
    return inbox_entries(Actor(user=user), **kw)


def test_a_new_query_waits_for_the_coordinators_of_its_site_and_nobody_else(world, query):
    [entry] = entries(world.cora)
    assert (entry.kind, entry.trial, entry.title) == ("query", "ALPHA", query.heading)
    assert entry.about == f"{SUBJECT} · Baseline"
    assert entry.url == reverse("query-detail", args=["ALPHA", query.pk])
    assert entry.due == query.due_date and not entry.overdue
    assert (counts(world.cora).total, counts(world.cora).overdue) == (1, 0)
    assert counts(world.cora).by_kind["query"] == 1
    # Busan's coordinator, the reviewer who asked, the readers, the sponsor, the admin and OMEGA's admin: nothing.
    for name in ("bruno", "quinn", "rhea", "ada", "sam", "alice", "otto"):
        assert counts(world.people[name]).total == 0, name
        assert entries(world.people[name]) == [], name


def test_a_query_past_its_due_date_is_overdue_and_listed_first(world, query):
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=2))
    timepoint = upload_files(world.cora, "ALPHA-SEO-002", files("inbox-2"))
    later = qc_services.qc_fail(
        actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk), series=[], reason="Wrong phase"
    )
    got = entries(world.cora)
    assert [e.url for e in got] == [
        reverse("query-detail", args=["ALPHA", query.pk]),
        reverse("query-detail", args=["ALPHA", later.pk]),
    ]
    assert [e.overdue for e in got] == [True, False]
    assert (counts(world.cora).total, counts(world.cora).overdue) == (2, 1)


def test_the_sites_answer_moves_the_query_to_the_qc_reviewers_inbox_and_closing_it_empties_both(world, query):
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    assert counts(world.cora).total == 0
    [entry] = entries(world.quinn)
    assert (entry.kind, entry.url, entry.overdue) == (
        "answered",
        reverse("query-detail", args=["ALPHA", query.pk]),
        False,
    )
    assert entry.since == query.messages.order_by("at").last().at
    assert counts(world.quinn).by_kind["answered"] == 1
    assert counts(world.alice).total == 0  # the trial admin does not review QC

    qc_services.query_close(actor=world.quinn, query=query)
    assert counts(world.quinn).total == 0 and counts(world.cora).total == 0


def test_an_answered_query_past_its_due_date_is_not_overdue_for_the_reviewer(world, query):
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=2))
    assert counts(world.quinn).overdue == 0 and not entries(world.quinn)[0].overdue


def test_the_inbox_of_one_trial_holds_only_that_trials_entries(world, query):
    assert len(entries(world.cora, trial=world.trial)) == 1
    assert entries(world.cora, trial=world.other) == []


def test_a_coordinator_whose_role_is_revoked_no_longer_sees_the_query(world, query):
    from trials import services
    from trials.models import Membership

    services.membership_revoke(actor=world.alice, membership=Membership.objects.get(user=world.cora))
    assert counts(world.cora).total == 0 and entries(world.cora) == []


# --- the QC worklist ----------------------------------------------------------------------------------------


def worklist_row(world) -> Timepoint:
    return selectors.qc_worklist(actor=Actor(user=world.quinn), trial=world.trial).get(subject__code=SUBJECT)


def test_the_qc_worklist_says_answered_once_the_site_has_answered(world, query):
    assert worklist_row(world).state == "query_open" and not worklist_row(world).answered
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    row = worklist_row(world)
    assert row.state == "query_open" and row.answered


def test_a_re_upload_answers_the_query_and_the_worklist_says_so(world, query):
    upload_files(world.cora, SUBJECT, files("inbox-again", slices=4))
    row = worklist_row(world)
    assert row.state == "uploaded" and row.answered
    assert [e.kind for e in entries(world.quinn)] == ["answered"]


def test_a_second_open_query_keeps_the_visit_waiting_for_the_site(world, query):
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    Query.objects.create(
        timepoint=query.timepoint, title="Another", due_date=query.due_date, opened_by=world.quinn, state="open"
    )
    assert not worklist_row(world).answered


# --- pages ----------------------------------------------------------------------------------------------------


def test_the_top_bar_counts_what_waits_and_the_inbox_page_lists_it(world, query, client):
    client.force_login(world.cora)
    page = client.get(reverse("home")).content.decode()
    assert 'id="inbox-count">1<' in page
    assert query.heading in page and reverse("query-detail", args=["ALPHA", query.pk]) in page  # home's section
    inbox = client.get(reverse("inbox")).content.decode()
    assert query.heading in inbox and "Query to answer" in inbox and f"{SUBJECT} · Baseline" in inbox
    client.force_login(world.bruno)
    page = client.get(reverse("home")).content.decode()
    assert 'id="inbox-count"' not in page and query.heading not in page
    assert "Nothing waits for you." in client.get(reverse("inbox")).content.decode()


def test_the_overdue_count_is_marked_in_the_top_bar(world, query, client):
    Query.objects.filter(pk=query.pk).update(due_date=timezone.localdate() - timedelta(days=1))
    client.force_login(world.cora)
    page = client.get(reverse("inbox")).content.decode()
    assert 'class="inbox-count has-overdue" id="inbox-count">1<' in page
    assert "1 entry is past its due date." in page


def test_the_trial_overview_and_the_queries_tab_show_the_query_waiting(world, query, client):
    client.force_login(world.cora)
    overview = client.get(reverse("trial-detail", args=["ALPHA"])).content.decode()
    assert "Waiting for you" in overview and query.heading in overview
    queries = client.get(reverse("query-list", args=["ALPHA"])).content.decode()
    assert "1 query waits for you; it is marked below." in queries
    assert queries.count('class="tag query-waiting"') == 1
    client.force_login(world.quinn)  # open: it waits for the site, not for the reviewer
    queries = client.get(reverse("query-list", args=["ALPHA"])).content.decode()
    assert "waits for you" not in queries and "query-waiting" not in queries


def test_the_qc_worklist_page_shows_answered_waiting_for_you(world, query, client):
    client.force_login(world.quinn)
    url = reverse("qc-worklist", args=["ALPHA"])
    assert "Answered, waiting for you" not in client.get(url).content.decode()
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    assert "Answered, waiting for you" in client.get(url).content.decode()


def test_the_inbox_page_narrows_to_one_trial_and_one_kind(world, query, client):
    client.force_login(world.cora)
    assert query.heading in client.get(reverse("inbox"), {"trial": "ALPHA", "kind": "query"}).content.decode()
    assert query.heading not in client.get(reverse("inbox"), {"kind": "read"}).content.decode()
    assert query.heading in client.get(reverse("inbox"), {"trial": "OMEGA"}).content.decode()  # not hers: all


def test_the_top_bar_counts_in_a_few_queries(world, query, client, django_assert_max_num_queries):
    """The context processor runs on every page: one query per kind of entry (five), whatever the person holds."""
    with django_assert_max_num_queries(5):
        assert counts(world.cora).total == 1
    with django_assert_max_num_queries(5):
        assert counts(world.alice).total == 0


# --- the API --------------------------------------------------------------------------------------------------


def test_the_inbox_api_lists_the_entries_and_counts(world, query, api):
    data = api.as_(world.cora).get(reverse("api-inbox")).json()
    assert (data["total"], data["overdue"], data["counts"]) == (1, 0, {"query": 1})
    [entry] = data["results"]
    assert entry["kind"] == "query" and entry["label"] == "Query to answer"
    assert entry["url"] == reverse("query-detail", args=["ALPHA", query.pk])
    assert api.as_(world.bruno).get(reverse("api-inbox")).json()["total"] == 0
    assert api.as_(world.cora).get(reverse("api-inbox"), {"trial": "OMEGA"}).status_code == 404


def test_a_coordinators_token_reaches_the_query_and_a_token_of_another_trial_does_not(world, query, api):
    from rest_framework.test import APIClient

    from trials import services
    from trials.models import Membership

    _token, key = services.api_token_create(
        actor=world.cora, membership=Membership.objects.get(user=world.cora), name="sync"
    )
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(reverse("api-inbox")).json()["counts"] == {"query": 1}
    _token, key = services.api_token_create(
        actor=world.otto, membership=Membership.objects.get(user=world.otto), name="omega"
    )
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get(reverse("api-inbox")).json()["total"] == 0


def test_the_inbox_speaks_korean(world, query, client):
    from django.conf import settings

    client.force_login(world.cora)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get(reverse("inbox")).content.decode()
    for english in ("Inbox", "Query to answer", "waiting for you", "Waiting since", "What waits for you"):
        assert english not in page, english
    assert "받은 일" in page and "답변할 질의" in page and "내 처리 대기" in page
    client.force_login(world.quinn)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    qc_services.query_answer(actor=world.cora, query=query, body="Sent again.")
    assert "답변됨, 내 처리 대기" in client.get(reverse("qc-worklist", args=["ALPHA"])).content.decode()


def test_a_sliced_or_distinct_source_is_counted_by_the_rows_it_lists(world, query):
    """A source may be a slice (a top bar link counts its first row) or DISTINCT: each is counted through the rows
    it lists, as `.count()` would, in the union's row (a sliced one used to fail: it cannot be reordered)."""
    from trials.inbox import _counted, tally_of

    sources = {
        "sliced": Query.objects.order_by("pk")[:1],
        "distinct": Query.objects.filter(timepoint__subject__code=SUBJECT).distinct(),
        "none": Query.objects.none()[:1],
    }
    for name, qs in sources.items():
        rows = list(_counted(name, tally_of(qs)))
        assert [row["total"] for row in rows] == ([qs.count()] if name != "none" else []), name
    assert Query.objects.count() == 1
