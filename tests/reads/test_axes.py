"""A lesion's short axis is the longest diameter perpendicular to its long axis (RECIST 1.1 section 3.1.1;
a node is followed by it): it is never longer than the long axis, and it is drawn at a right angle to it. A short
axis longer than the long one blocks signing (the reader can drag it so); lines not at a right angle are refused,
as the viewer's bidirectional tool never draws them."""

from __future__ import annotations

import pytest

from ctims.exceptions import ValidationFailed
from reads import read_services
from reads.bench import drawn_line
from tests.reads.flow import image, ready, target, task_of

NODE = "62683002"


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
