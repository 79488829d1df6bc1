"""Issue 15: nobody waits on email. The QC reviewer raises a query; the Seoul coordinator sees it counted in the
top bar and listed in the inbox, with no email read; once answered, the reviewer's worklist says "Answered,
waiting for you" and their inbox lists it."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD, build_world, ct_protocol, upload_files
from tests.e2e.conftest import log_in, screenshot
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Query

SUBJECT = "ALPHA-SEO-001"


@pytest.fixture
def world(transactional_db):
    w = build_world()
    ct_protocol(w)
    return w


def as_(page, name: str) -> None:
    page.context.clear_cookies()
    log_in(page, f"{name}@example.org", PASSWORD)


def test_the_coordinator_finds_a_new_query_in_the_inbox_and_the_reviewer_finds_the_answer(world, stores, page):
    files = synthesize_ct_series(real_ct_template(large=False), slices=4, seed="e2e-inbox", study_date=date(2026, 3, 2))
    upload_files(world.cora, SUBJECT, files)

    # The coordinator has nothing waiting yet: no count in the top bar.
    as_(page, "cora")
    expect(page.locator(".topnav .inbox-link")).to_be_visible()
    expect(page.locator("#inbox-count")).to_have_count(0)

    # The QC reviewer fails the visit from its QC page.
    as_(page, "quinn")
    page.goto(reverse("qc-worklist", args=["ALPHA"]))
    row = page.locator(".qc-worklist tbody tr", has_text=SUBJECT)
    row.get_by_role("link", name="Open QC").click()
    page.locator(".qc-fail input[name=series]").check()
    page.fill("#id_fail_reason", "The portal venous phase is missing. Please send it.")
    page.get_by_role("button", name="Fail and send query").click()
    expect(page.locator("#query-state")).to_have_text("Open")
    query = Query.objects.get()

    # The coordinator logs in (no email is read in this test): the top bar counts one, the inbox lists it.
    as_(page, "cora")
    expect(page.locator("#inbox-count")).to_have_text("1")
    expect(page.locator(".inbox-section .inbox-entry")).to_have_count(1)  # the home page's "Waiting for you"
    page.locator(".topnav .inbox-link").click()
    entry = page.locator(".inbox-entries .inbox-entry")
    expect(entry).to_have_count(1)
    expect(entry.locator(".inbox-kind")).to_have_text("Query to answer")
    expect(entry).to_contain_text(f"{SUBJECT} · Baseline")
    screenshot(page, "inbox-coordinator")
    entry.get_by_role("link", name=query.title).click()
    expect(page.locator(".thread-message").first).to_contain_text("portal venous phase is missing")
    page.fill("#id_answer_body", "The scanner sent one phase only; the complete study follows today.")
    page.get_by_role("button", name="Send answer").click()
    expect(page.locator(".messages")).to_contain_text("Your answer was sent to the core lab.")
    expect(page.locator("#inbox-count")).to_have_count(0)  # answered: nothing waits for her any more

    # The reviewer: counted in the top bar, "Answered, waiting for you" on the worklist, listed in the inbox.
    as_(page, "quinn")
    expect(page.locator("#inbox-count")).to_have_text("1")
    page.goto(reverse("qc-worklist", args=["ALPHA"]))
    row = page.locator(".qc-worklist tbody tr", has_text=SUBJECT)
    expect(row.locator(".badge.state-answered")).to_have_text("Answered, waiting for you")
    screenshot(page, "qc-worklist-answered")
    page.locator(".topnav .inbox-link").click()
    entry = page.locator(".inbox-entries .inbox-entry")
    expect(entry.locator(".inbox-kind")).to_have_text("Answered query to review")
    entry.get_by_role("link", name=query.title).click()
    expect(page.locator("#query-state")).to_have_text("Answered")
