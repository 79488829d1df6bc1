"""The recorded size matches the drawn line: each length is recomputed on save from its SCOORD endpoints and the
image's Pixel Spacing, and a mismatch over 0.1 mm is refused with a message that names the lesion."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ctims.exceptions import ValidationFailed
from reads import read_services
from reads.content import drawn_length_mm
from tests.reads.flow import baseline_content, image, ready, task_of
from trials.models import Instance


def _spacing(task) -> list[float]:
    return Instance.objects.get(sop_instance_uid=image(task)["sop"]).pixel_spacing


def test_a_long_axis_that_does_not_match_its_line_is_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    row, col = _spacing(task)
    content = baseline_content(task)
    # A line 26.5 mm long recorded as 16.1 mm.
    content["targets"][0].update(long_mm="16.1", long_points=[[100, 100], [100 + 26.5 / col, 100]])
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
    content["targets"][0].update(long_mm="23.0", long_points=[[100, 100], [100 + 23.08 / col, 100]])
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert read.content["targets"][0]["long_mm"] == "23.0"


def test_a_short_axis_is_checked_too_on_both_pixel_axes(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    row, col = _spacing(task)
    content = baseline_content(task)
    content["targets"][0].update(short_mm="12.0", short_points=[[120, 90], [120, 90 + 15.0 / row]])
    content["targets"][0]["long_points"] = [[100, 100], [100 + 23.0 / col, 100]]
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "short axis of T01" in str(err.value) and "targets[0].short_mm" in err.value.fields


def test_the_drawn_length_uses_row_and_column_spacing():
    # Pixel Spacing is (between rows, between columns): a column step is the second value.
    assert drawn_length_mm(((0, 0), (10, 0)), [0.5, 0.8]) == Decimal("8")
    assert drawn_length_mm(((0, 0), (0, 10)), [0.5, 0.8]) == Decimal("5")
    assert drawn_length_mm(((0, 0), (3, 4)), [1, 1]) == Decimal("5")
