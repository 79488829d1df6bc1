"""Trial set-up services: what they create, and the clear refusals that change nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from ctims.exceptions import InvalidState, NotPermitted, ValidationFailed
from ctims.models import AuditEvent
from trials import services
from trials.access import Actor
from trials.models import Membership, Role, Subject, Timepoint, Trial
from trials.selectors import subject_list


def refused(call, match: str, error: type[Exception] = ValidationFailed):
    """Run a service that must refuse: check the message and that nothing was written."""
    before = (AuditEvent.objects.count(), Trial.objects.count(), Subject.objects.count(), Membership.objects.count())
    with pytest.raises(error, match=match) as info:
        call()
    after = (AuditEvent.objects.count(), Trial.objects.count(), Subject.objects.count(), Membership.objects.count())
    assert before == after
    return info.value


def test_a_new_trial_gets_a_random_256_bit_key_and_its_creator_as_admin(world):
    assert len(bytes(world.trial.pseudonym_key)) == 32
    assert bytes(world.trial.pseudonym_key) != bytes(world.other.pseudonym_key)
    assert Membership.objects.filter(trial=world.trial, user=world.alice, role=Role.TRIAL_ADMIN).exists()
    assert "pseudonym" not in repr(world.trial) and bytes(world.trial.pseudonym_key).hex() not in repr(world.trial)


def test_it_refuses_a_duplicate_trial_code(world):
    error = refused(
        lambda: services.trial_create(actor=world.alice, code="alpha", title="X", sponsor="S", protocol_number="P"),
        "already exists",
    )
    assert "code" in error.fields


def test_it_refuses_a_malformed_trial_code(world):
    refused(
        lambda: services.trial_create(actor=world.alice, code="a b!", title="X", sponsor="S", protocol_number="P"),
        "upper-case",
    )


@pytest.mark.parametrize("pattern", ["{trial}-{site}", "{trial}-{n:03d}-{foo}", "{n:03q}"])
def test_it_refuses_a_subject_code_pattern_that_cannot_number_subjects(world, pattern):
    refused(
        lambda: services.trial_create(
            actor=world.alice, code="NEW", title="X", sponsor="S", protocol_number="P", subject_code_pattern=pattern
        ),
        "pattern",
    )


@pytest.mark.parametrize(
    "pattern",
    [
        "{trial}/{n}",  # a subject whose pages and API no URL can reach
        "<b>{n}</b>",
        "{trial} {site} {n}",
        "-{n}",
        "{n:999999d}",  # every enrolment would fail
        "{n:999999999999d}",  # a terabyte to format
        "{n:c}",
        "{n:e}",
        "{n:%}",
        "{n:,}",
        "{trial:>40}-{n}",
        "{trial!r}-{n}",
    ],
)
def test_it_refuses_a_subject_code_pattern_whose_codes_no_url_image_or_sdtm_file_can_hold(world, pattern):
    error = refused(
        lambda: services.trial_create(
            actor=world.alice, code="NEW", title="X", sponsor="S", protocol_number="P", subject_code_pattern=pattern
        ),
        "subject code",
    )
    assert list(error.fields) == ["subject_code_pattern"]
    trial = services.trial_create(actor=world.alice, code="NEW", title="X", sponsor="S", protocol_number="P")
    refused(lambda: services.trial_update(actor=world.alice, trial=trial, subject_code_pattern=pattern), "subject code")


@pytest.mark.parametrize("pattern", ["{n:x}", "P.{n:05d}", "{trial}_{site}_{n}", "{n:#X}"])
def test_a_subject_code_pattern_of_letters_digits_and_whole_number_formats_is_accepted(world, pattern):
    trial = services.trial_create(
        actor=world.alice, code="NEW", title="X", sponsor="S", protocol_number="P", subject_code_pattern=pattern
    )
    site = services.site_create(actor=world.alice, trial=trial, code="S1", name="S", country="KR")
    subject = services.subject_enroll(actor=world.alice, site=site)
    assert subject.code == pattern.format(trial="NEW", site="S1", n=1)


def test_it_refuses_a_subject_code_pattern_whose_codes_are_too_long_with_the_trials_code(world):
    long_code = "L" * 32
    error = refused(
        lambda: services.trial_create(
            actor=world.alice,
            code=long_code,
            title="X",
            sponsor="S",
            protocol_number="P",
            subject_code_pattern="{trial}{trial}-{n}",
        ),
        "at most 64",
    )
    assert "subject_code_pattern" in error.fields


def test_enrolment_refuses_a_code_the_pattern_makes_too_long_or_unsafe(world):
    trial = services.trial_create(
        actor=world.alice,
        code="L" * 32,
        title="X",
        sponsor="S",
        protocol_number="P",
        subject_code_pattern="{trial}-{site}-{n:020d}",
    )
    site = services.site_create(actor=world.alice, trial=trial, code="S" * 32, name="S", country="KR")
    refused(lambda: services.subject_enroll(actor=world.alice, site=site), "at most 64")
    # A pattern set before patterns were checked: enrolment refuses it, and it stops no other change.
    Trial.objects.filter(pk=world.other.pk).update(subject_code_pattern="{trial}/{n}")
    world.other.refresh_from_db()
    refused(lambda: services.subject_enroll(actor=world.otto, site=world.other.sites.get()), "cannot be enrolled")
    assert services.trial_update(actor=world.otto, trial=world.other, title="Renamed").title == "Renamed"


def test_it_refuses_a_duplicate_site_code(world):
    refused(
        lambda: services.site_create(actor=world.alice, trial=world.trial, code="seo", name="X", country="KR"), "exists"
    )


def test_the_same_site_code_may_exist_in_another_trial(world):
    assert world.other.sites.filter(code="SEO").exists()


@pytest.mark.parametrize("country", ["Korea", "ZZ", "XX", "UK"])
def test_it_refuses_a_country_that_is_not_an_iso_code(world, country):
    # "ZZ" and "UK" have the form of a code but name no country in ISO 3166-1 (the kingdom is GB).
    refused(
        lambda: services.site_create(actor=world.alice, trial=world.trial, code="X", name="X", country=country), "ISO"
    )
    assert not world.trial.sites.filter(code="X").exists()


def test_a_site_in_a_country_with_a_lower_case_code_is_added_under_its_code(world):
    site = services.site_create(actor=world.alice, trial=world.trial, code="X", name="X", country="gb")
    assert site.country.code == "GB"


def test_it_refuses_overlapping_visit_windows(world):
    error = refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W8", label="Week 8", order=3, target_day=50, window_before=10
        ),
        "overlaps",
    )
    assert "window_before" in error.fields


def test_it_refuses_a_visit_whose_day_contradicts_its_order(world):
    refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W2", label="Week 2", order=3, target_day=14
        ),
        "later than",
    )


def test_it_refuses_a_duplicate_visit_order(world):
    refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="X", label="X", order=1, target_day=200
        ),
        "exists",
    )


@pytest.mark.parametrize(
    "label, sdtm_name, other",
    [
        ("Week 40", "WEEK 6", "W6"),  # the SDTM visit name of W6, which takes it from its label "Week 6"
        ("Sixth week", "week 6", "W6"),
        ("Sixth week", " Week 6 ", "W6"),
        ("40주차", "baseline", "BL"),
    ],
)
def test_it_refuses_a_visit_whose_sdtm_visit_name_another_visit_already_has(world, label, sdtm_name, other):
    error = refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W40", label=label, sdtm_name=sdtm_name, order=9, target_day=280
        ),
        "SDTM",
    )
    assert other in error.message and error.fields["sdtm_name"] == [f"Already the SDTM visit name of visit {other}."]
    assert not world.trial.visits.filter(code="W40").exists()


def test_it_refuses_a_visit_whose_sdtm_visit_name_is_another_visits_code(world):
    services.visit_create(
        actor=world.alice, trial=world.trial, code="W8", label="8주차", order=3, target_day=56
    )  # no English name: its SDTM visit name is its code, W8
    error = refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W9", label="9주차", sdtm_name="w8", order=4, target_day=63
        ),
        "SDTM",
    )
    assert error.fields["sdtm_name"] == ["Already the SDTM visit name of visit W8."]


def test_it_refuses_a_visit_whose_label_gives_the_sdtm_visit_name_of_another(world):
    services.visit_create(
        actor=world.alice, trial=world.trial, code="W8", label="8주차", sdtm_name="Week 8", order=3, target_day=56
    )
    error = refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W9", label="Week 8", order=4, target_day=63
        ),
        "SDTM",
    )
    assert "sdtm_name" in error.fields


@pytest.mark.parametrize("label", ["Week 6", "week 6 "])
def test_it_refuses_a_visit_label_another_visit_has(world, label):
    error = refused(
        lambda: services.visit_create(
            actor=world.alice, trial=world.trial, code="W42", label=label, sdtm_name="WEEK 42", order=9, target_day=294
        ),
        "already labelled",
    )
    assert error.fields == {"label": ["Already the label of visit W6."]}


def test_a_visit_name_may_repeat_in_another_trial(world):
    visit = services.visit_create(
        actor=world.otto, trial=world.other, code="W6", label="Week 6", order=2, target_day=42
    )
    assert visit.sdtm_visit == world.trial.visits.get(code="W6").sdtm_visit == "WEEK 6"


def test_a_new_visit_gets_a_timepoint_for_every_enrolled_subject(world):
    visit = services.visit_create(
        actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84, window_before=7
    )
    assert Timepoint.objects.filter(visit=visit, state="expected").count() == world.trial.subjects.count() == 3


def test_subject_codes_follow_the_pattern_and_number_per_site(world):
    assert sorted(world.trial.subjects.values_list("code", flat=True)) == [
        "ALPHA-BUS-001",
        "ALPHA-SEO-001",
        "ALPHA-SEO-002",
    ]
    subject = services.subject_enroll(actor=world.alice, site=world.bus)
    assert subject.code == "ALPHA-BUS-002"
    assert [tp.visit.code for tp in subject.timepoints.order_by("visit__order")] == ["BL", "W6"]


def test_a_trial_wide_pattern_numbers_across_sites(world):
    trial = services.trial_create(
        actor=world.alice, code="GAMMA", title="G", sponsor="S", protocol_number="P", subject_code_pattern="G{n:04d}"
    )
    a = services.site_create(actor=world.alice, trial=trial, code="A", name="A", country="KR")
    b = services.site_create(actor=world.alice, trial=trial, code="B", name="B", country="KR")
    codes = [services.subject_enroll(actor=world.alice, site=s).code for s in (a, b, a)]
    assert codes == ["G0001", "G0002", "G0003"]


def test_a_closed_trial_takes_no_new_subject_visit_or_protocol_but_stays_readable(world):
    services.trial_update(actor=world.alice, trial=world.trial, status=Trial.Status.CLOSED)
    before = (Subject.objects.count(), AuditEvent.objects.count())
    with pytest.raises(InvalidState, match="ALPHA is closed"):
        services.subject_enroll(actor=world.alice, site=world.seo)
    with pytest.raises(InvalidState, match="ALPHA is closed"):
        services.visit_create(
            actor=world.alice, trial=world.trial, code="W24", label="Week 24", order=9, target_day=168
        )
    with pytest.raises(InvalidState, match="ALPHA is closed"):
        services.protocol_create(
            actor=world.alice,
            visit=world.trial.visits.first(),
            modality="MR",
            body_region="head",
            contrast="either",
            max_slice_thickness_mm="5",
        )
    assert (Subject.objects.count(), AuditEvent.objects.count()) == before
    assert subject_list(actor=Actor(world.alice), trial=world.trial).count() == world.trial.subjects.count() > 0
    services.trial_update(actor=world.alice, trial=world.trial, status=Trial.Status.ACTIVE)  # reopened
    assert services.subject_enroll(actor=world.alice, site=world.seo).trial == world.trial


def test_a_trial_in_set_up_takes_subjects(world):
    assert world.trial.status == Trial.Status.SETUP  # the tests and a new trial's first subjects rely on it
    assert services.subject_enroll(actor=world.alice, site=world.seo).code.startswith("ALPHA-SEO-")


def test_the_pattern_cannot_change_after_enrollment(world):
    refused(
        lambda: services.trial_update(actor=world.alice, trial=world.trial, subject_code_pattern="{trial}{n}"),
        "cannot change",
    )


def test_it_refuses_a_role_for_a_site_of_another_trial(world):
    omega_site = world.other.sites.get()
    error = refused(
        lambda: services.membership_grant(
            actor=world.alice, trial=world.trial, user=world.otto, role=Role.SITE_COORDINATOR, sites=[omega_site]
        ),
        "another trial",
    )
    assert "sites" in error.fields


def test_it_refuses_a_coordinator_without_a_site(world):
    refused(
        lambda: services.membership_grant(
            actor=world.alice, trial=world.trial, user=world.otto, role=Role.SITE_COORDINATOR
        ),
        "at least one site",
    )


def test_it_refuses_sites_for_a_role_that_has_none(world):
    refused(
        lambda: services.membership_grant(
            actor=world.alice, trial=world.trial, user=world.otto, role=Role.READER, sites=[world.seo]
        ),
        "Only site coordinators",
    )


def test_it_refuses_to_remove_the_last_trial_admin(world):
    """Refused for the trial's state (no other active trial admin), not for bad input: InvalidState, a 409."""
    membership = Membership.objects.get(trial=world.trial, role=Role.TRIAL_ADMIN)
    refused(
        lambda: services.membership_revoke(actor=world.alice, membership=membership),
        "at least one trial admin",
        InvalidState,
    )


def test_granting_and_revoking_sites_changes_what_a_coordinator_sees(world):
    cora = Actor(world.cora)
    assert {s.site.code for s in subject_list(actor=cora, trial=world.trial)} == {"SEO"}
    services.membership_grant(
        actor=world.alice, trial=world.trial, user=world.cora, role=Role.SITE_COORDINATOR, sites=[world.seo, world.bus]
    )
    cora = Actor(world.cora)
    assert {s.site.code for s in subject_list(actor=cora, trial=world.trial)} == {"SEO", "BUS"}
    services.membership_grant(
        actor=world.alice, trial=world.trial, user=world.cora, role=Role.SITE_COORDINATOR, sites=[world.bus]
    )
    cora = Actor(world.cora)
    assert {s.site.code for s in subject_list(actor=cora, trial=world.trial)} == {"BUS"}
    assert not world.cora.has_perm("trials.upload_to_site", world.seo)


def test_revoking_one_role_keeps_the_permissions_of_another(world):
    services.membership_grant(actor=world.alice, trial=world.trial, user=world.quinn, role=Role.SPONSOR_VIEWER)
    qc = Membership.objects.get(user=world.quinn, trial=world.trial, role=Role.QC_REVIEWER)
    services.membership_revoke(actor=world.alice, membership=qc)
    quinn = Actor(world.quinn)
    assert quinn.has_trial_perm(world.trial, "view_results")
    assert quinn.has_trial_perm(world.trial, "view_trial")
    assert not quinn.has_trial_perm(world.trial, "view_all_subjects")


def test_an_invitation_is_emailed_with_a_link_and_grants_nothing_until_accepted(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, secret = services.invitation_create(
            actor=world.alice, trial=world.trial, email="New.Person@Example.org", full_name="New Person", role="reader"
        )
    assert invitation.email == "new.person@example.org"
    assert not get_user_model().objects.filter(email="new.person@example.org").exists()
    assert len(mailoutbox) == 1 and f"/trials/invitations/{secret}/" in mailoutbox[0].body
    assert mailoutbox[0].to == ["new.person@example.org"]
    assert secret not in invitation.secret_hash


def test_an_accepted_invitation_grants_the_role_once(world):
    invitation, secret = services.invitation_create(
        actor=world.alice, trial=world.trial, email="otto@example.org", full_name="", role="sponsor"
    )
    membership = services.invitation_accept(invitation=services.invitation_find(secret), user=world.otto)
    assert membership.role == "sponsor" and membership.user == world.otto
    assert services.invitation_find(secret) is None


def test_only_the_invited_address_may_accept(world):
    invitation, _secret = services.invitation_create(
        actor=world.alice, trial=world.trial, email="otto@example.org", full_name="", role="reader"
    )
    with pytest.raises(NotPermitted, match="another email address"):
        services.invitation_accept(invitation=invitation, user=world.cora)
    assert not Membership.objects.filter(user=world.cora, role="reader").exists()


def test_a_grant_that_fails_invites_nobody(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        refused(
            lambda: services.invitation_create(
                actor=world.alice,
                trial=world.trial,
                email="new@example.org",
                full_name="New",
                role=Role.SITE_COORDINATOR,
            ),
            "at least one site",
        )
    assert mailoutbox == []
    assert not get_user_model().objects.filter(email="new@example.org").exists()
