"""`bench upload_browser` says where an upload's CPU went (the server's process, and Chromium's by process and
thread), and runs end to end on a tiny series."""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command

from trials.ingest.browser_bench import (
    CPU_KINDS,
    chromium_kind,
    cpu_readings,
    cpu_used,
    finishing_seconds,
    subjects_needed,
    upload_turns,
)


def test_chromiums_processes_are_told_apart_by_their_command_lines():
    chromium = "/usr/lib/chromium/chromium"
    assert chromium_kind([chromium, "--headless", "--no-sandbox"]) == "browser process"
    assert chromium_kind([chromium, "--type=renderer", "--lang=en-US"]) == "renderer"
    assert chromium_kind([chromium, "--type=utility", "--utility-sub-type=network.mojom.NetworkService"]) == (
        "other Chromium processes"
    )
    assert chromium_kind(["/usr/bin/python3", "manage.py", "runserver", "--type=renderer"]) is None
    assert chromium_kind([]) is None


def test_the_servers_cpu_is_what_it_used_between_two_readings():
    before = cpu_readings(os.getpid())
    assert (os.getpid(), "server") in before
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # CPU, not a wait: the reading counts CPU time
        pass
    used = cpu_used(before, cpu_readings(os.getpid()))
    assert set(used) == {kind for kind, _ in CPU_KINDS}
    assert 0.2 <= used["server"] < 30


def test_a_process_that_appears_between_two_readings_counts_from_zero_and_one_that_ended_not_at_all():
    before = {(1, "server"): 5.0, (2, "renderer: workers"): 1.0, (3, "browser process"): 2.0}
    after = {(1, "server"): 6.5, (4, "renderer: workers"): 0.5, (3, "browser process"): 2.25}
    used = cpu_used(before, after)
    assert (used["server"], used["renderer: workers"], used["browser process"]) == (1.5, 0.5, 0.25)


def test_with_more_runs_than_a_subject_has_visits_each_path_goes_on_with_a_subject_of_its_own():
    """Four runs: each path's fourth upload goes to its second subject's baseline; no visit is uploaded twice,
    and no subject takes both paths' files."""
    assert subjects_needed(4) == 4
    turns = upload_turns(4, ["S1", "S2", "S3", "S4"])
    assert [t[0] for t in turns] == [0, 0, 1, 1, 2, 2, 3, 3]  # the paths take turns, run by run
    assert [(visit, path, subject) for _run, visit, path, subject in turns] == [
        ("BL", "server", "S1"),
        ("BL", "browser", "S2"),
        ("W6", "server", "S1"),
        ("W6", "browser", "S2"),
        ("W12", "server", "S1"),
        ("W12", "browser", "S2"),
        ("BL", "server", "S3"),
        ("BL", "browser", "S4"),
    ]
    assert subjects_needed(3) == 2 and subjects_needed(1) == 2


@pytest.mark.e2e
def test_the_upload_benchmark_runs_end_to_end():
    """`bench upload_browser` on a tiny series, one run of each path, in its own database, server and Chromium:
    both uploads finish and every figure is printed."""
    out = io.StringIO()
    # Playwright's sync API runs an event loop in the thread that uses it, and the suite's own Chromium (the
    # session's `browser` fixture) may already hold this worker's main thread when this test comes after a
    # browser test: the benchmark gets a thread of its own, as it has on the command line.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(
            call_command, "bench", "upload_browser", "--slices", "3", "--runs", "1", "--small", stdout=out
        ).result()
    lines = out.getvalue().splitlines()
    assert any("median of 1" in line for line in lines)
    assert len([line for line in lines if "timeline, as they are run" in line]) == 1
    assert len([line for line in lines if "timeline, browser run" in line]) == 1
    assert any("ratio run by run" in line for line in lines)


def test_the_last_step_runs_from_the_last_file_sent_to_the_end_of_the_upload():
    timeline = {"read": 300, "all sent": 5500, "checked": 5700, "finishing": 5700, "finished": 6600, "done": 6650}
    assert finishing_seconds(timeline) == pytest.approx(1.15)
    assert finishing_seconds({"read": 300, "done": 900}) is None  # a run that sent nothing says nothing of it
