"""A double read in a real browser: each reader draws two target lesions at baseline and signs, reads the
follow-up and signs; the readers disagree at the follow-up, the adjudicator compares both reads drawn over the
images, picks one and signs; the visits' results are locked and both readers' SRs are in the follow-up study."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import expect

from reads.models import Read, ReaderAssignment, ReadTask, TimepointResult
from reads.services import read_design_set
from reads.sr import parse_measurement_report
from reads.sr_store import read_sr_dataset
from tests.conftest import PASSWORD, build_world, make_user, upload_files
from tests.e2e.conftest import log_in, screenshot
from trials import qc_services, services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Membership, Role, Series, Timepoint

SUBJECT = "ALPHA-SEO-001"
LEFT = '.viewer-pane[data-pane="left"] .viewer-viewport'
LIVER, LUNG = "10200004", "39607008"
# Where each lesion is drawn, as offsets in screen pixels from the viewport's centre: (start, end).
T01 = ((-150, -60), (-30, -60))
T02 = ((30, 60), (120, 60))


@pytest.fixture
def world(transactional_db):
    """The cast with a double-read design on ALPHA; no transaction around the test, so commits run the tasks."""
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w


def ready(world, visit: str, day: int) -> Timepoint:
    """A visit uploaded through the pipeline and passed by QC: its read tasks are created."""
    template = real_ct_template(large=True)
    files = synthesize_ct_series(
        template, slices=3, seed=f"reads-e2e/{visit}", study_date=date(2026, 3, 2) + timedelta(days=day)
    )
    timepoint = upload_files(world.cora, SUBJECT, files, visit)
    return qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))


def watch_console(page) -> list[str]:
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def as_(page, name: str) -> None:
    page.context.clear_cookies()
    log_in(page, f"{name}@example.org", PASSWORD)


def read_state(page) -> dict:
    return page.evaluate("() => window.ctimsRead.state()")


def open_task(page, visit_label: str, kind: str = "Read") -> None:
    """From the worklist, open the task of a visit; wait for the images and the saved lesions drawn back."""
    page.goto(reverse("read-worklist"))
    row = page.locator("section[aria-labelledby=todo-heading] tbody tr", has_text=visit_label).filter(has_text=kind)
    row.get_by_role("link", name="Open").click()
    page.wait_for_function("() => window.ctimsRead")
    page.evaluate("() => window.ctimsRead.ready")
    page.wait_for_selector("#viewer.is-ready")


def drag(page, start, end) -> None:
    box = page.locator(LEFT).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x + start[0], y + start[1])
    page.mouse.down()
    page.mouse.move(x + end[0], y + end[1], steps=10)
    page.mouse.up()


def measure(page, label: str, where, spacing: float) -> dict:
    """Draw a lesion's long axis with the mouse; returns the target as the read will save it."""
    drag(page, *where)
    # Cornerstone computes the size in mm throttled while the mouse moves: wait for the size of the final points.
    page.wait_for_function(
        """([label, spacing]) => {
            const state = window.ctimsRead.state();
            const t = state.content.targets.find((t) => t.label === label);
            if (!t || t.long_mm === null || state.pending) return false;
            const [[c1, r1], [c2, r2]] = t.long_points;
            return Math.abs(Math.hypot(c2 - c1, r2 - r1) * spacing - Number(t.long_mm)) < 0.15;
        }""",
        arg=[label, spacing],
    )
    return next(t for t in read_state(page)["content"]["targets"] if t["label"] == label)


def wait_saved(page) -> dict:
    assert page.evaluate("() => window.ctimsRead.saved()") == "saved", read_state(page)
    return read_state(page)


def sign(page) -> None:
    page.fill("#read-password", PASSWORD)
    page.check("#read-meaning")
    expect(page.locator("#read-sign-button")).to_be_enabled()
    page.click("#read-sign-button")
    page.wait_for_url(f"**{reverse('read-worklist')}")
    expect(page.locator(".messages")).to_contain_text("Signed")


def read_baseline(page, spacing: float, *, shot: str | None = None) -> dict[str, dict]:
    open_task(page, "Baseline")
    drawn = {}
    for label, site, where in (("T01", LIVER, T01), ("T02", LUNG, T02)):
        page.click("#read-add-target")
        assert read_state(page)["pending"] == label
        drawn[label] = measure(page, label, where, spacing)
        page.select_option(f"#read-{label}-site", site)
    state = wait_saved(page)
    assert [t["site"] for t in state["content"]["targets"]] == [LIVER, LUNG]
    assert all(Decimal(t["long_mm"]) >= 10 for t in drawn.values()), drawn
    total = sum(Decimal(t["long_mm"]) for t in drawn.values())
    expect(page.locator("#read-assessment-body [data-field=sum_mm] dd")).to_have_text(f"{total} mm")
    assert state["assessment"]["sum_mm"] == str(total) and state["signable"]
    if shot:
        screenshot(page, shot)
    sign(page)
    return drawn


def read_follow_up(page, spacing: float, sizes: dict[str, tuple], *, new: str) -> tuple[dict[str, dict], dict]:
    open_task(page, "Week 6")
    expect(page.locator("#read-lesion-T01 .lesion-previous")).to_contain_text("Baseline")
    drawn = {}
    for label, where in sizes.items():
        page.select_option(f"#read-{label}-status", "measured")
        assert read_state(page)["pending"] == label
        drawn[label] = measure(page, label, where, spacing)
    page.check(f"#read-new-{new}")
    if new != "none":
        page.click("#read-add-new")
        page.select_option("#read-N01-site", LIVER)
        page.click("#read-lesion-N01 .lesion-image")
    state = wait_saved(page)
    assert state["awaiting"] == [] and state["signable"], state
    sign(page)
    return drawn, state["assessment"]


def test_two_readers_disagree_at_follow_up_and_the_adjudicator_decides(world, stores, page):
    spacing = float(real_ct_template(large=True).PixelSpacing[0])
    bl, w6 = ready(world, "BL", 0), ready(world, "W6", 42)
    first, second = (
        ReaderAssignment.objects.get(subject__code=SUBJECT, slot=slot).reader.email.split("@")[0] for slot in (1, 2)
    )
    case = ReaderAssignment.objects.get(subject__code=SUBJECT, slot=1).case_label
    problems = watch_console(page)

    # The first reader sees the case by its label only, reads the baseline, then the follow-up smaller: a PR.
    as_(page, first)
    page.goto(reverse("read-worklist"))
    worklist = page.locator("main").inner_text()
    assert case in worklist and SUBJECT not in worklist and "Seoul" not in worklist
    expect(page.locator("section[aria-labelledby=waiting-heading]")).to_contain_text("Week 6")
    baseline_1 = read_baseline(page, spacing, shot="read-baseline")
    smaller = {"T01": ((-150, -60), (-80, -60)), "T02": ((30, 60), (80, 60))}
    follow_up_1, assessment_1 = read_follow_up(page, spacing, smaller, new="none")
    assert assessment_1["overall_response"] == "PR", assessment_1

    # The second reader measures the same but finds an unequivocal new lesion: PD.
    as_(page, second)
    baseline_2 = read_baseline(page, spacing)
    follow_up_2, assessment_2 = read_follow_up(page, spacing, {"T01": T01, "T02": T02}, new="unequivocal")
    assert assessment_2["overall_response"] == "PD", assessment_2

    baseline_result = TimepointResult.objects.select_related("read__task__assignment").get(timepoint=bl)
    assert baseline_result.source == "agreement" and baseline_result.read.task.assignment.slot == 1
    assert Timepoint.objects.get(pk=w6.pk).state == "in_adjudication"

    # The adjudicator sees where the readers differ, both readers' lesions drawn, and picks the first reader.
    as_(page, "ada")
    open_task(page, "Week 6", kind="Adjudication")
    expect(page.locator("#adjudicate-table tbody.differs")).to_have_count(1)
    expect(page.locator("#adjudicate-table tbody.differs")).to_contain_text("Week 6")
    overlays = read_state(page)
    assert overlays["overlays"] == 8 and len(overlays["drawn"]) == 8, overlays
    expect(page.locator("#adjudicate-overlays button[data-overlay]")).to_have_count(8)
    # An overlay of the baseline opens that visit beside the follow-up, on the image it was drawn on.
    page.click("#adjudicate-overlays button[data-overlay='0']")
    page.wait_for_function("() => window.ctimsViewer.state().panes.length === 2")
    expect(page.locator('.viewer-pane[data-pane="right"] .viewer-pane-label')).to_have_text("Baseline")
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].shown")
    # Shown, the baseline's drawings get their sizes computed on the image as the others have.
    expect(page.locator("#viewer-measurements .measurement-value", has_text="\u2026")).to_have_count(0)
    expect(page.locator("#viewer-measurements .measurement-value")).to_have_count(8)
    screenshot(page, "adjudicate")
    page.check("#adjudicate-choice-1")
    page.fill("#adjudicate-reason", "The new liver lesion is a cyst seen at baseline.")
    page.fill("#adjudicate-password", PASSWORD)
    page.check("#adjudicate-meaning")
    page.click("#adjudicate-button")
    page.wait_for_url(f"**{reverse('read-worklist')}")
    expect(page.locator(".messages")).to_contain_text("Adjudication signed")

    result = TimepointResult.objects.select_related("read__task__assignment").get(timepoint=w6)
    assert result.source == "adjudication" and result.read.task.assignment.slot == 1
    assert result.overall_response == "PR"
    assert Timepoint.objects.get(pk=w6.pk).state == "locked"

    # Each reader's follow-up SR is in the follow-up study, with what was drawn and the lesions tracked, and the
    # result SR the adjudication wrote beside them.
    assert Series.objects.filter(study__timepoint=w6, modality="SR").count() == 3
    assert result.sr_instance.series.study.timepoint_id == w6.pk
    for slot, baseline, follow_up in ((1, baseline_1, follow_up_1), (2, baseline_2, follow_up_2)):
        reads = {
            r.task.timepoint.visit.code: r
            for r in Read.objects.filter(task__assignment__slot=slot, task__kind=ReadTask.Kind.READ, state="signed")
        }
        srs = {visit: parse_measurement_report(read_sr_dataset(read)) for visit, read in reads.items()}
        assert srs["W6"].study_uid == follow_up["T01"]["image"]["study"]
        for visit, drawn in (("BL", baseline), ("W6", follow_up)):
            lesions = {lesion.tracking_label: lesion for lesion in srs[visit].lesions}
            for label, target in drawn.items():
                assert lesions[label].long_axis_mm == Decimal(target["long_mm"])
                assert lesions[label].short_axis_mm == Decimal(target["short_mm"])
                assert lesions[label].image.sop_instance_uid == target["image"]["sop"]
        bl_uids = {lesion.tracking_label: lesion.tracking_uid for lesion in srs["BL"].lesions}
        w6_uids = {lesion.tracking_label: lesion.tracking_uid for lesion in srs["W6"].lesions}
        assert w6_uids["T01"] == bl_uids["T01"] and w6_uids["T02"] == bl_uids["T02"]
    assert not problems, problems

    # The sponsor sees the two locked results and downloads the follow-up's SR: the adjudication's result SR,
    # which names reader 1's SR as the read it accepted.
    page.context.clear_cookies()
    log_in(page, "sam@example.org", PASSWORD)
    page.goto(reverse("read-results", args=["ALPHA"]))
    rows = page.locator("table.read-results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("Partial response")
    expect(rows.nth(1)).to_contain_text("Adjudicated")
    screenshot(page, "read-results")
    with page.expect_download() as download:
        rows.nth(1).get_by_role("link", name="DICOM SR").click()
    sr = pydicom.dcmread(download.value.path())
    assert sr.SOPInstanceUID == result.sr_instance.sop_instance_uid
    [accepted] = sr.PredecessorDocumentsSequence
    assert accepted.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        result.read.sr_instance.sop_instance_uid
    )


def test_the_trial_admin_gives_the_case_of_a_reader_who_left_to_a_new_reader(world, stores, page):
    ready(world, "BL", 0)
    task = ReadTask.objects.get(assignment__reader=world.rhea, timepoint__visit__code="BL")
    services.membership_revoke(
        actor=world.alice, membership=Membership.objects.get(trial=world.trial, user=world.rhea, role=Role.READER)
    )
    rita = make_user("rita")
    services.membership_grant(actor=world.alice, trial=world.trial, user=rita, role=Role.READER)
    problems = watch_console(page)

    as_(page, "alice")
    page.goto(reverse("read-design", args=["ALPHA"]))
    departures = page.locator("section.departures")
    row = departures.locator("tbody tr", has_text=task.assignment.case_label)
    expect(row).to_contain_text("Rhea")
    row.get_by_label("Give to").select_option(label="Rita")
    screenshot(page, "reads-departure")
    row.get_by_role("button", name="Give the case").click()
    expect(page.locator(".message-success")).to_contain_text(f"Case {task.assignment.case_label} now goes to Rita.")
    expect(page.locator("section.departures")).to_have_count(0)

    as_(page, "rita")
    open_task(page, "Baseline")  # her worklist offers it, and the images and read panel open
    as_(page, "rhea")
    page.goto(reverse("read-worklist"))
    expect(page.get_by_text(task.assignment.case_label)).to_have_count(0)
    assert not problems, problems
