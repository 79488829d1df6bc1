"""What a trial's page costs the database to decide what the person may see: whether their role includes subjects
is read from the trial's permissions the page already loaded (`Actor.access`), not asked again each time.

The answers are compared with the rule as it was asked before, one query each: the trial permission
`view_all_subjects`, or any of the trial's sites with `view_site_subjects`.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from trials import selectors
from trials import services as trial_services
from trials.access import Actor
from trials.models import Membership

# A query asking whether the person holds some permission at one of the trial's sites, on its own.
SITES_EXIST = 'SELECT 1 AS "a" FROM "trials_site"'
# A read of the person's permissions on a trial: the page's own (`trial_access`), or guardian's (`get_user_perms`).
PERMISSION_READS = ('SELECT "guardian_userobjectpermission"', 'SELECT "auth_permission"')


def sees_subjects_as_before(actor: Actor, trial) -> bool:
    return actor.has_trial_perm(trial, "view_all_subjects") or actor.sites(trial, "view_site_subjects").exists()


def sees_schedule_as_before(actor: Actor, trial) -> bool:
    return (
        actor.has_trial_perm(trial, "manage_trial")
        or actor.has_trial_perm(trial, "view_results")
        or sees_subjects_as_before(actor, trial)
    )


@pytest.fixture
def tokens(world) -> dict[str, Actor]:
    """A token of each of ALPHA's roles, narrowing its holder to ALPHA and that role."""
    actors = {}
    for name in ("alice", "cora", "quinn", "rhea", "ada", "sam"):
        membership = Membership.objects.get(user=world.people[name], trial=world.trial)
        token, _key = trial_services.api_token_create(actor=world.alice, membership=membership, name="client")
        actors[f"{name}'s token"] = Actor(user=world.people[name], token=token)
    return actors


def test_who_sees_subjects_and_the_schedule_is_unchanged_for_every_role_and_token(world, tokens):
    actors = {name: Actor(user=user) for name, user in world.people.items()} | tokens
    seen = {}
    for name, actor in actors.items():
        for trial in (world.trial, world.other):
            before = sees_subjects_as_before(Actor(user=actor.user, token=actor.token), trial)
            assert selectors.sees_subjects(actor=actor, trial=trial) == before, (name, trial.code)
            schedule = sees_schedule_as_before(Actor(user=actor.user, token=actor.token), trial)
            assert selectors.sees_schedule(actor=actor, trial=trial) == schedule, (name, trial.code)
            seen[name, trial.code] = before
    # The rule itself, as the roles state it: admins, QC reviewers and coordinators (of some site) see subjects.
    subjects_in_alpha = {name for (name, code), sees in seen.items() if sees and code == "ALPHA"}
    assert subjects_in_alpha == {
        "alice",
        "cora",
        "bruno",
        "quinn",
        "alice's token",
        "cora's token",
        "quinn's token",
    }
    assert {name for (name, code), sees in seen.items() if sees and code == "OMEGA"} == {"otto"}


def test_a_coordinator_without_a_site_left_sees_no_subjects(world):
    """Her sites taken away (a coordinator's membership with no site): no subjects, as before."""
    membership = Membership.objects.get(user=world.cora, trial=world.trial)
    trial_services.membership_grant(
        actor=world.alice, trial=world.trial, user=world.bruno, role=membership.role, sites=[world.seo]
    )
    trial_services.membership_revoke(actor=world.alice, membership=membership)
    for user in (world.cora, world.bruno):
        actor = Actor(user=user)
        assert selectors.sees_subjects(actor=actor, trial=world.trial) == sees_subjects_as_before(
            Actor(user=user), world.trial
        )


PAGES = {
    "trial": ("trial-detail", ["ALPHA"]),
    "subjects": ("trial-subjects", ["ALPHA"]),
    "subject": ("subject-detail", ["ALPHA", "ALPHA-SEO-001"]),
}


@pytest.mark.parametrize("name", ["alice", "cora", "quinn", "rhea", "ada", "sam"])
def test_a_trial_page_does_not_ask_again_whether_the_person_sees_subjects(world, client, name):
    client.force_login(world.people[name])
    for page, (url, args) in PAGES.items():
        client.get(reverse(url, args=args))  # warms the content types' cache
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse(url, args=args))
        assert response.status_code in (200, 403), (page, response.status_code)
        asked = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(SITES_EXIST)]
        assert asked == [], (page, asked)


@pytest.mark.parametrize("name", ["alice", "cora", "quinn", "rhea", "ada", "sam"])
def test_a_trial_page_reads_the_persons_trial_permissions_once(world, client, name):
    """Its role checks (`has_trial_perm`) answer from the permissions the page already read with the trial, not
    from a query of guardian's of their own."""
    client.force_login(world.people[name])
    for page, (url, args) in PAGES.items():
        client.get(reverse(url, args=args))
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse(url, args=args))
        assert response.status_code in (200, 403), (page, response.status_code)
        permission_reads = [q["sql"][:80] for q in queries.captured_queries if q["sql"].startswith(PERMISSION_READS)]
        assert len(permission_reads) == 1, (page, permission_reads)


@pytest.mark.parametrize("name", ["alice", "cora", "bruno", "quinn"])
def test_the_upload_page_reads_who_uploads_at_the_subjects_site_from_the_trials_permissions(world, client, name):
    """Seoul's coordinator may upload for a Seoul subject; Busan's, the trial admin and the QC reviewer may not
    (403), as when it was asked of the database on its own."""
    client.force_login(world.people[name])
    url = reverse("timepoint-upload", args=["ALPHA", "ALPHA-SEO-001", "BL"])
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    expected = 200 if name == "cora" else (404 if name == "bruno" else 403)  # Busan's sees no Seoul subject
    assert response.status_code == expected
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith(SITES_EXIST)]


# A read of the sites on which the person holds a site permission, made on its own (`Actor.sites`).
SITE_IDS = ('SELECT 1 AS "a" FROM "trials_site"', 'SELECT "trials_site"."id" AS "pk" FROM "trials_site"')


@pytest.mark.parametrize("name", ["cora", "bruno", "quinn"])
def test_the_subject_and_query_pages_read_who_uploads_at_a_site_from_the_trials_permissions(
    world, client, stores, on_commit_now, name
):
    """ "Upload images" on the subject page and the answer form of a query go to the coordinators of the
    subject's site (Seoul's Cora), as when it was asked of the database on its own; neither asks it again."""
    from datetime import date

    from tests.conftest import upload_files
    from trials import qc_services
    from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
    from trials.models import Timepoint

    files = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="access", study_date=date(2026, 3, 2))
    timepoint = upload_files(world.cora, "ALPHA-SEO-001", files)
    query = qc_services.qc_fail(
        actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk), series=[], reason="Slices missing"
    )
    client.force_login(world.people[name])
    pages = {  # each page's URL, and what it offers the coordinators of the subject's site only
        "subject": (reverse("subject-detail", args=["ALPHA", "ALPHA-SEO-001"]), "Upload images"),
        "query": (reverse("query-detail", args=["ALPHA", query.pk]), reverse("query-answer", args=["ALPHA", query.pk])),
    }
    for page, (url, offered) in pages.items():
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        if response.status_code != 200:
            assert name == "bruno", (page, response.status_code)  # Busan's coordinator sees no Seoul subject
            continue
        asked = [q["sql"][:80] for q in queries.captured_queries if q["sql"].startswith(SITE_IDS)]
        assert asked == [], (page, asked)
        assert (offered in response.content.decode()) == (name == "cora"), page
