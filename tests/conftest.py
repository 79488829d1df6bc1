"""The cast every test speaks of, in trial ALPHA built through the real services.

- alice: trial admin of ALPHA (and allowed to create trials)
- cora: site coordinator at SEO; bruno: site coordinator at BUS
- quinn: QC reviewer; rhea and ravi: readers; ada: adjudicator; sam: sponsor viewer
- otto: trial admin of another trial, OMEGA, and nothing in ALPHA
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.storage import storages
from django.test.client import ClientMixin
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from tests.snapshot import RowSnapshot
from trials import services
from trials.ingest import services as ingest_services
from trials.ingest.services import upload_finish, upload_open, upload_receive
from trials.models import Role, Site, Subject, Timepoint, Trial, Upload

PASSWORD = "Correct-Horse-9!"

CAST = {
    "alice": (Role.TRIAL_ADMIN, ()),
    "cora": (Role.SITE_COORDINATOR, ("SEO",)),
    "bruno": (Role.SITE_COORDINATOR, ("BUS",)),
    "quinn": (Role.QC_REVIEWER, ()),
    "rhea": (Role.READER, ()),
    "ravi": (Role.READER, ()),
    "ada": (Role.ADJUDICATOR, ()),
    "sam": (Role.SPONSOR_VIEWER, ()),
}


@dataclass
class World:
    trial: Trial
    other: Trial
    seo: Site
    bus: Site
    people: dict
    subjects: dict[str, Subject]

    def __getattr__(self, name):
        people = self.__dict__.get("people", {})
        if name in people:
            return people[name]
        raise AttributeError(name)


def make_user(name: str, **extra):
    User = get_user_model()
    return User.objects.create_user(f"{name}@example.org", PASSWORD, full_name=name.capitalize(), **extra)


def build_world() -> World:
    """The cast in ALPHA (and otto's OMEGA): built through the services once per process, then replayed as the
    same rows for each test (tests.snapshot)."""
    return _world_rows()


def _build_world() -> World:
    alice = make_user("alice")
    alice.user_permissions.add(Permission.objects.get(codename="add_trial"))
    otto = make_user("otto")
    otto.user_permissions.add(Permission.objects.get(codename="add_trial"))
    trial = services.trial_create(
        actor=alice, code="ALPHA", title="Alpha study", sponsor="Acme Pharma", protocol_number="AC-1"
    )
    other = services.trial_create(
        actor=otto, code="OMEGA", title="Omega study", sponsor="Other", protocol_number="OT-9"
    )
    seo = services.site_create(actor=alice, trial=trial, code="SEO", name="Seoul Hospital", country="KR")
    bus = services.site_create(actor=alice, trial=trial, code="BUS", name="Busan Hospital", country="KR")
    omega_site = services.site_create(actor=otto, trial=other, code="SEO", name="Omega Seoul", country="KR")
    for code, label, order, day, before, after in [("BL", "Baseline", 1, 0, 28, 0), ("W6", "Week 6", 2, 42, 7, 7)]:
        services.visit_create(
            actor=alice,
            trial=trial,
            code=code,
            label=label,
            order=order,
            target_day=day,
            window_before=before,
            window_after=after,
        )
    services.visit_create(actor=otto, trial=other, code="BL", label="Baseline", order=1, target_day=0)
    people = {"alice": alice, "otto": otto}
    for name, (role, site_codes) in CAST.items():
        user = people.get(name) or make_user(name)
        people[name] = user
        if name != "alice":
            sites = [s for s in (seo, bus) if s.code in site_codes]
            services.membership_grant(actor=alice, trial=trial, user=user, role=role, sites=sites)
    subjects = {}
    for site in (seo, bus, seo):
        subject = services.subject_enroll(actor=alice, site=site)
        subjects[subject.code] = subject
    subjects["OMEGA"] = services.subject_enroll(actor=otto, site=omega_site)
    return World(trial=trial, other=other, seo=seo, bus=bus, people=people, subjects=subjects)


def _world_keys(world: World) -> dict:
    return {
        "trials": (world.trial.pk, world.other.pk),
        "sites": (world.seo.pk, world.bus.pk),
        "people": [(name, user.pk) for name, user in world.people.items()],
        "subjects": [(code, subject.pk) for code, subject in world.subjects.items()],
    }


def _world_load(keys: dict) -> World:
    trials, sites = Trial.objects.in_bulk(keys["trials"]), Site.objects.in_bulk(keys["sites"])
    users = get_user_model().objects.in_bulk([pk for _, pk in keys["people"]])
    subjects = Subject.objects.in_bulk([pk for _, pk in keys["subjects"]])
    return World(
        trial=trials[keys["trials"][0]],
        other=trials[keys["trials"][1]],
        seo=sites[keys["sites"][0]],
        bus=sites[keys["sites"][1]],
        people={name: users[pk] for name, pk in keys["people"]},
        subjects={code: subjects[pk] for code, pk in keys["subjects"]},
    )


_world_rows = RowSnapshot(_build_world, _world_keys, _world_load)


# --- Two-factor sign-in in tests ------------------------------------------------------------------------------
# Trial admins, QC reviewers, readers, adjudicators and operators sign in with a one-time code (issue 12). A
# test's `client.force_login(user)` / `client.login(...)` / `api.as_(user)` stands for a completed log-in, both
# factors: the session is verified with the person's test authenticator. Tests of the two-factor flow itself
# log in through the pages, or use `unverified_login`.

_plain_login = ClientMixin._login


def authenticator_of(user) -> TOTPDevice:
    """The person's confirmed authenticator app in tests (made on first use)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    """The code the person's app shows, for a time step the device has not used yet (no waiting for the clock).

    Within django-otp's tolerance of one step, so it is accepted as a code from a slightly fast phone.
    """
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    step = max(totp.t(), device.last_t + 1)  # t() counts the device's drift
    totp.time = (step - device.drift) * device.step + device.t0
    return f"{totp.token():0{device.digits}d}"


def verified_login(client, user) -> None:
    """Log in with both factors, outside a test's own fixtures too (a module's world)."""
    _verified_login(client, user, "django.contrib.auth.backends.ModelBackend")


def _verified_login(self, user, backend=None):
    _plain_login(self, user, backend)
    session = self.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_of(user).persistent_id
    session.save()


def unverified_login(client, user) -> None:
    """Log in with the password only, as if the one-time code had not been entered yet."""
    _plain_login(client, user, "django.contrib.auth.backends.ModelBackend")


@pytest.fixture(scope="session", autouse=True)
def _emptied_by_delete():
    """After each transactional test (live server, real workers, threads), Django empties every table with one
    TRUNCATE of all of them: on PostgreSQL that makes new files for each of about sixty tables and their indexes,
    and took 1.0 to 1.9 s a test here. The tables hold a few rows each by then: DELETE FROM each empties them in
    about 0.02 s, with triggers (foreign keys, the audit trail's refusal to delete) off for that transaction
    only (`session_replication_role`, which the suite's superuser may set). What is left is the same: empty
    tables, sequences where they were (as TRUNCATE without RESTART IDENTITY leaves them). A test that asks for
    its sequences reset gets Django's own statements."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        deletes = [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(t))};" for t in tables]
        return ["SET LOCAL session_replication_role = replica;", *deletes]

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = truncate


@pytest.fixture(autouse=True)
def _logins_are_verified(monkeypatch):
    monkeypatch.setattr(ClientMixin, "_login", _verified_login)


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def api():
    """An API client; `api.as_(user)` logs a cast member in with a session."""

    client = APIClient()

    def as_(user):
        client.force_authenticate(user=None)
        client.force_login(user)
        return client

    client.as_ = as_
    return client


@pytest.fixture
def stores(tmp_path, settings):
    """The image store and the quarantine in this test's own folder, laid out as under CTIMS_VAR_DIR.

    A live server runs in the test's process, so it sees the override too.
    """
    filesystem = "django.core.files.storage.FileSystemStorage"
    settings.STORAGES = settings.STORAGES | {
        "images": {"BACKEND": filesystem, "OPTIONS": {"location": tmp_path / "images"}},
        "quarantine": {"BACKEND": filesystem, "OPTIONS": {"location": tmp_path / "quarantine"}},
        "transfers": {"BACKEND": filesystem, "OPTIONS": {"location": tmp_path / "transfers"}},
    }
    storages._storages.clear()
    yield tmp_path
    storages._storages.clear()


@pytest.fixture(scope="module")
def s3_server():
    """moto's standalone S3 server on a free loopback port, for the whole module."""
    from tests.trials.durability import MotoServer

    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_commit_now(monkeypatch):
    """A test runs inside one transaction: run at once what waits for a commit (task queueing, clean-up, email)."""
    monkeypatch.setattr("django.db.transaction.on_commit", lambda func, using=None, robust=False: func())


def ct_protocol(world, visits=("BL",)) -> None:
    """The QC tests' imaging protocol on each visit: contrast CT of chest, abdomen and pelvis, slices <= 5 mm."""
    for code in visits:
        services.protocol_create(
            actor=world.alice,
            visit=world.trial.visits.get(code=code),
            modality="CT",
            body_region="cap",
            contrast="required",
            max_slice_thickness_mm="5",
        )


def upload_files(coordinator, subject_code: str, files: list[bytes], visit: str = "BL") -> Timepoint:
    """A site coordinator's upload through the real pipeline: open, send the files, finish."""
    timepoint = Timepoint.objects.get(subject__code=subject_code, visit__code=visit)
    session = upload_open(actor=coordinator, timepoint=timepoint)
    upload_receive(upload=session, files=files)
    upload_finish(actor=coordinator, upload=session)
    return timepoint


def received_in_quarantine(
    monkeypatch, coordinator, files: list[bytes], subject_code: str = "ALPHA-SEO-001", visit: str = "BL"
) -> tuple[Upload, list[int]]:
    """Files received into an open upload and left in quarantine, no processing task queued for them (the test
    runs the batches, or none): the upload and its items' ids, in the files' order."""
    monkeypatch.setattr(ingest_services, "_enqueue_on_commit", lambda item_ids: None)
    timepoint = Timepoint.objects.get(subject__code=subject_code, visit__code=visit)
    upload = upload_open(actor=coordinator, timepoint=timepoint)
    return upload, [item.pk for item in upload_receive(upload=upload, files=files)]


@pytest.fixture(autouse=True)
def default_language():
    """Every test starts in the site's default language: a request in Korean activates Korean for its thread,
    and without this a later test on the same worker would read its messages in Korean."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def empty_cache(request):
    """Every test starts with an empty cache: a DICOMweb metadata body is kept under its ETag, which names the
    files' digests and the root only, so the same test files in an earlier test would answer for this one's.
    The permission matrix's module-wide cast keeps its sessions in the cache (tests/test_matrix.py): every test of
    that module starts from that cast's cache as it is, those without the cast too (pytest-xdist may run one of
    them between two of the cast's, which then found every session gone)."""
    if request.module.__name__ == "tests.test_matrix":
        return
    from django.core.cache import cache

    cache.clear()
