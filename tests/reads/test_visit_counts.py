"""A visit's "N series / M images" counts what the site uploaded: the SRs that reads write are results, not images."""

from __future__ import annotations

import pytest

from tests.conftest import build_world
from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
from trials.models import Series
from trials.selectors import timepoints_with_counts


@pytest.fixture
def read_baseline(db, stores, on_commit_now):
    """ALPHA-SEO-001's baseline (one series of 3 slices) read twice and signed: two SR series stored beside it."""
    from reads.services import read_design_set

    w = build_world()
    read_design_set(actor=w.alice, trial=w.trial, paradigm="double", show_visit_label=False)
    timepoint = ready(w, "BL")
    for reader in (w.rhea, w.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    assert Series.objects.filter(study__timepoint=timepoint, origin=Series.Origin.READ).exists()
    w.timepoint = timepoint
    return w


def test_signed_reports_are_not_counted_as_series_or_images(read_baseline):
    counted = timepoints_with_counts().get(pk=read_baseline.timepoint.pk)
    assert (counted.n_series, counted.n_instances) == (1, 3)


def test_the_subject_page_shows_the_uploaded_series_only(read_baseline, client):
    client.force_login(read_baseline.cora)
    page = client.get("/trials/ALPHA/subjects/ALPHA-SEO-001/").content.decode()
    assert "1 series / 3 images" in page


def test_the_upload_page_counts_only_uploaded_series(read_baseline):
    from trials.access import Actor
    from trials.selectors import upload_page_state

    actor = Actor(user=read_baseline.cora)
    state = upload_page_state(actor=actor, trial=read_baseline.trial, timepoint=read_baseline.timepoint)
    assert (state.stored_series, state.stored_instances) == (1, 3)
