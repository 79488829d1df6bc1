"""What is selected in the viewer, in a real browser on a reader's read: a click on a drawing selects it, a click
on the image away from every drawing clears the selection, so that Delete afterwards removes nothing; an earlier
read's measurement (locked) is never selected for removal, nor moved by a drag."""

from __future__ import annotations

from tests.e2e.test_reads import (  # noqa: F401
    RIGHT_PANE,
    T01,
    T02,
    as_,
    measure,
    my_baseline_on_its_second_image,
    open_task,
    read_state,
    ready,
    wait_saved,
    world,
)
from tests.e2e.test_viewer_keys import baseline_read, centre, drawn, saved_targets, writes


def selected(page) -> list[str]:
    return page.evaluate("() => window.ctimsViewer.viewer.measurements.selected()")


def wait_selected(page, uids: list[str]) -> None:
    """Wait for the selection (Cornerstone takes a press as a click once a double click is ruled out)."""
    page.wait_for_function(
        "(uids) => JSON.stringify(window.ctimsViewer.viewer.measurements.selected()) === JSON.stringify(uids)",
        arg=uids,
    )


def test_a_click_on_the_image_away_from_the_drawings_clears_the_selection(world, stores, page):  # noqa: F811
    baseline_read(world, page, ("T01", T01), ("T02", T02))
    t01 = next(row["uid"] for row in read_state(page)["rows"] if row["label"] == "T01")

    # T01's line clicked with the window tool (a click draws nothing with it): T01 is selected.
    page.click("button[data-tool=WindowLevel]")
    x, y = centre(page)
    (x1, y1), (x2, _y2) = T01
    page.mouse.click(x + (3 * x1 + x2) / 4, y + y1)
    wait_selected(page, [t01])

    # The image clicked well away from both lines: nothing is selected, and Delete removes nothing.
    sent = writes(page)
    page.mouse.click(x - 60, y + 150)
    assert selected(page) == []  # cleared by the click itself
    page.keyboard.press("Delete")
    assert len(drawn(page)) == 2
    state = wait_saved(page)
    assert [t["label"] for t in state["content"]["targets"]] == ["T01", "T02"]
    assert sent == []
    assert set(saved_targets(world)) == {"T01", "T02"}

    # A click on a drawing still selects it, and Delete removes that one.
    page.mouse.click(x + (3 * x1 + x2) / 4, y + y1)
    wait_selected(page, [t01])
    page.keyboard.press("Delete")
    assert [m["label"] for m in drawn(page)] == ["T02"]
    wait_saved(page)
    assert set(saved_targets(world)) == {"T02"}


def test_an_earlier_reads_measurement_is_never_removed_nor_moved(world, stores, page):  # noqa: F811
    mine, on = my_baseline_on_its_second_image(world)
    as_(page, mine.email.split("@")[0])
    open_task(page, "Week 6")
    page.wait_for_function("() => window.ctimsRead.state().rows.every((r) => r.priors.every((p) => p.uid))")
    page.click("#read-lesion-T01 .lesion-show")
    page.wait_for_function(
        "(sop) => { const p = window.ctimsViewer.state().panes; return p.length === 2 && p[1].sop === sop; }",
        arg=on["sop"],
    )
    [before] = drawn(page)
    assert before["locked"]
    sent = writes(page)

    # Chosen in the measurement list, it is not selected for removal: Delete and Backspace leave it.
    page.locator("#viewer-measurements .measurement-go", has_text="T01 · Baseline").click()
    assert selected(page) == []
    for key in ("Delete", "Backspace"):
        page.keyboard.press(key)
    assert drawn(page) == [before]

    # Pressed on and dragged (with the window tool, and with the long and short axis tool), it stays; Escape then
    # changes nothing either.
    line = page.locator(f"{RIGHT_PANE} svg line").first
    box = page.locator(f"{RIGHT_PANE} .viewer-viewport").bounding_box()
    x, y = box["x"] + float(line.get_attribute("x1")), box["y"] + float(line.get_attribute("y1"))
    for tool in ("WindowLevel", "Bidirectional"):
        page.click(f"button[data-tool={tool}]")
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 30, y + 40, steps=10)
        page.keyboard.press("Escape")
        page.mouse.up()
        assert drawn(page) == [before]
    assert sent == []
