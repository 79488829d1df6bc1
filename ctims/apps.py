from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CtimsConfig(AppConfig):
    name = "ctims"
    verbose_name = _("CTIMS core")
