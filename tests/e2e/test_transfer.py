"""A sponsor requests a data transfer in the browser, watches it build, downloads the zip and verifies it."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile

import pytest
from django.db import connection
from playwright.sync_api import expect

from reads import transfers
from reads.services import read_design_set
from tests.conftest import PASSWORD, build_world
from tests.e2e.conftest import log_in, screenshot
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of


@pytest.fixture
def world(transactional_db, stores):
    """The cast with a double-read design on ALPHA; no transaction around the test, so commits run the tasks."""
    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double")
    return w


def read_two_visits(world) -> None:
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    ready(world, "W6", day=42)
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "W6")
        save_and_sign(reader, task, follow_up_content(task, "22.0", "11.0"))


class HeldBuild:
    """The build runs in its own thread and stops after writing the SDTM datasets until the test lets it go on:
    the browser sees it half done, by a named point rather than by timing."""

    def __init__(self, monkeypatch):
        self.queued: list[int] = []
        self.reached = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None
        real_progress = transfers._progress

        def progress(transfer, step, done=None):
            real_progress(transfer, step, done)
            if step == "sdtm" and done is None:
                self.reached.set()
                assert self.release.wait(timeout=60), "the test never let the build go on"

        monkeypatch.setattr(transfers, "_progress", progress)
        monkeypatch.setattr(transfers, "enqueue_build", self.queued.append)

    def start(self) -> None:
        [transfer_id] = self.queued

        def run():
            try:
                transfers.transfer_build(transfer_id=transfer_id)
            finally:
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.reached.wait(timeout=60), "the build did not reach the SDTM step"

    def finish(self) -> None:
        self.release.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def test_a_sponsor_requests_watches_downloads_and_verifies_a_transfer(world, page, monkeypatch, tmp_path):
    read_two_visits(world)
    build = HeldBuild(monkeypatch)
    log_in(page, "sam@example.org", PASSWORD)

    page.goto("/reads/trials/ALPHA/results/")
    page.get_by_role("link", name="Transfers").first.click()
    expect(page.locator("h1")).to_contain_text("Transfers")
    page.get_by_role("button", name="Request transfer").click()
    row = page.locator("table.transfers tbody tr[data-transfer='1']")
    expect(row).to_have_attribute("data-state", "queued")
    expect(row.locator(".transfer-state")).to_contain_text("Queued")

    build.start()  # the worker picks it up and stops after the SDTM datasets
    expect(row).to_have_attribute("data-state", "building", timeout=60_000)  # the page refreshes itself
    expect(row.locator(".transfer-state")).to_contain_text("35%")
    expect(row.locator(".transfer-state")).to_contain_text("Writing SDTM TU, TR and RS")
    screenshot(page, "transfer-building")

    build.finish()
    expect(row).to_have_attribute("data-state", "ready", timeout=60_000)
    expect(row).to_contain_text(SUBJECT)  # what changed: the subject is new in this transfer
    screenshot(page, "transfer-ready")

    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == "ALPHA-transfer-0001.zip"
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest.startswith(row.locator(".sha256").inner_text().rstrip("…"))
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["transfer"] == 1 and manifest["trial"] == "ALPHA"
        for entry in manifest["files"]:
            assert hashlib.sha256(archive.read(entry["path"])).hexdigest() == entry["sha256"], entry["path"]
        assert {"sdtm/tu.xpt", "sdtm/tr.xpt", "sdtm/rs.xpt", "sdtm/define.xml", "tables/visits.csv"} <= {
            entry["path"] for entry in manifest["files"]
        }
        assert f"sr/{SUBJECT}/W6-R1.dcm" in archive.namelist()
