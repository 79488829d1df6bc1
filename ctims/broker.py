"""Redis transport options for Celery, derived from one visibility timeout.

With acks_late, a task whose worker died stays in the broker's "unacked" set; a worker restores it to its
queue once it is older than the visibility timeout. Workers look for such tasks every half of that (at
most every minute). The look is guarded by a lock in Redis; a worker killed while holding it would keep
every other worker from restoring anything until the lock expires, kombu's default being five minutes.
The lock therefore expires with the visibility timeout (at most five minutes): a look takes milliseconds,
and each restore is its own Redis transaction, so two workers looking at once cannot restore a task twice.

The default visibility timeout is 300 s (it was 3,600 s: a killed worker's batch waited up to an hour).
`manage.py bench broker` measured, from the kill to the task done on another worker: RabbitMQ 0.2 s (a dead
consumer's unacknowledged messages return when its connection drops), Redis 10.1 s with a 10 s timeout and
30.4 s with 30 s, i.e. the timeout itself. Shorter is not free on Redis: a task still running (or waiting for
its retry countdown) when the timeout passes is handed to a second worker as well. 300 s stays above a batch of
32 large files on a slow machine and above the tasks' longest retry wait (240 s), and the ingest sweeper makes
good whatever a broker loses. RabbitMQ is the recommended production broker.

Redis can also lose a task outright: it hands a task over by removing it from the queue's list, and a worker
killed before it records the task as unacknowledged takes the task along; no visibility timeout brings it back.
The sweeper queues such files again once INGEST_REQUEUE_AFTER_SECONDS have passed (the beat runs it every half
of that, and every worker at its start): tests/trials/test_worker.py kills a worker at that very point.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def transport_options(visibility_timeout: int) -> dict:
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(60, visibility_timeout // 2)),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": max(1, min(300, visibility_timeout)),
    }


def connections_reset(app) -> None:
    """Drop the app's broker connections so the next task is sent with its current configuration."""
    import kombu.pools

    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def tasks_sent_to(app, broker_url: str, *, visibility: int, prefix: str = "ctims") -> Iterator[str]:
    """For the duration, this process sends its tasks to a fresh queue on `broker_url` instead of running them
    in-process (benchmarks and tests that run real workers); yields the queue's name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    keys = ("task_always_eager", "broker_url", "task_default_queue", "broker_transport_options")
    saved = {k: app.conf[k] for k in keys}
    app.conf.update(
        task_always_eager=False,
        broker_url=broker_url,
        task_default_queue=name,
        broker_transport_options=transport_options(visibility),
    )
    connections_reset(app)
    try:
        yield name
    finally:
        app.conf.update(saved)
        connections_reset(app)
