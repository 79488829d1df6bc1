"""What every benchmark needs: the registry `manage.py bench` runs them from, scratch stores and a database
transaction undone at the end, and medians.

Each app registers its own benchmarks in its `benches.py` (found by `benchmarks()`, as the admin finds
`admin.py`): `register(name, help=..., add_arguments=..., run=...)`. `manage.py bench <name> --help` lists a
benchmark's own options; `run(out, **options)` gets them parsed. A benches.py imports its benchmark's module
inside `run`, so listing them stays cheap.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from argparse import ArgumentParser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import storages
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import override_settings
from django.utils.module_loading import autodiscover_modules


@dataclass(frozen=True)
class Benchmark:
    """One benchmark `manage.py bench` can run: its options, and what runs it with them parsed."""

    name: str
    help: str
    run: Callable[..., None]
    add_arguments: Callable[[ArgumentParser], None] | None = None


_BENCHMARKS: dict[str, Benchmark] = {}


def register(
    name: str, *, help: str, run: Callable[..., None], add_arguments: Callable[[ArgumentParser], None] | None = None
) -> None:
    """Make `manage.py bench <name>` run `run(out, **options)`, with the options `add_arguments(parser)` declares."""
    known = _BENCHMARKS.get(name)
    if known is not None and known.run is not run:
        raise ValueError(f"two benchmarks are named {name!r}")
    _BENCHMARKS[name] = Benchmark(name=name, help=help, run=run, add_arguments=add_arguments)


def benchmarks() -> dict[str, Benchmark]:
    """Every app's registered benchmarks (each app's `benches` module imported first), by name."""
    autodiscover_modules("benches")
    return dict(sorted(_BENCHMARKS.items()))


def add_series_arguments(parser: ArgumentParser, *, slices: int = 300, runs: int = 5) -> None:
    """The options of a benchmark on a synthesized CT series: its length, its header size, and the runs."""
    parser.add_argument("--slices", type=int, default=slices, help="instances in the synthesized CT series")
    parser.add_argument("--runs", type=int, default=runs, help="runs per measurement; the median is reported")
    parser.add_argument("--small", action="store_true", help="use the 128x128 CT_small header instead of 512x512")


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


@contextmanager
def own_database(bench: str) -> Iterator[str]:
    """A migrated PostgreSQL database of the bench's own, dropped at the end: workers and servers in other
    processes must see committed rows, and nothing the bench writes (its audit events included) may stay in the
    real one. `bench` names the benchmark in the error off PostgreSQL."""
    if connection.vendor != "postgresql":
        raise CommandError(f"{bench} needs PostgreSQL (DATABASE_URL=postgres://...).")
    old_name = connection.settings_dict["NAME"]
    test = connection.settings_dict.setdefault("TEST", {})
    old_test_name = test.get("NAME")
    test["NAME"] = f"ctims_bench_{os.getpid()}"
    try:
        name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            yield name
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    finally:
        test["NAME"] = old_test_name  # a test run that calls the bench keeps its own test database's name


def _stat_fields(stat: str) -> list[str]:
    """The fields of a /proc/<pid>/stat line after the command name (which may hold spaces and parentheses):
    the line's fourth field (state) is the first."""
    return stat.rsplit(")", 1)[1].split()


def cpu_seconds_in(stat: str) -> float:
    """The CPU time (user + system) a /proc/<pid>/stat (or a thread's /proc/<pid>/task/<tid>/stat) line says
    its process or thread has used so far."""
    fields = _stat_fields(stat)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def page_faults_in(stat: str) -> int:
    """The minor page faults (pages the kernel mapped in) a /proc/<pid>/stat line says its process has taken."""
    return int(_stat_fields(stat)[7])  # minflt


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
    authenticator (made for them if they have none). Its requests come over HTTPS to an allowed host, as a
    browser's would behind the proxy, so the benchmarks run under the production settings (DEBUG off) too.
    """
    from django.conf import settings
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from .two_factor import authenticator_ensure

    class BrowserClient(Client):
        """Every request over HTTPS (as the proxy in front passes a browser's on) to an allowed host."""

        def request(self, **request):
            return super().request(**{**request, "wsgi.url_scheme": "https", "SERVER_PORT": "443"})

    hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host not in ("*", "")]
    client = BrowserClient(HTTP_HOST=hosts[0] if hosts else "testserver")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_ensure(user).persistent_id
    session.save()
    return client
