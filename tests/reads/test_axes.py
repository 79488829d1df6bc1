"""A lesion's short axis is the longest diameter perpendicular to its long axis (RECIST 1.1 section 3.1.1;
a node is followed by it): it is never longer than the long axis, and it is drawn at a right angle to it. A short
axis longer than the long one blocks signing (the reader can drag it so); lines not at a right angle, or beside each
other instead of crossing, are refused, as the viewer's bidirectional tool never draws them."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from ctims.exceptions import ValidationFailed
from reads import read_services
from reads.bench import drawn_line
from tests.conftest import PASSWORD
from tests.reads.flow import image, ready, target, task_of
from trials.models import Instance

NODE = "62683002"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def image_spacing(on: dict) -> list:
    return Instance.objects.get(sop_instance_uid=on["sop"]).pixel_spacing


def _save(world, targets):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    raw = {"targets": [t(task) if callable(t) else t for t in targets], "non_targets": []}
    return read_services.read_save(actor=world.rhea, task_id=task.pk, raw=raw)


def test_a_short_axis_longer_than_the_long_axis_cannot_be_signed(world):
    read = _save(world, [lambda task: target(task, "T01", "16.0", site=NODE, short="20.0")])
    problems = [(p["code"], p["label"]) for p in read.assessment["problems"]]
    assert problems == [("SHORT_AXIS_LONGER", "T01")]
    assert "20.0" in read.assessment["problems"][0]["message"] and "16.0" in read.assessment["problems"][0]["message"]
    assert read.assessment["sum_mm"] is None
    assert not read_services.ready_to_sign(read)


def test_axes_of_equal_length_are_a_round_lesion(world):
    read = _save(world, [lambda task: target(task, "T01", "20.0", site=NODE, short="20.0")])
    assert read.assessment["problems"] == [] and read.assessment["sum_mm"] == "20.0"


@pytest.mark.parametrize("degrees_off", [20, 45])
def test_a_short_axis_not_at_a_right_angle_to_the_long_axis_is_refused(world, degrees_off):
    import math

    def oblique(task):
        entry = target(task, "T01", "30.0", site=NODE, short="16.0")
        on = image(task)
        (c, r), (c2, _r2) = drawn_line(on, "16.0", at=(60, 30))
        length = c2 - c  # pixels along the columns for 16.0 mm (the spacing is square on this image)
        angle = math.radians(90 - degrees_off)
        end = [round(c + length * math.cos(angle), 1), round(r + length * math.sin(angle), 1)]
        entry["short_points"] = [[c, r], end]
        return entry

    with pytest.raises(ValidationFailed) as err:
        _save(world, [oblique])
    assert "T01" in str(err.value) and "targets[0].short_mm" in err.value.fields


def test_a_short_axis_at_a_right_angle_within_rounding_is_kept(world):
    def nearly(task):
        entry = target(task, "T01", "30.0", site=NODE, short="16.0")
        (c, r), (c2, r2) = entry["short_points"]
        entry["short_points"] = [[c, r], [c2 + 0.2, r2]]  # a tenth of a pixel at each end, as the viewer rounds
        return entry

    read = _save(world, [nearly])
    assert read.assessment["problems"] == []


# A short axis crosses its long axis (RECIST 1.1 section 3.1.1: the longest diameter perpendicular to the long
# axis, within the lesion): the two segments meet, within one pixel and at most a millimetre (read_services).
LONG = [[10, 20], [50, 20]]  # across the columns, 40 pixels


@pytest.mark.parametrize(
    "short",
    [
        [[30, 10], [30, 30]],  # through the middle
        [[12, 10], [12, 26]],  # near one end, off centre
        [[50, 10], [50, 30]],  # through the long axis's end
        [[30, 20], [30, 34]],  # from the long axis, one side only: the segments touch
        [[30, 20.05], [30, 34]],  # a twentieth of a pixel off, as the page rounds each end to a tenth
    ],
)
def test_a_short_axis_that_meets_its_long_axis_crosses_it(short):
    assert read_services.short_axis_crosses(LONG, short, [0.7, 0.7])


@pytest.mark.parametrize(
    "short",
    [
        [[60, 10], [60, 30]],  # perpendicular, beside the long axis's end
        [[30, 22], [30, 40]],  # perpendicular, below it
        [[5, 10], [5, 30]],  # before its start
    ],
)
def test_a_short_axis_beside_its_long_axis_does_not_cross_it(short):
    assert not read_services.short_axis_crosses(LONG, short, [0.7, 0.7])


@pytest.mark.parametrize(
    ("short", "crosses"),
    [
        # Rows 2 mm apart, columns 0.5 mm: a gap is measured in millimetres, not in pixels.
        ([[30, 20.4], [30, 30]], True),  # 0.4 rows: 0.8 mm
        ([[30, 20.6], [30, 30]], False),  # 0.6 rows: 1.2 mm, though less than a pixel
        ([[51.8, 10], [51.8, 30]], True),  # 1.8 columns past the end: 0.9 mm
        ([[52.2, 10], [52.2, 30]], False),  # 2.2 columns: 1.1 mm
    ],
)
def test_the_gap_between_the_axes_is_measured_in_millimetres_at_the_pixel_spacing(short, crosses):
    assert read_services.short_axis_crosses(LONG, short, [2.0, 0.5]) is crosses


def test_the_gap_allowed_is_a_pixel_on_a_fine_image():
    # 0.4 mm pixels: 0.3 mm of gap is allowed, 0.5 mm (more than a pixel) is not.
    assert read_services.short_axis_crosses(LONG, [[30, 20.75], [30, 30]], [0.4, 0.4])
    assert not read_services.short_axis_crosses(LONG, [[30, 21.25], [30, 30]], [0.4, 0.4])


def _beside(task):
    """A node's short axis drawn perpendicular to its long axis but off to the side of it, not across it."""
    entry = target(task, "T01", "30.0", site=NODE, short="16.0")
    (c1, r), (c2, _r) = entry["long_points"]
    on = image(task)
    (c, r1), (_c, r2) = drawn_line(on, "16.0", at=(round(c2 + 10, 1), r), vertical=True)
    entry["short_points"] = [[c, r1 - 4], [c, r2 - 4]]
    return entry


def test_a_short_axis_beside_its_long_axis_is_refused(world):
    with pytest.raises(ValidationFailed) as err:
        _save(world, [_beside])
    assert "T01" in str(err.value) and "cross" in str(err.value)
    assert "targets[0].short_mm" in err.value.fields


def test_a_short_axis_beside_its_long_axis_is_refused_in_korean(world):
    with translation.override("ko"), pytest.raises(ValidationFailed) as err:
        _save(world, [_beside])
    assert "T01" in str(err.value) and HANGUL.search(str(err.value)), str(err.value)


def test_the_draft_endpoint_refuses_a_short_axis_beside_its_long_axis(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    client.force_login(world.rhea)
    content = {"targets": [_beside(task)], "non_targets": [], "new_lesions": "none", "new": []}
    answer = client.put(
        f"/reads/tasks/{task.pk}/draft/", {"content": content, "revision": ""}, content_type="application/json"
    )
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert "T01" in error["message"] and "cross" in error["message"]
    assert error["fields"]["targets[0].short_mm"] == [error["message"]]
    assert not task.reads.exists()


def test_the_test_flows_node_is_drawn_across_its_long_axis(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    entry = target(task, "T01", "30.0", site=NODE, short="16.0")
    spacing = image_spacing(entry["image"])
    assert read_services.short_axis_crosses(entry["long_points"], entry["short_points"], spacing)


def test_a_draft_saved_before_the_crossing_check_is_not_signed_with_its_short_axis_beside(world):
    """Signing checks the drawings again: a draft kept from before the check (its short axis drawn beside the long
    one) is refused at signing with the same message, and nothing is signed."""
    read = _save(world, [lambda task: target(task, "T01", "30.0", site=NODE, short="16.0")])
    task = read.task
    content = dict(read.content)
    content["targets"] = [_beside(task)]
    type(read).objects.filter(pk=read.pk).update(content=content)  # as such a draft stands in the database
    with pytest.raises(ValidationFailed) as err:
        read_services.read_sign(
            actor=world.rhea,
            task_id=task.pk,
            password=PASSWORD,
            meaning_confirmed=True,
            confirmed_response="baseline",
        )
    assert "T01" in str(err.value) and "cross" in str(err.value)
    read.refresh_from_db()
    assert read.state == read.State.DRAFT and read.signature is None
