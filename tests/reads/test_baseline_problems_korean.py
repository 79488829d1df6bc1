"""The RECIST engine's baseline problems (too many targets, too many in one organ, too small to measure...) reach the
read page in the reader's language, as its response reasons do, and name an organ by the site the reader chose,
never by its SNOMED CT code."""

from __future__ import annotations

import re

from django.utils import translation

from reads import read_services
from reads.assessment import assess_baseline
from reads.content import parse_content
from tests.reads.flow import ready, target, task_of

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _content(task, targets) -> dict:
    return {"targets": targets, "non_targets": [], "new_lesions": "none", "new": []}


def _three_in_the_liver_and_a_small_node(task):
    return _content(
        task,
        [
            target(task, "T01", "23.0"),
            target(task, "T02", "21.0"),
            target(task, "T03", "8.0"),
            target(task, "T04", "20.0", site="62683002", short="12.0"),
        ],
    )


def test_the_baseline_problems_name_the_organ_by_its_site(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=_three_in_the_liver_and_a_small_node(task))
    by_code = {p["code"]: p["message"] for p in read.assessment["problems"]}
    assert "Liver" in by_code["TOO_MANY_IN_ORGAN"], by_code
    assert "10200004" not in by_code["TOO_MANY_IN_ORGAN"]


def test_the_baseline_problems_are_in_korean_for_a_korean_reader(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    raw = _three_in_the_liver_and_a_small_node(task)
    raw["targets"].append(target(task, "T05", "30.0", site="39607008"))
    raw["targets"].append(target(task, "T06", "30.0", site="64033007"))
    with translation.override("ko"):
        read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=raw)
    codes = {p["code"] for p in read.assessment["problems"]}
    assert {"TOO_MANY_TARGETS", "TOO_MANY_IN_ORGAN", "NON_NODAL_TOO_SMALL", "NODE_TOO_SMALL"} <= codes
    for problem in read.assessment["problems"]:
        assert HANGUL.search(problem["message"]), problem
        assert "10200004" not in problem["message"]


def test_every_engine_baseline_problem_has_korean():
    on = {"study": "1.2", "series": "1.2.3", "sop": "1.2.3.4", "frame": 1}
    lesion = {"site": "10200004", "is_node": False, "status": "measured", "image": on, "long_points": [[0, 0], [1, 1]]}
    raw = {
        "targets": [
            {**lesion, "label": "T01", "long_mm": "5.0"},
            {**lesion, "label": "T02", "status": "too_small", "long_points": None, "image": None},
            {**lesion, "label": "T03", "long_mm": "20.0"},
            {**lesion, "label": "T04", "site": "62683002", "long_mm": "20.0"},
        ],
        "non_targets": [],
    }
    with translation.override("ko"):
        problems = assess_baseline(parse_content(raw), slice_thickness={"1.2.3.4": 80})["problems"]
    codes = {p["code"] for p in problems}
    assert {"NON_NODAL_TOO_SMALL", "NOT_MEASURED", "TOO_MANY_IN_ORGAN"} <= codes, codes
    for problem in problems:
        assert HANGUL.search(problem["message"]), problem
