"""The operators' admin (/operator/): operators never make anyone's one-time codes or authenticators, and
everything they do to accounts, devices and lock-out records is in the audit trail under their name."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from ctims.models import AuditEvent
from tests.conftest import authenticator_of, make_user


@pytest.fixture
def oscar(world, client):
    """An operator, logged in to the admin with both factors."""
    oscar = make_user("oscar", is_staff=True, is_superuser=True)
    client.force_login(oscar)
    return oscar


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- one-time codes and authenticators are the person's own ----------------------------------------------------


def test_an_operator_cannot_add_recovery_codes_for_someone(world, client, oscar):
    url = "/operator/otp_static/staticdevice/add/"
    assert client.get(url).status_code == 403
    answer = client.post(
        url,
        {
            "user": world.rhea.pk,
            "name": "backup",
            "confirmed": "on",
            "token_set-TOTAL_FORMS": "1",
            "token_set-INITIAL_FORMS": "0",
            "token_set-0-token": "chosen123",
        },
    )
    assert answer.status_code == 403
    assert not StaticDevice.objects.filter(user=world.rhea).exists() and not StaticToken.objects.exists()


def test_an_operator_cannot_add_an_authenticator_for_someone(world, client, oscar):
    url = "/operator/otp_totp/totpdevice/add/"
    assert client.get(url).status_code == 403
    answer = client.post(
        url, {"user": world.cora.pk, "name": "mine", "key": "3132333435363738393031323334353637383930"}
    )
    assert answer.status_code == 403
    assert not TOTPDevice.objects.filter(user=world.cora).exists()


def test_an_operator_sees_but_cannot_change_a_device(world, client, oscar):
    device = authenticator_of(world.rhea)
    url = f"/operator/otp_totp/totpdevice/{device.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and device.key.encode() not in page.content
    answer = client.post(url, {"user": oscar.pk, "name": "taken", "confirmed": "on", "digits": 6, "step": 30})
    assert answer.status_code == 403
    device.refresh_from_db()
    assert device.user == world.rhea and device.name == "authenticator"


def test_setting_a_persons_password_in_the_admin_is_audited_as_the_operators(world, client, oscar):
    password = "Operator-Chose-2026!"
    answer = client.post(
        f"/operator/ctims/user/{world.rhea.pk}/password/",
        {"password1": password, "password2": password, "usable_password": "true"},
    )
    assert answer.status_code == 302, answer.content[:600]
    world.rhea.refresh_from_db()
    assert world.rhea.check_password(password)
    (event,) = events("user.password_set")
    assert event.actor == oscar and event.object_id == str(world.rhea.pk)
    assert event.summary["email"] == world.rhea.email
    assert password not in str(event.summary) and world.rhea.password not in str(event.summary)


def test_a_refused_password_form_records_nothing(world, client, oscar):
    answer = client.post(
        f"/operator/ctims/user/{world.rhea.pk}/password/",
        {"password1": "short", "password2": "short", "usable_password": "true"},
    )
    assert answer.status_code == 200
    assert not events("user.password_set")


def test_deleting_an_account_in_the_admin_is_audited(world, client, oscar):
    nobody = make_user("nobody")
    answer = client.post(f"/operator/ctims/user/{nobody.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    (event,) = events("user.delete")
    assert event.actor == oscar and event.object_id == str(nobody.pk) and event.summary["email"] == nobody.email
