"""The browser tests' own harness: leaving a page waits for the requests the live server still handles, so the
test's database is emptied only when no request holds a lock on it."""

from __future__ import annotations

import threading

from django.core.handlers.base import BaseHandler

from tests.e2e import conftest
from tests.e2e.conftest import page_in


def test_leaving_a_page_waits_for_the_request_the_server_still_handles(
    transactional_db, browser, live_server, monkeypatch
):
    entered, release, waiting = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []
    real_response, real_wait = BaseHandler.get_response, conftest._ServerRequests.wait_until_none

    def held(handler, request):
        if request.path == "/held/":
            entered.set()
            release.wait(30)
            order.append("the request finished")
        return real_response(handler, request)

    def wait_until_none(requests, timeout):
        waiting.set()
        real_wait(requests, timeout)

    def releaser():
        waiting.wait(30)  # the page is left and its leaving waits: the request may end now
        release.set()

    monkeypatch.setattr(BaseHandler, "get_response", held)
    monkeypatch.setattr(conftest._ServerRequests, "wait_until_none", wait_until_none)
    threading.Thread(target=releaser, daemon=True).start()
    with page_in(browser, live_server) as page:
        page.goto("/accounts/login/")
        page.evaluate("() => { fetch('/held/'); }")
        assert entered.wait(30), "the request reached the server"
    order.append("the page was left")
    assert order == ["the request finished", "the page was left"]
