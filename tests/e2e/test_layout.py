"""Layouts in a real browser. On a phone (390x844) every page a site coordinator uses, and the other roles' main
pages, fit the width: no sideways scrolling and every visible control inside the viewport; the coordinator's
upload goes through to "Uploaded" there. On a 1440x900 desktop, QC's image page shows the whole image and its
slice slider, and leads back to the QC review it was opened from."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from ctims.models import User
from reads.services import read_design_set
from tests.conftest import PASSWORD, authenticator_of, build_world, ct_protocol, current_code, upload_files
from tests.e2e.conftest import click_to_page, page_in, screenshot, settled
from tests.e2e.conftest import log_in as log_in_on_a_desktop
from trials import qc_services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Query, Series, Timepoint

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
READ = "ALPHA-SEO-002"  # baseline in read, week 6 with an open query
NEW = "ALPHA-SEO-001"  # nothing uploaded yet

# The page's scrolling width against the viewport's, every visible control lying outside the viewport and every
# table wider than its box (described for the failure message). Visually hidden text and the skip link are not
# controls on screen.
OUTSIDE = """() => {
    const root = document.scrollingElement;
    const width = root.clientWidth;
    const controls = document.querySelectorAll(
        "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex='0']"
    );
    const outside = [];
    for (const el of controls) {
        if (!el.checkVisibility({visibilityProperty: true}) || el.closest(".visually-hidden, .skip-link")) continue;
        const box = el.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        if (box.left < -0.5 || box.right > width + 0.5) {
            const text = (el.innerText || el.value || el.name || "").trim().replace(/\\s+/g, " ").slice(0, 40);
            outside.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${text}" at ${box.left}..${box.right}`);
        }
    }
    // A table that keeps its columns may scroll in its box; any other must fit it.
    for (const wrap of document.querySelectorAll(".table-wrap")) {
        if (!wrap.checkVisibility() || wrap.querySelector("table.numeric, table.keep-columns")) continue;
        if (wrap.scrollWidth > wrap.clientWidth + 1) {
            outside.push(`table.${wrap.querySelector("table").className} ${wrap.scrollWidth} wide in ${wrap.clientWidth}`);
        }
    }
    return {scrollWidth: root.scrollWidth, clientWidth: width, outside};
}"""


def fits(page, name: str) -> None:
    """The page needs no sideways scrolling and shows every visible control inside the viewport."""
    settled(page)
    found = page.evaluate(OUTSIDE)
    assert found["clientWidth"] == page.viewport_size["width"], found
    assert found["scrollWidth"] <= found["clientWidth"], (name, found)
    assert found["outside"] == [], (name, found)
    screenshot(page, f"phone-{name}")


@pytest.fixture
def world(transactional_db, stores):
    """The cast with a double read on ALPHA. ALPHA-SEO-002's baseline passed QC (two read tasks wait) and its week 6
    failed QC (a query waits for the Seoul coordinators); ALPHA-SEO-001 has nothing uploaded yet."""
    w = build_world()
    ct_protocol(w, visits=("BL", "W6"))
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    for n, visit in enumerate(("BL", "W6")):
        files = synthesize_ct_series(
            real_ct_template(large=False),
            slices=3,
            seed=f"layout/{visit}",
            study_date=date(2026, 3, 2) + timedelta(days=42 * n),
        )
        upload_files(w.cora, READ, files, visit)
    baseline = Timepoint.objects.get(subject__code=READ, visit__code="BL")
    qc_services.qc_pass(actor=w.quinn, timepoint=baseline)
    week6 = Timepoint.objects.get(subject__code=READ, visit__code="W6")
    qc_services.qc_fail(
        actor=w.quinn,
        timepoint=week6,
        series=list(Series.objects.filter(study__timepoint=week6)),
        reason="Slices lost.",
    )
    return w


@pytest.fixture
def folder(tmp_path) -> Path:
    """A scanner's folder: a series, a note that is not DICOM and one image of another patient."""
    root = tmp_path / "CD"
    series = root / "DICOM" / "SE000001"
    series.mkdir(parents=True)
    for n, data in enumerate(synthesize_ct_series(real_ct_template(large=False), slices=4, seed="phone"), 1):
        (series / f"IM{n:05d}").write_bytes(data)
    stray = synthesize_ct_series(
        real_ct_template(large=False), slices=1, seed="phone-stray", patient_name="KIM^OTHER", patient_id="PID0998"
    )
    (series / "IM99999").write_bytes(stray[0])
    (root / "README.txt").write_text("Exported by the scanner.\n")
    return root


@pytest.fixture
def phone(browser, live_server):
    with page_in(browser, live_server, viewport=PHONE, has_touch=True) as page:
        yield page


def log_in(page, name: str) -> None:
    """Log in through the pages, checking each of them: the password, then for the roles that need it the
    authenticator's enrolment and the code."""
    page.context.clear_cookies()
    page.goto(reverse("login"))
    fits(page, "login")
    page.fill("input[name=username]", f"{name}@example.org")
    page.fill("input[name=password]", PASSWORD)
    click_to_page(page)
    if "/two-factor/" in page.url:
        fits(page, f"two-factor-{name}")
        device = authenticator_of(User.objects.get(email=f"{name}@example.org"))
        if "/enrol/" in page.url:  # the device was just made for the test: verify with it instead
            page.goto(reverse("two-factor"))
            fits(page, f"two-factor-code-{name}")
        page.fill("input[name=code]", current_code(device))
        click_to_page(page)
    assert "/accounts/" not in page.url


def visit_each(page, name: str, urls: list[str]) -> None:
    for url in urls:
        page.goto(url)
        fits(page, name + url.replace("/", "-").rstrip("-"))


def test_a_coordinator_uploads_and_answers_a_query_on_a_phone(world, folder, phone):
    page = phone
    log_in(page, "cora")
    fits(page, "cora-home")
    click_to_page(page, page.get_by_role("link", name="ALPHA").first)
    fits(page, "cora-trial")
    click_to_page(page, page.locator(".trialnav").get_by_role("link", name="Subjects"))
    fits(page, "cora-subjects")
    click_to_page(page, page.get_by_role("link", name=NEW, exact=True))
    fits(page, "cora-subject")

    # The subject page shows each visit's state and its upload button on screen.
    baseline = page.locator("main table tbody tr", has_text="Baseline")
    expect(baseline.locator("td[data-label=State]")).to_have_text("Expected")
    expect(baseline.locator("td[data-label=State]")).to_be_in_viewport()
    baseline.get_by_role("link", name="Upload images").click()
    page.wait_for_selector("#uploader.is-ready")
    fits(page, "cora-upload")

    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector("#upload-result .result-line, #upload-error:not([hidden])", timeout=60_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    expect(page.locator("#timepoint-state")).to_have_text("Uploaded")
    expect(page.locator("#upload-result")).to_contain_text("4 de-identified and stored, 0 already stored, 1 rejected.")
    page.click("#upload-skipped summary")
    stray = page.locator("#upload-rows tr", has_text="IM99999")
    expect(stray.locator(".file-state")).to_have_text("Rejected")
    expect(stray.locator("td[data-label=Details]")).to_contain_text("different patient")
    fits(page, "cora-uploaded")

    click_to_page(page, page.locator("#upload-back a"))
    baseline = page.locator("main table tbody tr", has_text="Baseline").first
    expect(baseline.locator("td[data-label=State]")).to_have_text("Uploaded")
    expect(page.locator("section", has_text="Upload history")).to_contain_text("different patient")
    fits(page, "cora-subject-uploaded")

    # The query on the other subject's week 6: the list, the thread and the answer.
    click_to_page(page, page.locator(".trialnav").get_by_role("link", name="Queries"))
    fits(page, "cora-queries")
    click_to_page(page, page.get_by_role("link", name="QC failed", exact=False))
    fits(page, "cora-query")
    page.fill("textarea[name=body]", "The missing slices are on their way.")
    click_to_page(page, page.get_by_role("button", name="Send answer"))
    expect(page.locator("#query-state")).to_have_text("Answered")
    fits(page, "cora-query-answered")
    assert Query.objects.get().state == "answered"

    page.goto(reverse("timepoint-upload", args=["ALPHA", READ, "W6"]))
    fits(page, "cora-upload-query-open")
    visit_each(page, "cora", [reverse("inbox"), reverse("read-worklist"), reverse("password_change")])

    # Tablets, upright and on their side, fit the same pages.
    for width, height in [(768, 1024), (1024, 768)]:
        page.set_viewport_size({"width": width, "height": height})
        urls = [reverse("trial-subjects", args=["ALPHA"]), reverse("subject-detail", args=["ALPHA", READ])]
        urls += [reverse("query-list", args=["ALPHA"]), reverse("query-detail", args=["ALPHA", Query.objects.get().pk])]
        visit_each(page, f"cora-{width}", urls)


def test_the_main_pages_of_every_role_fit_a_phone(world, phone):
    page = phone
    log_in(page, "quinn")
    visit_each(
        page,
        "quinn",
        [
            reverse("home"),
            reverse("inbox"),
            reverse("qc-worklist", args=["ALPHA"]),
            reverse("qc-timepoint", args=["ALPHA", READ, "W6"]),
            reverse("trial-subjects", args=["ALPHA"]),
            reverse("subject-detail", args=["ALPHA", READ]),
            reverse("query-list", args=["ALPHA"]),
            reverse("query-detail", args=["ALPHA", Query.objects.get().pk]),
        ],
    )
    # The image page is for desktops, but on a phone it stacks and still fits.
    page.goto(reverse("timepoint-viewer", args=["ALPHA", READ, "W6"]) + "?from=qc")
    page.wait_for_selector("#viewer.is-ready")
    fits(page, "quinn-images")

    log_in(page, "rhea")
    visit_each(page, "rhea", [reverse("home"), reverse("inbox"), reverse("read-worklist")])
    # The read page is for desktops, but on a phone its viewer and panel stack and still fit.
    click_to_page(page, page.locator("main tbody tr").get_by_role("link", name="Open").first)
    page.wait_for_selector("#viewer.is-ready")
    fits(page, "rhea-read")

    log_in(page, "ada")
    visit_each(page, "ada", [reverse("home"), reverse("read-worklist")])

    log_in(page, "alice")
    names = ["trial-detail", "trial-subjects", "trial-sites", "trial-schedule", "trial-people", "trial-tokens"]
    names += ["trial-audit", "query-list", "read-design", "read-results", "read-transfers"]
    visit_each(page, "alice", [reverse("home"), *(reverse(name, args=["ALPHA"]) for name in names)])

    log_in(page, "sam")
    names = ["trial-detail", "read-results", "read-transfers"]
    visit_each(page, "sam", [reverse("home"), *(reverse(name, args=["ALPHA"]) for name in names)])

    # In Korean (words are kept whole there) the coordinator's pages fit as well.
    log_in(page, "cora")
    click_to_page(page, page.locator(".lang-switch button[value=ko]"))
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    urls = [reverse("home"), reverse("inbox"), reverse("trial-detail", args=["ALPHA"])]
    urls += [reverse("trial-subjects", args=["ALPHA"])]
    urls += [reverse("subject-detail", args=["ALPHA", READ]), reverse("timepoint-upload", args=["ALPHA", NEW, "BL"])]
    urls += [reverse("query-list", args=["ALPHA"]), reverse("query-detail", args=["ALPHA", Query.objects.get().pk])]
    visit_each(page, "cora-ko", urls)


def in_view(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0, selector
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= DESKTOP["width"], (selector, box)
    assert box["y"] + box["height"] <= DESKTOP["height"], (selector, box)


def test_qc_s_image_page_fits_a_desktop_and_leads_back_to_the_review(world, page):
    page.set_viewport_size(DESKTOP)
    page.context.clear_cookies()
    log_in_on_a_desktop(page, "quinn@example.org", PASSWORD)
    qc_page = reverse("qc-timepoint", args=["ALPHA", READ, "W6"])
    page.goto(qc_page)
    page.get_by_role("link", name="View images").click()
    page.wait_for_selector("#viewer.is-ready")
    page.wait_for_function("() => window.ctimsViewer.state().loaded > 0")
    expect(page.locator(".trialnav a[aria-current=page]")).to_have_text("QC")

    in_view(page, '.viewer-pane[data-pane="left"] .viewer-viewport canvas')
    in_view(page, '.viewer-pane[data-pane="left"] .viewer-frame')
    in_view(page, '.viewer-pane[data-pane="left"] .viewer-slider')
    expect(page.locator('.viewer-pane[data-pane="left"] .viewer-slider')).to_be_enabled()
    screenshot(page, "qc-images-desktop")

    # Two visits side by side fit the same way.
    page.get_by_role("button", name="Compare two visits").click()
    page.wait_for_function("() => window.ctimsViewer.state().panes.length === 2")
    for pane in ("left", "right"):
        in_view(page, f'.viewer-pane[data-pane="{pane}"] .viewer-frame')
        in_view(page, f'.viewer-pane[data-pane="{pane}"] .viewer-slider')

    click_to_page(page, page.get_by_role("link", name="Back to the QC review"))
    assert page.url.endswith(qc_page)
    expect(page.locator("h1")).to_contain_text(f"Quality control {READ}")


def test_the_image_page_opened_from_a_subject_leads_back_to_the_subject(world, page):
    log_in_on_a_desktop(page, "cora@example.org", PASSWORD)
    page.goto(reverse("subject-detail", args=["ALPHA", READ]))
    page.locator("main table tbody tr", has_text="Baseline").get_by_role("link", name="View images").click()
    page.wait_for_selector("#viewer.is-ready")
    expect(page.get_by_role("link", name="Back to the QC review")).to_have_count(0)
    click_to_page(page, page.get_by_role("link", name=f"Back to subject {READ}"))
    assert page.url.endswith(reverse("subject-detail", args=["ALPHA", READ]))
