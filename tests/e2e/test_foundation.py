"""The foundation in a real browser: coordinators see only their site; an admin enrolls through the form."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, build_world
from tests.e2e.conftest import click_to_page, log_in, screenshot
from trials.models import Subject


@pytest.fixture
def world(transactional_db):
    return build_world()


def test_a_coordinator_sees_only_their_own_sites_subjects(world, page):
    log_in(page, "cora@example.org", PASSWORD)
    page.click("text=ALPHA")
    page.click("nav >> text=Subjects")
    page.wait_for_selector("table.grid")
    codes = page.locator("table.grid tbody th a").all_inner_texts()
    assert sorted(codes) == ["ALPHA-SEO-001", "ALPHA-SEO-002"]
    assert "ALPHA-BUS-001" not in page.content()
    screenshot(page, "foundation-coordinator-grid")
    page.goto("/trials/ALPHA/subjects/ALPHA-BUS-001/")
    assert "ALPHA-BUS-001" not in page.locator("main").inner_text()
    assert page.title().startswith("404") or "not found" in page.content().lower()


def test_an_admin_enrolls_a_subject_through_the_form(world, page):
    log_in(page, "alice@example.org", PASSWORD)
    page.goto("/trials/ALPHA/subjects/")
    page.select_option("select[name=site]", "BUS")
    page.click("text=Enroll subject")
    page.wait_for_selector("text=ALPHA-BUS-002")
    assert Subject.objects.filter(trial=world.trial, code="ALPHA-BUS-002", site=world.bus).exists()
    row = page.locator("tr", has=page.locator("text=ALPHA-BUS-002"))
    expect(row.locator(".badge")).to_have_count(2)  # one expected timepoint a visit
    screenshot(page, "foundation-admin-enrolled")


def test_a_reader_sees_the_trial_but_no_subject_list(world, page):
    log_in(page, "rhea@example.org", PASSWORD)
    page.goto("/trials/ALPHA/")
    assert "ALPHA-SEO-001" not in page.content()
    assert page.locator("nav >> text=Subjects").count() == 0
    response = page.goto("/trials/ALPHA/subjects/")
    assert response.status == 403


def test_the_interface_switches_to_korean(world, page):
    log_in(page, "alice@example.org", PASSWORD)
    page.goto("/trials/ALPHA/subjects/")
    click_to_page(page, "form.lang-switch button[value=ko]")
    assert "피험자" in page.locator("main").inner_text()
    screenshot(page, "foundation-korean-grid")
