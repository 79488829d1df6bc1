"""SCENARIO step 3 in a real browser: the checks find a series missing slices, the QC reviewer fails it, the Seoul
coordinator re-uploads the complete series and answers the query, and the reviewer passes the visit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.conftest import PASSWORD, build_world, ct_protocol, upload_files
from tests.e2e.conftest import log_in, screenshot
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Query, Timepoint

SUBJECT = "ALPHA-SEO-001"
SLICES = 20
MISSING = range(8, 11)  # slices 9 to 11


@pytest.fixture
def world(transactional_db):
    w = build_world()
    ct_protocol(w)
    return w


@pytest.fixture
def series() -> list[bytes]:
    return synthesize_ct_series(
        real_ct_template(large=False), slices=SLICES, seed="e2e-qc", study_date=date(2026, 3, 2)
    )


@pytest.fixture
def complete_folder(tmp_path, series) -> Path:
    """The scanner's folder with the whole series, as the coordinator sends it again."""
    folder = tmp_path / "RESEND" / "SE000002"
    folder.mkdir(parents=True)
    for n, data in enumerate(series, 1):
        (folder / f"IM{n:05d}").write_bytes(data)
    return folder.parent


def timepoint() -> Timepoint:
    return Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")


def as_(page, name: str) -> None:
    """Log in as a cast member and open trial ALPHA's overview."""
    page.context.clear_cookies()
    log_in(page, f"{name}@example.org", PASSWORD)
    page.goto(reverse("trial-detail", args=["ALPHA"]))


def test_a_series_missing_slices_is_failed_sent_again_and_passed(world, stores, series, complete_folder, page):
    # The first upload lost three slices on the way; with no transaction around the test, its commit runs the
    # ingest tasks and the checks as it does in production.
    upload_files(world.cora, SUBJECT, [f for n, f in enumerate(series) if n not in MISSING])
    assert timepoint().state == "uploaded"

    # The QC reviewer finds the visit in the worklist and the blocking finding on its QC page.
    as_(page, "quinn")
    page.click(f'.trialnav a[href="{reverse("qc-worklist", args=["ALPHA"])}"]')
    row = page.locator(".qc-worklist tbody tr", has_text=SUBJECT)
    expect(row.locator(".severity-blocking")).to_have_text("1")
    row.get_by_role("link", name="Open QC").click()
    finding = page.locator(".qc-findings tbody tr").first
    expect(finding.locator(".badge")).to_have_text("Blocking")
    expect(finding.locator(".finding-message")).to_contain_text("is missing slices")
    expect(finding.locator(".finding-message")).to_contain_text("3 expected slices absent")
    expect(page.locator(".qc-series .series-kind")).to_have_text("CT portal venous")
    expect(page.locator(".qc-series .series-region")).to_have_text("chest-abdomen-pelvis")
    screenshot(page, "qc-findings")

    expect(page.locator("#qc-state")).to_have_text("Uploaded")
    expect(page.get_by_role("button", name="Start review")).to_have_count(0)  # no start step: decide directly
    page.locator(".qc-fail input[name=series]").check()
    page.fill("#id_fail_reason", "Series 2 is missing slices 9 to 11. Please send the complete series again.")
    page.get_by_role("button", name="Fail and send query").click()
    expect(page.locator("#query-state")).to_have_text("Open")
    query = Query.objects.get()
    assert timepoint().state == "query_open"

    # The Seoul coordinator sees the query, sends the complete series again and answers.
    as_(page, "cora")
    page.click(f'.trialnav a[href="{reverse("query-list", args=["ALPHA"])}"]')
    page.locator(".query-list tbody tr", has_text=SUBJECT).get_by_role("link", name=query.heading).click()
    expect(page.locator(".thread-message").first).to_contain_text("missing slices 9 to 11")
    expect(page.get_by_role("button", name="Close query")).to_have_count(0)
    page.get_by_role("link", name="Upload new images").click()
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(complete_folder))
    page.wait_for_selector("#upload-result .result-line, #upload-error:not([hidden])", timeout=60_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    expect(page.locator("#timepoint-state")).to_have_text("Uploaded")
    assert Instance.objects.filter(series__study__timepoint=timepoint()).count() == SLICES

    page.goto(reverse("query-detail", args=["ALPHA", query.pk]))
    expect(page.locator("#query-state")).to_have_text("Answered")
    expect(page.locator(".thread-message").last).to_contain_text("New images were uploaded (3 stored).")
    page.fill("#id_answer_body", "The CD writer had skipped three files; the complete series is uploaded now.")
    page.get_by_role("button", name="Send answer").click()
    expect(page.locator(".messages")).to_contain_text("Your answer was sent to the core lab.")

    # The reviewer reads the answer and the new upload in the thread, closes the query and passes the visit.
    as_(page, "quinn")
    page.goto(reverse("query-detail", args=["ALPHA", query.pk]))
    messages = page.locator(".thread-message")
    expect(messages).to_have_count(3)
    expect(messages.nth(1).locator(".thread-upload")).to_contain_text("3 stored, 0 already stored, 0 rejected")
    expect(messages.nth(2)).to_contain_text("the complete series is uploaded now")
    screenshot(page, "query-thread")
    page.fill("#id_close_body", "Complete now. Thank you.")
    page.get_by_role("button", name="Close query").click()

    expect(page.locator(".messages")).to_contain_text(f"Query {query.pk} is closed.")
    expect(page.locator("#findings ~ .message-success")).to_contain_text("No findings")
    page.fill("#id_pass_comment", "Complete series received.")
    page.get_by_role("button", name="Pass: ready for read").click()
    expect(page.locator("#qc-state")).to_have_text("Ready for read")
    expect(page.locator(".messages")).to_contain_text("it is ready for read")
    assert timepoint().state == "ready"
