"""Browser tests: Debian's Chromium driven by Playwright against a live server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import connections

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread while the session lasts; the ORM calls the
    # tests make between browser steps are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # Entering and leaving Playwright's sync API changes this thread's context (contextvars), where Django keeps
    # its connections: a connection opened before either would be left open and unreachable, and the test
    # database could not be dropped at the end of the session. Each side closes its own first.
    connections.close_all()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
            connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


class _ServerRequests:
    """The requests the live server's threads are handling in this process, from Django's request signals (the
    test client's, whose handler is not a WSGIHandler, are not counted)."""

    def __init__(self) -> None:
        self.running = 0
        self.changed = threading.Condition()
        request_started.connect(self._started, weak=False, dispatch_uid="e2e-server-requests-started")
        request_finished.connect(self._finished, weak=False, dispatch_uid="e2e-server-requests-finished")

    @staticmethod
    def _live(sender) -> bool:
        return isinstance(sender, type) and issubclass(sender, WSGIHandler)  # some senders are no class at all

    def _started(self, sender, **kwargs) -> None:
        if self._live(sender):
            with self.changed:
                self.running += 1

    def _finished(self, sender, **kwargs) -> None:
        if self._live(sender):
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    def wait_until_none(self, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.running <= 0, timeout):
                raise AssertionError(f"the live server still handles {self.running} request(s) {timeout:.0f} s on")


_server_requests = _ServerRequests()


# How long a page's wait or an expect() may last before the test fails: an upper bound on work (de-identifying a
# series in the browser's workers, a page built by a server that shares 2 cores with the browser and another test
# process), never a statement of how fast it should be. A passing test waits only as long as the work takes.
WAIT_MS = 60_000


@contextmanager
def page_in(browser, live_server, **options) -> Iterator:
    """A page in a browser context of its own on the live server (WAIT_MS default timeout; 1280x900 and en-US
    unless `options` say otherwise). Leaving closes the context, then waits until the server has finished every
    request the page made: the test's database is emptied next, and a request still running there held a lock
    that emptying it waited for while it waited for one of emptying's (a deadlock, seen in a full run)."""
    options = {"viewport": {"width": 1280, "height": 900}, "locale": "en-US", **options}
    from playwright.sync_api import expect

    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
        _server_requests.wait_until_none(timeout=60)


@pytest.fixture
def page(browser, live_server):
    with page_in(browser, live_server) as page:
        yield page


# The parts of a page that fill in after it has loaded, and the state each shows once it has.
LATE_PARTS = {"#uploader": "#uploader.is-ready", "#viewer": "#viewer.is-ready"}


def settled(page) -> None:
    """Return once the page has loaded, its fonts too, and its scripted parts (the uploader, the viewer) say they
    are ready: what a test reads of its text or layout is then the page as its user sees it.

    Playwright's "networkidle" waited for half a second without requests on every page, and a page whose engine
    was still loading said nothing more by then.
    """
    page.wait_for_load_state("load")
    for part, ready in LATE_PARTS.items():
        if page.locator(part).count():
            page.wait_for_selector(ready)
    page.evaluate("() => document.fonts.ready.then(() => true)")


def screenshot(page, name: str) -> Path:
    """Keep a picture of a key page as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def click_to_page(page, target="main form button[type=submit]") -> None:
    """Click what leads to another page (a form's button, a link) and return once that page has loaded.

    A click returns before the next page is there, and `wait_for_load_state` right after it may be answered by
    the page being left, so what a test reads next (the URL, a list of elements) could still be the old page's.
    """
    with page.expect_navigation():
        if isinstance(target, str):
            page.click(target)
        else:
            target.click()


def enter_user_id(page, form: str) -> None:
    """Type one's user ID where a signing form asks for it (`#<form>-user-id`: the first signing since the
    log-in, 21 CFR 11.200), as the person would: their email, which the page's header holds."""
    field = page.locator(f"#{form}-user-id")
    if field.count():
        field.fill(page.locator(".user-name").get_attribute("title"))


def log_in(page, email: str, password: str) -> None:
    """Log in through the pages, both factors: the password, then (for the roles that need it) the code of the
    person's authenticator app, which is made for them here if they have none (see tests.conftest)."""
    from tests.conftest import authenticator_of, current_code

    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    click_to_page(page)
    if "/accounts/two-factor/" in page.url:
        from ctims.models import User

        device = authenticator_of(User.objects.get(email=email))
        if "/enrol/" in page.url:
            page.goto(page.url.replace("/enrol/", "/"))  # the device was just made: verify with it instead
        page.fill("input[name=code]", current_code(device))
        click_to_page(page)
