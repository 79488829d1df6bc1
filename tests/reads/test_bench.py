"""`manage.py bench reads` runs, prints its figures against their baselines, and leaves nothing behind."""

from __future__ import annotations

import io
import re

from django.core.management import call_command

from reads.models import ReadTask
from trials.models import Trial


def test_bench_reads_prints_its_figures_and_rolls_back(db):
    out = io.StringIO()
    call_command("bench", "reads", "--small", "--runs", "1", "--slices", "8", "--tasks", "5", stdout=out)
    text = out.getvalue()
    assert re.search(r"sign a baseline read: +[\d.]+ ms; of which the password check +[\d.]+ ms", text)
    assert re.search(r"the request is [\d,]+x the arithmetic", text)
    assert re.search(r"worklist of 7 tasks: +[\d.]+ ms in \d+ queries", text)
    assert not Trial.objects.filter(code="BENCHRD").exists() and not ReadTask.objects.exists()
