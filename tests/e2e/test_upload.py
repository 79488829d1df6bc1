"""Upload in a real browser: the coordinator chooses a scanner's folder (with files that are not DICOM and one
of another patient), the network drops once and the upload carries on; a second pass sends nothing again."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD, build_world
from tests.e2e.conftest import log_in, screenshot
from trials.ingest.services import upload_open, upload_receive
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Upload, UploadItem

SLICES = 36
RESULT = "#upload-result .result-line"


@pytest.fixture
def world(transactional_db):
    return build_world()


@pytest.fixture
def folder(tmp_path) -> Path:
    """What a scanner writes: a DICOMDIR, a series in nested folders, a note, a preview, and a stray file."""
    root = tmp_path / "CD-EXPORT"
    series_dir = root / "DICOM" / "ST000001" / "SE000002"
    series_dir.mkdir(parents=True)
    for n, data in enumerate(synthesize_ct_series(real_ct_template(large=False), slices=SLICES, seed="e2e"), 1):
        (series_dir / f"IM{n:05d}").write_bytes(data)
    stray = synthesize_ct_series(
        real_ct_template(large=False), slices=1, seed="e2e-stray", patient_name="KIM^OTHER", patient_id="PID0999"
    )
    (series_dir / "IM99999").write_bytes(stray[0])  # sorts last: the series' own files set the patient first
    (root / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 200)
    (root / "README.txt").write_text("Exported by the scanner's CD writer.\n")
    (root / "preview.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    return root


def open_upload_page(page):
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", "ALPHA-SEO-001", "BL"]))
    page.wait_for_selector("#uploader.is-ready")


def wait_for_the_result(page):
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=60_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()


def choose_folder(page, folder: Path):
    page.set_input_files("input[webkitdirectory]", str(folder))
    wait_for_the_result(page)


def states(page) -> list[str]:
    return page.locator("#upload-rows .file-state").all_inner_texts()


def bar(page, selector: str) -> tuple[float, float]:
    return tuple(page.eval_on_selector(selector, "p => [p.value, p.max]"))


def test_a_folder_is_uploaded_through_a_dropped_connection(world, stores, folder, page):
    stow = []

    def drop_the_second(route):
        stow.append(route.request.url)
        if len(stow) == 2:
            route.abort()
        else:
            route.continue_()

    open_upload_page(page)
    assert page.locator("#timepoint-state").inner_text() == "Expected"
    page.route("**/uploads/*/studies", drop_the_second)
    choose_folder(page, folder)

    value, maximum = bar(page, "#upload-send-progress")
    assert value == maximum and "100" in page.locator("#upload-send-text").inner_text()
    value, maximum = bar(page, "#upload-process-progress")
    assert value == maximum == SLICES + 1
    assert page.locator("#upload-process-text").inner_text() == f"{SLICES + 1} of {SLICES + 1} files processed"
    assert len(stow) >= 3  # two batches, one of them sent again

    assert page.locator("#upload-skipped-title").inner_text() == "Skipped (not images): 3 files"
    skipped = page.locator("#upload-skipped-list li").all_text_contents()
    assert sorted(s.split(" — ")[0] for s in skipped) == [
        "CD-EXPORT/DICOMDIR",
        "CD-EXPORT/README.txt",
        "CD-EXPORT/preview.jpg",
    ]

    assert states(page).count("De-identified and stored") == SLICES and len(states(page)) == SLICES + 1
    stray = page.locator("#upload-rows tr", has_text="IM99999")
    assert stray.locator(".file-state").inner_text() == "Rejected"
    assert "different patient" in stray.locator(".file-detail").inner_text()

    result = page.locator("#upload-result").inner_text()
    assert f"{SLICES} de-identified and stored, 0 already stored, 1 rejected." in result
    assert "The visit is now Uploaded." in result
    assert page.locator("#timepoint-state").inner_text() == "Uploaded"
    assert page.locator("#timepoint-stored").inner_text() == f"1 series / {SLICES} images"
    page.click("#upload-skipped summary")
    screenshot(page, "upload-complete")

    assert Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL").state == "uploaded"
    assert Instance.objects.filter(series__study__subject__code="ALPHA-SEO-001").count() == SLICES
    assert not [p for p in (stores / "quarantine").rglob("*") if p.is_file()]


def test_the_same_folder_again_after_a_reload_sends_nothing(world, stores, folder, page):
    open_upload_page(page)
    choose_folder(page, folder)
    assert Upload.objects.count() == 1

    stow = []
    page.on("request", lambda request: stow.append(request.url) if request.url.endswith("/studies") else None)
    page.reload()
    page.wait_for_selector("#uploader.is-ready")
    assert "1 series / 36 images" in page.locator(".facts").inner_text()
    choose_folder(page, folder)

    assert stow == []
    assert states(page).count("Already received") == SLICES
    stray = page.locator("#upload-rows tr", has_text="IM99999")
    assert stray.locator(".file-state").inner_text() == "Rejected"
    assert "different patient" in stray.locator(".file-detail").inner_text()
    assert "Nothing new to send" in page.locator("#upload-phase").inner_text()
    assert f"0 de-identified and stored, {SLICES} already stored, 1 rejected." in page.locator(RESULT).inner_text()
    assert Upload.objects.count() == 1 and Instance.objects.count() == SLICES
    assert Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL").state == "uploaded"
    screenshot(page, "upload-nothing-new")


def test_the_same_folder_again_on_the_same_page_is_said_to_be_stored_already(world, stores, folder, page):
    """The second drop without a reload: its files were stored by the first drop, not by this one, and the
    result says so (it said "36 de-identified and stored" under "Nothing new to send")."""
    open_upload_page(page)
    choose_folder(page, folder)
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector("#upload-phase:has-text('Nothing new to send')")
    wait_for_the_result(page)
    assert states(page).count("Already received") == SLICES
    assert f"0 de-identified and stored, {SLICES} already stored, 1 rejected." in page.locator(RESULT).inner_text()
    assert Upload.objects.count() == 1 and Instance.objects.count() == SLICES


def test_after_a_log_in_again_in_another_tab_retry_sends_the_folder(world, stores, folder, page):
    """The coordinator's session ended while the upload page stayed open (here: logged out in another tab). The
    drop is refused with what to do (not the framework's "CSRF Failed"); they log in again in another tab, which
    gives the browser a new CSRF token, and Retry sends with it: the page once kept the token it was served with,
    so every Retry was refused until the page was reloaded."""
    open_upload_page(page)
    other = page.context.new_page()
    other.goto("/")
    with other.expect_navigation():
        other.click("form[action$='/logout/'] button")
    page.bring_to_front()  # a file chooser of a tab in the background is not answered
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector("#upload-error:not([hidden])")
    assert page.locator("#upload-error-text").inner_text() == (
        "The server refused the request: your session may have ended. Log in again and retry."
    )
    log_in(other, "cora@example.org", PASSWORD)
    other.close()
    page.bring_to_front()
    page.click("#upload-retry")
    wait_for_the_result(page)
    assert states(page).count("De-identified and stored") == SLICES
    assert Instance.objects.count() == SLICES


def test_a_zip_of_the_folder_is_read_in_the_browser(world, stores, folder, tmp_path, page):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
            method = zipfile.ZIP_STORED if n % 3 == 0 else zipfile.ZIP_DEFLATED  # both ways a zip holds files
            zf.write(path, path.relative_to(folder.parent), compress_type=method)
    open_upload_page(page)
    page.set_input_files("#upload-pick-files", str(archive))
    wait_for_the_result(page)

    assert page.locator("#upload-skipped-title").text_content() == "Skipped (not images): 3 files"
    assert states(page).count("De-identified and stored") == SLICES
    assert page.locator("#upload-rows tr", has_text="IM99999").locator(".file-state").inner_text() == "Rejected"
    assert page.locator("#upload-rows tr").first.locator("th").inner_text().startswith("export.zip/CD-EXPORT/")
    assert Instance.objects.count() == SLICES


def test_a_zip_made_by_korean_windows_shows_its_names_as_written(world, stores, folder, tmp_path, page, monkeypatch):
    """Windows' own "Compress" in a Korean locale writes names in code page 949 without the zip's UTF-8 flag: the
    rows show the Hangul folder names, not replacement characters."""
    archive = tmp_path / "export.zip"
    monkeypatch.setattr(zipfile.ZipInfo, "_encodeFilenameFlags", lambda info: (info.filename.encode("cp949"), 0))
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((folder / "DICOM" / "ST000001" / "SE000002").glob("IM0000[1-3]")):
            zf.write(path, f"홍길동 CT/{path.name}")
    monkeypatch.undo()
    with zipfile.ZipFile(archive) as zf:
        assert not any(info.flag_bits & 0x800 for info in zf.infolist())
    open_upload_page(page)
    page.set_input_files("#upload-pick-files", str(archive))
    wait_for_the_result(page)
    names = page.locator("#upload-rows tr th").all_inner_texts()
    assert [name.replace("\n", "") for name in names] == [f"export.zip/홍길동 CT/IM0000{n}" for n in (1, 2, 3)]


def test_an_interrupted_upload_resumes_with_the_files_the_server_lacks(world, stores, folder, page):
    """The browser was closed after ten files; the reopened page resumes that upload and sends only the rest."""
    first_ten = sorted((folder / "DICOM" / "ST000001" / "SE000002").glob("IM000*"))[:10]
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    upload_receive(upload=upload, files=[path.read_bytes() for path in first_ten])
    stow = []
    page.on("request", lambda request: stow.append(request) if request.url.endswith("/studies") else None)
    open_upload_page(page)
    assert "the server holds 10 files of it" in page.locator("#upload-phase").inner_text()
    choose_folder(page, folder)

    assert len(stow) == 2  # 27 files: one request of 20, one of 7
    rest = sum(p.stat().st_size for p in folder.rglob("IM*")) - sum(p.stat().st_size for p in first_ten)
    sent = sum(int(request.all_headers()["content-length"]) for request in stow)
    assert rest < sent < rest + 27 * 200  # the remaining files and their part headers, nothing more
    assert states(page).count("De-identified and stored") == SLICES
    assert Upload.objects.get().pk == upload.pk and Upload.objects.get().state == "complete"
    assert Instance.objects.count() == SLICES
    # What the visit holds: the files stored before the page opened are counted once (they were added twice).
    assert page.locator("#timepoint-stored").inner_text() == f"1 series / {SLICES} images"


def test_a_session_that_received_nothing_is_not_called_interrupted(world, stores, folder, page):
    """The tab was closed before its first file reached the server (the browser path opens the session for the
    subject key first): the page says no file arrived yet, not that the server holds "0 files" of an upload to
    finish, and shows no processing bar of 0 files; the folder then goes into that same session."""
    timepoint = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=timepoint)
    open_upload_page(page)
    phase = page.locator("#upload-phase").inner_text()
    assert phase == (
        "An upload of this visit was started earlier, but no file reached the server. Drop the folder to send it."
    )
    assert page.locator("#upload-process").is_hidden()
    choose_folder(page, folder)
    assert Upload.objects.get().pk == upload.pk and Upload.objects.get().state == "complete"
    assert Instance.objects.count() == SLICES


def test_a_copy_of_a_file_in_the_folder_is_sent_once_and_accounted_for(world, stores, folder, page):
    """A CD export holding the same image twice (two folders): it is sent once, and the result's counts, which
    are of distinct files, say what became of the copy instead of leaving a row unaccounted for."""
    series_dir = folder / "DICOM" / "ST000001" / "SE000002"
    (folder / "IMAGES").mkdir()
    (folder / "IMAGES" / "IM00001").write_bytes((series_dir / "IM00001").read_bytes())
    open_upload_page(page)
    choose_folder(page, folder)
    assert states(page).count("De-identified and stored") == SLICES + 1
    result = page.locator("#upload-result").inner_text()
    assert f"{SLICES} de-identified and stored, 0 already stored, 1 rejected." in result
    assert "1 file was a copy of another file here and is counted once." in result
    assert UploadItem.objects.count() == SLICES + 1


def test_files_dropped_on_the_zone_are_read_too(world, stores, folder, page):
    files = sorted((folder / "DICOM" / "ST000001" / "SE000002").glob("IM0000[1-3]")) + [folder / "README.txt"]
    payload = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in files]
    open_upload_page(page)
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event("#upload-drop", "drop", {"dataTransfer": transfer})
    wait_for_the_result(page)
    assert states(page) == ["De-identified and stored"] * 3
    assert page.locator("#upload-skipped-list li").all_text_contents() == ["README.txt — not a DICOM file"]


def test_progress_is_painted_together_not_one_change_at_a_time(world, stores, folder, page):
    """Each file moves the progress bars and its row through several states; the page paints the changes
    together (at most every 150 ms, and at each step's start and end), not once per change: each paint laid out
    the whole file table again. Counted by a MutationObserver on the upload panel: each callback is one task
    that changed it (painted one change at a time, this upload of 36 files changed it in about 50)."""
    open_upload_page(page)
    page.evaluate(
        """() => {
          window.panelPaints = 0;
          new MutationObserver(() => {
            window.panelPaints += 1;
          }).observe(document.querySelector("#upload-panel"), {
            subtree: true, childList: true, characterData: true, attributes: true,
          });
        }"""
    )
    started = page.evaluate("() => performance.now()")
    choose_folder(page, folder)
    elapsed_ms = page.evaluate("() => performance.now()") - started
    paints = page.evaluate("() => window.panelPaints")
    assert states(page).count("De-identified and stored") == SLICES
    assert paints <= elapsed_ms / 150 + 12  # the timer's paints, and one at each step's start and end
