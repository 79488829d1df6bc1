"""The operators' admin (/operator/): operators never make anyone's one-time codes or authenticators, and
everything they do to accounts, devices and lock-out records is in the audit trail under their name."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from ctims.models import AuditEvent, User
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


def test_an_account_is_deactivated_never_deleted_so_its_user_id_is_never_issued_again(world, client, oscar):
    # 21 CFR 11.100(a): a user ID is one person's for good. Deleting an account freed its email for a new one.
    nobody = make_user("nobody")
    assert client.get(f"/operator/ctims/user/{nobody.pk}/delete/").status_code == 403
    assert client.post(f"/operator/ctims/user/{nobody.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [nobody.pk], "post": "yes"}
    client.post("/operator/ctims/user/", bulk)
    assert User.objects.filter(pk=nobody.pk).exists() and not events("user.delete")


def test_an_accounts_user_id_cannot_be_changed_and_given_to_someone_else(world, client, oscar):
    # Renaming rhea's email would free it for a new account, which the trail and her signatures would then name.
    rhea = world.rhea
    answer = client.post(
        f"/operator/ctims/user/{rhea.pk}/change/",
        {"email": "someone.else@example.org", "full_name": rhea.full_name, "is_active": "on", "_save": "Save"},
    )
    assert answer.status_code == 302, answer.content[:800]
    rhea.refresh_from_db()
    assert rhea.email == "rhea@example.org"
    assert not User.objects.filter(email="someone.else@example.org").exists()


# --- deletions and account changes say what they were ------------------------------------------------------------


def test_deleting_a_lost_authenticator_is_audited_with_whose_it_was(world, client, oscar):
    device = authenticator_of(world.rhea)
    answer = client.post(f"/operator/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    (event,) = events("two_factor.device_delete")
    assert event.actor == oscar and event.object_id == str(world.rhea.pk)
    assert event.summary["email"] == world.rhea.email and event.summary["device"] == "authenticator"


def test_deleting_devices_in_bulk_records_each(world, client, oscar):
    devices = [authenticator_of(world.rhea), authenticator_of(world.ravi)]
    answer = client.post(
        "/operator/otp_totp/totpdevice/",
        {"action": "delete_selected", "_selected_action": [d.pk for d in devices], "post": "yes"},
    )
    assert answer.status_code == 302
    assert {e.summary["email"] for e in events("two_factor.device_delete")} == {world.rhea.email, world.ravi.email}


def _locked_out(client, email):
    client.logout()
    for _ in range(5):
        client.post(reverse("login"), {"username": email, "password": "wrong-password"})


def test_clearing_a_lock_out_is_audited_with_the_record_it_erased(world, client, oscar):
    from axes.models import AccessAttempt

    _locked_out(client, world.cora.email)
    attempt = AccessAttempt.objects.get(username=world.cora.email)
    client.force_login(oscar)
    answer = client.post(f"/operator/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not AccessAttempt.objects.exists()
    (event,) = events("login.lockout_clear")
    assert event.actor == oscar
    assert event.summary["username"] == world.cora.email and event.summary["failures"] == 5
    assert event.summary["ip_address"] == "127.0.0.1" and "wrong-password" not in str(event.summary)


def test_clearing_lock_outs_in_bulk_records_each(world, client, oscar):
    from axes.models import AccessAttempt

    _locked_out(client, world.cora.email)
    _locked_out(client, world.bruno.email)
    client.force_login(oscar)
    answer = client.post(
        "/operator/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True))},
    )
    assert answer.status_code == 200  # the confirmation page
    answer = client.post(
        "/operator/axes/accessattempt/",
        {
            "action": "delete_selected",
            "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert answer.status_code == 302 and not AccessAttempt.objects.exists()
    assert {e.summary["username"] for e in events("login.lockout_clear")} == {world.cora.email, world.bruno.email}


def test_the_log_in_logs_cannot_be_erased_or_changed_in_the_admin(world, client, oscar):
    from axes.models import AccessFailureLog, AccessLog
    from django.utils import timezone

    row = {"username": world.cora.email, "ip_address": "127.0.0.1", "user_agent": "", "http_accept": "*/*"}
    failure = AccessFailureLog.objects.create(**row, path_info="/accounts/login/", attempt_time=timezone.now())
    log = AccessLog.objects.create(**row, path_info="/accounts/login/", attempt_time=timezone.now())
    assert client.post(f"/operator/axes/accessfailurelog/{failure.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/operator/axes/accesslog/{log.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AccessFailureLog.objects.filter(pk=failure.pk).exists() and AccessLog.objects.filter(pk=log.pk).exists()


def test_an_account_change_records_old_and_new_values_but_never_the_password(world, client, oscar):
    cora = world.cora
    answer = client.post(
        f"/operator/ctims/user/{cora.pk}/change/",
        {"email": cora.email, "full_name": "Cora Kim", "is_active": "on", "is_staff": "on", "_save": "Save"},
    )
    assert answer.status_code == 302, answer.content[:800]
    event = events("user.update")[-1]
    assert event.actor == oscar
    assert event.summary["changes"] == {"full_name": ["Cora", "Cora Kim"], "is_staff": [False, True]}
    assert "password" not in str(event.summary) and cora.password not in str(event.summary)


def test_last_login_and_date_joined_are_not_editable(world, client, oscar):
    cora = world.cora
    joined = cora.date_joined
    answer = client.post(
        f"/operator/ctims/user/{cora.pk}/change/",
        {
            "email": cora.email,
            "full_name": cora.full_name,
            "is_active": "on",
            "last_login_0": "2020-01-01",
            "last_login_1": "00:00:00",
            "date_joined_0": "2020-01-01",
            "date_joined_1": "00:00:00",
            "_save": "Save",
        },
    )
    assert answer.status_code == 302, answer.content[:800]
    cora.refresh_from_db()
    assert cora.date_joined == joined and cora.last_login is None


def test_groups_made_changed_and_deleted_in_the_admin_are_audited_with_their_permissions(world, client, oscar):
    from django.contrib.auth.models import Group, Permission

    permission = Permission.objects.get(codename="add_trial")
    answer = client.post("/operator/auth/group/add/", {"name": "Set-up staff", "permissions": [permission.pk]})
    assert answer.status_code == 302
    group = Group.objects.get(name="Set-up staff")
    [made] = events("group.create")
    assert made.actor == oscar and made.summary["name"] == "Set-up staff"
    assert made.summary["permissions"] == [str(permission)]
    answer = client.post(f"/operator/auth/group/{group.pk}/change/", {"name": "Set-up", "permissions": []})
    assert answer.status_code == 302
    [changed] = events("group.update")
    assert changed.summary["changes"] == {"name": ["Set-up staff", "Set-up"], "permissions": [[str(permission)], []]}
    answer = client.post(f"/operator/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302 and not Group.objects.exists()
    [deleted] = events("group.delete")
    assert deleted.actor == oscar and deleted.summary["name"] == "Set-up"


def test_an_account_made_in_the_admin_takes_an_email_no_one_holds_in_any_case(world, client, oscar):
    # Two accounts "RHEA@example.org" and "rhea@example.org" would be one user ID to people (and to the log-in
    # form), two to the audit trail and the signatures.
    form = {"full_name": "Another", "password1": "A-long-passphrase-9", "password2": "A-long-passphrase-9"}
    form["usable_password"] = "true"
    refused = client.post("/operator/ctims/user/add/", form | {"email": world.rhea.email.upper()})
    assert refused.status_code == 200 and User.objects.filter(email__iexact=world.rhea.email).count() == 1
    made = client.post("/operator/ctims/user/add/", form | {"email": "New.Person@Example.org"})
    assert made.status_code == 302, made.content[:800]
    assert User.objects.filter(email="new.person@example.org").exists()  # one spelling, as invitations keep it
