"""Celery tasks of the ctims app."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task


@shared_task(acks_late=True)
def broker_probe(folder: str) -> None:
    """For `bench broker` only: the first delivery marks itself started (with its worker's pid) and waits to be
    killed with its worker; the redelivery to another worker marks itself done."""
    started = Path(folder) / "started"
    if not started.exists():
        started.write_text(str(os.getpid()))
        while True:  # held until the benchmark kills this worker
            time.sleep(1)
    (Path(folder) / "done").write_text(str(os.getpid()))
