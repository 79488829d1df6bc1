"""In the browser, a follow-up target measured and then marked "too small to measure" keeps its drawing until the
reader deletes it: the read page says so by the lesion and the read cannot be signed; with the drawing deleted the
lesion counts the 5 mm default and the read is signable."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.test_reads import T01, as_, measure, open_task, read_state, ready, wait_saved, world  # noqa: F401
from tests.reads.flow import baseline_content, save_and_sign, task_of
from trials.ingest.synthetic import real_ct_template

SUBJECT = "ALPHA-SEO-001"


def test_a_target_marked_too_small_after_it_was_measured_keeps_its_drawing_until_deleted(world, stores, page):  # noqa: F811
    spacing = float(real_ct_template(large=True).PixelSpacing[0])
    ready(world, "BL", 0)
    ready(world, "W6", 42)
    bl = task_of(world.rhea, "BL", SUBJECT)
    save_and_sign(world.rhea, bl, baseline_content(bl))

    as_(page, "rhea")
    open_task(page, "Week 6")
    page.select_option("#read-T02-status", "disappeared")
    page.select_option("#read-NT01-status", "present")
    page.check("#read-new-none")
    page.select_option("#read-T01-status", "measured")
    measure(page, "T01", T01, spacing)
    page.select_option("#read-T01-status", "too_small")
    state = wait_saved(page)
    assert [p["code"] for p in state["assessment"]["problems"]] == ["LENGTH_NOT_MEASURED"], state["assessment"]
    expect(page.locator("#read-lesion-T01 .lesion-problem")).to_contain_text("Too small to measure")
    assert not state["signable"]

    page.locator("#viewer-measurements li.measurement", has_text="T01").locator(".measurement-remove").click()
    state = wait_saved(page)
    t01 = next(t for t in state["content"]["targets"] if t["label"] == "T01")
    assert t01["status"] == "too_small" and t01["long_mm"] is None and t01["long_points"] is None
    assert state["assessment"]["problems"] == [] and state["assessment"]["sum_mm"] == "5.0"
    assert read_state(page)["signable"]
