"""De-identification in the coordinator's browser: nothing identifying crosses the network, and the visit
holds exactly the instances the server path makes of the same folder."""

from __future__ import annotations

import hashlib
import io
from email.parser import BytesParser
from pathlib import Path

import pydicom
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.urls import reverse

from tests.conftest import PASSWORD, build_world
from tests.e2e.conftest import log_in, page_in, screenshot
from trials.deid import DeidRejected, burned_in, deidentify
from trials.ingest.services import trial_deid_options
from trials.ingest.subject_keys import subject_space
from trials.ingest.synthetic import DOSE_SCREEN_LINES, draw_text_screen, real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Trial, Upload

SLICES = 12
SUBJECT = "ALPHA-SEO-001"
RESULT = "#upload-result .result-line"
DRAWN_TEXT = b"KIM HEE-JUNG 850101"  # stands for text burned into an image's pixels


@pytest.fixture
def world(transactional_db):
    world = build_world()
    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    world.trial.refresh_from_db()
    return world


@pytest.fixture
def folder(tmp_path) -> Path:
    """A scanner's folder: a series of one patient, a stray image of another, a note."""
    root = tmp_path / "CD-EXPORT"
    series_dir = root / "DICOM" / "SE000002"
    series_dir.mkdir(parents=True)
    for n, data in enumerate(synthesize_ct_series(real_ct_template(large=False), slices=SLICES, seed="e2e-b"), 1):
        (series_dir / f"IM{n:05d}").write_bytes(data)
    stray = synthesize_ct_series(
        real_ct_template(large=False), slices=1, seed="e2e-b-stray", patient_name="KIM^OTHER", patient_id="PID0999"
    )
    (series_dir / "IM99999").write_bytes(stray[0])
    # A secondary capture of the same patient with text drawn into its pixels, and saying so.
    burned = pydicom.dcmread(
        io.BytesIO(synthesize_ct_series(real_ct_template(large=False), slices=1, seed="e2e-b-burn")[0])
    )
    burned.BurnedInAnnotation = "YES"
    pixels = bytearray(burned.PixelData)
    pixels[: len(DRAWN_TEXT)] = DRAWN_TEXT
    burned.PixelData = bytes(pixels)
    burned.save_as(series_dir / "IM88888")
    (root / "README.txt").write_text("Exported by the scanner's CD writer.\n")
    return root


class Received(list):
    """(path?query, body) of each request, with each one's Content-Type alongside in `types`."""

    def __init__(self) -> None:
        super().__init__()
        self.types: list[str] = []


@pytest.fixture
def network(monkeypatch) -> Received:
    """Every request the live server receives, with its whole body, as it came over the wire.

    (Chromium does not hand a script's Blob upload bodies to Playwright, so the log is taken where they land.)
    """
    received = Received()
    call = WSGIHandler.__call__

    def recording(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        received.append((environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", ""), body))
        received.types.append(environ.get("CONTENT_TYPE", ""))
        return call(self, environ, start_response)

    monkeypatch.setattr(WSGIHandler, "__call__", recording)
    return received


def sent_dicom(network: Received) -> list[pydicom.Dataset]:
    """The DICOM files in the multipart bodies sent to the upload's STOW endpoint."""
    files = []
    for (path, body), content_type in zip(network, network.types, strict=True):
        if not (path.startswith("/dicomweb/") and "/uploads/" in path and content_type.startswith("multipart/")):
            continue
        message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.walk():
            if part.get_content_type() == "application/dicom":
                files.append(pydicom.dcmread(io.BytesIO(part.get_payload(decode=True))))
    return files


def identifying_values(folder: Path) -> set[bytes]:
    """The patients' names, IDs and birth dates and every original UID of the folder, as bytes to look for."""
    values: set[bytes] = set()
    for path in folder.rglob("IM*"):
        ds = pydicom.dcmread(path)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
            text = str(ds.get(keyword, "") or "").strip()
            if text:
                values.add(text.encode())
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
            if keyword in ds:
                values.add(str(ds[keyword].value).encode())
    return values


def server_path_instances(folder: Path, trial: Trial) -> set[tuple[str, str]]:
    """(SOP Instance UID, SHA-256) of what the server's engine makes of the subject's patient's files."""
    space, options = subject_space(trial, SUBJECT), trial_deid_options(trial)
    made = set()
    for path in sorted(folder.rglob("IM*")):
        if path.name == "IM99999":
            continue  # the stray patient: held back on both paths (the burned-in image is refused by the engine)
        try:
            result = deidentify(path.read_bytes(), space=space, subject_code=SUBJECT, options=options)
        except DeidRejected:
            continue
        made.add((result.sop_instance_uid, hashlib.sha256(result.data).hexdigest()))
    return made


def test_the_coordinator_drops_a_folder_and_only_de_identified_bytes_leave_the_browser(world, page, folder, network):
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")

    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=120_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    screenshot(page, "upload-browser-deid")

    assert "de-identified in your browser" in page.locator("#upload-deid-mode").inner_text()
    held = page.locator("#upload-rows tr", has_text="IM99999")
    assert "Held back in your browser" in held.inner_text() and "different patient" in held.inner_text()
    burned = page.locator("#upload-rows tr", has_text="IM88888")
    assert "Held back in your browser" in burned.inner_text() and "burned-in annotation" in burned.inner_text()
    stored_row = page.locator("#upload-rows tr", has_text="IM00001").inner_text()
    assert "De-identified and stored" in stored_row and "UIDs replaced" in stored_row

    stow = [body for path, body in network if path.startswith("/dicomweb/") and "/uploads/" in path]
    assert stow and sum(len(b) for b in stow) > SLICES * 1000, "the files' bodies were captured"
    secrets = identifying_values(folder) | {DRAWN_TEXT}
    for path, body in network:
        for value in secrets:
            assert value not in body and value.decode() not in path, (path, value)
    for url in urls:
        assert not any(value.decode() in url for value in secrets), url

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert timepoint.state == Timepoint.State.UPLOADED
    stored = set(Instance.objects.filter(series__study__timepoint=timepoint).values_list("sop_instance_uid", "sha256"))
    assert len(stored) == SLICES
    assert stored == server_path_instances(folder, world.trial)


def test_dropping_the_same_folder_again_sends_nothing_new(world, page, folder):
    log_in(page, "cora@example.org", PASSWORD)
    url = reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"])
    page.goto(url)
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    page.goto(url)
    page.wait_for_selector("#uploader.is-ready")
    # The first drop above came before the workers had warmed up (the files end a warm-up); this one after it.
    page.wait_for_selector("#uploader[data-engine-warm]", timeout=60_000)
    assert int(page.locator("#uploader").get_attribute("data-deid-warm-runs")) > 0
    sent: list[bytes] = []
    page.on("request", lambda request: sent.append(request.url))
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    # Resume compares hashes of the de-identified bytes: the same folder is the same files, none sent again.
    assert not [u for u in sent if "/dicomweb/" in u]
    assert f"0 de-identified and stored, {SLICES} already stored, 0 rejected." in page.locator(RESULT).inner_text()
    # The session opened for the subject key received nothing: it is discarded, not shown as an empty upload,
    # and the page says what is true (the stray and the burned-in image were held back, not held by the server).
    phase = page.locator("#upload-phase").inner_text()
    assert (
        phase
        == f"Nothing new to send: the server already holds {SLICES} of these files; 2 were not sent (listed below)."
    )
    assert "Upload complete" not in phase and "The visit is now" not in page.locator("#upload-result").inner_text()
    assert page.locator("#timepoint-state").inner_text() == "Uploaded"
    assert Instance.objects.count() == SLICES
    assert list(Upload.objects.order_by("pk").values_list("state", flat=True)) == ["complete", "cancelled"]
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert timepoint.state == Timepoint.State.UPLOADED
    page.goto(reverse("subject-detail", args=["ALPHA", SUBJECT]))
    assert page.locator("#upload-history ~ .table-wrap tbody tr").count() == 1


def test_a_tab_whose_files_went_into_a_session_another_tab_finished_says_they_were_sent(world, page, folder):
    """Two tabs of the coordinator on one visit share the open session; the other tab finishes it while this one
    is still sending. This tab's files went out and were stored: it says the upload is complete, not that there
    was nothing new to send."""
    from django.db import connection

    from trials.ingest.services import upload_finish
    from trials.models import UploadItem

    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")

    def other_tab_finishes_once_all_arrived(route):
        response = route.fetch()
        if UploadItem.objects.count() == SLICES and Upload.objects.get().state == "open":
            upload_finish(actor=world.cora, upload=Upload.objects.get())
        connection.close()  # opened in Playwright's context: left open, it would keep the test database in use
        route.fulfill(response=response)

    page.route("**/dicomweb/**", other_tab_finishes_once_all_arrived)
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=120_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    assert Upload.objects.get().state == "complete"
    assert page.locator("#upload-phase").inner_text() == "Upload complete."
    assert f"{SLICES} de-identified and stored, 0 already stored, 0 rejected." in page.locator(RESULT).inner_text()
    assert "The visit is now Uploaded." in page.locator("#upload-result").inner_text()


def test_a_session_another_tab_finished_mid_upload_is_said_and_retry_sends_only_the_rest(world, page, long_series):
    """The other tab finishes the shared session after this tab's first request: this tab's next request is
    refused. The page says the upload was finished elsewhere (not that a subject key is refused), and Retry sends
    the rest in a new upload without sending again what the first one holds."""
    from django.db import connection

    from trials.ingest.services import upload_finish
    from trials.models import UploadItem

    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")

    def other_tab_finishes_after_the_first_request(route):
        response = route.fetch()
        first = Upload.objects.order_by("pk").first()
        if first.state == "open":
            upload_finish(actor=world.cora, upload=first)
        connection.close()  # opened in Playwright's context: left open, it would keep the test database in use
        route.fulfill(response=response)

    page.route("**/dicomweb/**", other_tab_finishes_after_the_first_request)
    page.set_input_files("input[webkitdirectory]", str(long_series))
    page.wait_for_selector("#upload-error:not([hidden])", timeout=120_000)
    assert "finished in another tab" in page.locator("#upload-error-text").inner_text()
    page.unroute("**/dicomweb/**")
    first = Upload.objects.order_by("pk").first()
    held_by_first = set(UploadItem.objects.filter(upload=first).values_list("sha256", flat=True))
    assert 0 < len(held_by_first) < 120

    page.click("#upload-retry")
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=120_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    second = Upload.objects.order_by("pk").last()
    assert second.pk != first.pk and second.state == "complete"
    assert not held_by_first & set(UploadItem.objects.filter(upload=second).values_list("sha256", flat=True))
    assert Instance.objects.count() == 120
    assert page.locator("#upload-rows .fs-accepted").count() == 120
    assert "120 de-identified and stored, 0 already stored, 0 rejected." in page.locator(RESULT).inner_text()


def test_another_patients_folder_sends_nothing_and_leaves_the_visit_as_it_was(world, page, folder, tmp_path):
    """The subject's patient is known from the baseline; the coordinator drops another patient's folder on Week 6:
    every file is held back in the browser, no upload is left behind, and the visit is still expected."""
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    other = tmp_path / "OTHER" / "DICOM"
    other.mkdir(parents=True)
    series = synthesize_ct_series(
        real_ct_template(large=False), slices=4, seed="e2e-other", patient_name="LEE^WRONG", patient_id="PID0777"
    )
    for n, data in enumerate(series, 1):
        (other / f"IM{n:05d}").write_bytes(data)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "W6"]))
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(tmp_path / "OTHER"))
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=120_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    assert page.locator("#upload-rows .fs-held").count() == 4
    assert (
        page.locator("#upload-phase").inner_text()
        == "Nothing was sent: none of these files could be sent (listed below)."
    )
    assert page.locator("#timepoint-state").inner_text() == "Expected"
    week6 = Timepoint.objects.get(subject__code=SUBJECT, visit__code="W6")
    assert week6.state == Timepoint.State.EXPECTED
    assert Upload.objects.filter(timepoint=week6).get().state == "cancelled"


def test_files_larger_than_the_read_ahead_budget_are_read_one_at_a_time_and_all_go(world, page, folder):
    """The originals read ahead for the workers are bounded in bytes too (a folder of large multi-frame files):
    with a budget smaller than any file, one file is read at a time, and the upload still completes."""
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    page.evaluate("document.getElementById('uploader').dataset.readAheadBytes = '1'")
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    assert page.locator("#uploader").get_attribute("data-read-ahead-peak") == "1"
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert timepoint.state == Timepoint.State.UPLOADED
    assert Instance.objects.filter(series__study__timepoint=timepoint).count() == SLICES


def test_a_browser_without_webassembly_falls_back_to_the_server_and_says_so(world, page, folder):
    page.add_init_script("delete globalThis.WebAssembly")
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    assert "de-identified on the server" in page.locator("#upload-deid-mode").inner_text()
    assert Upload.objects.get().deid_path == Upload.DeidPath.SERVER
    assert Instance.objects.count() == SLICES


def test_an_engine_that_cannot_load_falls_back_to_the_server_without_an_error_in_the_page(world, page, folder):
    """The worker's files do not load (a proxy blocks them): the page says the images go as they are, and sends
    them so; the failed start leaves no unhandled rejection behind."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("**/dist/deid/**", lambda route: route.abort())
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(RESULT, timeout=120_000)
    assert "could not start" in page.locator("#upload-deid-mode").inner_text()
    assert Upload.objects.get().deid_path == Upload.DeidPath.SERVER
    assert Instance.objects.count() == SLICES
    assert errors == []


def test_a_browser_only_trial_sends_nothing_from_a_browser_without_webassembly(world, page, folder, network):
    Trial.objects.filter(pk=world.trial.pk).update(deid_paths=Trial.DeidPaths.BROWSER)
    page.add_init_script("delete globalThis.WebAssembly")
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    # Said when the page opens, before the coordinator looks for the folder.
    assert "only images de-identified in the browser" in page.locator("#upload-deid-mode").inner_text()
    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector("#upload-error:not([hidden])", timeout=60_000)
    assert "only images de-identified in the browser" in page.locator("#upload-deid-mode").inner_text()
    assert page.locator("#upload-rows .fs-checking").count() == 0
    # Retry cannot help this browser: it says so again (it once said the server held every file).
    page.click("#upload-retry")
    page.wait_for_selector("#upload-error:not([hidden])")
    assert "WebAssembly" in page.locator("#upload-error-text").inner_text()
    assert page.locator(RESULT).count() == 0
    assert page.locator("#upload-rows .fs-unsent").count() == SLICES + 2
    assert not [path for path, _body in network if "/uploads/" in path]
    assert not Upload.objects.exists()


@pytest.fixture
def long_series(tmp_path) -> Path:
    """A series long enough that the workers wait for the requests before every file is de-identified."""
    series_dir = tmp_path / "CD-EXPORT" / "DICOM" / "SE000003"
    series_dir.mkdir(parents=True)
    for n, data in enumerate(synthesize_ct_series(real_ct_template(large=False), slices=120, seed="e2e-long"), 1):
        (series_dir / f"IM{n:05d}").write_bytes(data)
    return tmp_path / "CD-EXPORT"


def test_retry_after_a_refused_request_de_identifies_and_sends_the_files_not_yet_checked(world, page, long_series):
    """The upload stops while files are still waiting to be de-identified (the server refused a request); Retry
    de-identifies and sends those too before it finishes the upload, which once finished it with them missing."""
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")
    held = []
    page.route("**/dicomweb/**", lambda route: held.append(route))  # requests wait, unanswered
    page.set_input_files("input[webkitdirectory]", str(long_series))
    # Both requests wait and three full batches are queued: the workers stop taking files (stream.room).
    # De-identifying 60 files in the browser's workers first: on a loaded machine that takes longer than the
    # default wait, and nothing here depends on how long it takes.
    page.locator("#upload-rows .fs-waiting, #upload-rows .fs-sending").nth(59).wait_for(
        state="attached", timeout=120_000
    )
    assert len(held) == 2
    for route in held:
        route.fulfill(status=400, content_type="application/json", body='{"error": {"message": "Refused."}}')
    page.wait_for_selector("#upload-error:not([hidden])", timeout=120_000)
    page.unroute("**/dicomweb/**")
    assert page.locator("#upload-rows .fs-unsent").count() > 0
    assert page.locator("#upload-rows .fs-checking").count() == 0  # nothing says it is being checked any more

    page.click("#upload-retry")
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=120_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert Instance.objects.filter(series__study__timepoint=timepoint).count() == 120
    assert page.locator("#upload-rows .fs-accepted").count() == 120


@pytest.fixture
def folder_with_a_dose_screen(tmp_path) -> Path:
    """A series and the scanner's dose screen of the same patient: a name, an ID and Hangul drawn in its pixels."""
    series_dir = tmp_path / "CD-EXPORT" / "DICOM" / "SE000002"
    series_dir.mkdir(parents=True)
    slices = synthesize_ct_series(real_ct_template(large=False), slices=SLICES, seed="e2e-ocr")
    for n, data in enumerate(slices, 1):
        (series_dir / f"IM{n:05d}").write_bytes(data)
    screen = draw_text_screen(pydicom.dcmread(io.BytesIO(slices[0])))
    screen.SOPInstanceUID = screen.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    screen.SeriesInstanceUID = pydicom.uid.generate_uid()
    screen.save_as(series_dir / "IM77777")
    return tmp_path / "CD-EXPORT"


def test_a_dose_screen_is_read_and_redacted_in_the_browser_before_it_is_sent(
    world, page, folder_with_a_dose_screen, network
):
    Trial.objects.filter(pk=world.trial.pk).update(deid_burned_in_text=Trial.BurnedInText.REDACT)
    folder = folder_with_a_dose_screen
    original = pydicom.dcmread(folder / "DICOM" / "SE000002" / "IM77777")
    assert len([w for w in burned_in.find_text(original.pixel_array, "MONOCHROME2") if w.is_text]) >= 5
    log_in(page, "cora@example.org", PASSWORD)
    page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
    page.wait_for_selector("#uploader.is-ready")

    page.set_input_files("input[webkitdirectory]", str(folder))
    page.wait_for_selector(f"{RESULT}, #upload-error:not([hidden])", timeout=240_000)
    assert page.locator("#upload-error").is_hidden(), page.locator("#upload-error-text").inner_text()
    screen_row = page.locator("#upload-rows tr", has_text="IM77777").inner_text()
    assert "De-identified and stored" in screen_row and "text blanked" in screen_row
    screenshot(page, "upload-browser-ocr")

    # What crossed the network: no header value of the patient, and the screen's pixels with no text that
    # the server's OCR can read (the words drawn were there before).
    secrets = identifying_values(folder) | {line.split()[2].encode() for line in DOSE_SCREEN_LINES[:2]}
    for path, body in network:
        for value in secrets:
            assert value not in body and value.decode() not in path, (path, value)
    sent = sent_dicom(network)
    screens = [ds for ds in sent if "SECONDARY" in ds.ImageType]
    assert len(sent) == SLICES + 1 and len(screens) == 1
    sent_screen = screens[0]
    assert sent_screen.BurnedInAnnotation == "NO"
    assert [w for w in burned_in.find_text(sent_screen.pixel_array, "MONOCHROME2") if w.is_text] == []
    assert 0 < (sent_screen.pixel_array != original.pixel_array).mean() < 0.25

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert timepoint.state == Timepoint.State.UPLOADED
    stored = dict(Instance.objects.filter(series__study__timepoint=timepoint).values_list("sop_instance_uid", "sha256"))
    assert set(stored) == {ds.SOPInstanceUID for ds in sent}


def test_the_browser_path_speaks_korean(world, browser, live_server, folder):
    with page_in(browser, live_server, locale="ko-KR") as page:
        log_in(page, "cora@example.org", PASSWORD)
        page.goto(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"]))
        page.wait_for_selector("#uploader.is-ready")
        page.set_input_files("input[webkitdirectory]", str(folder))
        page.wait_for_selector(RESULT, timeout=120_000)
        assert "브라우저에서 비식별화됩니다" in page.locator("#upload-deid-mode").inner_text()
        burned = page.locator("#upload-rows tr", has_text="IM88888").inner_text()
        assert "브라우저에서 보류됨" in burned and "번인 주석" in burned
        assert "burned-in" not in burned and "Not sent" not in burned
        stray = page.locator("#upload-rows tr", has_text="IM99999").inner_text()
        assert "다른 환자" in stray
        stored = page.locator("#upload-rows tr", has_text="IM00001").inner_text()
        assert "브라우저에서 비식별화됨" in stored and "UID" in stored
        screenshot(page, "upload-browser-deid-ko")
