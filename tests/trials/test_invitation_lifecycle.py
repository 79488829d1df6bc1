"""An invitation stands for what its trial admin means now: removing the role, or inviting again, withdraws the
links sent before; accepting adds to what the person holds, and the trail names who did what."""

from __future__ import annotations

import pytest

from ctims.models import AuditEvent
from trials import services
from trials.models import Membership, Role


def invite(world, email, sites, role=Role.SITE_COORDINATOR):
    return services.invitation_create(
        actor=world.alice, trial=world.trial, email=email, full_name="New", role=role, sites=sites
    )


@pytest.fixture
def newcomer():
    return services.User.objects.create_user("new3@example.org", "pw-New3-2026!x", full_name="New Three")


def test_a_removed_role_is_not_taken_back_with_a_link_sent_before(world, newcomer):
    first, first_secret = invite(world, newcomer.email, [world.seo])
    _second, second_secret = invite(world, newcomer.email, [world.bus])
    # Inviting again withdrew the first link: the newest invitation is the one that stands.
    assert services.invitation_find(first_secret) is None
    first.refresh_from_db()
    assert first.withdrawn_at is not None
    membership = services.invitation_accept(invitation=services.invitation_find(second_secret), user=newcomer)
    services.membership_revoke(actor=world.alice, membership=membership)
    _third, third_secret = services.invitation_create(  # another role: not what was removed, left standing
        actor=world.alice, trial=world.trial, email=newcomer.email, full_name="N", role=Role.QC_REVIEWER
    )
    assert services.invitation_find(third_secret) is not None
    assert not Membership.objects.filter(user=newcomer, trial=world.trial, role=Role.SITE_COORDINATOR).exists()
    withdrawn = AuditEvent.objects.filter(action="invitation.withdraw").count()
    assert withdrawn == 1  # the first, when the second was sent


def test_removing_a_role_withdraws_its_open_invitations(world, newcomer):
    membership = services.membership_grant(
        actor=world.alice, trial=world.trial, user=newcomer, role=Role.SITE_COORDINATOR, sites=[world.seo]
    )
    _invitation, secret = invite(world, newcomer.email, [world.bus])  # sent, not yet accepted
    services.membership_revoke(actor=world.alice, membership=membership)
    assert services.invitation_find(secret) is None
    event = AuditEvent.objects.filter(action="invitation.withdraw").latest("pk")
    assert event.actor == world.alice


def test_accepting_adds_the_invited_sites_and_the_trail_names_the_person_who_accepted(world, newcomer):
    services.membership_grant(
        actor=world.alice, trial=world.trial, user=newcomer, role=Role.SITE_COORDINATOR, sites=[world.seo]
    )
    _invitation, secret = invite(world, newcomer.email, [world.bus])
    membership = services.invitation_accept(invitation=services.invitation_find(secret), user=newcomer)
    assert sorted(membership.sites.values_list("code", flat=True)) == ["BUS", "SEO"]  # Seoul kept, not replaced
    grant = AuditEvent.objects.filter(action="membership.update").latest("pk")
    assert grant.actor == newcomer  # the person who accepted, not the admin who invited


@pytest.mark.usefixtures("on_commit_now")
def test_the_invitation_names_the_sites_it_offers(world, mailoutbox, client):
    _invitation, secret = invite(world, "someone@example.org", [world.bus])
    assert "Busan Hospital" in mailoutbox[0].body
    page = client.get(f"/trials/invitations/{secret}/").content.decode()
    assert "Busan Hospital" in page
