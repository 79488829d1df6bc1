"""A sponsor opens the reader quality page from the read results, sees the charts drawn and downloads the data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from reads.services import read_design_set
from tests.conftest import PASSWORD, build_world
from tests.e2e.conftest import log_in, screenshot
from tests.reads.test_transfers import scripted_trial

# How many distinct colours an image holds once drawn on a canvas: a blank or broken image has at most one.
COLOURS = """img => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length && seen.size < 50; i += 4 * 97) seen.add(data.slice(i, i + 4).join(","));
  return seen.size;
}"""


@pytest.fixture
def world(transactional_db, stores):
    """The cast with a double-read design on ALPHA; no transaction around the test, so commits run the tasks."""
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w


def test_a_sponsor_sees_the_reader_quality_charts_and_downloads_their_data(world, page):
    scripted_trial(world)
    log_in(page, world.sam.email, PASSWORD)
    page.goto("/reads/trials/ALPHA/results/")
    page.get_by_role("link", name="Reader quality").click()
    expect(page.get_by_role("heading", name="Reader quality", level=1)).to_be_visible()
    expect(page.locator("[data-stat=adjudicated]")).to_have_text("1 / 4 (25%)")
    # Each overall figure is a tile of its own on the page's surface, as on every other page's facts: not a
    # label left on the grid's line colour (grey on grey, 3.7:1, below WCAG AA).
    backgrounds = page.locator("dl.quality-facts dt").evaluate_all(
        "dts => dts.map(dt => [getComputedStyle(dt.parentElement).backgroundColor,"
        " getComputedStyle(dt.closest('dl')).backgroundColor])"
    )
    assert len(backgrounds) == 6 and all(tile != grid for tile, grid in backgrounds), backgrounds
    # The cut-off field looks like the date fields beside it and its help is tied to it.
    look = "e => { const s = getComputedStyle(e); return [s.borderTopColor, s.borderRadius, s.minHeight]; }"
    cutoff = page.get_by_label("Cut-off")
    assert cutoff.evaluate(look) == page.get_by_label("From").evaluate(look)
    expect(cutoff).to_have_accessible_description(
        "Only what was signed and locked by then counts. Leave empty for now."
    )
    figures = page.locator("figure.quality-chart img")
    expect(figures).to_have_count(5)
    for n in range(5):
        img = figures.nth(n)
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        assert img.evaluate(COLOURS) > 3, img.get_attribute("alt")
    screenshot(page, "reader-quality")

    with page.expect_download() as info:
        page.locator("figure[data-chart=adjudication-p-chart] a", has_text="Data (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert sum(int(r["adjudicated"]) for r in rows) == 1 and sum(int(r["eligible"]) for r in rows) == 4

    with page.expect_download() as info:
        page.get_by_role("link", name="Reader pairs (CSV)").click()
    pairs = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert (pairs[0]["reader_a"], pairs[0]["reader_b"]) == ("Radiologist 1", "Radiologist 2")
