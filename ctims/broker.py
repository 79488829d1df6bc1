"""Redis transport options for Celery, derived from one visibility timeout.

With acks_late, a task whose worker died stays in the broker's "unacked" set; a worker restores it to its
queue once it is older than the visibility timeout. Workers look for such tasks every half of that (at
most every minute). The look is guarded by a lock in Redis; a worker killed while holding it would keep
every other worker from restoring anything until the lock expires, kombu's default being five minutes.
The lock therefore expires with the visibility timeout (at most five minutes): a look takes milliseconds,
and each restore is its own Redis transaction, so two workers looking at once cannot restore a task twice.
"""

from __future__ import annotations


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
