from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def needs_two_factor(user) -> bool:
    """Whether any trial in which the person holds a role asks that role for a second factor at log-in."""
    from .models import Membership

    for role, roles in Membership.objects.filter(user=user).values_list("role", "trial__two_factor_roles"):
        if role in (roles or ()):
            return True
    return False


class TrialsConfig(AppConfig):
    name = "trials"
    verbose_name = _("Trials")

    def ready(self) -> None:
        from django.conf import settings

        from ctims.two_factor import POLICIES

        from . import checks, inbox  # noqa: F401 - register the system checks and the queries' inbox sources
        from .deid import burned_in

        burned_in.use_models(settings.OCR_MODELS_DIR)

        if needs_two_factor not in POLICIES:
            POLICIES.append(needs_two_factor)
