"""The keys every PACS viewer has, in a real browser on a reader's read: Escape abandons a line being drawn, and
nothing of it is saved, puts back a drawing being dragged as it was, and leaves a lesion's waiting Measure;
Delete or Backspace removes the selected measurement, through the same path as the measurement list's × (the
draft is saved without it); typing in a field of the page never removes one. The image's label names every key
it answers, in the very words of the help line below it."""

from __future__ import annotations

from playwright.sync_api import expect

from reads.models import Read
from tests.e2e.test_reads import (  # noqa: F401
    LEFT,
    T01,
    T02,
    as_,
    drag,
    in_language,
    measure,
    open_task,
    read_state,
    ready,
    wait_saved,
    world,
)
from tests.reads.flow import task_of
from trials.ingest.synthetic import real_ct_template

SPACING = float(real_ct_template(large=True).PixelSpacing[0])


def centre(page) -> tuple[float, float]:
    box = page.locator(LEFT).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drawn(page) -> list[dict]:
    return page.evaluate("() => window.ctimsViewer.state().measurements")


def saved_targets(w) -> dict[str, dict]:
    read = Read.objects.get(task=task_of(w.rhea, "BL"))
    return {t["label"]: t for t in read.content["targets"]}


def baseline_read(w, page, *lesions: tuple[str, tuple]) -> list[dict]:
    """Rhea's baseline read open, with a target drawn and saved for each of `lesions` ((label, line)): their
    measurements as drawn."""
    ready(w, "BL", 0)
    as_(page, "rhea")
    open_task(page, "Baseline")
    targets = []
    for label, where in lesions:
        page.click("#read-add-target")
        targets.append(measure(page, label, where, SPACING))
    if lesions:
        wait_saved(page)
    return targets


def test_escape_abandons_a_line_being_drawn_and_nothing_of_it_is_saved(world, stores, page):  # noqa: F811
    baseline_read(world, page)
    expect(page.locator(".viewer-help")).to_contain_text("Esc abandons a line being drawn")
    page.click("#read-add-target")
    x, y = centre(page)
    (x1, y1), (x2, y2) = T01
    page.mouse.move(x + x1, y + y1)
    page.mouse.down()
    page.mouse.move(x + x2, y + y2, steps=10)
    page.wait_for_function("() => window.ctimsViewer.state().measurements.length === 1")
    page.keyboard.press("Escape")
    assert drawn(page) == []  # gone at once: the key's handling is synchronous
    page.mouse.up()
    state = wait_saved(page)
    assert state["pending"] == "T01" and state["content"]["targets"] == []
    assert saved_targets(world) == {}

    # Still measuring T01: the next line drawn is its measurement, and the only one.
    target = measure(page, "T01", T01, SPACING)
    wait_saved(page)
    assert len(drawn(page)) == 1
    assert saved_targets(world)["T01"]["long_points"] == target["long_points"]


def test_delete_removes_the_selected_measurement_and_the_draft_is_saved_without_it(world, stores, page):  # noqa: F811
    baseline_read(world, page, ("T01", T01), ("T02", T02))
    assert set(saved_targets(world)) == {"T01", "T02"}

    # T02, just drawn, is selected; keys typed into the page's fields are theirs.
    page.fill("#read-password", "abc")
    page.press("#read-password", "Backspace")
    expect(page.locator("#read-password")).to_have_value("ab")
    page.fill("#read-password", "")
    page.focus("#read-T01-site")
    page.keyboard.press("Delete")
    assert len(drawn(page)) == 2

    # Click T01's line (with the window tool: a click selects a drawing, it draws nothing), then Delete.
    page.click("button[data-tool=WindowLevel]")
    x, y = centre(page)
    (x1, y1), (x2, y2) = T01
    page.mouse.click(x + (3 * x1 + x2) / 4, y + y1)
    t01 = next(row["uid"] for row in read_state(page)["rows"] if row["label"] == "T01")
    page.wait_for_function(
        "(uid) => JSON.stringify(window.ctimsViewer.viewer.measurements.selected()) === JSON.stringify([uid])", arg=t01
    )
    page.keyboard.press("Delete")
    assert [m["label"] for m in drawn(page)] == ["T02"]
    state = wait_saved(page)
    assert [t["label"] for t in state["content"]["targets"]] == ["T02"]
    assert set(saved_targets(world)) == {"T02"}
    assert "T01" in state["awaiting"]

    # Backspace does the same, with the focus on the measurement list: T02 chosen there, then removed.
    page.locator("#viewer-measurements li.measurement", has_text="T02").locator(".measurement-go").click()
    page.keyboard.press("Backspace")
    assert drawn(page) == []
    wait_saved(page)
    assert saved_targets(world) == {}


def writes(page) -> list[str]:
    """The page's requests that write (the draft's saves), from now on: their bodies."""
    sent = []
    page.on("request", lambda request: sent.append(request.post_data or "") if request.method != "GET" else None)
    return sent


def moved(page, before) -> None:
    """Wait until the drawing's points are no longer `before`: the drag has moved it."""
    page.wait_for_function(
        "(before) => JSON.stringify(window.ctimsViewer.state().measurements[0].points) !== JSON.stringify(before)",
        arg=before,
    )


def test_escape_while_dragging_a_saved_measurement_puts_it_back_and_nothing_is_saved(world, stores, page):  # noqa: F811
    [target] = baseline_read(world, page, ("T01", T01))
    [before] = drawn(page)
    sent = writes(page)

    # The end of the long axis (where the line was drawn to) dragged 40 pixels down, then Escape with the button
    # still held.
    cx, cy = centre(page)
    (x0, y0), (x1, y1) = [(cx + dx, cy + dy) for dx, dy in T01]
    x, y = x1, y1
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 40, steps=10)
    moved(page, before["points"])
    assert read_state(page)["saved"]  # nothing to save while the drawing is being dragged
    page.keyboard.press("Escape")
    assert drawn(page) == [before]  # put back at once
    page.mouse.up()
    assert drawn(page) == [before]
    state = wait_saved(page)
    assert state["content"]["targets"] == [target]

    # The whole drawing dragged by its long axis (a quarter of the way along), then Escape.
    page.mouse.move((3 * x0 + x1) / 4, (3 * y0 + y1) / 4)
    page.mouse.down()
    page.mouse.move((3 * x0 + x1) / 4 + 30, (3 * y0 + y1) / 4 + 30, steps=10)
    moved(page, before["points"])
    assert read_state(page)["saved"]
    page.keyboard.press("Escape")
    page.mouse.up()
    assert drawn(page) == [before]
    assert wait_saved(page)["content"]["targets"] == [target]
    assert sent == []
    assert saved_targets(world)["T01"]["long_points"] == target["long_points"]

    # A drag let go is the reader's: saved once, with the points where the drawing was left.
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + 40, steps=10)
    moved(page, before["points"])
    page.mouse.up()
    state = wait_saved(page)
    assert state["content"]["targets"][0]["long_points"] != target["long_points"]
    assert saved_targets(world)["T01"]["long_points"] == state["content"]["targets"][0]["long_points"]
    assert len(sent) == 1


def test_escape_leaves_a_lesions_waiting_measure_and_the_next_line_is_not_its(world, stores, page):  # noqa: F811
    [target] = baseline_read(world, page, ("T01", T01))
    measure_button = page.locator("#read-targets li.lesion", has_text="T01").locator(".lesion-measure")

    # Measure again, then Escape with the focus still on the button.
    measure_button.click()
    assert read_state(page)["pending"] == "T01"
    page.keyboard.press("Escape")
    assert read_state(page)["pending"] is None
    expect(measure_button).to_have_attribute("aria-pressed", "false")
    expect(measure_button).to_have_text("Measure again")

    # The next line drawn is a measurement of its own; T01 keeps its own.
    drag(page, *T02)
    page.wait_for_function("() => window.ctimsViewer.state().measurements.length === 2")
    assert sorted(str(m["label"]) for m in drawn(page)) == ["None", "T01"]
    state = wait_saved(page)
    assert state["content"]["targets"] == [target]
    assert saved_targets(world)["T01"]["long_points"] == target["long_points"]

    # The same with the focus on the image.
    measure_button.click()
    assert read_state(page)["pending"] == "T01"
    page.focus(LEFT)
    page.keyboard.press("Escape")
    assert read_state(page)["pending"] is None

    # And with the focus on a new target's site list, where adding it put the focus.
    page.click("#read-add-target")
    expect(page.locator("#read-T02-site")).to_be_focused()
    assert read_state(page)["pending"] == "T02"
    page.keyboard.press("Escape")
    assert read_state(page)["pending"] is None


def test_the_image_is_labelled_with_every_key_it_answers_as_the_help_line_says_them(world, stores, page):  # noqa: F811
    baseline_read(world, page)
    for language, words in (
        ("English", ["arrow keys", "Page Up", "Page Down", "Home", "End", "Esc", "lesion", "Delete", "Backspace"]),
        ("한국어", ["화살표", "Page Up", "Page Down", "Home", "End", "Esc", "병변", "Delete", "Backspace"]),
    ):
        if language != "English":
            in_language(page, language)
        keys = page.locator(".viewer-help .viewer-keys").inner_text().strip()
        label = page.locator(LEFT).get_attribute("aria-label")
        assert keys and label.endswith(keys), (label, keys)
        for word in words:
            assert word in keys, (word, keys)


def test_the_slice_stays_while_a_line_is_drawn_or_dragged(world, stores, page):  # noqa: F811
    baseline_read(world, page)
    page.wait_for_function("() => window.ctimsViewer.state().loaded === window.ctimsViewer.state().total")
    target_index = "() => window.ctimsViewer.viewer.left.viewport.getTargetImageIdIndex()"
    start = page.evaluate(target_index)
    page.click("#read-add-target")
    x, y = centre(page)
    (x1, y1), (x2, y2) = T01

    # Drawing: neither the keys nor the wheel take the line to another slice.
    page.mouse.move(x + x1, y + y1)
    page.mouse.down()
    page.mouse.move(x + (x1 + x2) / 2, y + y1, steps=5)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    page.mouse.wheel(0, 120)
    assert page.evaluate(target_index) == start
    page.mouse.move(x + x2, y + y2, steps=5)
    page.mouse.up()
    target = next(t for t in wait_saved(page)["content"]["targets"] if t["label"] == "T01")
    sops = page.evaluate("() => window.ctimsViewer.viewer.left.slices.map((s) => s.sopUid)")
    assert target["image"]["sop"] == sops[start]

    # Dragging its end: the same.
    page.mouse.move(x + x2, y + y2)
    page.mouse.down()
    page.mouse.move(x + x2, y + y2 + 30, steps=5)
    page.keyboard.press("ArrowDown")
    page.mouse.wheel(0, 120)
    assert page.evaluate(target_index) == start
    page.mouse.up()

    # Let go, the keys scroll again.
    page.keyboard.press("ArrowDown")
    assert page.evaluate(target_index) == start + 1
