"""An invitation stands for what its trial admin means now: removing the role, or inviting again, withdraws the
links sent before; accepting adds to what the person holds, and the trail names who did what."""

from __future__ import annotations

import pytest

from ctims.models import AuditEvent
from tests.trials.durability import free_port
from trials import services
from trials.models import Invitation, Membership, Role


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


def test_the_people_page_lists_only_invitations_that_stand_and_withdraws_one(world, client):
    first, _ = invite(world, "new4@example.org", [world.seo])
    second, second_secret = invite(world, "new4@example.org", [world.bus])  # the first is withdrawn by this
    client.force_login(world.alice)
    page = client.get("/trials/ALPHA/people/").content.decode()
    assert f"/people/invitations/{second.pk}/withdraw/" in page
    assert f"/people/invitations/{first.pk}/withdraw/" not in page  # withdrawn when the second was sent
    response = client.post(f"/trials/ALPHA/people/invitations/{second.pk}/withdraw/")
    assert response.status_code == 302
    assert services.invitation_find(second_secret) is None
    after = client.get("/trials/ALPHA/people/").content.decode()
    assert "was withdrawn; its link no longer works" in after and "/withdraw/" not in after
    event = AuditEvent.objects.filter(action="invitation.withdraw").latest("pk")
    assert event.actor == world.alice and event.summary["why"] == "withdrawn by a trial admin"
    client.force_login(world.cora)  # not a trial admin: nothing to withdraw
    assert client.post(f"/trials/ALPHA/people/invitations/{first.pk}/withdraw/").status_code in (403, 404)


@pytest.mark.usefixtures("on_commit_now")
def test_an_invitation_whose_email_cannot_be_sent_is_kept_and_the_admin_is_told(world, client, settings):
    """The mail relay refuses (or is not there): the invitation was stored and then the page was a server error,
    saying nothing of either."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5  # nothing listens
    client.force_login(world.alice)
    response = client.post(
        "/trials/ALPHA/people/",
        {"email": "new9@example.org", "full_name": "New Nine", "role": "qc_reviewer"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "its email could not be sent" in page
    assert "was sent to" not in page
    assert Invitation.objects.filter(email="new9@example.org", withdrawn_at=None).count() == 1
