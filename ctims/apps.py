from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate
from django.utils.translation import gettext_lazy as _


class CtimsConfig(AppConfig):
    name = "ctims"
    verbose_name = _("CTIMS core")

    def ready(self) -> None:
        from django.conf import settings

        from . import (
            account_events,  # noqa: F401  (connects the log-in receivers)
            embedded_beat,
        )
        from .memory import keep_large_buffers

        keep_large_buffers(settings.MALLOC_KEEP_FREE_MB * 1024 * 1024)
        pre_migrate.connect(migrate_gives_up_waiting_for_locks, dispatch_uid="ctims.migrate_lock_timeout")
        post_migrate.connect(migrate_gives_up_waiting_for_locks, dispatch_uid="ctims.migrate_lock_timeout_reset")
        embedded_beat.connect()


def migrate_gives_up_waiting_for_locks(sender, using="default", signal=None, **kwargs) -> None:
    """`migrate`'s statements on PostgreSQL wait at most MIGRATE_LOCK_TIMEOUT_SECONDS for a lock (session-wide
    from pre_migrate, back to the server's default at post_migrate): an ALTER TABLE queued behind a long reader
    holds back every new read of its table while it waits. Sent once per app: the same SET each time."""
    from django.conf import settings
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        if signal is pre_migrate:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false)", [f"{settings.MIGRATE_LOCK_TIMEOUT_SECONDS}s"]
            )
        else:
            cursor.execute("SET lock_timeout TO DEFAULT")
