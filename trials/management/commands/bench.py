"""Benchmarks that print figures: medians over several runs and ratios against a baseline run in the same command."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import override_settings

from ctims.bench import undone
from trials import services
from trials.deid import deidentify
from trials.ingest.services import (
    BATCH_SIZE,
    trial_deid_options,
    upload_batch_process,
    upload_open,
    upload_receive,
)
from trials.ingest.subject_keys import subject_space
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series, synthesize_dose_screens
from trials.models import Role


def _rounds(measured: dict[str, Callable[[], None]], runs: int, clean: Callable[[], None]) -> dict[str, list[float]]:
    """Wall times of each measurement, interleaved round by round so that a slow moment of the machine
    (disk write-back, another process) weighs on all of them alike; `clean` runs untimed before each."""
    times: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(runs):
        for name, run in measured.items():
            clean()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    clean()
    return times


class Command(BaseCommand):
    help = (
        "Run a benchmark and print its figures: `bench ingest` (de-identification and the pipeline), "
        "`bench dicomweb` (series metadata, frames, QIDO), `bench reads` (saving, signing, the worklist), "
        "`bench broker` (how soon a killed worker's task runs again, RabbitMQ against Redis), "
        "`bench stow` (the STOW body parser at doubling sizes)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "name",
            choices=["ingest", "dicomweb", "reads", "broker", "stow", "browser_deid", "upload_browser", "transfers"],
        )
        parser.add_argument("--redis", default="redis://127.0.0.1:6379/10", help="broker: the Redis to measure")
        parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//", help="broker: the RabbitMQ")
        parser.add_argument(
            "--visibility", type=int, nargs="+", default=[10, 30], help="broker: Redis visibility timeouts to measure"
        )
        parser.add_argument(
            "--index-rows", type=int, default=1_000_000, help="dicomweb: instance rows in the QIDO index"
        )
        parser.add_argument("--slices", type=int, default=300, help="instances in the synthesized CT series")
        parser.add_argument("--runs", type=int, default=5, help="runs per measurement; the median is reported")
        parser.add_argument("--small", action="store_true", help="use the 128x128 CT_small header instead of 512x512")
        parser.add_argument("--tasks", type=int, default=500, help="reads: tasks in the reader's worklist")
        parser.add_argument("--max-mib", type=int, default=512, help="stow: the largest body, from 64 MiB doubling")
        parser.add_argument(
            "--screens", type=int, default=5, help="ingest: dose report screens read by OCR (0 to skip)"
        )
        parser.add_argument("--subjects", type=int, default=20, help="transfers: subjects read and locked")
        parser.add_argument(
            "--http",
            action="store_true",
            help="dicomweb: frames and instances over HTTP from a server process, with concurrent clients",
        )
        parser.add_argument("--clients", default="1,8", help="dicomweb --http: numbers of concurrent clients")
        parser.add_argument(
            "--orthanc",
            action="store_true",
            help="dicomweb --http: the same files from Debian's Orthanc, and the ratio",
        )
        from trials.dicomweb.bench import add_http_arguments

        add_http_arguments(parser)
        parser.add_argument(
            "--workers",
            type=int,
            nargs="+",
            help="ingest: real Celery worker processes on the --redis broker, e.g. --workers 1 2 (PostgreSQL only)",
        )

    def handle(
        self,
        *args,
        name: str,
        slices: int,
        runs: int,
        small: bool,
        index_rows: int,
        tasks: int,
        screens: int,
        **options,
    ):
        if name == "broker":
            from ctims.broker_bench import bench_broker  # the ctims app's own benchmark, run from the one command

            return bench_broker(
                self.stdout,
                runs=runs,
                redis_url=options["redis"],
                amqp_url=options["amqp"],
                visibilities=options["visibility"],
            )
        if name == "stow":
            from trials.dicomweb.stow_bench import bench_stow

            return bench_stow(self.stdout, runs=runs, max_mib=options["max_mib"])
        if name == "browser_deid":
            from trials.ingest.browser_bench import bench_browser_deid

            return bench_browser_deid(self.stdout, slices=slices, runs=runs, small=small)
        if name == "upload_browser":
            from trials.ingest.browser_bench import bench_upload_browser

            return bench_upload_browser(self.stdout, slices=slices, runs=runs, small=small)
        if name == "transfers":
            from reads.bench_transfers import bench_transfers  # the reads app's own benchmark

            return bench_transfers(
                self.stdout, subjects=options["subjects"], slices=max(5, min(slices, 8)), runs=runs, small=small
            )
        if name == "dicomweb" and (options["http"] or options["orthanc"]):
            from trials.dicomweb.bench import bench_dicomweb_http

            try:
                clients = [int(n) for n in options["clients"].split(",")]
            except ValueError:
                raise CommandError("--clients is a comma-separated list of whole numbers, e.g. 1,8") from None
            return bench_dicomweb_http(
                self.stdout,
                slices=slices,
                runs=runs,
                small=small,
                clients=clients,
                orthanc=options["orthanc"],
                servers=options["server"],
                web_workers=options["web_workers"],
                access_cache_seconds=options["access_cache_seconds"],
            )
        if name == "reads":
            from reads.bench import bench_reads  # the reads app's own benchmark, run from the one command

            return bench_reads(self.stdout, slices=min(slices, 20), runs=runs, small=small, tasks=tasks)
        if name == "dicomweb":
            from trials.dicomweb.bench import bench_dicomweb

            return bench_dicomweb(self.stdout, slices=slices, runs=runs, small=small, index_rows=index_rows)
        if options.get("workers"):
            from trials.ingest.workers_bench import bench_ingest_workers

            bench_ingest_workers(
                self.stdout,
                slices=slices,
                runs=runs,
                small=small,
                counts=options["workers"],
                broker_url=options["redis"],
            )
            return
        template = real_ct_template(large=not small)
        if not small and template.Rows != 512:
            raise CommandError("The 512x512 CT header needs the pydicom-data package (pip install pydicom-data).")
        files = synthesize_ct_series(template, slices=slices, seed="bench-ingest")
        megabytes = sum(len(f) for f in files) / 1e6
        self.stdout.write(
            f"Series: {slices} CT slices {template.Rows}x{template.Columns}, {megabytes:.1f} MB, "
            f"{len(template)} top-level elements per header; median of {runs} runs each, one process."
        )
        self.stdout.write(
            "Every run reads the series from disk and writes its result to disk; (c) also writes the index to the "
            "configured database (rolled back after each run) and the files to a temporary store."
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

        with transaction.atomic():
            trial, subject, _ = scratch_trial(0)
            space, deid_options = subject_space(trial, subject.code), trial_deid_options(trial)
            transaction.set_rollback(True)

        def deid_verify():
            for path in sources:
                result = deidentify(path.read_bytes(), space=space, subject_code=subject.code, options=deid_options)
                (tmp / "out" / path.name).write_bytes(result.data)

        counter = iter(range(1, 10_000))

        def pipeline():
            with undone():
                _trial, _subject, upload = scratch_trial(next(counter))
                items = upload_receive(upload=upload, files=[path.read_bytes() for path in sources])
                ids = [item.pk for item in items]
                for start in range(0, len(ids), BATCH_SIZE):
                    upload_batch_process(item_ids=ids[start : start + BATCH_SIZE])

        def clean():
            for folder in ("out", "images", "quarantine"):
                shutil.rmtree(tmp / folder, ignore_errors=True)
            (tmp / "out").mkdir()
            os.sync()  # every run starts with the same clean page cache

        filesystem = "django.core.files.storage.FileSystemStorage"
        stores = {
            "images": {"BACKEND": filesystem, "OPTIONS": {"location": tmp / "images"}},
            "quarantine": {"BACKEND": filesystem, "OPTIONS": {"location": tmp / "quarantine"}},
        }
        try:
            with override_settings(STORAGES={**storages.backends, **stores}):
                storages._storages.clear()
                plain_read_write()  # warm caches and imports
                times = _rounds({"a": plain_read_write, "b": deid_verify, "c": pipeline}, runs, clean)
        finally:
            storages._storages.clear()
            shutil.rmtree(tmp, ignore_errors=True)

        def line(label: str, seconds: float) -> str:
            return f"  {label:<52} {slices / seconds:8.1f} instances/s {megabytes / seconds:8.1f} MB/s"

        a, b, c = (statistics.median(times[name]) for name in "abc")
        ratio_b = statistics.median(x / y for x, y in zip(times["a"], times["b"], strict=True))
        ratio_c = statistics.median(x / y for x, y in zip(times["a"], times["c"], strict=True))
        self.stdout.write(line("(a) pydicom read + write (the floor)", a))
        self.stdout.write(line("(b) de-identify + verify", b))
        self.stdout.write(line("(c) whole pipeline: quarantine, deid, store, index", c))
        self.stdout.write(
            f"  throughput ratios, median of the per-round ratios: b/a = {ratio_b:.2f} (goal >= 1.0)   "
            f"c/a = {ratio_c:.2f} (goal >= 0.6)"
        )
        if screens:
            self._bench_screens(template, screens, runs, space, subject.code, deid_options)

    def _bench_screens(self, template, count: int, runs: int, space, subject_code: str, deid_options) -> None:
        """De-identification of a dose report series: secondary CT screens with text, read by OCR and redacted."""
        from dataclasses import replace

        from trials.deid import REDACT

        files = synthesize_dose_screens(template, count=count, seed="bench-screens")
        redacting = replace(deid_options, burned_in_text=REDACT)

        def screens_deid():
            for data in files:
                deidentify(data, space=space, subject_code=subject_code, options=redacting)

        times = _rounds({"d": screens_deid}, max(1, min(runs, 3)), lambda: None)["d"]
        per_instance = statistics.median(times) / count
        self.stdout.write(
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
