"""Benchmarks of de-identification in the browser.

`manage.py bench browser_deid`: the browser's engine (Pyodide, run by Node from static/dist/deid/) against the
server's (CPython) on the same synthesized CT series, in the same run: start-up, per-file time, ratio.
`manage.py bench upload_browser`: the whole upload in Chromium, browser path against files sent as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from django.conf import settings

from ctims.bench import cpu_seconds_in

from ..deid import DeidOptions, DeidRejected, deidentify
from ..deid.pseudonym import PseudonymSpace, subject_key
from .browser import deid_options_payload
from .synthetic import real_ct_template, synthesize_ct_series

SUBJECT = "BENCH-001"
VISITS = ("BL", "W6", "W12")
# Prints the codes of the demo's Seoul subjects, in order.
SEOUL_SUBJECTS = (
    "from trials.models import Subject\n"
    "print(' '.join(Subject.objects.filter(trial__code='DEMO', site__code='SEO').order_by('code')"
    ".values_list('code', flat=True)))"
)
HEAD_BYTES = 65536  # what the upload page reads of each file for the wrong-patient guard's first pass (uploader.js)


def bench_browser_deid(out, *, slices: int, runs: int, small: bool) -> None:
    bundle = Path(settings.BASE_DIR) / "static" / "dist" / "deid"
    if not (bundle / "manifest.json").exists():
        raise SystemExit("static/dist/deid/ is not built: run `node scripts/build-frontend.mjs` first")
    node_bin = shutil.which("node")
    if node_bin is None:
        raise SystemExit("Node.js runs the browser's engine for this benchmark")
    files = synthesize_ct_series(real_ct_template(large=not small), slices=slices, seed="bench-browser")
    key = subject_key(b"\x42" * 32, SUBJECT)
    space, options = PseudonymSpace(key), DeidOptions()
    tmp = Path(tempfile.mkdtemp(prefix="ctims-bench-browser-"))
    try:
        paths = []
        for n, data in enumerate(files):
            paths.append(tmp / f"{n:05d}.dcm")
            paths[-1].write_bytes(data)

        cpython_rounds, expected = [], []
        for round_ in range(runs):
            start = time.perf_counter()
            for data in files:
                try:
                    result = deidentify(data, space=space, subject_code=SUBJECT, options=options)
                except DeidRejected:
                    result = None
                if round_ == 0:
                    expected.append(hashlib.sha256(result.data).hexdigest() if result else None)
            cpython_rounds.append((time.perf_counter() - start) * 1000)

        request = {
            "key": key.hex(),
            "subject": SUBJECT,
            "options": deid_options_payload(options),
            "files": [str(p) for p in paths],
            "rounds": runs,
            "head": HEAD_BYTES,
            "profile": True,
        }
        answer = subprocess.run(  # noqa: S603 - our own script and files, no user input
            [node_bin, str(Path(settings.BASE_DIR) / "scripts" / "deid-node.mjs"), str(bundle)],
            input=json.dumps(request).encode(),
            capture_output=True,
            check=True,
            timeout=3600,
        )
        node = json.loads(answer.stdout)
        same = sum(
            1
            for path, sha in zip(paths, expected, strict=True)
            if sha
            and Path(f"{path}.out").exists()
            and hashlib.sha256(Path(f"{path}.out").read_bytes()).hexdigest() == sha
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    megabytes = sum(len(f) for f in files) / 1e6
    pyodide_ms = statistics.median(node["roundMs"])
    cpython_ms = statistics.median(cpython_rounds)
    out.write(f"browser de-identification: {slices} CT slices, {megabytes:.1f} MB, median of {runs} runs")
    started_from = "from the memory snapshot" if node.get("snapshot") else "booted, no snapshot"
    out.write(
        f"  engine start-up (Pyodide + pydicom + trials/deid):  {node['startMs']:.0f} ms (once per page, "
        f"{started_from})"
    )
    out.write(
        f"  Pyodide (Node, the browser's bundle):  {pyodide_ms / slices:.2f} ms/file, "
        f"{megabytes / (pyodide_ms / 1000):.1f} MB/s"
    )
    out.write(
        f"  CPython (the server's engine):          {cpython_ms / slices:.2f} ms/file, "
        f"{megabytes / (cpython_ms / 1000):.1f} MB/s"
    )
    out.write(f"  ratio Pyodide / CPython:               {pyodide_ms / cpython_ms:.2f}")
    out.write(f"  byte-identical outputs:                {same} of {slices}")
    timing = {
        step: statistics.mean(r["timing"][step] for r in node["results"])
        for step in ("input", "deid", "hash", "record", "output")
    }
    out.write(
        "  in the worker, per file (first round):  "
        + ", ".join(f"{step} {ms:.2f}" for step, ms in timing.items())
        + " ms (input/output: bytes into and out of Python; hash: SHA-256 and key check)"
    )
    engine = node["profile"]
    out.write(
        f"  the engine's steps in Pyodide:         parse {engine['parse']:.2f}, verify {engine['verify']:.2f}, "
        f"the rest {engine['rest']:.2f} ms/file (hashlib would add {engine['hashlib']:.2f})"
    )
    agree = sum(1 for r in node["results"] if r["record"].get("ok") and r["patientHash"] == r["record"]["patient_hash"])
    out.write(
        f"  guard's first pass ({HEAD_BYTES // 1024} KiB heads):     {node['headMs'] / slices:.2f} ms/file, "
        f"patient hash equal to the engine's for {agree} of {slices}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, server: subprocess.Popen, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the benchmark's server stopped while starting")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("the benchmark's server did not start")


def bench_upload_browser(out, *, slices: int, runs: int, small: bool) -> None:
    """A coordinator's upload of a CT series in Chromium: files sent as they are (server de-identifies) against
    files de-identified in the browser (server re-verifies), end to end until the visit is uploaded.

    Runs against its own server (`runserver`, SQLite and a var folder in a temporary directory, tasks in
    process, the demo trial), so nothing of the configured database is touched.
    """
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # the project's one Chromium recipe

    from ..demo import DEMO_USERS

    runs = max(1, min(runs, 12))
    base = Path(settings.BASE_DIR)
    tmp = Path(tempfile.mkdtemp(prefix="ctims-bench-upload-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "CTIMS_VAR_DIR": str(tmp / "var"),
        "CELERY_BROKER_URL": "",
        "DEBUG": "True",
    }
    manage = [sys.executable, str(base / "manage.py")]

    def admin(*args: str) -> str:
        done = subprocess.run([*manage, *args], env=env, check=True, capture_output=True, timeout=600)  # noqa: S603
        return done.stdout.decode()

    def set_paths(paths: str) -> None:
        """The trial's allowed paths, written straight to the benchmark's own database (a `manage.py shell` per
        run cost a Django start-up each); the server reads the trial at each request."""
        from ..models import Trial

        column = Trial._meta.get_field("deid_paths").column
        with closing(sqlite3.connect(tmp / "bench.sqlite3")) as db, db:
            db.execute(f'UPDATE "{Trial._meta.db_table}" SET "{column}" = ?', (paths,))  # noqa: S608

    server = None
    try:
        admin("migrate", "--noinput")
        admin("load_demo", "--subjects-per-site", str(subjects_needed(runs)))
        subjects = admin("shell", "-c", SEOUL_SUBJECTS).strip().splitlines()[-1].split()
        folders = {}
        for path in ("server", "browser"):
            for run in range(runs):
                folder = tmp / f"{path}-{run}"
                folder.mkdir()
                template = real_ct_template(large=not small)
                for n, data in enumerate(synthesize_ct_series(template, slices=slices, seed=f"bench-{path}-{run}")):
                    (folder / f"IM{n:05d}").write_bytes(data)
                folders[path, run] = folder
        megabytes = sum(f.stat().st_size for f in folders["server", 0].iterdir()) / 1e6
        port = _free_port()
        server = subprocess.Popen(  # noqa: S603
            [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port, server)
        seoul = next(u for u in DEMO_USERS if u.email.startswith("seoul@"))
        times: dict[str, list[float]] = {"server": [], "browser": []}
        worker: list[tuple[float, float, int, bool]] = []
        timelines: dict[str, list[dict]] = {"server": [], "browser": []}
        cpu: dict[str, list[dict[str, float]]] = {"server": [], "browser": []}
        steps: list[dict] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(base_url=f"http://127.0.0.1:{port}").new_page()
            page.set_default_timeout(1_800_000)
            page.goto("/accounts/login/")
            page.fill("input[name=username]", seoul.email)
            page.fill("input[name=password]", seoul.password)
            page.click("main form button[type=submit]")
            page.wait_for_load_state("networkidle")
            turns = upload_turns(runs, subjects)
            for run, visit, path, subject in turns:
                set_paths("server" if path == "server" else "either")
                answer = page.goto(f"/trials/DEMO/subjects/{subject}/visits/{visit}/upload/")
                if answer is None or not answer.ok:
                    raise SystemExit(
                        f"the upload page of {subject} {visit} answered {answer.status if answer else None}"
                    )
                page.wait_for_selector("#uploader.is-ready")
                if path == "browser":
                    # The page starts the engine when it opens, while the coordinator chooses the folder, and
                    # warms it up; its start-up and warm-up are reported apart.
                    page.wait_for_selector('#uploader[data-engine="ready"][data-engine-warm]')
                cpu_before = cpu_readings(server.pid)
                start = time.perf_counter()
                page.set_input_files("input[webkitdirectory]", str(folders[path, run]))
                page.wait_for_selector("#upload-result .result-line, #upload-error:not([hidden])")
                times[path].append(time.perf_counter() - start)
                cpu[path].append(cpu_used(cpu_before, cpu_readings(server.pid)))
                if not page.locator("#upload-error").is_hidden():
                    raise SystemExit(page.locator("#upload-error-text").inner_text())
                data = page.locator("#uploader")
                timelines[path].append(json.loads(data.get_attribute("data-timeline") or "{}"))
                if path == "browser":
                    steps.append(json.loads(data.get_attribute("data-deid-timing") or "{}"))
                    worker.append(
                        (
                            float(data.get_attribute("data-deid-per-file-ms") or 0),
                            float(data.get_attribute("data-deid-start-ms") or 0),
                            int(data.get_attribute("data-deid-workers") or 1),
                            data.get_attribute("data-deid-snapshot") == "true",
                            float(data.get_attribute("data-deid-warm-ms") or 0),
                        )
                    )
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    raw, browser_s = statistics.median(times["server"]), statistics.median(times["browser"])
    out.write(
        f"upload of {slices} CT slices ({megabytes:.1f} MB) in Chromium, until the visit is uploaded, median of {runs}"
    )
    out.write(f"  files sent as they are (server de-identifies):  {raw:.1f} s, {slices / raw:.1f} files/s")
    out.write(
        f"  de-identified in the browser (server checks):   {browser_s:.1f} s, {slices / browser_s:.1f} files/s"
        " (engine started when the page opened)"
    )
    start_s = statistics.median(w[1] for w in worker) / 1000
    warm_s = statistics.median(w[4] for w in worker) / 1000
    out.write(f"  ratio browser / as they are:                    {browser_s / raw:.2f}")
    pairs = [b / r for r, b in zip(times["server"], times["browser"], strict=True)]
    out.write(
        "  ratio run by run (the paths take turns):       "
        + ", ".join(f"{ratio:.2f}" for ratio in pairs)
        + f" (median {statistics.median(pairs):.2f})"
    )
    out.write(
        f"  ratio with the engine's start-up (cold page):   {(browser_s + start_s + warm_s) / raw:.2f}"
        " (start-up and warm-up added as if the folder were dropped at once)"
    )
    out.write(
        f"  in the worker: {statistics.median(w[0] for w in worker):.1f} ms per file in each of "
        f"{max(w[2] for w in worker)} workers; engine start-up {start_s * 1000:.0f} ms per page load"
        + (" (from the memory snapshot)" if all(w[3] for w in worker) else " (booted, no snapshot)")
        + f", then warm-up {warm_s * 1000:.0f} ms (while the page waits for a folder)"
    )
    if steps and all(steps):
        out.write(
            "  the worker's time per file: "
            + ", ".join(f"{step} {statistics.median(s[step] for s in steps):.1f}" for step in steps[0])
            + " ms (median of the runs)"
        )
    tails = {path: [finishing_seconds(t) for t in timelines[path]] for path in timelines}
    if all(None not in values for values in tails.values()):
        out.write(
            "  the last step, from the last file sent to the visit uploaded (finishing, QC), median: "
            f"{statistics.median(tails['server']):.1f} s as they are / {statistics.median(tails['browser']):.1f} s browser"
        )
    if all(cpu.values()):
        _report_cpu(out, cpu)
    for path, label in (("server", "as they are"), ("browser", "browser")):
        for run, timeline in enumerate(timelines[path]):
            requests = timeline.pop("requests", 0)
            request_ms = timeline.pop("request time", 0)
            room_wait = timeline.pop("room wait", 0)
            idle = timeline.pop("idle request slots", 0)
            moments = ", ".join(f"{name} {ms / 1000:.1f}" for name, ms in timeline.items())
            if requests:
                moments += f"; {requests} STOW requests of {request_ms / requests / 1000:.2f} s each"
            if room_wait:
                moments += f"; files waited {room_wait / 1000:.1f} s in all for room in the request queue"
            if idle:
                moments += f"; request slots idle {idle / 1000:.1f} s (of {2} in flight, while sending)"
            out.write(f"  timeline, {label} run {run + 1} (s after the drop): {moments}")


def subjects_needed(runs: int) -> int:
    """Each path uploads to subjects of its own, one visit per run: a subject takes as many runs as it has
    visits, then the next one's turn comes."""
    return 2 * -(-runs // len(VISITS))


def upload_turns(runs: int, subjects: list[str]) -> list[tuple[int, str, str, str]]:
    """(run, visit, path, subject) in the order they are run: the two paths take turns, run by run, so that a
    change of the machine's load (other work on shared cores) weighs on both alike, and each run's pair gives a
    ratio of its own."""
    return [
        (run, VISITS[run % len(VISITS)], path, subjects[2 * (run // len(VISITS)) + side])
        for run in range(runs)
        for side, path in enumerate(("server", "browser"))
    ]


def finishing_seconds(timeline: dict) -> float | None:
    """Seconds from the last file sent to the end of the upload (the page closing the upload, the server's QC and
    the page's last poll) in a run's `data-timeline` (ms after the drop); None where the run lacks a moment."""
    if "all sent" not in timeline or "done" not in timeline:
        return None
    return (timeline["done"] - timeline["all sent"]) / 1000


# -- where an upload's CPU goes: the server and Chromium, from /proc ----------------------------------------------

CPU_KINDS = (
    ("server", "server (runserver)"),
    ("renderer: main thread", "Chromium renderer, the page's main thread"),
    ("renderer: workers", "Chromium renderer, the engine's workers"),
    ("renderer: thread pool", "Chromium renderer, its thread pool (V8 compiling and GC, Web Crypto)"),
    ("renderer: other threads", "Chromium renderer, other threads"),
    ("browser process", "Chromium's browser process"),
    ("other Chromium processes", "Chromium's other processes (network, GPU, zygote)"),
)


def cpu_readings(server_pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds used so far (user + system) by the benchmark's server and by Chromium's processes, and in
    Chromium's renderers by each thread; keyed by (process or thread id, kind). Read from /proc: empty where
    there is none. `cpu_used` turns two readings into what each kind used in between."""
    readings: dict[tuple[int, str], float] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return readings
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if pid == server_pid:
                readings[pid, "server"] = cpu_seconds_in((entry / "stat").read_text())
                continue
            # Chromium rewrites its children's command lines into one string: split on spaces as well as NULs.
            kind = chromium_kind((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split())
            if kind == "renderer":
                for task in (entry / "task").iterdir():
                    stat = (task / "stat").read_text()
                    thread = "main thread" if int(task.name) == pid else _renderer_thread(stat)
                    readings[int(task.name), f"renderer: {thread}"] = cpu_seconds_in(stat)
            elif kind:
                readings[pid, kind] = cpu_seconds_in((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while it was read
    return readings


def cpu_used(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]) -> dict[str, float]:
    """CPU seconds each kind used between two readings (a process that ended in between is not counted)."""
    used: dict[str, float] = dict.fromkeys((kind for kind, _ in CPU_KINDS), 0.0)
    for (pid, kind), seconds in after.items():
        used[kind] += seconds - before.get((pid, kind), 0.0)
    return used


def chromium_kind(argv: list[str]) -> str | None:
    """Which of Chromium's processes a command line is (None: not Chromium's)."""
    if not argv or not any(name in Path(argv[0]).name for name in ("chromium", "chrome", "headless_shell")):
        return None
    process_type = next((a.split("=", 1)[1] for a in argv if a.startswith("--type=")), "")
    if process_type == "renderer":
        return "renderer"
    return "other Chromium processes" if process_type else "browser process"


def _renderer_thread(stat: str) -> str:
    """A renderer's thread other than its main one, by the name in its stat line."""
    name = stat[stat.find("(") + 1 : stat.rfind(")")]
    if name.startswith("DedicatedWorker"):
        return "workers"
    return "thread pool" if name.startswith("ThreadPool") else "other threads"


def _report_cpu(out, cpu: dict[str, list[dict[str, float]]]) -> None:
    out.write("  CPU seconds during an upload, median of the runs (files as they are / de-identified in the browser):")
    for kind, label in CPU_KINDS:
        raw, browser = (statistics.median(run[kind] for run in cpu[path]) for path in ("server", "browser"))
        out.write(f"    {label + ':':<76} {raw:5.2f} / {browser:5.2f}")
    raw, browser = (statistics.median(sum(run.values()) for run in cpu[path]) for path in ("server", "browser"))
    out.write(f"    {'in all (two cores give twice the wall time):':<76} {raw:5.2f} / {browser:5.2f}")
