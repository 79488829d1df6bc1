"""The viewer's long and short axis tool keeps its short axis across the long axis, as the server requires
(reads.read_services.short_axis_crosses): a reader who drags the short axis along the long one, past its end, or
shortens the long axis past the short one, is stopped where the two still meet, and the read is saved."""

from __future__ import annotations

from reads import read_services
from tests.e2e.test_reads import T01, as_, measure, open_task, read_state, ready, wait_saved, world  # noqa: F401
from tests.e2e.test_viewer_keys import SPACING, centre
from trials.models import Instance


def screen_of(page, start, end, points):
    """Where image (column, row) points are on the screen, from the long axis drawn from `start` to `end`
    (screen offsets from the viewport's centre) and recorded at its first two points: square pixels, no rotation."""
    x, y = centre(page)
    (c0, r0), (c1, _r1) = points[0], points[1]
    scale = (end[0] - start[0]) / (c1 - c0)
    return [(x + start[0] + (c - c0) * scale, y + start[1] + (r - r0) * scale) for c, r in points]


def crossing(target) -> bool:
    spacing = Instance.objects.get(sop_instance_uid=target["image"]["sop"]).pixel_spacing
    return read_services.short_axis_crosses(target["long_points"], target["short_points"], spacing)


def drag_to(page, start, end) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=30)
    page.mouse.up()


def moved(page, before) -> None:
    """Wait until the drawing's points are no longer `before`: the drag has moved it (or its short axis)."""
    page.wait_for_function(
        """(before) => JSON.stringify(window.ctimsViewer.state().measurements[0].points) !== JSON.stringify(before)""",
        arg=before,
    )


def test_the_short_axis_cannot_be_dragged_off_its_long_axis(world, stores, page):  # noqa: F811
    ready(world, "BL", 0)
    as_(page, "rhea")
    open_task(page, "Baseline")
    page.click("#read-add-target")
    measure(page, "T01", T01, SPACING)
    [drawing] = page.evaluate("() => window.ctimsViewer.state().measurements")
    _long0, long1, short0, _short1 = screen_of(page, *T01, drawing["points"])
    assert wait_saved(page)["content"]["targets"][0]["short_points"] is not None

    # The short axis's end dragged along the long axis, 200 pixels past the long axis's end.
    drag_to(page, short0, (short0[0] + 200 + long1[0] - short0[0], short0[1]))
    moved(page, drawing["points"])
    state = wait_saved(page)
    [target] = state["content"]["targets"]
    assert state["error"] is None and crossing(target), target
    assert target["short_points"][0][0] > drawing["points"][2][0] + 10  # slid along, up to the long axis's end

    # The long axis's end dragged back, past the short axis, towards its start.
    [drawing] = page.evaluate("() => window.ctimsViewer.state().measurements")
    long0, long1, _s0, _s1 = screen_of(page, *T01, drawing["points"])
    drag_to(page, long1, (long0[0] + 5, long1[1]))
    moved(page, drawing["points"])
    state = wait_saved(page)
    [target] = state["content"]["targets"]
    assert state["error"] is None and crossing(target), target
    assert read_state(page)["content"]["targets"][0] == target
