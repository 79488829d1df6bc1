"""The demo trial gets its read design from `load_demo_reads`, once, however often it runs."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from reads.models import ReadDesign
from trials.demo import load_demo


def test_the_demo_trial_is_read_twice_with_adjudication(db):
    with pytest.raises(CommandError, match="load_demo"):
        call_command("load_demo_reads")
    load_demo()
    call_command("load_demo_reads")
    call_command("load_demo_reads")
    design = ReadDesign.objects.get(trial__code="DEMO")
    assert (design.criteria, design.paradigm, design.readers_per_subject) == ("recist11", "double", 2)
