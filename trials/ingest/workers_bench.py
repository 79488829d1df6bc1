"""`manage.py bench ingest --workers 1 2`: the ingest with real Celery worker processes on Redis and PostgreSQL.

Each run uploads the series into a new trial (so nothing is a duplicate of an earlier run) the way the web
process does (`upload_receive`: quarantine writes and one commit that queues the batches), then waits until
every file is processed. The worker counts take turns, round by round, each in a pool started for its run, so
that a slow moment of the machine weighs on every count alike. It prints, per number of workers, the median of
the receive time, the processing time (from the commit to the newest outcome the workers stamped) and the
end-to-end time, as instances/s, and the median of the rounds' ratios of each count's processing rate to the
first count's. Everything happens in a database of the bench's own (workers in other processes must see
committed rows; nothing it writes, its audit events included, may stay behind) and a temporary store folder;
the workers read a queue of the bench's own.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages
from django.core.management.base import CommandError
from django.db.models import Max
from django.test import override_settings

from ctims.bench import cpu_seconds_in, own_database, page_faults_in
from ctims.broker import tasks_sent_to
from ctims.celery import app
from trials.models import UploadItem

from .bench import scratch_trial
from .services import upload_receive
from .synthetic import real_ct_template, synthesize_ct_series


@contextmanager
def workers(count: int, *, database: str, broker_url: str, queue: str, var: Path) -> Iterator[int]:
    """One `celery worker` with `count` pool processes, on the bench's database, queue and store folder; yields
    its process id."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "ctims.settings",
        "DATABASE_URL": f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "CTIMS_VAR_DIR": str(var),
        "AUDIT_HMAC_KEY": settings.AUDIT_HMAC_KEY,
        "INGEST_PROCESSING_IO_THREADS": str(settings.INGEST_PROCESSING_IO_THREADS),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    celery = Path(sys.executable).parent / "celery"
    process = subprocess.Popen(  # noqa: S603 -- our own interpreter's celery, fixed arguments
        [str(celery), "-A", "ctims", "worker", "-Q", queue, "-c", str(count), "-l", "WARNING", "--without-gossip"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(var / "workers.log").open("ab"),
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def usage(pid: int) -> tuple[float, int] | None:
    """CPU time and minor page faults so far of a process and its live descendants (Linux /proc); None where
    they cannot be read.

    Compared with the wall time of the processing, the CPU time says how many cores the workers kept busy: near
    the number of workers when they work side by side, near one when something makes them take turns, lower when
    the machine's other processes take the cores. The page faults say whether the workers reuse their buffers'
    pages from one file to the next (ctims.memory) or have them mapped again."""
    try:
        cpu, faults, pending = 0.0, 0, [pid]
        while pending:
            current = pending.pop()
            stat = Path(f"/proc/{current}/stat").read_text()
            cpu, faults = cpu + cpu_seconds_in(stat), faults + page_faults_in(stat)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        return cpu, faults
    except (OSError, ValueError, IndexError):
        return None


def _one_run(n: int, files: list[bytes], deadline_s: float) -> tuple[float, float]:
    """Receive the files and wait for the workers: (receive seconds, processing seconds)."""

    _trial, _subject, upload = scratch_trial(n)  # committed, in the bench's own database: a new pseudonym space
    # Both spans on the wall clock: the workers stamp their outcomes with it (this machine's clock).
    start = time.time()
    upload_receive(upload=upload, files=files)  # commits: the batches are queued now
    received_at = time.time()
    deadline = time.monotonic() + deadline_s
    waiting = UploadItem.objects.filter(upload=upload, state=UploadItem.State.QUARANTINED)
    while waiting.exists():
        if time.monotonic() > deadline:
            raise CommandError(f"the workers did not process the upload within {deadline_s:.0f} s")
        time.sleep(0.05)
    items = UploadItem.objects.filter(upload=upload)
    outcomes = set(items.values_list("state", flat=True))
    if outcomes != {UploadItem.State.ACCEPTED}:
        raise CommandError(f"the bench's files ended {sorted(outcomes)}, not all accepted")
    # The end is the newest outcome's own stamp (the workers' clock is this machine's), not the moment the
    # polling above noticed it: that adds up to a polling interval, a larger share of a faster run.
    done_at = items.aggregate(done=Max("processed_at"))["done"].timestamp()
    return received_at - start, max(done_at - received_at, 1e-6)


def bench_ingest_workers(
    out, *, slices: int, runs: int, small: bool, counts: list[int], broker_url: str, deadline_s: float = 600
) -> dict[int, float]:
    """Print the figures; returns each worker count's median processing rate (instances/s)."""
    template = real_ct_template(large=not small)
    files = synthesize_ct_series(template, slices=slices, seed="bench-ingest-workers")
    megabytes = sum(len(f) for f in files) / 1e6
    out.write(
        f"Series: {slices} CT slices {template.Rows}x{template.Columns}, {megabytes:.1f} MB; real Celery workers on "
        f"{broker_url.split('@')[-1]}, PostgreSQL; median of {runs} runs per worker count, the counts taking turns; "
        f"{os.cpu_count()} cores."
    )
    var = Path(tempfile.mkdtemp(prefix="ctims-bench-workers-"))
    fs = "django.core.files.storage.FileSystemStorage"
    stores = {
        "images": {"BACKEND": fs, "OPTIONS": {"location": var / "images"}},
        "quarantine": {"BACKEND": fs, "OPTIONS": {"location": var / "quarantine"}},
    }
    times: dict[int, list[tuple[float, float]]] = {count: [] for count in counts}
    used: dict[int, list[tuple[float, int]]] = {count: [] for count in counts}
    serial = iter(range(1, 100_000))
    try:
        with (
            own_database("bench ingest --workers") as database,
            override_settings(STORAGES={**storages.backends, **stores}),
        ):
            storages._storages.clear()
            with tasks_sent_to(app, broker_url, visibility=300, prefix="ctims-bench") as queue:
                for _round in range(runs):
                    for count in counts:
                        with workers(count, database=database, broker_url=broker_url, queue=queue, var=var) as pid:
                            _one_run(next(serial), files[: min(len(files), 4)], deadline_s)  # workers up and warm
                            before = usage(pid)
                            times[count].append(_one_run(next(serial), files, deadline_s))
                            after = usage(pid)
                        if before is not None and after is not None:
                            used[count].append((after[0] - before[0], after[1] - before[1]))
    finally:
        storages._storages.clear()
        shutil.rmtree(var, ignore_errors=True)
    rates: dict[int, float] = {}
    for count in counts:
        receive = statistics.median(t[0] for t in times[count])
        process = statistics.median(t[1] for t in times[count])
        total = statistics.median(t[0] + t[1] for t in times[count])
        rates[count] = slices / process
        out.write(
            f"  {count} worker process{'es' if count > 1 else ''}: receive {slices / receive:7.1f} "
            f"instances/s, processing {slices / process:7.1f} instances/s, end to end "
            f"{slices / total:7.1f} instances/s ({megabytes / total:.1f} MB/s)"
        )
        if len(used[count]) == runs:
            busy = sum(u[0] for u in used[count]) / sum(t[1] for t in times[count])
            faults = statistics.median(u[1] for u in used[count]) / slices
            out.write(
                f"    the workers kept {busy:.2f} cores busy while processing (load average "
                f"{os.getloadavg()[0]:.1f}: other processes take the rest) and took {faults:.0f} page faults per file"
            )
    base = counts[0]
    for count in counts[1:]:
        ratios = [b[1] / t[1] for b, t in zip(times[base], times[count], strict=True)]
        out.write(
            f"  processing rate, {count} workers / {base}: {statistics.median(ratios):.2f}, median of the rounds' "
            f"ratios ({', '.join(f'{r:.2f}' for r in ratios)}; goal >= 1.8 for 2 / 1)"
        )
    return rates
