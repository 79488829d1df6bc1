"""The trial admin's Reading page: the read design form, the pools and each subject's reading."""

from __future__ import annotations

from reads.models import ReadDesign
from tests.reads.flow import baseline_content, ready, save_and_sign, task_of

# What the form posts besides what a test changes: the endpoint rules as the form shows them by default.
RULES = {
    "adjudication_trigger": "visit_response",
    "confirmation_days": "28",
    "sd_minimum_days": "42",
    "sd_window_days": "7",
}


def test_the_admin_sets_the_design_and_sees_the_reading(world, client):
    client.force_login(world.alice)
    page = client.get("/reads/trials/ALPHA/design/")
    assert page.status_code == 200 and b"Read design" in page.content
    answer = client.post(
        "/reads/trials/ALPHA/design/",
        {
            "criteria": "recist11",
            "paradigm": "double",
            "randomize_order": "on",
            "task_days": "10",
            "show_prior_timepoints": "on",
            **RULES,
            "adjudication_trigger": "endpoints",
            "confirmation_required": "on",
            "sd_minimum_days": "56",
        },
    )
    assert answer.status_code == 302
    design = ReadDesign.objects.get(trial=world.trial)
    assert design.randomize_order and design.task_days == 10 and not design.show_visit_label
    assert design.adjudication_trigger == "endpoints" and design.endpoint_rules.confirmation
    assert (design.endpoint_rules.sd_minimum_days, design.endpoint_rules.sd_earliest_day) == (56, 49)

    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, task, baseline_content(task))
    page = client.get("/reads/trials/ALPHA/design/").content.decode()
    assert "ALPHA-SEO-001" in page and task.assignment.case_label in page
    assert "Rhea" in page and "Ravi" in page and "Signed" in page
    # Once reading has begun the paradigm is fixed; a changed number of days still saves.
    answer = client.post(
        "/reads/trials/ALPHA/design/",
        {"criteria": "recist11", "paradigm": "single", "task_days": "7", "show_prior_timepoints": "on", **RULES},
    )
    design.refresh_from_db()
    assert answer.status_code == 302 and design.paradigm == "double" and design.task_days == 7


def test_a_bad_value_is_shown_on_the_form(world, client):
    client.force_login(world.alice)
    page = client.post("/reads/trials/ALPHA/design/", {"criteria": "who", "paradigm": "double", "task_days": "0"})
    assert page.status_code == 200 and "criteria" in page.context["form"].errors


def test_only_trial_admins_see_the_reading_page(world, client):
    for name in ("rhea", "ada", "quinn", "cora", "sam", "otto"):
        client.force_login(world.people[name])
        assert client.get("/reads/trials/ALPHA/design/").status_code in (403, 404), name


def test_the_endpoint_rules_and_criteria_are_fixed_once_a_read_is_signed(world, client):
    """Results already signed, locked and delivered were computed with them: a later change would give other
    best overall responses for the same cut-off (found by trying it: PR became PD for a delivered subject)."""
    import pytest

    from ctims.exceptions import InvalidState
    from reads.services import read_design_set

    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_design_set(actor=world.alice, trial=world.trial, sd_minimum_days=42)  # no read signed yet: it may change
    save_and_sign(world.rhea, task, baseline_content(task))
    for change in (
        {"confirmation_required": True},
        {"confirmation_days": 35},
        {"sd_minimum_days": 100},
        {"sd_window_days": 3},
        {"adjudication_trigger": "endpoints"},
    ):
        with pytest.raises(InvalidState):
            read_design_set(actor=world.alice, trial=world.trial, **change)
    design = read_design_set(actor=world.alice, trial=world.trial, sd_minimum_days=42, task_days=9)  # unchanged: saved
    assert (design.endpoint_rules.sd_minimum_days, design.task_days) == (42, 9)

    client.force_login(world.alice)
    form = client.get("/reads/trials/ALPHA/design/").context["form"]
    fixed = {"criteria", "paradigm", "adjudication_trigger", "confirmation_required", "confirmation_days"}
    assert {name for name, field in form.fields.items() if field.disabled} >= fixed | {"sd_minimum_days"}
    answer = client.post(
        "/reads/trials/ALPHA/design/", {"criteria": "recist11", "task_days": "5", **RULES, "sd_minimum_days": "100"}
    )
    design.refresh_from_db()
    assert answer.status_code == 302 and design.task_days == 5 and design.endpoint_rules.sd_minimum_days == 42
