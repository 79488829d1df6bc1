from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CtimsConfig(AppConfig):
    name = "ctims"
    verbose_name = _("CTIMS core")

    def ready(self) -> None:
        from django.conf import settings

        from . import account_events  # noqa: F401  (connects the log-in receivers)
        from .memory import keep_large_buffers

        keep_large_buffers(settings.MALLOC_KEEP_FREE_MB * 1024 * 1024)
