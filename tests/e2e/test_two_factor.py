"""Two-factor sign-in in a real browser: a reader enrols an authenticator at the first log-in (typing the secret
shown beside the QR code), keeps the recovery codes, logs in again with the app's code and once with a recovery
code, and signs a read with the password and a one-time code where the trial asks for one."""

from __future__ import annotations

import base64
import re

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from reads import read_services
from reads.models import Read
from reads.services import read_design_set
from tests.conftest import PASSWORD, build_world, current_code
from tests.e2e.conftest import click_to_page, enter_user_id, screenshot
from tests.reads.flow import baseline_content, ready, task_of


@pytest.fixture
def world(transactional_db, stores):
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w


def password_step(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    click_to_page(page)


def enter_code(page, code: str) -> None:
    page.fill("input[name=code]", code)
    click_to_page(page)


def sign_with(page, code: str) -> None:
    enter_user_id(page, "read")
    page.fill("#read-password", PASSWORD)
    page.fill("#read-otp", code)
    page.check("#read-meaning")
    expect(page.locator("#read-sign-button")).to_be_enabled()
    page.click("#read-sign-button")


def log_out(page) -> None:
    page.context.clear_cookies()


def app_code(secret: str) -> str:
    """What an authenticator app given `secret` (base32, as the page shows it) displays now."""
    text = secret.replace(" ", "")
    key = base64.b32decode(text + "=" * (-len(text) % 8))
    return f"{TOTP(key).token():06d}"


def test_a_reader_enrols_logs_in_with_the_app_and_a_recovery_code_and_signs_with_a_code(world, page):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    world.trial.two_factor_at_signing = True
    world.trial.save()

    # The first log-in: the password, then the enrolment page with the QR code and the secret as text.
    password_step(page, "rhea@example.org")
    expect(page).to_have_url(re.compile(r"/accounts/two-factor/enrol/"))
    expect(page.locator("img[src^='data:image/svg+xml']")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    screenshot(page, "two-factor-enrol")
    page.fill("input[name=code]", app_code(secret))
    click_to_page(page)
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    screenshot(page, "two-factor-recovery-codes")
    page.click("text=I have kept them: continue")
    expect(page.locator("main")).to_contain_text("Your trials")

    # Again, with the app's code (the next one: the first was used at enrolment).
    log_out(page)
    password_step(page, "rhea@example.org")
    expect(page).to_have_url(re.compile(r"/accounts/two-factor/\?"))
    device = TOTPDevice.objects.get(user=world.rhea, confirmed=True)
    enter_code(page, current_code(device))
    assert "/accounts/" not in page.url

    # Without the phone: a recovery code, once.
    log_out(page)
    password_step(page, "rhea@example.org")
    enter_code(page, codes[0])
    assert "/accounts/" not in page.url
    log_out(page)
    password_step(page, "rhea@example.org")
    enter_code(page, codes[0])
    expect(page.locator("main")).to_contain_text("not correct, or was already used")
    StaticDevice.objects.get(user=world.rhea).throttle_reset()  # stands for waiting after a wrong code
    enter_code(page, codes[1])
    assert "/accounts/" not in page.url

    # Signing asks for the code as well: a wrong one signs nothing.
    page.goto(reverse("read-task", args=[task.pk]))
    sign_with(page, "000000")
    expect(page.locator("#read-sign-form")).to_contain_text("one-time code is not correct")
    assert Read.objects.get(task=task).state == "draft"
    device.refresh_from_db()
    device.throttle_reset()  # stands for the moment django-otp makes a person wait after a wrong code
    sign_with(page, current_code(device))
    page.wait_for_url(f"**{reverse('read-worklist')}")
    expect(page.locator(".messages")).to_contain_text("Signed")
    assert Read.objects.get(task=task).state == "signed"
