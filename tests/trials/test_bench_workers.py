"""`bench ingest --workers` runs in CI on a small series: real workers on Redis, every file accepted, figures printed
(one round: a pool of each count)."""

from __future__ import annotations

import io
import os
import re

import pytest
from django.core.management import call_command

REDIS = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


@pytest.mark.worker
def test_bench_ingest_with_one_and_two_workers_prints_their_rates_and_ratio(transactional_db):
    out = io.StringIO()
    call_command(
        "bench",
        "ingest",
        "--workers",
        "1",
        "2",
        "--slices",
        "6",
        "--runs",
        "1",
        "--small",
        "--redis",
        REDIS,
        stdout=out,
    )
    text = out.getvalue()
    assert re.search(r"1 worker process: receive +[\d.]+ instances/s, processing +[\d.]+ instances/s", text), text
    assert re.search(r"2 worker processes: .* end to end +[\d.]+ instances/s", text), text
    assert re.search(r"cores busy while processing .* and took \d+ page faults per file", text), text
    # A pool started for each count: each round gives a ratio, and their median is printed.
    assert re.search(r"processing rate, 2 workers / 1: \d+\.\d\d, median of the rounds' ratios \(\d+\.\d\d;", text), (
        text
    )


@pytest.mark.django_db
def test_bench_ingest_in_one_process_prints_the_floors_and_the_pipelines_ratios_to_them(stores):
    out = io.StringIO()
    call_command("bench", "ingest", "--slices", "4", "--runs", "1", "--small", "--screens", "0", stdout=out)
    text = out.getvalue()
    for label in ("(a) pydicom read + write", "(a2) the same, durable", "(b) de-identify", "(c) whole pipeline"):
        assert re.search(re.escape(label) + r".* +[\d.]+ instances/s +[\d.]+ MB/s", text), text
    assert re.search(r"b/a = \d+\.\d\d .* c/a = \d+\.\d\d .* c/a2 = \d+\.\d\d", text), text
    assert re.search(r"disk took \d+\.\d\d ms per file to make \d+\.\d\d MB durable", text), text
    assert re.search(r"\(a\) \d+\.\d\d ms, \(c\) \d+\.\d\d ms; c/a by CPU time = \d+\.\d\d", text), text
    # Where (c)'s time goes: each stage's wall and CPU time per file.
    assert re.search(r"receive \(.*\) \d+\.\d\d / \d+\.\d\d ms; processing \(.*\) \d+\.\d\d / \d+\.\d\d ms", text), text
    # The ceiling of c/a: the pipeline without its engine's own time, which the engine's metric counted.
    engine = re.search(r"took (\d+\.\d\d) ms per file; without it, .* c/a = (\d+\.\d\d): the ceiling", text)
    assert engine is not None, text
    c_over_a = float(re.search(r"  c/a = (\d+\.\d\d)", text).group(1))
    assert float(engine.group(1)) > 0
    assert float(engine.group(2)) >= c_over_a
