"""A double read in a real browser: each reader draws two target lesions at baseline and signs, reads the
follow-up and signs; the readers disagree at the follow-up, the adjudicator compares both reads drawn over the
images, picks one and signs; the visits' results are locked and both readers' SRs are in the follow-up study."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pydicom
import pytest
from django.urls import reverse
from playwright.sync_api import expect

from reads.bench import drawn_line, image_ref
from reads.models import Adjudication, Read, ReaderAssignment, ReadTask, TimepointResult
from reads.services import read_design_set
from reads.sr import parse_measurement_report
from reads.sr_store import read_sr_dataset
from tests.conftest import PASSWORD, build_world, make_user, upload_files
from tests.e2e.conftest import enter_user_id, log_in, screenshot
from tests.reads.flow import baseline_content, follow_up_content, save_and_sign, task_of
from trials import qc_services, services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Membership, Role, Series, Timepoint

SUBJECT = "ALPHA-SEO-001"
LEFT = '.viewer-pane[data-pane="left"] .viewer-viewport'
RIGHT_PANE, LEFT_PANE = '.viewer-pane[data-pane="right"]', '.viewer-pane[data-pane="left"]'
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
    enter_user_id(page, "read")
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
    # Eight measured targets drawn, and the second reader's new lesion listed by its image.
    assert overlays["overlays"] == 9 and len(overlays["drawn"]) == 8, overlays
    expect(page.locator("#adjudicate-overlays button[data-overlay]")).to_have_count(9)
    # An overlay of the baseline opens that visit beside the follow-up, on the image it was drawn on.
    page.click("#adjudicate-overlays button[data-overlay='0']")
    page.wait_for_function("() => window.ctimsViewer.state().panes.length === 2")
    expect(page.locator('.viewer-pane[data-pane="right"] .viewer-pane-label')).to_have_text("Baseline")
    page.wait_for_function("() => window.ctimsViewer.state().panes[1].shown")
    # Shown, the baseline's drawings get their sizes computed on the image as the others have.
    expect(page.locator("#viewer-measurements .measurement-value", has_text="\u2026")).to_have_count(0)
    expect(page.locator("#viewer-measurements .measurement-value")).to_have_count(8)
    screenshot(page, "adjudicate")
    page.click("#adjudicate-dock-toggle")
    page.check("#adjudicate-choice-1")
    page.fill("#adjudicate-reason", "The new liver lesion is a cyst seen at baseline.")
    enter_user_id(page, "adjudicate")
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


def pane_sops(page) -> list:
    return [p["sop"] for p in page.evaluate("() => window.ctimsViewer.state().panes")]


def wait_panes(page, *sops: str) -> None:
    """Wait until the panes show the given images (SOP instance UIDs, left first)."""
    page.wait_for_function(
        """(sops) => {
            const panes = window.ctimsViewer.state().panes;
            return panes.length === sops.length && panes.every((p, i) => p.shown && p.sop === sops[i]);
        }""",
        arg=list(sops),
    )


def in_language(page, name: str) -> None:
    """Switch the page's language with the top bar's switch; wait for the viewer to be ready again."""
    with page.expect_navigation():
        page.locator(".lang-switch button", has_text=name).click()
    page.wait_for_function("() => window.ctimsRead")
    page.evaluate("() => window.ctimsRead.ready")
    page.wait_for_selector("#viewer.is-ready")


def readers() -> tuple:
    return tuple(ReaderAssignment.objects.get(subject__code=SUBJECT, slot=slot).reader for slot in (1, 2))


def one_target(task, image: dict, mm: str) -> dict:
    """A baseline read of one target drawn on `image`."""
    target = {"label": "T01", "site": LIVER, "is_node": False, "status": "measured", "long_mm": mm, "short_mm": None}
    target.update(long_points=drawn_line(image, mm), short_points=None, image=image)
    return {"targets": [target], "non_targets": [], "new_lesions": "none", "new": []}


def my_baseline_on_its_second_image(world) -> tuple:
    """Both visits ready, and the first reader's baseline signed with one 30 mm target on the baseline's second
    image (not the first: a Show has to find it): (that reader, the image)."""
    ready(world, "BL", 0), ready(world, "W6", 42)
    mine, _ = readers()
    bl = task_of(mine, "BL")
    on = image_ref(bl, 1)
    save_and_sign(mine, bl, one_target(bl, on, "30.0"))
    return mine, on


def test_the_follow_up_shows_the_readers_own_baseline_drawn_and_a_lesion_brings_both_panes_to_it(world, stores, page):
    spacing = float(real_ct_template(large=True).PixelSpacing[0])
    mine, on = my_baseline_on_its_second_image(world)
    theirs = readers()[1]
    other_bl = task_of(theirs, "BL")
    save_and_sign(theirs, other_bl, one_target(other_bl, image_ref(other_bl, 2), "41.0"))
    problems = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})

    as_(page, mine.email.split("@")[0])
    open_task(page, "Week 6")
    expect(page.locator("#read-lesion-T01 .lesion-previous.is-drawn")).to_have_text("Baseline: 30.0 mm")
    page.wait_for_function("() => window.ctimsRead.state().rows.every((r) => r.priors.every((p) => p.uid))")
    # Only the reader's own earlier measurement is there, as they drew it (the other reader's 41 mm is not).
    drawn = page.evaluate("() => window.ctimsViewer.state().measurements")
    assert [m["label"] for m in drawn] == ["T01 · Baseline"] and drawn[0]["locked"], drawn
    assert drawn[0]["points"] == drawn_line(on, "30.0"), drawn

    # The lesion's Show opens the baseline beside the follow-up on the image it was measured on, drawn dashed with
    # its label; the follow-up has not been measured yet and keeps in step through the link.
    page.click("#read-lesion-T01 .lesion-show")
    page.wait_for_function(
        "(sop) => { const p = window.ctimsViewer.state().panes; return p.length === 2 && p[1].sop === sop; }",
        arg=on["sop"],
    )
    expect(page.locator(f"{RIGHT_PANE} .viewer-pane-label")).to_have_text("Baseline")
    expect(page.locator(f"{RIGHT_PANE} svg text", has_text="T01 · Baseline")).to_have_count(1)
    expect(page.locator(f'{RIGHT_PANE} svg line[stroke-dasharray="6,4"]')).not_to_have_count(0)
    expect(page.locator(f"{LEFT_PANE} svg text", has_text="Baseline")).to_have_count(0)
    # Blinded: the comparison names visits and the anatomy, never the subject or the investigator site.
    shown = page.locator("main").inner_text()
    assert SUBJECT not in shown and "Seoul" not in shown and "SEO" not in shown
    screenshot(page, "read-priors")

    # The reader measures the lesion on the first image of the follow-up, then scrolls both panes away.
    page.locator(LEFT).focus()
    page.keyboard.press("Home")
    page.wait_for_function("() => window.ctimsViewer.state().panes[0].imageIndex === 0")
    first_sop = pane_sops(page)[0]
    page.select_option("#read-T01-status", "measured")
    measured = measure(page, "T01", T01, spacing)
    assert measured["image"]["sop"] == first_sop
    page.locator(LEFT).focus()
    page.keyboard.press("End")
    page.wait_for_function("() => window.ctimsViewer.state().panes.every((p) => p.imageIndex === p.total - 1)")
    assert pane_sops(page) != [first_sop, on["sop"]]

    # Show brings each pane to its own image of the lesion; clicking the earlier measurement in the list does too.
    page.click("#read-lesion-T01 .lesion-show")
    wait_panes(page, first_sop, on["sop"])
    page.keyboard.press("End")
    page.wait_for_function("() => window.ctimsViewer.state().panes.every((p) => p.imageIndex === p.total - 1)")
    page.locator("#viewer-measurements .measurement-go", has_text="T01 · Baseline").click()
    wait_panes(page, first_sop, on["sop"])
    assert not problems, problems


@pytest.mark.parametrize(("move", "kept"), [("key", 2), ("wheel", 2), ("slider", 2), ("series", 0)])
def test_a_move_while_show_loads_its_images_stays_where_the_reader_put_it(world, stores, page, move, kept):
    """Show moves the other pane through the link once its images are on screen; a reader who moves the pane
    before then keeps their own place: scrolled by the keys, the wheel or the slider, or the series opened again
    from the list (the pane jumped back on a loaded machine). `kept`: the image index the reader's move leaves."""
    mine, on = my_baseline_on_its_second_image(world)
    series = dict(
        Series.objects.filter(modality="CT").values_list("study__timepoint__visit__code", "series_instance_uid")
    )
    baseline = series["BL"]
    held = []

    def baseline_frames(url: str) -> bool:
        return baseline in url and "/frames/" in url

    page.route(baseline_frames, lambda route: held.append(route))  # answered when the test says
    as_(page, mine.email.split("@")[0])
    open_task(page, "Week 6")
    page.locator(LEFT).focus()
    if move == "series":  # from the last image, so that opening the series again (at its first) is seen
        page.keyboard.press("End")
        page.wait_for_function("() => window.ctimsViewer.state().panes[0].imageIndex === 2")

    with page.expect_request(lambda request: baseline_frames(request.url)):
        page.click("#read-lesion-T01 .lesion-show")
    if move == "key":
        page.locator(LEFT).focus()
        page.keyboard.press("End")
    elif move == "wheel":
        page.locator(LEFT).hover()
        for notch in (1, 2):
            page.mouse.wheel(0, 120)
            page.wait_for_function(f"() => window.ctimsViewer.state().panes[0].imageIndex === {notch}")
    elif move == "slider":
        page.locator(f"{LEFT_PANE} .viewer-slider").fill("3")
    else:
        page.locator(LEFT).focus()
        page.locator(f'#viewer-series-list button[data-series="{series["W6"]}"]').click()
    page.wait_for_function(f"() => window.ctimsViewer.state().panes[0].imageIndex === {kept}")
    assert held and page.evaluate("() => window.ctimsViewer.state().jumping"), "Show waits for the baseline's images"
    for route in held:
        route.continue_()
    page.unroute(baseline_frames)
    page.wait_for_function("() => !window.ctimsViewer.state().jumping")
    wait_panes(page, pane_sops(page)[0], on["sop"])  # the baseline landed on the lesion's image
    assert page.evaluate("() => window.ctimsViewer.state().panes[0].imageIndex") == kept


def test_the_adjudicator_jumps_to_a_disputed_new_lesion_with_the_decision_in_reach(world, stores, page):
    ready(world, "BL", 0), ready(world, "W6", 42)
    first, second = readers()
    for reader in (first, second):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    w6 = task_of(first, "W6")
    save_and_sign(first, w6, follow_up_content(w6, "16.1", "8.4"))  # PR
    w6 = task_of(second, "W6")
    save_and_sign(second, w6, follow_up_content(w6, "22.0", "12.0", new="unequivocal"))  # PD: a new lesion N01
    assert Adjudication.objects.filter(subject__code=SUBJECT, task__isnull=False).exists()
    new_on, target_bl, target_w6 = image_ref(w6, 2), image_ref(task_of(first, "BL"), 0), image_ref(w6, 0)
    problems = watch_console(page)
    page.set_viewport_size({"width": 1440, "height": 900})

    as_(page, "ada")
    open_task(page, "Week 6", kind="Adjudication")
    # The decision is docked at the bottom of the window, below the images' slider, folded to one line.
    dock = page.locator("#adjudicate-dock-toggle")
    expect(dock).to_be_in_viewport()
    expect(page.locator("#adjudicate-form")).to_be_hidden()
    slider = page.locator(f"{LEFT_PANE} .viewer-slider").bounding_box()
    assert slider["y"] + slider["height"] <= dock.bounding_box()["y"], (slider, dock.bounding_box())

    # In Korean the dock and the list speak Korean too.
    in_language(page, "한국어")
    expect(page.locator(".adjudicate-dock-hint")).to_have_text(
        "한 판독자의 시리즈를 채택하고 이유를 적은 뒤 서명하십시오."
    )
    expect(page.locator('#adjudicate-overlays button[data-label="N01"]')).to_contain_text("새 병변")
    expect(page.locator('#adjudicate-overlays button[data-label="N01"]')).to_contain_text("판독자 불일치")
    in_language(page, "English")

    # The new lesion only the second reader saw is in dispute: the list jumps to it.
    new = page.locator('#adjudicate-overlays button[data-label="N01"]')
    expect(new).to_have_class(re.compile(r"\bis-disputed\b"))
    expect(new).to_contain_text("New lesion")
    expect(new).to_contain_text("Readers differ")
    new.click()
    wait_panes(page, new_on["sop"])
    # The first reader's baseline T01 brings the baseline beside, and the follow-up to their T01 there.
    page.locator('#adjudicate-overlays button[data-label="T01"][data-reader="1"][data-visit="BL"]').click()
    wait_panes(page, target_w6["sop"], target_bl["sop"])
    # Back to the new lesion: only the follow-up holds it, and the baseline beside follows through the link to the
    # same level (the visits' slices lie at the same places), where the adjudicator looks for it at baseline.
    page.locator('#adjudicate-overlays button[data-label="N01"]').click()
    wait_panes(page, new_on["sop"], image_ref(task_of(first, "BL"), 2)["sop"])

    # A lesion in the comparison table below brings the images back into view, on that lesion.
    in_table = page.locator('#adjudicate-table .adjudicate-show[data-reader="1"][data-visit="BL"][data-label="T01"]')
    in_table.scroll_into_view_if_needed()
    expect(page.locator(".viewer-grid")).not_to_be_in_viewport()
    in_table.click()
    wait_panes(page, target_w6["sop"], target_bl["sop"])
    expect(page.locator(".viewer-grid")).to_be_in_viewport()

    # Comparing the tables further down, the decision is still at hand, and opens over them.
    page.locator("#adjudicate-table").scroll_into_view_if_needed()
    expect(page.locator("#adjudicate-table")).to_be_in_viewport()
    expect(dock).to_be_in_viewport()
    dock.click()
    for control in ("#adjudicate-choice-2", "#adjudicate-reason", "#adjudicate-password", "#adjudicate-button"):
        expect(page.locator(control)).to_be_in_viewport()
    screenshot(page, "adjudicate-dock")
    page.check("#adjudicate-choice-2")
    page.fill("#adjudicate-reason", "N01 is a new liver lesion.")
    enter_user_id(page, "adjudicate")
    page.fill("#adjudicate-password", PASSWORD)
    page.check("#adjudicate-meaning")
    page.click("#adjudicate-button")
    page.wait_for_url(f"**{reverse('read-worklist')}")
    expect(page.locator(".messages")).to_contain_text("Adjudication signed")
    assert not problems, problems


def test_two_tabs_on_one_read_never_replace_each_others_work_unseen(world, stores, page):
    ready(world, "BL", 0)
    reader = ReaderAssignment.objects.get(subject__code=SUBJECT, slot=1).reader
    task = ReadTask.objects.get(assignment__reader=reader, timepoint__visit__code="BL", kind="read")
    as_(page, reader.email.split("@")[0])
    open_task(page, "Baseline")
    other = page.context.new_page()
    open_task(other, "Baseline")  # both tabs show the empty read

    # The first tab records a non-target lesion and saves it.
    page.bring_to_front()
    page.click("#read-add-non-target")
    page.select_option("#read-NT01-site", LIVER)
    wait_saved(page)

    # The second tab, still showing the empty read, records its own: refused, and it says so instead of "Saved".
    other.bring_to_front()
    other.click("#read-add-non-target")
    assert other.evaluate("() => window.ctimsRead.saved()") == "error"
    expect(other.locator("#read-save-state")).to_contain_text("changed in another tab or window")
    state = read_state(other)
    assert state["conflict"] and not state["signable"], state
    assert Read.objects.get(task=task).content["non_targets"][0]["site"] == LIVER

    # Reloaded, the second tab shows the read as it is and changes it; the first, back in front, is told so and
    # offers no signing of what it shows.
    other.reload()
    other.wait_for_selector("#viewer.is-ready")
    expect(other.locator("#read-NT01-site")).to_have_value(LIVER)
    other.select_option("#read-NT01-site", LUNG)
    wait_saved(other)
    page.bring_to_front()
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#read-save-state")).to_contain_text("changed in another tab or window")
    expect(page.locator("#read-sign-button")).to_be_disabled()
    assert read_state(page)["conflict"]
    assert Read.objects.get(task=task).content["non_targets"][0]["site"] == LUNG


def test_a_target_drawn_on_an_image_without_pixel_spacing_is_not_taken_as_millimetres(world, stores, page):
    """An image with no Pixel Spacing measures in pixels: the lesion is not given that figure as its size in mm
    (nor saved with it): the reader is told why and the lesion still waits for a measurement."""
    template = real_ct_template(large=False)
    del template.PixelSpacing
    files = synthesize_ct_series(template, slices=2, seed="reads-e2e/no-spacing")
    timepoint = upload_files(world.cora, SUBJECT, files, "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    problems = watch_console(page)
    as_(page, "rhea")
    open_task(page, "Baseline")
    page.click("#read-add-target")
    drag(page, *T01)
    expect(page.locator("#read-save-state")).to_contain_text("in pixels, not millimetres")
    state = read_state(page)
    assert state["pending"] == "T01" and state["content"]["targets"] == [], state
    expect(page.locator("#read-lesion-T01 .lesion-value")).to_have_text("")
    assert not problems, problems


def test_a_refused_save_says_each_problem_once_and_no_field_paths(world, stores, page):
    """The server's error names the fields (targets[0].long_mm) for the page: the reader reads the messages,
    each once, and none of the paths."""
    ready(world, "BL", 0)
    message = "The long axis of T01 is recorded as 16.1 mm but the line drawn for it is 26.5 mm long."
    body = {"error": {"code": "invalid", "message": message, "fields": {"targets[0].long_mm": [message, "Again."]}}}
    as_(page, "rhea")
    open_task(page, "Baseline")
    page.route("**/draft/", lambda route: route.fulfill(status=400, json=body))
    page.click("#read-add-non-target")
    expect(page.locator("#read-save-state")).to_have_text(f"Not saved: {message} Again.")


def test_lengths_drawn_on_coarse_pixels_are_recorded_as_long_as_the_lines_saved(world, stores, page):
    """4 mm pixels (a 512 mm field on 128 pixels): the points a read keeps are rounded to a tenth of a pixel, and
    the size recorded is the length of that line at the Pixel Spacing, as the server recomputes it, so no drawing
    is refused as "recorded as X mm but the line drawn is Y mm" (Cornerstone's figure for the unrounded line
    differed from the kept line's by up to 0.4 mm here)."""
    template = real_ct_template(large=False)
    template.PixelSpacing = [4.0, 4.0]
    files = synthesize_ct_series(template, slices=2, seed="reads-e2e/coarse")
    timepoint = upload_files(world.cora, SUBJECT, files, "BL")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))
    as_(page, "rhea")
    open_task(page, "Baseline")
    lines = (((-157, -71), (-33, -22)), ((21, 37), (133, 121)), ((-97, 83), (61, 17)))
    for n, where in enumerate(lines, start=1):
        page.click("#read-add-target")
        drag(page, *where)
        page.wait_for_function(
            """(label) => {
                const state = window.ctimsRead.state();
                const t = state.content.targets.find((t) => t.label === label);
                return t && t.long_mm !== null && !state.pending;
            }""",
            arg=f"T0{n}",
        )
    state = wait_saved(page)
    for target in state["content"]["targets"]:
        [[c1, r1], [c2, r2]] = target["long_points"]
        drawn = Decimal(str(((c2 - c1) ** 2 + (r2 - r1) ** 2) ** 0.5 * 4))
        assert abs(drawn - Decimal(target["long_mm"])) <= Decimal("0.05"), target
        expect(page.locator(f"#read-lesion-{target['label']} .lesion-value")).to_have_text(f"{target['long_mm']} mm")
