"""What every benchmark command needs: scratch stores and a database transaction undone at the end, and medians."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.files.storage import storages
from django.db import transaction
from django.test import override_settings


class _Rollback(Exception):
    pass


@contextmanager
def undone() -> Iterator[None]:
    """A block whose database writes are rolled back on leaving: each run of a benchmark starts the same."""
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """Image, quarantine and transfer stores in a temporary folder and one transaction rolled back on leaving: a
    benchmark leaves neither rows nor files behind."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with stores_in(tmp), undone():
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def stores_in(folder: Path) -> Iterator[None]:
    """The image store, the quarantine and the transfer store in `folder`, laid out as under CTIMS_VAR_DIR."""
    fs = "django.core.files.storage.FileSystemStorage"
    stores = {
        "images": {"BACKEND": fs, "OPTIONS": {"location": folder / "images"}},
        "quarantine": {"BACKEND": fs, "OPTIONS": {"location": folder / "quarantine"}},
        "transfers": {"BACKEND": fs, "OPTIONS": {"location": folder / "transfers"}},
    }
    try:
        with override_settings(STORAGES={**storages.backends, **stores}, ALLOWED_HOSTS=["*"]):
            storages._storages.clear()
            yield
    finally:
        storages._storages.clear()


def median_ms(run: Callable[[], object], runs: int) -> float:
    """The median wall time of `runs` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def signed_in_client(user):
    """A test client logged in as `user` with both factors, as a person who entered their one-time code.

    Benchmarks measure the pages and roots, not the log-in: the session is verified with the person's
    authenticator (made for them if they have none).
    """
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from .two_factor import authenticator_ensure

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_ensure(user).persistent_id
    session.save()
    return client
