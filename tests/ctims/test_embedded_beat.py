"""Without a broker (the embedded default), the web process runs Celery beat's periodic jobs itself."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from ctims import embedded_beat
from ctims.embedded_beat import EmbeddedBeat
from tests.conftest import build_world
from trials.ingest.services import upload_open
from trials.models import Timepoint, Upload

SCHEDULE = {
    "often": {"task": "tasks.often", "schedule": 10},
    "seldom": {"task": "tasks.seldom", "schedule": 900},
}


def test_each_job_is_first_due_one_interval_after_the_start_then_each_interval():
    ran = []
    beat = EmbeddedBeat(SCHEDULE, now=1000.0, run=ran.append)
    assert beat.run_due(1009.9) == [] and ran == []
    assert beat.seconds_to_next(1000.0) == 10
    assert beat.run_due(1010.0) == ["often"]
    assert beat.run_due(1015.0) == []
    # Late (the process was busy, or asleep): it runs once, not once per missed turn, and counts from now.
    assert beat.run_due(1950.0) == ["often", "seldom"]
    assert ran == ["tasks.often", "tasks.often", "tasks.seldom"]
    assert beat.seconds_to_next(1950.0) == 10
    assert beat.run_due(1959.0) == [] and beat.run_due(1960.0) == ["often"]


def test_a_job_that_fails_is_logged_by_its_class_only_and_the_others_still_run(caplog):
    ran = []

    def run(task: str) -> None:
        if task == "tasks.often":
            raise ValueError("HONG^GILDONG")  # as if a task's message quoted a file's value
        ran.append(task)

    beat = EmbeddedBeat(SCHEDULE, now=0.0, run=run)
    with caplog.at_level(logging.ERROR, logger="ctims.embedded_beat"):
        assert beat.run_due(900.0) == ["often", "seldom"]
    assert ran == ["tasks.seldom"]
    assert "periodic job often failed: ValueError" in caplog.text
    assert "HONG" not in caplog.text
    assert beat.run_due(910.0) == ["often"]  # and it runs again at its next turn


def test_the_real_schedule_closes_an_abandoned_upload_session(transactional_db, stores, settings):
    """The embedded default's jobs are beat's own tasks, run in this process: an upload session left idle is
    discarded there as a worker would under beat (before, nothing ran it without a broker)."""
    settings.UPLOAD_IDLE_HOURS = 24
    world = build_world()
    visit = Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL")
    upload = upload_open(actor=world.cora, timepoint=visit)
    Upload.objects.filter(pk=upload.pk).update(created_at=timezone.now() - timedelta(hours=25))

    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE, now=0.0)
    assert "uploads-idle-close" in beat.run_due(15 * 60.0)
    upload.refresh_from_db()
    visit.refresh_from_db()
    assert upload.state == Upload.State.CANCELLED
    assert visit.state == Timepoint.State.EXPECTED


@pytest.fixture
def no_beat_started():
    embedded_beat.stop()
    yield
    embedded_beat.stop()
    embedded_beat.request_started.disconnect(dispatch_uid=embedded_beat.DISPATCH_UID)


def test_without_a_broker_the_first_request_starts_the_jobs_once(no_beat_started, client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER, settings.EMBEDDED_PERIODIC_JOBS = True, True
    embedded_beat.connect()
    assert embedded_beat._started is None
    client.get("/healthz")
    started = embedded_beat._started
    assert started is not None
    assert {job.task for job in started.jobs} == {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    client.get("/healthz")
    assert embedded_beat._started is started  # one thread per process


@pytest.mark.parametrize(("eager", "wanted"), [(False, True), (True, False)])
def test_with_a_broker_or_the_setting_off_no_request_starts_them(no_beat_started, client, settings, eager, wanted):
    settings.CELERY_TASK_ALWAYS_EAGER, settings.EMBEDDED_PERIODIC_JOBS = eager, wanted
    embedded_beat.connect()
    client.get("/healthz")
    assert embedded_beat._started is None
