"""The recorded size matches the drawn line: each length is recomputed on save from its SCOORD endpoints and the
image's Pixel Spacing, and a mismatch over 0.1 mm is refused with a message that names the lesion; a length with
no line, a line off the image and a line of no length are refused as well."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ctims.exceptions import ValidationFailed
from reads import read_services
from reads.bench import drawn_line
from reads.content import drawn_length_mm
from tests.reads.flow import (
    baseline_content,
    follow_up_content,
    image,
    ready,
    signed_baseline_then_week_6,
    task_of,
)
from trials.models import Instance


def _spacing(task) -> list[float]:
    return Instance.objects.get(sop_instance_uid=image(task)["sop"]).pixel_spacing


def test_a_long_axis_that_does_not_match_its_line_is_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    row, col = _spacing(task)
    content = baseline_content(task)
    # A line 26.5 mm long recorded as 16.1 mm.
    content["targets"][0].update(long_mm="16.1", long_points=[[10, 10], [10 + 26.5 / col, 10]])
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "T01" in str(err.value) and "26.5" in str(err.value) and "16.1" in str(err.value)
    assert "targets[0].long_mm" in err.value.fields
    assert not task.reads.exists()


def test_a_length_within_a_tenth_of_its_line_is_kept(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    row, col = _spacing(task)
    content = baseline_content(task)
    content["targets"][0].update(long_mm="23.0", long_points=[[10, 10], [10 + 23.08 / col, 10]])
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert read.content["targets"][0]["long_mm"] == "23.0"


def test_a_short_axis_is_checked_too_on_both_pixel_axes(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    row, col = _spacing(task)
    content = baseline_content(task)
    content["targets"][0].update(short_mm="12.0", short_points=[[120, 90], [120, 90 + 15.0 / row]])
    content["targets"][0]["long_points"] = [[10, 10], [10 + 23.0 / col, 10]]
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "short axis of T01" in str(err.value) and "targets[0].short_mm" in err.value.fields


def test_a_long_axis_recorded_with_no_line_drawn_is_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    # 50 mm typed in, only the short axis drawn: the SR would carry the short line's coordinates for both.
    content["targets"][0].update(long_mm="50.0", long_points=None, short_mm="5.0")
    content["targets"][0]["short_points"] = drawn_line(image(task), "5.0", vertical=True)
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "long axis of T01" in str(err.value) and "no line is drawn" in str(err.value)
    assert "targets[0].long_mm" in err.value.fields
    assert not task.reads.exists()


def test_a_length_recorded_on_no_image_is_refused_whatever_the_status(world):
    bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "20.0", "10.0")
    content["targets"][0].update(status="too_small", long_mm="4.0", long_points=None, image=None)
    with pytest.raises(ValidationFailed, match="no line is drawn"):
        read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)


@pytest.mark.parametrize(
    "points",
    [
        pytest.param(lambda rows, cols, n: [[-3, 10], [-3 + n, 10]], id="left of the image"),
        pytest.param(lambda rows, cols, n: [[cols - 5, 10], [cols - 5 + n, 10]], id="past the last column"),
        pytest.param(lambda rows, cols, n: [[10, rows + 1], [10 + n, rows + 1]], id="below the last row"),
    ],
)
def test_a_line_outside_the_image_is_refused(world, points):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    instance = Instance.objects.get(sop_instance_uid=image(task)["sop"])
    row, col = instance.pixel_spacing
    content = baseline_content(task)
    content["targets"][0]["long_points"] = points(instance.rows, instance.columns, round(23.0 / col, 1))
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "outside the image" in str(err.value) and "targets[0].long_mm" in err.value.fields


def test_a_line_reaching_the_images_far_corner_is_on_the_image(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    instance = Instance.objects.get(sop_instance_uid=image(task)["sop"])
    row, col = instance.pixel_spacing
    content = baseline_content(task)
    end = instance.columns
    content["targets"][0]["long_points"] = [[round(end - 23.0 / col, 1), instance.rows], [end, instance.rows]]
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert read.content["targets"][0]["long_points"][1] == [end, instance.rows]


def test_a_measured_target_of_no_length_is_refused(world):
    bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "20.0", "10.0")
    content["targets"][0].update(long_mm="0.0", long_points=[[40, 40], [40, 40]])
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    assert "T01" in str(err.value) and "no length" in str(err.value) and "Disappeared" in str(err.value)
    assert not w6.reads.exists()


def test_the_drawn_length_uses_row_and_column_spacing():
    # Pixel Spacing is (between rows, between columns): a column step is the second value.
    assert drawn_length_mm(((0, 0), (10, 0)), [0.5, 0.8]) == Decimal("8")
    assert drawn_length_mm(((0, 0), (0, 10)), [0.5, 0.8]) == Decimal("5")
    assert drawn_length_mm(((0, 0), (3, 4)), [1, 1]) == Decimal("5")


@pytest.mark.parametrize("axis", ["long", "short"])
def test_a_line_drawn_with_no_length_recorded_is_refused_naming_the_axis(world, axis):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    target = content["targets"][0]
    target.update(short_mm="5.0", short_points=drawn_line(image(task), "5.0", vertical=True))
    # The line is drawn but its length was never recorded (a client that sent the points alone).
    target[f"{axis}_mm"] = None
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert f"{axis} axis of T01" in str(err.value) and f"targets[0].{axis}_mm" in err.value.fields
    assert not task.reads.exists()
