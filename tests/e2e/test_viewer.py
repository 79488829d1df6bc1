"""The viewer in a real browser: a QC reviewer opens a timepoint uploaded through the real pipeline, the first
image renders, scrolling moves through the slices, a length drawn with the mouse reads in mm, and a second
viewport shows another visit with its scrolling linked by slice position."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import expect
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from tests.conftest import PASSWORD, build_world, upload_files
from tests.e2e.conftest import log_in, page_in, screenshot
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance

SUBJECT = "ALPHA-SEO-001"
LEFT = '.viewer-pane[data-pane="left"]'
RIGHT = '.viewer-pane[data-pane="right"]'


@pytest.fixture
def world(transactional_db):
    return build_world()


def upload(world, visit: str, files: list[bytes]) -> None:
    """The site coordinator's upload, through the pipeline: quarantine, de-identify, store, index."""
    timepoint = upload_files(world.cora, SUBJECT, files, visit)
    assert Instance.objects.filter(series__study__timepoint=timepoint).count() == len(files)


def watch_console(page) -> list[str]:
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def open_viewer(page, visit: str = "BL"):
    log_in(page, "quinn@example.org", PASSWORD)
    page.goto(reverse("timepoint-viewer", args=["ALPHA", SUBJECT, visit]))
    page.wait_for_function("() => window.ctimsViewer")
    assert page.evaluate("() => window.ctimsViewer.ready") is True
    page.wait_for_selector("#viewer.is-ready")


def state(page) -> dict:
    return page.evaluate("() => window.ctimsViewer.state()")


def canvas_spread(page, pane: str = LEFT) -> tuple[int, int]:
    """The darkest and brightest grey on a pane's canvas: equal on a blank one."""
    return tuple(
        page.eval_on_selector(
            f"{pane} canvas",
            """canvas => {
                const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let low = 255, high = 0;
                for (let i = 0; i < data.length; i += 4) {
                    low = Math.min(low, data[i]);
                    high = Math.max(high, data[i]);
                }
                return [low, high];
            }""",
        )
    )


def centre(page, pane: str = LEFT) -> tuple[float, float]:
    box = page.locator(f"{pane} .viewer-viewport").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def readout(page, pane: str = LEFT) -> str:
    return page.locator(f"{pane} .viewer-readout").inner_text()


def test_a_qc_reviewer_scrolls_and_measures_a_length_in_mm(world, stores, page):
    slices = 40
    template = real_ct_template(large=True)
    spacing = [float(v) for v in template.PixelSpacing]
    upload(world, "BL", synthesize_ct_series(template, slices=slices, seed="viewer-e2e"))
    problems = watch_console(page)
    open_viewer(page)

    low, high = canvas_spread(page)
    assert high - low > 50, "the first image is on the canvas"
    assert readout(page) == f"Image 1/{slices} · position 0.0 mm"
    assert state(page)["total"] == slices
    assert page.locator(f"{LEFT} .viewer-pane-label").inner_text() == "Baseline"
    assert page.locator(f"{LEFT} .viewer-marker-left").inner_text() == "R"
    assert page.locator(f"{LEFT} .viewer-marker-right").inner_text() == "L"
    assert page.locator(f"{LEFT} .viewer-marker-top").inner_text() == "A"
    assert page.locator(f"{LEFT} .viewer-marker-bottom").inner_text() == "P"
    series = page.locator(".series-item")
    assert series.count() == 1 and series.get_attribute("aria-current") == "true"
    assert f"{slices} images" in series.inner_text()
    page.wait_for_function("() => document.querySelector('.series-thumb').naturalWidth > 0")

    # Every image streams in behind the first one, and the progress indicator goes when they are all there.
    page.wait_for_function(f"() => window.ctimsViewer.state().loaded === {slices}", timeout=30_000)
    assert page.locator(f"{LEFT} .viewer-progress").is_hidden()

    x, y = centre(page)
    page.mouse.move(x, y)
    for _ in range(3):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(50)
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 3")
    assert readout(page) == f"Image 4/{slices} · position \u221215.0 mm"
    assert page.locator(f"{LEFT} .viewer-slider").input_value() == "4"

    page.locator(f"{LEFT} .viewer-viewport").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 4")
    page.keyboard.press("PageDown")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 8")
    page.keyboard.press("End")
    page.wait_for_function(f"() => window.ctimsViewer.state().imageIndex === {slices - 1}")
    page.locator(f"{LEFT} .viewer-slider").fill("20")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 19")
    assert readout(page) == f"Image 20/{slices} · position \u221295.0 mm"

    page.click("button[data-preset=lung]")
    expect(page.locator(f"{LEFT} .viewer-voi")).to_have_text("W 1500 · L \u2212600")
    page.click("button[data-action=reset]")
    expect(page.locator(f"{LEFT} .viewer-voi")).not_to_have_text("W 1500 · L \u2212600")

    page.click("button[data-tool=Length]")
    expect(page.locator("button[data-tool=Length]")).to_have_attribute("aria-pressed", "true")
    page.mouse.move(x - 120, y - 40)
    page.mouse.down()
    page.mouse.move(x + 60, y + 50, steps=12)
    page.mouse.up()
    # Cornerstone computes the length in mm from Pixel Spacing, throttled while the mouse moves: wait for the
    # figure of the final points (image column, row) to show.
    page.wait_for_function(
        """([rowSpacing, columnSpacing]) => {
            const [m] = window.ctimsViewer.state().measurements;
            if (!m || m.mm === null) return false;
            const [[c1, r1], [c2, r2]] = m.points;
            return Math.abs(Math.hypot((c2 - c1) * columnSpacing, (r2 - r1) * rowSpacing) - m.mm) < 0.15;
        }""",
        arg=spacing,
    )
    [measured] = state(page)["measurements"]
    assert measured["tool"] == "Length" and measured["unit"] == "mm" and measured["mm"] > 40
    value = page.locator("#viewer-measurements .measurement-value")
    expect(value).to_have_text(f"{measured['mm']:.1f} mm")
    assert "Baseline · image 20" in page.locator("#viewer-measurements").inner_text()
    assert page.locator(f"{LEFT} svg text").first.text_content().strip().endswith(" mm")

    screenshot(page, "viewer-length")
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not problems, problems


def test_two_visits_side_by_side_scroll_together_by_slice_position(world, stores, page):
    small = real_ct_template(large=False)
    upload(world, "BL", synthesize_ct_series(small, slices=30, seed="viewer-bl", slice_thickness=5.0))
    upload(world, "W6", synthesize_ct_series(small, slices=60, seed="viewer-w6", slice_thickness=2.5))
    problems = watch_console(page)
    open_viewer(page, visit="W6")
    assert readout(page) == "Image 1/60 · position 0.0 mm"

    page.click("button[data-layout='2']")
    expect(page.locator("#viewer-compare")).to_have_value("BL")
    page.wait_for_function("() => window.ctimsViewer.state().panes.length === 2")
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].shown")
    assert state(page)["panes"][1]["imageIndex"] == 0
    assert page.locator(f"{RIGHT} .viewer-pane-label").inner_text() == "Baseline"
    low, high = canvas_spread(page, RIGHT)
    assert high - low > 50

    page.locator(f"{LEFT} .viewer-viewport").focus()
    for _ in range(20):
        page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.ctimsViewer.state().panes[0].imageIndex === 20")
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].imageIndex === 10")
    assert readout(page, LEFT) == "Image 21/60 · position \u221250.0 mm"
    assert readout(page, RIGHT) == "Image 11/30 · position \u221250.0 mm"

    # Scrolling the other side moves this one to the same place.
    x, y = centre(page, RIGHT)
    page.mouse.move(x, y)
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].imageIndex === 11")
    page.wait_for_function("() => window.ctimsViewer.state().panes[0].imageIndex === 22")
    assert readout(page, LEFT).endswith("position \u221255.0 mm")

    # Unlinked, each side scrolls alone; linked again, the two keep the offset the reader set by hand.
    page.uncheck("#viewer-link")
    page.mouse.move(x, y)
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].imageIndex === 12")
    assert state(page)["panes"][0]["imageIndex"] == 22
    page.check("#viewer-link")
    page.mouse.move(x, y)
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].imageIndex === 13")
    page.wait_for_function("() => window.ctimsViewer.state().panes[0].imageIndex === 24")

    # The series list follows the viewport last pointed at.
    assert page.locator("#viewer-series-visit").inner_text() == "Week 6"
    page.locator(f"{RIGHT} .viewer-viewport").click()
    expect(page.locator("#viewer-series-visit")).to_have_text("Baseline")
    expect(page.locator(".series-item[aria-current=true]")).to_contain_text("30 images")
    page.locator(f"{LEFT} .viewer-viewport").click()
    expect(page.locator("#viewer-series-visit")).to_have_text("Week 6")
    expect(page.locator(".series-item[aria-current=true]")).to_contain_text("60 images")
    screenshot(page, "viewer-compare")
    page.wait_for_function("() => window.ctimsViewer.state().panes.every(p => p.loaded === p.total)")

    page.click("button[data-layout='1']")
    page.wait_for_function("() => window.ctimsViewer.state().panes.length === 1")
    assert page.locator(RIGHT).is_hidden()
    assert not problems, problems


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless], ids=["jpeg2000", "jpeg-ls"])
def test_compressed_frames_are_decoded_in_the_browser(world, stores, page, syntax):
    """Frames come as stored; the loader's worker decodes them with the codecs' WebAssembly under the page's CSP."""
    template = real_ct_template(large=False)
    template.compress(syntax)
    upload(world, "BL", synthesize_ct_series(template, slices=4, seed=f"viewer-{syntax}"))
    assert set(Instance.objects.values_list("transfer_syntax_uid", flat=True)) == {syntax}
    problems = watch_console(page)
    open_viewer(page)
    low, high = canvas_spread(page)
    assert high - low > 50
    page.wait_for_function("() => window.ctimsViewer.state().loaded === 4")
    assert not problems, problems


CONTRAST = """e => {
  const rgb = c => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  let bg = e;
  while (bg && getComputedStyle(bg).backgroundColor.endsWith(", 0)")) bg = bg.parentElement;
  const [a, b] = [lum(getComputedStyle(e).color), lum(getComputedStyle(bg).backgroundColor)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_the_image_area_is_named_for_assistive_technology_and_the_current_series_reads_clearly(world, stores, page):
    """The image area's label sat on a div with no role, where it is not allowed (axe: aria-prohibited-attr) and
    not announced; the current series' image count was grey on its tint at 4.3:1, under WCAG AA's 4.5:1."""
    upload(world, "BL", synthesize_ct_series(real_ct_template(large=False), slices=3, seed="viewer-a11y"))
    open_viewer(page)
    viewport = page.locator(f"{LEFT} .viewer-viewport")
    expect(viewport).to_have_role("application")
    expect(viewport).to_have_accessible_name(
        "Image. Keys: the arrow keys, Page Up and Page Down, Home and End scroll the slices; Esc abandons a line being"
        " drawn or moved; Delete or Backspace removes the selected measurement."  # no lesion waits here (not a read)
    )
    count = page.locator('.series-item[aria-current="true"] .series-count')
    assert count.evaluate(CONTRAST) >= 4.5


def test_a_length_on_non_square_pixels_keeps_its_points_on_the_image_pixels_it_covers(world, stores, page):
    """Pixel Spacing 0.7 mm between rows, 0.9 mm between columns: a line's points are (column, row) pixels with
    each axis at its own spacing, so the stored points times the spacing give the length the viewer shows, and
    the centre of the image is pixel (64, 64) of the 128 x 128 image."""
    template = real_ct_template(large=False)
    template.PixelSpacing = [0.7, 0.9]
    upload(world, "BL", synthesize_ct_series(template, slices=2, seed="viewer-anisotropic"))
    problems = watch_console(page)
    open_viewer(page)
    page.click("button[data-tool=Length]")
    x, y = centre(page)
    for start, end in (((x - 150, y), (x + 150, y)), ((x, y - 100), (x, y + 100))):
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=8)
        page.mouse.up()
    page.wait_for_function(
        "() => { const m = window.ctimsViewer.state().measurements; return m.length === 2 && m.every(i => i.mm); }"
    )
    horizontal, vertical = state(page)["measurements"]
    for line in (horizontal, vertical):
        page.wait_for_function(
            """(uid) => {
                const m = window.ctimsViewer.state().measurements.find((i) => i.uid === uid);
                const [[c1, r1], [c2, r2]] = m.points;
                return Math.abs(Math.hypot((c2 - c1) * 0.9, (r2 - r1) * 0.7) - m.mm) < 0.15;
            }""",
            arg=line["uid"],
        )
    for line in state(page)["measurements"]:
        [[c1, r1], [c2, r2]] = line["points"]
        assert abs((c1 + c2) / 2 - 64) < 0.5 and abs((r1 + r2) / 2 - 64) < 0.5, line
    assert not problems, problems


def test_a_first_image_that_fails_to_load_says_so_instead_of_loading_for_ever(world, stores, page):
    upload(world, "BL", synthesize_ct_series(real_ct_template(large=False), slices=3, seed="viewer-first-fails"))
    page.route("**/frames/1", lambda route: route.fulfill(status=500, body="not today"))
    log_in(page, "quinn@example.org", PASSWORD)
    page.goto(reverse("timepoint-viewer", args=["ALPHA", SUBJECT, "BL"]))
    status = page.locator(f"{LEFT} .viewer-status")
    expect(status).to_have_text("The images could not be loaded. Reload the page to try again.")
    expect(status).to_have_class(re.compile(r"\bis-error\b"))
    expect(page.locator("#viewer")).to_have_class(re.compile(r"\bis-failed\b"))


def test_an_image_that_fails_to_load_while_scrolling_is_named_and_the_next_one_shows(world, stores, page):
    upload(world, "BL", synthesize_ct_series(real_ct_template(large=False), slices=4, seed="viewer-one-fails"))
    third = Instance.objects.get(instance_number=3).sop_instance_uid  # the third slice from the head
    page.route(f"**/instances/{third}/frames/1", lambda route: route.fulfill(status=500, body="not today"))
    problems = watch_console(page)
    open_viewer(page)
    page.locator(f"{LEFT} .viewer-viewport").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 1")
    page.keyboard.press("ArrowDown")
    status = page.locator(f"{LEFT} .viewer-status")
    expect(status).to_have_text("Image 3 could not be loaded: scroll on, or reload the page to try again.")
    expect(status).to_have_class(re.compile(r"\bis-error\b"))
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 3")
    expect(status).to_be_hidden()
    assert readout(page).startswith("Image 4/4")
    # The failed request's own console line, and the loader's: Cornerstone's ProgressiveIterator rejects a promise
    # no one awaits when a retrieve fails (an unhandled rejection of the XMLHttpRequest), which is not the page's.
    assert all("500" in problem or problem == "XMLHttpRequest" for problem in problems), problems


def until(page, condition, limit: int = 400) -> None:
    """Let the page run until `condition()` holds (requests reaching a route are counted, not timed)."""
    for _ in range(limit):
        if condition():
            return
        page.wait_for_timeout(25)
    raise AssertionError("the condition never held")


def test_images_of_the_series_left_still_loading_do_not_count_for_the_series_opened(world, stores, page):
    """The reader opens another series while the first one's images are still arriving: those images are not
    counted as the new series' (the progress said "7 of 2 images loaded" and hid itself too early)."""
    files = synthesize_ct_series(real_ct_template(large=False), slices=4, seed="viewer-switch", series_number=2)
    files += synthesize_ct_series(real_ct_template(large=False), slices=2, seed="viewer-switch", series_number=3)
    upload(world, "BL", files)
    first = Instance.objects.filter(series__series_number=2)
    held_sops = set(first.exclude(instance_number=1).values_list("sop_instance_uid", flat=True))
    second = Instance.objects.filter(series__series_number=3).first().series.series_instance_uid
    held = []

    def hold_frames(route):
        if any(sop in route.request.url for sop in held_sops):
            held.append(route)
        else:
            route.continue_()

    page.route("**/frames/1", hold_frames)
    metadata = []
    page.route(f"**/series/{second}/metadata", lambda route: metadata.append(route))
    open_viewer(page)
    assert state(page)["total"] == 4
    page.wait_for_function("() => window.ctimsViewer.state().loaded === 1")
    page.evaluate("""() => {
        const pane = window.ctimsViewer.viewer.left;
        window.seen = 0;
        const original = pane.onImageLoaded.bind(pane);
        pane.onImageLoaded = (imageId) => { window.seen += 1; original(imageId); };
    }""")
    page.locator(f'#viewer-series-list button[data-series="{second}"]').click()
    page.wait_for_function("() => document.querySelector('.viewer-pane-series').textContent.startsWith('Series 3')")
    until(page, lambda: len(held) == 3)  # the three prefetches are held
    for route in held:
        route.continue_()
    page.wait_for_function("() => window.seen >= 3")  # the first series' images have arrived
    until(page, lambda: metadata)
    metadata[0].continue_()
    page.wait_for_function("() => window.ctimsViewer.state().shown && window.ctimsViewer.state().loaded >= 2")
    assert (state(page)["total"], state(page)["loaded"]) == (2, 2)
    expect(page.locator(f"{LEFT} .viewer-progress")).to_be_hidden()


def test_the_frames_of_an_enhanced_ct_are_in_order_along_the_body_each_with_its_position(world, stores, page):
    """An enhanced CT keeps each frame's Image Position (Patient) in its per-frame functional groups: the frames
    are ordered by their place along the slice normal, as single-frame slices are, and each reads its own position
    (a multi-frame image was taken as one place and left in stored order). pydicom-data's eCT_Supplemental, its
    two frames' positions swapped: frame 1 at z −149, frame 2 at z −159; its normal points to the feet."""
    enhanced = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"))
    one, two = (item.PlanePositionSequence[0] for item in enhanced.PerFrameFunctionalGroupsSequence)
    one.ImagePositionPatient, two.ImagePositionPatient = two.ImagePositionPatient, one.ImagePositionPatient
    buffer = io.BytesIO()
    enhanced.save_as(buffer, enforce_file_format=True)
    upload(world, "BL", [buffer.getvalue()])
    problems = watch_console(page)
    open_viewer(page)
    frames = page.evaluate("() => window.ctimsViewer.viewer.left.slices.map((s) => [s.frame, s.position])")
    assert frames == [[2, 159], [1, 149]], frames
    assert readout(page) == "Image 1/2 · position 159.0 mm"
    page.locator(f"{LEFT} .viewer-viewport").focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.ctimsViewer.state().imageIndex === 1")
    expect(page.locator(f"{LEFT} .viewer-readout")).to_have_text("Image 2/2 · position 149.0 mm")
    assert not problems, problems


@pytest.mark.parametrize("most", [1000, 2], ids=["one-page", "paged"])
def test_the_series_list_counts_frames_and_opens_the_series_with_the_most_first(world, stores, page, settings, most):
    """A reader scrolls through frames, not instances: an enhanced MR of one instance and ten frames (pydicom-data's
    emri_small) is listed as 10 images, not 1, and opened before a 3-slice scout, though the scout has more
    instances. The frame counts come with the series list (one instance search per study), not from each
    series' metadata; a server that answers a few results at a time is asked for the rest."""
    settings.DICOMWEB_MAX_RESULTS = most
    scout = synthesize_ct_series(
        real_ct_template(large=False), slices=3, seed="viewer-scout", series_number=1, series_description="SCOUT"
    )
    enhanced = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    enhanced.PatientID = "PID0001"  # the scout's patient
    buffer = io.BytesIO()
    enhanced.save_as(buffer, enforce_file_format=True)
    upload(world, "BL", [*scout, buffer.getvalue()])
    metadata = []
    page.on("request", lambda r: metadata.append(r.url) if r.url.endswith("/metadata") else None)
    problems = watch_console(page)
    open_viewer(page)
    counts = page.locator("#viewer-series-list .series-item")
    expect(counts).to_have_count(2)
    texts = {counts.nth(n).locator(".series-title").inner_text(): counts.nth(n) for n in range(2)}
    mr = next(item for title, item in texts.items() if "MR" in title)
    ct = next(item for title, item in texts.items() if "SCOUT" in title)
    expect(mr.locator(".series-count")).to_have_text("10 images")
    expect(ct.locator(".series-count")).to_have_text("3 images")
    expect(mr).to_have_attribute("aria-current", "true")
    assert state(page)["total"] == 10
    assert len(metadata) == 1, metadata  # the shown series' metadata only
    assert not problems, problems


def test_the_measurement_labels_on_the_image_are_in_the_pages_language(world, stores, browser, live_server):
    """On the Korean page the sizes Cornerstone writes beside a drawing read in Korean: the long/short axis tool's
    "L:" and "W:" were English whatever the page's language. Asked of the tools' own text function, with the
    sizes one decimal as the measurement list shows them (and the lesion label first, as before)."""
    upload(world, "BL", synthesize_ct_series(real_ct_template(large=False), slices=2, seed="viewer-ko"))
    with page_in(browser, live_server, locale="ko-KR") as page:
        open_viewer(page)
        assert page.evaluate("document.documentElement.lang") == "ko"
        lines = page.evaluate(
            """() => {
                const group = window.ctimsViewer.viewer.toolGroup;
                const text = (tool, data) => group.getToolInstance(tool).configuration.getTextLines(data, "t");
                const stats = { t: { length: 23.456, width: 7.04, unit: "mm" } };
                return [
                    text("Bidirectional", { label: "T01", cachedStats: stats }),
                    text("Length", { cachedStats: stats }),
                    text("Length", { cachedStats: { t: { length: NaN, unit: "mm" } } }) ?? null,
                ];
            }"""
        )
    assert lines == [["T01", "장축: 23.5 mm", "단축: 7.0 mm"], ["23.5 mm"], None], lines
