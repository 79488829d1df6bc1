"""Log-in lock-out, idle sessions, password strength, security headers and the production checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def login(client, email, password):
    return client.post(reverse("login"), {"username": email, "password": password})


def test_a_person_logs_in_with_email_and_password(world, client):
    response = login(client, "cora@example.org", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_the_email_is_matched_whatever_its_case_and_its_failures_count_as_one_address(world, client):
    """Invitations keep addresses in lower case, and people type them as they were invited (Cora@Example.org):
    the right password was refused, and each spelling had a lock-out counter of its own."""
    assert login(client, "Cora@Example.ORG", PASSWORD).status_code == 302
    client.logout()
    for spelling in ("CORA@example.org", "cora@EXAMPLE.org", "Cora@example.org", "cora@example.ORG"):
        assert login(client, spelling, "wrong-password").status_code == 200
    assert login(client, "cOrA@example.org", "wrong-password").status_code == 429  # the fifth, one address


def test_repeated_failures_lock_the_account_even_for_the_right_password(world, client):
    for _ in range(4):
        assert login(client, "cora@example.org", "wrong-password").status_code == 200
    assert login(client, "cora@example.org", "wrong-password").status_code == 429  # the fifth failure locks
    locked = login(client, "cora@example.org", PASSWORD)
    assert locked.status_code == 429
    assert b"locked" in locked.content.lower()
    assert "_auth_user_id" not in client.session


def test_failures_for_one_person_do_not_lock_another(world, client):
    for _ in range(5):
        login(client, "cora@example.org", "wrong-password")
    assert login(client, "bruno@example.org", PASSWORD).status_code == 302


def behind_nginx(client_address: str, spoofed: str = "") -> dict:
    """What gunicorn hands Django for a request through the nginx example: the proxy's own address, and the
    client's appended to whatever X-Forwarded-For the client sent ($proxy_add_x_forwarded_for)."""
    forwarded = f"{spoofed}, {client_address}" if spoofed else client_address
    return {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}


def test_behind_the_proxy_lock_outs_and_the_trail_take_the_clients_address_not_the_proxys(world, settings):
    """Behind nginx every request came from 127.0.0.1: an attacker's five wrong passwords locked the person out
    wherever they were, and the trail recorded the proxy's address for every log-in."""
    from django.test import Client

    from ctims.models import AuditEvent

    settings.PROXY_ADDRESSES = ["127.0.0.1", "::1"]
    attacker, cora = Client(), Client()
    for n in range(5):  # a different made-up X-Forwarded-For each time changes nothing: nginx's entry is last
        attacker.post(
            reverse("login"),
            {"username": "cora@example.org", "password": "wrong"},
            **behind_nginx("203.0.113.7", f"10.0.0.{n}"),
        )
    assert (
        attacker.post(
            reverse("login"), {"username": "cora@example.org", "password": PASSWORD}, **behind_nginx("203.0.113.7")
        ).status_code
        == 429
    )
    assert (
        cora.post(
            reverse("login"), {"username": "cora@example.org", "password": PASSWORD}, **behind_nginx("198.51.100.20")
        ).status_code
        == 302
    )
    assert AuditEvent.objects.filter(action="login").latest("seq").summary["ip_address"] == "198.51.100.20"
    assert AuditEvent.objects.filter(action="login.fail").latest("seq").summary["ip_address"] == "203.0.113.7"


def test_a_forwarded_address_counts_only_from_the_proxy(world, settings):
    """A client that reaches gunicorn directly (not through the proxy) cannot choose its address."""
    from django.test import Client

    from ctims.models import AuditEvent

    settings.PROXY_ADDRESSES = ["127.0.0.1", "::1"]
    direct = {"REMOTE_ADDR": "192.0.2.9", "HTTP_X_FORWARDED_FOR": "198.51.100.20"}
    Client().post(reverse("login"), {"username": "cora@example.org", "password": "wrong"}, **direct)
    assert AuditEvent.objects.filter(action="login.fail").latest("seq").summary["ip_address"] == "192.0.2.9"


def test_an_idle_session_ends(world, client, settings):
    client.force_login(world.cora)
    assert client.get(reverse("home")).status_code == 200
    session = client.session
    session["ctims_last_seen"] = time.time() - settings.SESSION_IDLE_TIMEOUT.total_seconds() - 5
    session.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_an_active_session_continues(world, client):
    client.force_login(world.cora)
    for _ in range(3):
        assert client.get(reverse("home")).status_code == 200


@pytest.mark.parametrize("weak", ["short1!A", "alllowercaseletters", "123456789012345", "password1234"])
def test_weak_passwords_are_refused(weak):
    with pytest.raises(ValidationError):
        validate_password(weak)


def test_a_strong_password_is_accepted():
    validate_password("Seoul-Imaging-2026")


def test_pages_carry_security_headers(world, client):
    client.force_login(world.alice)
    response = client.get(reverse("home"))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_SSL_REDIRECT=False)
def test_hsts_is_sent_over_https_in_production_settings(world, client):
    client.force_login(world.alice)
    response = client.get(reverse("home"), secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_production_settings_pass_the_deploy_checks():
    env = os.environ | {
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "ctims.example.org",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = os.environ | {"DEBUG": "False", "SECRET_KEY": ""}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_a_bad_boolean_setting_fails_loudly():
    env = os.environ | {"DEBUG": "yes"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "DEBUG must be True or False" in result.stderr


# --- Safe defaults (issue 12) --------------------------------------------------------------------------------


def _settings_of(env_changes: dict) -> str:
    """DEBUG and ALLOWED_HOSTS as a fresh process reads them from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE")}
    env |= {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": "sqlite:///:memory:",
    } | env_changes
    code = "import ctims.settings as s; print(s.DEBUG, s.ALLOWED_HOSTS)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_debug_is_off_unless_asked_for_and_only_loopback_names_are_served_by_default():
    assert _settings_of({}) == "False ['127.0.0.1', 'localhost', '[::1]']"
    assert _settings_of({"DEBUG": "True"}) == "True ['127.0.0.1', 'localhost', '[::1]']"


def test_make_run_turns_debug_on_for_the_embedded_default():
    makefile = (ROOT / "Makefile").read_text()
    run = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "manage.py runserver" in run and "DEBUG=True" in makefile


@pytest.mark.parametrize(
    "query",
    [
        {"offset": "99999999999999999999999"},
        {"limit": "99999999999999999999999"},
        {"limit": "-1"},
        {"offset": "ten"},
        {"limit": "0x10"},
    ],
)
def test_the_apis_paging_numbers_are_checked_with_the_error_shape(world, api, query):
    response = api.as_(world.alice).get(reverse("api-trials"), query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and set(error["fields"]) == set(query)


def test_the_api_still_pages_with_good_numbers(world, api):
    data = api.as_(world.alice).get(reverse("api-audit", args=["ALPHA"]), {"limit": "2", "offset": "1"}).json()
    assert len(data["results"]) == 2 and data["count"] > 3


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/reads/tasks/{HUGE}/"),
        ("get", f"/reads/tasks/{HUGE}/draft/"),
        ("get", f"/dicomweb/tasks/{HUGE}/studies"),
        ("get", f"/trials/ALPHA/queries/{HUGE}/"),
        ("get", f"/api/trials/ALPHA/uploads/{HUGE}/"),
        ("delete", f"/api/trials/ALPHA/memberships/{HUGE}/"),
        ("delete", f"/api/trials/ALPHA/tokens/{HUGE}/"),
        ("get", f"/reads/trials/ALPHA/results/{HUGE}/sr.dcm"),
        ("get", f"/api/trials/ALPHA/read-results/{HUGE}/sr/"),
    ],
)
def test_an_id_too_large_for_any_row_is_absent_not_a_server_error(world, client, method, path):
    client.force_login(world.alice)
    assert getattr(client, method)(path).status_code == 404


def test_a_missing_page_is_the_projects_own_404_without_the_url_list(world, client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Back to your trials" in response.content and b"URLconf" not in response.content
    api = client.get("/api/no-such-endpoint/")
    assert api.status_code == 404 and b"URLconf" not in api.content


@override_settings(ALLOWED_HOSTS=["*"], SITE_URL="https://ctims.example.org")
def test_a_password_reset_link_points_at_site_url_whatever_the_host_header(world, client, mailoutbox):
    response = client.post(reverse("password_reset"), {"email": "cora@example.org"}, HTTP_HOST="evil.example")
    assert response.status_code == 302
    (mail,) = mailoutbox
    assert "https://ctims.example.org/accounts/password/set/" in mail.body
    assert "evil.example" not in mail.body


def test_password_reset_emails_to_one_address_are_limited_whoever_asks(world, client, mailoutbox):
    """Found by asking 30 times in 2 s for one address, logged in as nobody: 30 emails went out. An address
    gets a few an hour; the page answers alike whatever happened (it says nothing of the address), each
    request is still audited, and another address is not held up."""
    from ctims.models import AuditEvent
    from ctims.views import RESET_EMAILS_PER_HOUR

    for _ in range(RESET_EMAILS_PER_HOUR + 5):
        response = client.post(reverse("password_reset"), {"email": "Cora@example.org"})
        assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mailoutbox) == RESET_EMAILS_PER_HOUR
    events = AuditEvent.objects.filter(action="user.password_reset_request")
    assert events.count() == RESET_EMAILS_PER_HOUR + 5
    assert [e.summary["sent"] for e in events.order_by("seq")][-2:] == [False, False]
    client.post(reverse("password_reset"), {"email": world.alice.email})
    assert len(mailoutbox) == RESET_EMAILS_PER_HOUR + 1 and mailoutbox[-1].to == [world.alice.email]
    from django.utils import translation

    from ctims.audit_display import summary_items

    with translation.override("ko"):
        assert "이메일 발송" in dict(summary_items(events.order_by("seq").last()))


def test_requests_refused_an_email_do_not_hold_the_limit_past_the_hour_of_the_emails_sent(
    world, client, mailoutbox, monkeypatch
):
    """Only the emails sent count: a script that keeps asking cannot keep the owner's address from ever getting
    one again (counting every request, each refused one moved the window on)."""
    from datetime import timedelta

    from django.utils import timezone

    from ctims.views import RESET_EMAILS_PER_HOUR

    start = timezone.now()
    for minutes in [0] * RESET_EMAILS_PER_HOUR + [50] * 5 + [61]:
        monkeypatch.setattr(timezone, "now", lambda minutes=minutes: start + timedelta(minutes=minutes))
        client.post(reverse("password_reset"), {"email": world.cora.email})
    assert len(mailoutbox) == RESET_EMAILS_PER_HOUR + 1


def test_pages_csvs_and_downloads_are_not_stored_by_any_cache(world, client):
    client.force_login(world.sam)
    for name in ("trial-detail", "read-results", "read-results-csv", "read-lesions-csv"):
        response = client.get(reverse(name, args=["ALPHA"]))
        assert response.status_code == 200 and "no-store" in response["Cache-Control"], name
    client.logout()
    assert "no-store" in client.get(reverse("login"))["Cache-Control"]


def test_static_files_keep_their_own_caching(client):
    response = client.get("/static/css/ctims.css")
    assert response.status_code == 200 and "no-store" not in response.get("Cache-Control", "")
