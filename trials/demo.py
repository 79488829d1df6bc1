"""The demo trial DEMO, built through the real services so its audit trail is real too."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction

from ctims.two_factor import authenticator, authenticator_ensure, secret_text

from . import services
from .models import Role, Trial

User = get_user_model()


@dataclass(frozen=True)
class DemoUser:
    email: str
    full_name: str
    password: str
    role: str
    sites: tuple[str, ...] = ()


DEMO_USERS = [
    DemoUser("admin@demo.ctims", "Dana Admin", "Demo-Admin-2026!", Role.TRIAL_ADMIN),
    DemoUser("seoul@demo.ctims", "Seo-yeon Kim", "Demo-Seoul-2026!", Role.SITE_COORDINATOR, ("SEO",)),
    DemoUser("busan@demo.ctims", "Min-jun Park", "Demo-Busan-2026!", Role.SITE_COORDINATOR, ("BUS",)),
    DemoUser("qc@demo.ctims", "Quinn Reviewer", "Demo-QC-2026!x", Role.QC_REVIEWER),
    DemoUser("reader1@demo.ctims", "Rhea One", "Demo-Reader1-2026!", Role.READER),
    DemoUser("reader2@demo.ctims", "Ravi Two", "Demo-Reader2-2026!", Role.READER),
    DemoUser("adjudicator@demo.ctims", "Ada Judge", "Demo-Adjud-2026!", Role.ADJUDICATOR),
    DemoUser("sponsor@demo.ctims", "Sam Sponsor", "Demo-Sponsor-2026!", Role.SPONSOR_VIEWER),
]
# The operator: the Django admin at /operator/, no role in any trial, always a second factor (staff).
DEMO_OPERATOR = DemoUser("operator@demo.ctims", "Otto Operator", "Demo-Operator-2026!", "operator")

SITES = [("SEO", "Seoul National Cancer Center", "KR"), ("BUS", "Busan Oncology Hospital", "KR")]
VISITS = [
    # code, label, order, target day, window before, window after
    ("BL", "Baseline", 1, 0, 28, 0),
    ("W6", "Week 6", 2, 42, 7, 7),
    ("W12", "Week 12", 3, 84, 7, 7),
]
SUBJECTS_PER_SITE = 2


def _user(demo: DemoUser):
    user = User.objects.filter(email=demo.email).first()
    if user is None:
        user = User.objects.create_user(demo.email, demo.password, full_name=demo.full_name)
    return user


@transaction.atomic
def load_demo(*, subjects_per_site: int = SUBJECTS_PER_SITE) -> tuple[Trial, list[DemoUser]]:
    """Create DEMO with its sites, schedule, protocols, subjects and one person per role; running it again changes
    nothing. Each site has at least `subjects_per_site` subjects (a benchmark asks for more)."""
    admin = _user(DEMO_USERS[0])
    admin.user_permissions.add(Permission.objects.get(codename="add_trial", content_type__app_label="trials"))
    trial = Trial.objects.filter(code="DEMO").first()
    if trial is None:
        trial = services.trial_create(
            actor=admin,
            code="DEMO",
            title="A phase II study of an investigational agent in advanced solid tumours",
            sponsor="Demo Pharma Co.",
            protocol_number="DP-2026-001",
            status=Trial.Status.ACTIVE,
        )
        # The demo shows de-identification in the site's browser, with the server path as the fallback.
        trial = services.trial_update(actor=admin, trial=trial, deid_paths=Trial.DeidPaths.EITHER)
    for code, name, country in SITES:
        if not trial.sites.filter(code=code).exists():
            services.site_create(actor=admin, trial=trial, code=code, name=name, country=country)
    for code, label, order, day, before, after in VISITS:
        if not trial.visits.filter(code=code).exists():
            visit = services.visit_create(
                actor=admin,
                trial=trial,
                code=code,
                label=label,
                order=order,
                target_day=day,
                window_before=before,
                window_after=after,
            )
            services.protocol_create(
                actor=admin,
                visit=visit,
                modality="CT",
                body_region="cap",
                contrast="required",
                max_slice_thickness_mm="5",
            )
    for site in trial.sites.all():
        for _ in range(subjects_per_site - site.subjects.count()):
            services.subject_enroll(actor=admin, site=site)
    for demo in DEMO_USERS:
        user = _user(demo)
        services.membership_grant(
            actor=admin,
            trial=trial,
            user=user,
            role=demo.role,
            sites=list(trial.sites.filter(code__in=demo.sites)),
        )
        if demo.role in trial.two_factor_roles:
            authenticator_ensure(user)  # enrolled already: the demo is walked with the printed secrets
    operator = _user(DEMO_OPERATOR)
    if not (operator.is_staff and operator.is_superuser):
        operator.is_staff = operator.is_superuser = True
        operator.save(update_fields=["is_staff", "is_superuser"])
    authenticator_ensure(operator)
    return trial, [*DEMO_USERS, DEMO_OPERATOR]


def demo_authenticators() -> dict[str, str]:
    """Each enrolled demo user's authenticator secret (base32), by email."""
    found = {}
    for demo in [*DEMO_USERS, DEMO_OPERATOR]:
        device = authenticator(User.objects.get(email=demo.email))
        if device is not None:
            found[demo.email] = secret_text(device)
    return found
