"""`manage.py bench ingest`: de-identification and the whole ingest pipeline against pydicom reading and writing
the same files, in one process; with `--workers`, real worker processes (workers_bench.py)."""

from __future__ import annotations

import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pydicom
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction

from ctims.bench import stores_in, undone
from ctims.metrics import DEID_SECONDS
from trials import services
from trials.deid import REDACT, deidentify
from trials.models import Role

from .services import processing_batches, trial_deid_options, upload_batch_process, upload_open, upload_receive
from .subject_keys import subject_space
from .synthetic import real_ct_template, synthesize_ct_series, synthesize_dose_screens


def _rounds(
    measured: dict[str, Callable[[], tuple[float, float] | None]],
    runs: int,
    clean: Callable[[], None],
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each measurement, interleaved round by round so that a slow moment of the machine
    (disk write-back, another process) weighs on all of them alike; `clean` runs untimed before each, and a run
    that returns the seconds (wall, CPU) spent on its own set-up has them left out. `cpu`, if given, gets each
    run's CPU time of this process (every thread of it), which other processes' load moves far less."""
    times: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(runs):
        for name, run in measured.items():
            clean()
            start, start_cpu = time.perf_counter(), time.process_time()
            set_up, set_up_cpu = run() or (0.0, 0.0)
            times[name].append(time.perf_counter() - start - set_up)
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - start_cpu - set_up_cpu)
    clean()
    return times


def bench_ingest(out, *, slices: int, runs: int, small: bool, screens: int) -> None:
    """(a) pydicom read + write, (b) de-identify + verify, (c) the whole pipeline, on one CT series; (d) OCR."""
    template = real_ct_template(large=not small)
    if not small and template.Rows != 512:
        raise CommandError("The 512x512 CT header needs the pydicom-data package (pip install pydicom-data).")
    files = synthesize_ct_series(template, slices=slices, seed="bench-ingest")
    megabytes = sum(len(f) for f in files) / 1e6
    out.write(
        f"Series: {slices} CT slices {template.Rows}x{template.Columns}, {megabytes:.1f} MB, "
        f"{len(template)} top-level elements per header; median of {runs} runs each, one process."
    )
    out.write(
        "Every run reads the series from disk and writes its result to disk; (c) also writes the index to the "
        "configured database (rolled back after each run) and the files, durably, to a temporary store."
    )
    tmp = Path(tempfile.mkdtemp(prefix="ctims-bench-"))
    (tmp / "in").mkdir()
    (tmp / "out").mkdir()
    sources = []
    for n, data in enumerate(files):
        sources.append(tmp / "in" / f"{n:05d}.dcm")
        sources[-1].write_bytes(data)

    def plain_read_write():
        for path in sources:
            pydicom.dcmread(path).save_as(tmp / "out" / path.name)

    disk_seconds: list[float] = []

    def durable_read_write():
        """(a) made durable as the pipeline must be: the received bytes kept, and the result written, each flushed
        to disk (fdatasync) before the next file: what no durable ingest can do with less disk work."""
        waited = 0.0
        for path in sources:
            data = path.read_bytes()
            buffer = io.BytesIO()
            pydicom.dcmread(io.BytesIO(data)).save_as(buffer)
            start = time.perf_counter()
            _write_durably(tmp / "out" / f"{path.name}.raw", data)
            _write_durably(tmp / "out" / path.name, buffer.getvalue())
            waited += time.perf_counter() - start
        disk_seconds.append(waited)

    with transaction.atomic():
        trial, subject, _ = scratch_trial(0)
        space, deid_options = subject_space(trial, subject.code), trial_deid_options(trial)
        transaction.set_rollback(True)

    def deid_verify():
        for path in sources:
            result = deidentify(path.read_bytes(), space=space, subject_code=subject.code, options=deid_options)
            (tmp / "out" / path.name).write_bytes(result.data)

    counter = iter(range(1, 10_000))
    stages: dict[str, list[tuple[float, float]]] = {"receive": [], "processing": []}
    engine_seconds: list[float] = []  # per run of (c): its de-identification's own time, as the metric counts it

    def pipeline() -> tuple[float, float]:
        """Returns the seconds (wall, CPU) its scratch trial took to make: the pipeline's measure leaves them out.
        Each stage's own (wall, CPU) go to `stages`."""
        with undone():
            start, start_cpu = time.perf_counter(), time.process_time()
            _trial, _subject, upload = scratch_trial(next(counter))
            received, received_cpu = time.perf_counter(), time.process_time()
            items = upload_receive(upload=upload, files=[path.read_bytes() for path in sources])
            processing, processing_cpu = time.perf_counter(), time.process_time()
            deidentifying = _seconds_counted(DEID_SECONDS)
            for batch in processing_batches([item.pk for item in items]):
                upload_batch_process(item_ids=batch)
            stages["processing"].append((time.perf_counter() - processing, time.process_time() - processing_cpu))
            engine_seconds.append(_seconds_counted(DEID_SECONDS) - deidentifying)
            stages["receive"].append((processing - received, processing_cpu - received_cpu))
        return received - start, received_cpu - start_cpu

    def clean():
        for folder in ("out", "images", "quarantine"):
            shutil.rmtree(tmp / folder, ignore_errors=True)
        (tmp / "out").mkdir()
        os.sync()  # every run starts with the same clean page cache

    cpu: dict[str, list[float]] = {}
    try:
        with stores_in(tmp):
            plain_read_write()  # warm caches and imports
            times = _rounds(
                {"a": plain_read_write, "a2": durable_read_write, "b": deid_verify, "c": pipeline}, runs, clean, cpu
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def line(label: str, seconds: float) -> str:
        return f"  {label:<52} {slices / seconds:8.1f} instances/s {megabytes / seconds:8.1f} MB/s"

    a, b, c = (statistics.median(times[name]) for name in "abc")
    durable_ms = statistics.median(disk_seconds) / slices * 1000
    ratio_b = statistics.median(x / y for x, y in zip(times["a"], times["b"], strict=True))
    ratio_c = statistics.median(x / y for x, y in zip(times["a"], times["c"], strict=True))
    ratio_c2 = statistics.median(x / y for x, y in zip(times["a2"], times["c"], strict=True))
    out.write(line("(a) pydicom read + write (the floor)", a))
    out.write(line("(a2) the same, durable: raw kept, result, fdatasync", statistics.median(times["a2"])))
    out.write(line("(b) de-identify + verify", b))
    out.write(line("(c) whole pipeline: quarantine, deid, store, index", c))
    out.write(
        f"  throughput ratios, median of the per-round ratios: b/a = {ratio_b:.2f} (goal >= 1.0)   "
        f"c/a = {ratio_c:.2f} (goal >= 0.8)   c/a2 = {ratio_c2:.2f}"
    )
    cpu_a, cpu_c = (statistics.median(cpu[name]) / slices * 1000 for name in "ac")
    cpu_ratio = statistics.median(x / y for x, y in zip(cpu["a"], cpu["c"], strict=True))
    out.write(
        f"  CPU time of this process per file: (a) {cpu_a:.2f} ms, (c) {cpu_c:.2f} ms; c/a by CPU time = "
        f"{cpu_ratio:.2f} (the ratio other processes' load moves least; the database server's own CPU not counted)"
    )
    receive, processing = (
        [statistics.median(run[n] for run in stages[stage]) / slices * 1000 for n in (0, 1)]
        for stage in ("receive", "processing")
    )
    out.write(
        f"  (c) by stage, per file, wall / CPU of this process: receive (read, hash, quarantine, acknowledge) "
        f"{receive[0]:.2f} / {receive[1]:.2f} ms; processing (read back, checks, de-identify, store, index) "
        f"{processing[0]:.2f} / {processing[1]:.2f} ms"
    )
    engine_ms = statistics.median(engine_seconds) / slices * 1000
    # What (c) would reach with a de-identification that took no time: the rest of the pipeline alone.
    ceiling = statistics.median(x / (y - e) for x, y, e in zip(times["a"], times["c"], engine_seconds, strict=True))
    out.write(
        f"  (c)'s de-identification and its verification (the engine, as ctims_deidentify_seconds counts it) took "
        f"{engine_ms:.2f} ms per file; without it, the rest of the pipeline alone would reach c/a = {ceiling:.2f}: "
        "the ceiling of c/a however fast the engine became"
    )
    out.write(
        f"  (this machine's disk took {durable_ms:.2f} ms per file to make {2 * megabytes / slices:.2f} MB durable "
        "in (a2), writes included; the pipeline writes as much)"
    )
    if screens:
        _bench_screens(out, template, screens, runs, space, subject.code, deid_options)


def _seconds_counted(histogram) -> float:
    """The seconds a histogram of this process has counted so far (its _sum sample)."""
    [family] = histogram.collect()
    return next(sample.value for sample in family.samples if sample.name.endswith("_sum"))


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fdatasync(f.fileno())


def _bench_screens(out, template, count: int, runs: int, space, subject_code: str, deid_options) -> None:
    """De-identification of a dose report series: secondary CT screens with text, read by OCR and redacted."""
    files = synthesize_dose_screens(template, count=count, seed="bench-screens")
    redacting = replace(deid_options, burned_in_text=REDACT)

    def screens_deid():
        for data in files:
            deidentify(data, space=space, subject_code=subject_code, options=redacting)

    times = _rounds({"d": screens_deid}, max(1, min(runs, 3)), lambda: None)["d"]
    per_instance = statistics.median(times) / count
    out.write(
        f"  (d) dose report screens ({count} x {template.Rows}x{template.Columns}, text in the pixels, OCR + "
        f"redaction): {per_instance * 1000:.0f} ms per instance, median of {len(times)} runs"
    )


def scratch_trial(n: int):
    """A throwaway trial with one subject and an open upload (in a rolled-back transaction, or a bench's own database)."""
    User = get_user_model()
    user = User.objects.create_user(f"bench-{n}-{time.time_ns()}@bench.invalid", None, full_name="Bench")
    trial = services.trial_create(actor=user, code=f"BENCH{n}", title="Bench", sponsor="Bench", protocol_number="B")
    site = services.site_create(actor=user, trial=trial, code="S", name="Bench site", country="KR")
    services.visit_create(actor=user, trial=trial, code="BL", label="Baseline", order=1, target_day=0)
    services.membership_grant(actor=user, trial=trial, user=user, role=Role.SITE_COORDINATOR, sites=[site])
    subject = services.subject_enroll(actor=user, site=site)
    upload = upload_open(actor=user, timepoint=subject.timepoints.get())
    return trial, subject, upload
