"""A Celery worker for the durability tests, able to die by SIGKILL at a named point inside a store write.

CTIMS_TEST_FAULT="mid_write:3" kills the process the third time any write reaches trials.ingest.store's
"mid_write" point (half the bytes written): a real process death at a known place, not a timer.
CTIMS_TEST_FAULT="taken:2" kills it as it takes its second task from Redis: after the broker handed the task
over, before the worker recorded it as unacknowledged (kombu's Redis QoS.append).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(queue: str) -> None:
    import django

    django.setup()
    from ctims.celery import app
    from trials.ingest import store

    fault = os.environ.get("CTIMS_TEST_FAULT", "")
    if fault:
        point, _, count = fault.partition(":")
        remaining = [int(count or 1)]

        def die(*_args) -> None:
            remaining[0] -= 1
            if remaining[0] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

        if point == "taken":
            import kombu.transport.redis as redis_transport

            record = redis_transport.QoS.append

            def taken(qos, message, delivery_tag):
                die()
                return record(qos, message, delivery_tag)

            redis_transport.QoS.append = taken
        else:
            store.FAULT_HOOKS[point] = die
    app.worker_main(
        [
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "-l",
            "INFO",  # each task received and done, in the test's worker.log: what a failed wait shows
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main(sys.argv[1])
