"""`manage.py bench` runs the benchmarks each app registers in its benches.py, each with its own options."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ctims import bench


@pytest.fixture
def probe():
    """A benchmark registered for the test alone, removed again after it."""
    calls = []

    def add_arguments(parser):
        parser.add_argument("--times", type=int, default=1)

    def run(out, *, times, **options):
        calls.append(times)
        out.write(f"probe ran {times} times")

    bench.register("probe", help="A test's benchmark.", add_arguments=add_arguments, run=run)
    yield calls
    del bench._BENCHMARKS["probe"]


def test_every_app_registers_its_own_benchmarks():
    names = set(bench.benchmarks())
    assert {"broker"} <= names  # ctims/benches.py
    assert {"ingest", "dicomweb", "stow", "browser_deid", "upload_browser"} <= names  # trials/benches.py
    assert {"reads", "transfers"} <= names  # reads/benches.py


def test_the_command_runs_a_registered_benchmark_with_its_own_options(probe):
    out = io.StringIO()
    call_command("bench", "probe", "--times", "3", stdout=out)
    assert probe == [3]
    assert "probe ran 3 times" in out.getvalue()


def test_a_benchmark_refuses_another_benchmarks_options(probe):
    with pytest.raises(CommandError):
        call_command("bench", "probe", "--tasks", "5")
    with pytest.raises(CommandError):
        call_command("bench", "stow", "--times", "3")
    assert probe == []


def test_two_benchmarks_cannot_share_a_name(probe):
    with pytest.raises(ValueError, match="two benchmarks"):
        bench.register("probe", help="Another.", run=lambda out, **options: None)


@pytest.mark.django_db
def test_the_benches_signed_in_client_passes_the_production_settings(settings):
    # With DEBUG off, plain HTTP is redirected and only the allowed hosts are served: the benches' client comes
    # as a browser does behind the TLS proxy, so a bench measures pages, not redirects or refusals.
    from django.urls import reverse

    from tests.conftest import make_user

    settings.DEBUG = False
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["ctims.example.org"]
    client = bench.signed_in_client(make_user("bench"))
    response = client.get(reverse("inbox"))
    assert response.status_code == 200 and response.wsgi_request.is_secure()
    assert response.wsgi_request.get_host() == "ctims.example.org"
