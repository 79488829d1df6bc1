"""`manage.py bench browser_deid`: the browser's engine (Pyodide, run by Node from static/dist/deid/) against the
server's (CPython) on the same synthesized CT series, in the same run: start-up, per-file time, ratio."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings

from ..deid import DeidOptions, DeidRejected, deidentify
from ..deid.pseudonym import PseudonymSpace, subject_key
from .browser import deid_options_payload
from .synthetic import real_ct_template, synthesize_ct_series

SUBJECT = "BENCH-001"


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
    out.write(f"  engine start-up (Pyodide + pydicom + trials/deid):  {node['startMs']:.0f} ms (once per page)")
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
