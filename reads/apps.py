from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _enqueue_read_tasks(sender, timepoint_id: int, **kwargs) -> None:
    from .tasks import create_read_tasks

    create_read_tasks.delay(timepoint_id)


class ReadsConfig(AppConfig):
    name = "reads"
    verbose_name = _("Reads")

    def ready(self) -> None:
        from trials.signals import timepoint_ready

        timepoint_ready.connect(_enqueue_read_tasks, dispatch_uid="reads.create_read_tasks")
