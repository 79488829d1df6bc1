"""Two-factor sign-in: enrolment at the first log-in, a code at every log-in, recovery codes, the trial's
setting of which roles must, operators always, and the code again at signing where the trial asks."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from ctims.models import AuditEvent
from tests.conftest import PASSWORD, authenticator_of, current_code, make_user, unverified_login


def log_in(client, user, next_url="/"):
    """The log-in page with the password only: what a person does before the second factor."""
    return client.post(reverse("login"), {"username": user.email, "password": PASSWORD, "next": next_url})


def enrol(client) -> tuple[TOTPDevice, list[str]]:
    page = client.get(reverse("two-factor-enrol"))
    assert page.status_code == 200
    assert b"data:image/svg+xml" in page.content
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page.content.decode()).group(1)
    device = TOTPDevice.objects.get(user=page.wsgi_request.user, confirmed=False)
    assert secret.replace(" ", "") in device.config_url
    answer = client.post(reverse("two-factor-enrol"), {"code": current_code(device), "next": "/reads/"})
    assert answer.status_code == 200, answer.content[:400]
    codes = re.findall(r'<li><code class="code">([a-z0-9]+)</code></li>', answer.content.decode())
    return TOTPDevice.objects.get(pk=device.pk), codes


def test_a_trial_admin_enrols_at_the_first_log_in_and_is_then_verified(world, client):
    assert log_in(client, world.alice, "/trials/ALPHA/").status_code == 302
    page = client.get("/trials/ALPHA/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/two-factor/?next=")
    assert client.get(page["Location"])["Location"].startswith("/accounts/two-factor/enrol/")
    device, codes = enrol(client)
    assert device.confirmed and len(codes) == 10
    assert client.get("/trials/ALPHA/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.enrol", actor=world.alice).exists()


def test_a_wrong_code_at_enrolment_changes_nothing(world, client):
    log_in(client, world.rhea)
    client.get(reverse("two-factor-enrol"))
    answer = client.post(reverse("two-factor-enrol"), {"code": "000000"})
    assert answer.status_code == 200 and b"not the one your app shows" in answer.content
    assert not TOTPDevice.objects.filter(user=world.rhea, confirmed=True).exists()
    assert client.get("/reads/").status_code == 302


def test_an_enrolled_person_enters_the_apps_code_at_every_log_in(world, client):
    device = authenticator_of(world.quinn)
    log_in(client, world.quinn)
    assert client.get("/trials/ALPHA/")["Location"].startswith("/accounts/two-factor/")
    wrong = client.post(reverse("two-factor"), {"code": "123456", "next": "/trials/ALPHA/"})
    assert wrong.status_code == 200 and client.get("/trials/ALPHA/").status_code == 302
    # After a wrong code django-otp refuses even the right one for a while (growing with each failure)...
    throttled = client.post(reverse("two-factor"), {"code": current_code(device), "next": "/trials/ALPHA/"})
    assert throttled.status_code == 200
    # ...which is over once that while has passed (here: the throttle is reset instead of waiting).
    device.refresh_from_db()
    device.throttle_reset()
    right = client.post(reverse("two-factor"), {"code": current_code(device), "next": "/trials/ALPHA/"})
    assert right.status_code == 302 and right["Location"] == "/trials/ALPHA/"
    assert client.get("/trials/ALPHA/").status_code == 200


def test_a_password_alone_cannot_enrol_another_app(world, client):
    authenticator_of(world.rhea)
    log_in(client, world.rhea)
    response = client.get(reverse("two-factor-enrol"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/two-factor/?")
    assert TOTPDevice.objects.filter(user=world.rhea).count() == 1


def test_a_recovery_code_logs_in_once(world, client):
    log_in(client, world.ada)
    _device, codes = enrol(client)
    client.post(reverse("logout"))
    log_in(client, world.ada)
    assert client.post(reverse("two-factor"), {"code": codes[0].upper(), "next": "/reads/"}).status_code == 302
    assert client.get("/reads/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.recovery_code_used").get().summary["left"] == 9
    client.post(reverse("logout"))
    log_in(client, world.ada)
    assert client.post(reverse("two-factor"), {"code": codes[0]}).status_code == 200  # used up
    assert client.get("/reads/").status_code == 302


def test_new_recovery_codes_replace_the_old_ones(world, client):
    log_in(client, world.ada)
    _device, old = enrol(client)
    fresh = client.post(reverse("two-factor-recovery-codes"))
    new = re.findall(r'<li><code class="code">([a-z0-9]+)</code></li>', fresh.content.decode())
    assert len(new) == 10 and not set(new) & set(old)


def test_roles_the_trial_does_not_ask_log_in_with_the_password(world, client):
    for person in (world.cora, world.sam):
        client.post(reverse("logout"))
        log_in(client, person)
        assert client.get("/trials/ALPHA/").status_code == 200, person


def test_the_trial_decides_which_roles_use_a_second_factor(world, client):
    world.trial.two_factor_roles = ["sponsor"]
    world.trial.save()
    log_in(client, world.rhea)
    assert client.get("/reads/").status_code == 200
    client.post(reverse("logout"))
    log_in(client, world.sam)
    assert client.get("/trials/ALPHA/").status_code == 302


def test_a_role_in_any_trial_that_asks_is_enough(world, client):
    """otto is trial admin of OMEGA only; OMEGA asks trial admins."""
    log_in(client, world.otto)
    assert client.get("/").status_code == 302


def test_operators_always_use_a_second_factor(world, client):
    oscar = make_user("oscar", is_staff=True, is_superuser=True)
    log_in(client, oscar, "/operator/")
    assert client.get("/operator/")["Location"].startswith("/accounts/two-factor/")


def test_the_api_and_dicomweb_refuse_an_unverified_session_with_the_error_shape(world, client):
    unverified_login(client, world.alice)
    for path in ("/api/trials/", "/dicomweb/trials/ALPHA/studies"):
        response = client.get(path)
        assert response.status_code == 403 and response.json()["error"]["code"] == "two_factor_required", path


def test_a_token_is_not_asked_for_a_code(world, api):
    from trials import services
    from trials.models import Membership

    membership = Membership.objects.get(user=world.alice, trial=world.trial)
    _token, key = services.api_token_create(actor=world.alice, membership=membership, name="script")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/trials/ALPHA/").status_code == 200
    unverified_login(api, world.alice)  # a session cookie beside the token changes nothing
    assert api.get("/api/trials/ALPHA/").status_code == 200


@pytest.mark.parametrize("header", ["Bearer anything", "Token anything"])
def test_an_authorization_header_does_not_lift_the_second_factor_from_a_session(world, client, header):
    """Found by a reader with the password only: any `Authorization: Bearer …` header on a page request made
    the two-factor check step aside (it is meant for token clients) while the page used the session, so every
    page, the audit export and the results CSV answered without the code. Such a request is judged by its token
    alone: the unverified session stands for no one, pages send it to log in, the API refuses the token."""
    unverified_login(client, world.alice)
    for path in ("/trials/ALPHA/", "/trials/ALPHA/people/", "/trials/ALPHA/audit/export.csv", "/reads/"):
        response = client.get(path, HTTP_AUTHORIZATION=header)
        assert response.status_code == 302, path
        assert response["Location"].startswith(("/accounts/login/", "/accounts/two-factor/")), path
    response = client.post("/trials/ALPHA/tokens/", {"name": "x", "role": "trial_admin"}, HTTP_AUTHORIZATION=header)
    assert response.status_code == 302 and not world.alice.memberships.filter(tokens__name="x").exists()
    for path in ("/api/trials/", "/dicomweb/trials/ALPHA/studies"):
        assert client.get(path, HTTP_AUTHORIZATION=header).status_code in (401, 403), path
    assert client.get("/trials/ALPHA/").status_code == 302  # and without the header, the code as always


def test_changing_the_password_needs_the_second_factor(world, client):
    unverified_login(client, world.alice)
    assert client.get(reverse("password_change"))["Location"].startswith("/accounts/two-factor/")


def test_the_code_shown_by_an_app_is_the_devices(world):
    """The tests' `current_code` is what an app with the device's secret shows (RFC 6238)."""
    device = authenticator_of(world.alice)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    assert current_code(device) == f"{totp.token():06d}"
    assert device.verify_token(current_code(device))


# --- signing ---------------------------------------------------------------------------------------------


@pytest.fixture
def reading(db, stores, on_commit_now):
    from reads.services import read_design_set
    from tests.conftest import build_world
    from tests.reads.flow import ready

    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    ready(w, "BL")
    return w


def _sign(reader, task, **extra):
    from reads import read_services
    from tests.reads.flow import baseline_content

    read_services.read_save(actor=reader, task_id=task.pk, raw=baseline_content(task))
    return read_services.read_sign(
        actor=reader,
        task_id=task.pk,
        password=PASSWORD,
        meaning_confirmed=True,
        confirmed_response="baseline",
        **extra,
    )


def test_where_the_trial_asks_signing_needs_the_one_time_code_too(reading):
    from ctims.signatures import SignatureRefused
    from tests.reads.flow import task_of

    reading.trial.two_factor_at_signing = True
    reading.trial.save()
    task = task_of(reading.rhea, "BL")
    device = authenticator_of(reading.rhea)
    with pytest.raises(SignatureRefused, match="one-time code"):
        _sign(reading.rhea, task)
    with pytest.raises(SignatureRefused, match="one-time code"):
        _sign(reading.rhea, task, second_factor="000000")
    read = _sign(reading.rhea, task, second_factor=current_code(device))
    assert read.state == "signed"


def test_a_trial_that_does_not_ask_signs_with_the_password(reading):
    from tests.reads.flow import task_of

    assert _sign(reading.rhea, task_of(reading.rhea, "BL")).state == "signed"


def test_the_read_page_asks_for_the_code_where_the_trial_does(reading, client):
    from tests.reads.flow import task_of

    task = task_of(reading.rhea, "BL")
    client.force_login(reading.rhea)
    assert b'name="otp_code"' not in client.get(reverse("read-task", args=[task.pk])).content
    reading.trial.two_factor_at_signing = True
    reading.trial.save()
    assert b'name="otp_code"' in client.get(reverse("read-task", args=[task.pk])).content


# --- the demo -------------------------------------------------------------------------------------------------


def test_the_demo_users_come_enrolled_and_load_demo_prints_their_secrets(db):
    from io import StringIO

    from django.core.management import call_command

    from ctims.models import User

    out = StringIO()
    call_command("load_demo", stdout=out)
    printed = out.getvalue()
    for email in ("admin@demo.ctims", "qc@demo.ctims", "reader1@demo.ctims", "adjudicator@demo.ctims"):
        device = TOTPDevice.objects.get(user__email=email, confirmed=True)
        secret = re.search(rf"{re.escape(email)}\s+([A-Z2-7 ]+)$", printed, re.M).group(1).replace(" ", "")
        assert f"secret={secret}" in device.config_url
    assert not TOTPDevice.objects.filter(user__email="sponsor@demo.ctims").exists()
    call_command("load_demo", stdout=StringIO())  # again: the same secrets
    assert TOTPDevice.objects.filter(user__email="admin@demo.ctims").count() == 1
    code = StringIO()
    call_command("two_factor_code", "reader1@demo.ctims", stdout=code)
    device = TOTPDevice.objects.get(user=User.objects.get(email="reader1@demo.ctims"))
    assert device.verify_token(code.getvalue().strip())


def test_the_demo_operator_reaches_the_operator_admin_after_the_second_factor(db, client):
    from io import StringIO

    from django.core.management import call_command

    from trials.demo import DEMO_OPERATOR

    out = StringIO()
    call_command("load_demo", stdout=out)
    printed = out.getvalue()
    assert DEMO_OPERATOR.email in printed and DEMO_OPERATOR.password in printed and "/operator/" in printed
    answer = client.post(
        reverse("login"), {"username": DEMO_OPERATOR.email, "password": DEMO_OPERATOR.password, "next": "/operator/"}
    )
    assert answer.status_code == 302
    assert client.get("/operator/")["Location"].startswith("/accounts/two-factor/")
    device = TOTPDevice.objects.get(user__email=DEMO_OPERATOR.email, confirmed=True)
    verified = client.post(reverse("two-factor"), {"code": current_code(device), "next": "/operator/"})
    assert verified["Location"] == "/operator/"
    assert client.get("/operator/").status_code == 200
    assert client.get("/operator/trials/trial/").status_code == 200
