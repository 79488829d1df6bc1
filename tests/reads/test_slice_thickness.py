"""RECIST 1.1 section 3.1.1: a non-nodal lesion is measurable at 10 mm on CT "with slice thickness no greater than
5 mm"; "when CT scans have slice thickness greater than 5 mm, the minimum size for a measurable lesion should be
twice the slice thickness". A baseline target is held to the thickness of the slice it is measured on."""

from __future__ import annotations

import pytest

from reads import read_services
from reads.criteria import recist11 as r
from tests.reads.flow import baseline_content, image, ready, task_of
from trials.models import Instance


def _codes(problems) -> set[str]:
    return {p.code for p in problems}


@pytest.mark.parametrize(
    ("thickness", "long_axis", "measurable"),
    [
        (None, 100, True),  # thickness unknown: the 10 mm of the standard
        (50, 100, True),  # 5 mm slices: 10 mm
        (80, 159, False),  # 8 mm slices: 16 mm
        (80, 160, True),
        (75, 149, False),  # 7.5 mm slices: 15 mm
        (25, 99, False),  # thinner slices never lower the 10 mm
    ],
)
def test_a_non_nodal_target_must_be_twice_the_slice_thickness_of_its_slice(thickness, long_axis, measurable):
    lesion = r.TargetLesion("T01", "T01", "liver", slice_thickness=thickness)
    problems = r.validate_baseline([lesion], [r.TargetMeasurement("T01", long_axis=long_axis)])
    assert ("NON_NODAL_TOO_SMALL" not in _codes(problems)) is measurable


def test_the_message_names_the_slice_thickness():
    lesion = r.TargetLesion("T01", "T01", "liver", slice_thickness=80)
    (problem,) = r.validate_baseline([lesion], [r.TargetMeasurement("T01", long_axis=120)])
    assert "16.0 mm" in problem.message and "8.0 mm" in problem.message


def test_a_node_keeps_its_15_mm_short_axis_on_thick_slices():
    lesion = r.TargetLesion("T01", "T01", "lymph node", is_node=True, slice_thickness=80)
    assert r.validate_baseline([lesion], [r.TargetMeasurement("T01", long_axis=200, short_axis=150)]) == []


def test_the_slice_thickness_is_tenths_of_a_millimetre():
    with pytest.raises(TypeError):
        r.TargetLesion("T01", "T01", "liver", slice_thickness=8.0)


def test_a_baseline_target_on_an_8_mm_slice_is_too_small_under_16_mm(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    Instance.objects.filter(sop_instance_uid=image(task)["sop"]).update(slice_thickness=8.0)
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task, t1="23.0", t2="12.0"))
    # T02 (12.0 mm) is on the same 8 mm slice: under the 16 mm it needs; T01 (23.0 mm) is measurable.
    problems = {(p["code"], p["label"]) for p in read.assessment["problems"]}
    assert problems == {("NON_NODAL_TOO_SMALL", "T02")}
    assert read.assessment["sum_mm"] is None

    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task, t1="23.0", t2="16.0"))
    assert read.assessment["problems"] == [] and read.assessment["sum_mm"] == "39.0"


def test_the_series_slice_thickness_serves_when_the_instance_has_none(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    instance = Instance.objects.select_related("series").get(sop_instance_uid=image(task)["sop"])
    Instance.objects.filter(pk=instance.pk).update(slice_thickness=None)
    type(instance.series).objects.filter(pk=instance.series.pk).update(slice_thickness=8.0)
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task, t1="23.0", t2="12.0"))
    assert {(p["code"], p["label"]) for p in read.assessment["problems"]} == {("NON_NODAL_TOO_SMALL", "T02")}
