"""`manage.py bench transfers` runs, prints its figures against its parts, and leaves nothing behind."""

from __future__ import annotations

import io
import re

from django.core.management import call_command

from reads.models import Transfer
from trials.models import Trial


def test_bench_transfers_prints_its_figures_and_rolls_back(db):
    out = io.StringIO()
    call_command("bench", "transfers", "--small", "--runs", "1", "--subjects", "1", stdout=out)
    text = out.getvalue()
    assert "1 subjects, two visits each" in text and "(4 reads and SRs" in text
    assert re.search(r"\(a\) the locked series alone .* +[\d.]+ ms", text)
    assert re.search(r"\(c\) the whole transfer .*zip [\d.]+ MB\) +[\d.]+ ms", text)
    assert re.search(r"\(c\)/\(a\) = [\d.]+", text)
    assert not Trial.objects.filter(code="BENCHTX").exists() and not Transfer.objects.exists()
