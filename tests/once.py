"""A costly fixture's value made once per test run, however many pytest-xdist workers ask for it.

A module-scoped fixture is built by every worker that runs one of the module's tests, and `--dist worksteal`
often spreads a module's tests over both: OCR agreement's screens (about 20 s) were read on each. The first
worker to ask builds the value under a file lock in the run's temporary directory, which the workers share,
and leaves it there pickled; a worker asking later reads it (pytest-xdist's documented pattern). One asking
while another builds does not wait for it, idle, but builds too, as before: on two cores that costs no more
than waiting. A build that fails leaves nothing behind: the next worker to ask builds it again, and fails as
the test should.
"""

from __future__ import annotations

import fcntl
import pickle
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def once_per_run(tmp_path_factory, worker_id: str, name: str, build: Callable[[], T]) -> T:
    if worker_id == "master":  # one process (no pytest-xdist, or -n 0): nothing to share
        return build()
    shared = tmp_path_factory.getbasetemp().parent  # this run's, one folder per worker inside it
    kept = shared / f"{name}.pickle"
    with (shared / f"{name}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another worker is building it now
            return build()
        if kept.exists():
            return pickle.loads(kept.read_bytes())
        value = build()
        kept.write_bytes(pickle.dumps(value))
        return value
