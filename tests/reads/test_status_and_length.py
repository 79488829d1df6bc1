"""A target's status and its drawn measurement say one thing: a target marked too small to measure, disappeared or
not evaluable that still carries a drawn length would have its SR give that length beside a status that denies
it, and a sum that counts 5 mm or 0 instead. RECIST 1.1 asks for the actual measurement whenever one can be made
(even under 5 mm); the default and the 0 are for lesions that cannot be measured. Such a read cannot be signed
until the reader deletes the drawing or marks the lesion measured. A node marked disappeared keeps its short axis
(its normal size, which the sum counts)."""

from __future__ import annotations

import pytest

from reads import read_services
from tests.reads.flow import follow_up_content, signed_baseline_then_week_6, target


@pytest.mark.parametrize("status", ["too_small", "disappeared", "not_evaluable"])
def test_a_target_not_measured_with_a_length_drawn_cannot_be_signed(world, status):
    _bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "10.0", "12.0")
    content["targets"][0]["status"] = status
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    problems = [p for p in read.assessment["problems"] if p["label"] == "T01"]
    assert [p["code"] for p in problems] == ["LENGTH_NOT_MEASURED"], read.assessment["problems"]
    assert "10.0" in problems[0]["message"]
    assert not read_services.ready_to_sign(read)


@pytest.mark.parametrize("status", ["too_small", "disappeared", "not_evaluable"])
def test_a_target_not_measured_with_no_drawing_has_no_such_problem(world, status):
    _bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "10.0", "12.0")
    content["targets"][0] = target(w6, "T01", None, status=status)
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    assert read.assessment["problems"] == []


def test_a_node_marked_disappeared_keeps_its_short_axis(world):
    from tests.reads.flow import image, ready, save_and_sign, task_of

    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    save_and_sign(
        world.rhea,
        bl,
        {
            "targets": [target(bl, "T01", "23.0"), target(bl, "T02", "25.0", site="62683002", short="16.0")],
            "non_targets": [{"label": "NT01", "site": "3120008", "status": "present", "image": image(bl, 1)}],
        },
    )
    w6 = task_of(world.rhea, "W6")
    node = target(w6, "T02", None, site="62683002", status="disappeared")
    measured = target(w6, "T02", "9.0", site="62683002", short="6.0")
    node.update(short_mm="6.0", short_points=measured["short_points"], image=measured["image"])
    content = follow_up_content(w6, "10.0", "12.0")
    content["targets"][1] = node
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    assert read.assessment["problems"] == []
    assert read.assessment["sum_mm"] == "16.0"
