"""`bench broker`: how long a task whose worker was killed waits before another worker runs it.

Two workers consume one queue; a probe task (ctims.tasks.broker_probe) starts on one of them, which is then
killed with SIGKILL; the figure is the time from the kill to the probe finishing on the other worker. With
Redis this is bounded by the visibility timeout (plus the restore interval); RabbitMQ returns a dead
consumer's unacknowledged messages when its connection drops.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings

from ctims.broker import connections_reset, transport_options
from ctims.celery import app

ROOT = Path(__file__).resolve().parent.parent


def _wait(path: Path, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic()


def _worker(broker_url: str, queue: str, visibility: int, log: Path) -> subprocess.Popen:
    env = os.environ | {
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility),
    }
    args = ["-m", "celery", "-A", "ctims", "worker", "-Q", queue, "--pool", "solo", "-l", "WARNING"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


def _queue_delete(name: str) -> None:
    """Leave nothing behind on the broker: the benchmark's queue and its exchange."""
    import kombu

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        queue = kombu.Queue(name, kombu.Exchange(name), routing_key=name)
        queue.bind(channel).delete()
        queue.exchange.bind(channel).delete()


def recovery_seconds(broker_url: str, visibility: int) -> float:
    """One measurement: seconds from killing the worker that holds the probe to the probe done elsewhere."""
    from ctims.tasks import broker_probe

    folder = Path(tempfile.mkdtemp(prefix="ctims-bench-broker-"))
    queue = f"ctims-bench-{uuid.uuid4().hex[:8]}"
    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url", "broker_transport_options")}
    app.conf.update(
        task_always_eager=False, broker_url=broker_url, broker_transport_options=transport_options(visibility)
    )
    connections_reset(app)
    workers = [_worker(broker_url, queue, visibility, folder / "worker.log") for _ in range(2)]
    try:
        broker_probe.apply_async(args=[str(folder)], queue=queue)
        _wait(folder / "started", 120)
        holder = int((folder / "started").read_text())
        os.kill(holder, signal.SIGKILL)
        killed = time.monotonic()
        return _wait(folder / "done", visibility * 3 + 120) - killed
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait(20)
        _queue_delete(queue)
        app.conf.update(saved)
        connections_reset(app)


def bench_broker(stdout, *, runs: int, redis_url: str, amqp_url: str, visibilities: list[int]) -> None:
    stdout.write(
        f"Recovery of a task whose worker was killed (SIGKILL), two solo workers, median of {runs} runs, "
        f"seconds from the kill to the task done on the other worker. Current default visibility timeout: "
        f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']} s."
    )
    results = {}
    for url, label, visibility in [(amqp_url, "RabbitMQ (amqp)", 60)] + [
        (redis_url, f"Redis, visibility timeout {v} s", v) for v in visibilities
    ]:
        times = [recovery_seconds(url, visibility) for _ in range(runs)]
        results[label] = statistics.median(times)
        spread = ", ".join(f"{t:.1f}" for t in times)
        stdout.write(f"  {label:<40} median {results[label]:7.1f} s   (runs: {spread})")
    base = results["RabbitMQ (amqp)"]
    for label, value in results.items():
        if label != "RabbitMQ (amqp)":
            stdout.write(f"  {label:<40} {value / base:7.1f}x RabbitMQ's recovery time")
