"""A blinded role (reader, adjudicator) and a role that sees a trial's unblinded data (trial admin, site
coordinator, QC reviewer, sponsor viewer) are never held by one person in one trial: with both, a reader could
open the results, the sites and the real dates of the cases they read blind."""

from __future__ import annotations

import pytest

from ctims.exceptions import ValidationFailed
from trials import services
from trials.models import Membership, Role

BLINDED = (Role.READER, Role.ADJUDICATOR)
UNBLINDED = (Role.TRIAL_ADMIN, Role.SITE_COORDINATOR, Role.QC_REVIEWER, Role.SPONSOR_VIEWER)


def grant(world, user, role):
    sites = [world.seo] if role == Role.SITE_COORDINATOR else []
    return services.membership_grant(actor=world.alice, trial=world.trial, user=user, role=role, sites=sites)


@pytest.mark.parametrize("held", BLINDED)
@pytest.mark.parametrize("asked", UNBLINDED)
def test_a_reader_or_adjudicator_is_not_given_a_role_that_sees_unblinded_data(world, held, asked):
    person = world.rhea
    grant(world, person, held)
    with pytest.raises(ValidationFailed) as refused:
        grant(world, person, asked)
    assert "blind" in str(refused.value)
    assert not Membership.objects.filter(trial=world.trial, user=person, role=asked).exists()


@pytest.mark.parametrize("held", UNBLINDED)
@pytest.mark.parametrize("asked", BLINDED)
def test_a_person_who_sees_unblinded_data_is_not_made_a_reader_or_adjudicator(world, held, asked):
    person = world.quinn
    grant(world, person, held)
    with pytest.raises(ValidationFailed):
        grant(world, person, asked)


def test_the_invitation_is_refused_when_it_is_made_and_when_it_is_accepted(world):
    rhea = world.rhea  # a reader of the trial
    with pytest.raises(ValidationFailed):
        services.invitation_create(
            actor=world.alice, trial=world.trial, email=rhea.email.upper(), full_name="R", role=Role.SPONSOR_VIEWER
        )
    # Invited before she was a reader: her acceptance is refused, and the invitation stays unused.
    newcomer = services.User.objects.create_user("newcomer@example.org", "pw-Newcomer-2026!", full_name="N")
    invitation, _secret = services.invitation_create(
        actor=world.alice, trial=world.trial, email=newcomer.email, full_name="N", role=Role.SPONSOR_VIEWER
    )
    grant(world, newcomer, Role.READER)
    with pytest.raises(ValidationFailed):
        services.invitation_accept(invitation=invitation, user=newcomer)
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_roles_on_the_same_side_combine_and_other_trials_are_not_concerned(world):
    grant(world, world.rhea, Role.ADJUDICATOR)  # a reader who also adjudicates others' cases
    grant(world, world.quinn, Role.SPONSOR_VIEWER)  # a QC reviewer who also sees results
    services.membership_grant(actor=world.otto, trial=world.other, user=world.rhea, role=Role.SPONSOR_VIEWER)
