"""Upload sessions under concurrency and abandonment: two tabs of one coordinator share a session (the open one is
resumed), so a tab's "finish" can meet a request the other tab is still sending; a session left idle is closed by
the periodic job.

A request of a tab runs in its own thread and database connection; it is held at a named point (a fault hook, or
the moment its files are durable) while the other tab acts, then let go: no timer decides an outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from ctims.exceptions import InvalidState
from ctims.metrics import IngestCollector
from ctims.models import AuditEvent
from tests.conftest import build_world, make_user, received_in_quarantine
from tests.trials.durability import assert_end_state, storage_keys
from trials import services as trial_services
from trials import tasks
from trials.ingest import services, store
from trials.ingest.browser import upload_open_with_path
from trials.ingest.services import (
    upload_batch_process,
    upload_finish,
    upload_open,
    upload_receive,
    uploads_idle_close,
)
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Role, Timepoint, Trial, Upload, UploadItem
from trials.qc_services import qc_pass

from .test_browser_deid_api import in_browser, key_of, open_upload, send_records

SUBJECT = "ALPHA-SEO-001"
WAIT = 30  # seconds a step may take before the test says which one never came (a bound, never a pace)


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=3, seed="upload-sessions")


@pytest.fixture
def cast(transactional_db, stores, monkeypatch):
    """The cast, committed (each tab's thread has its own connection), and no processing task queued: the tests
    run the batches themselves when they want them."""
    monkeypatch.setattr(services, "_enqueue_on_commit", lambda item_ids: None)
    return build_world()


class Tab(threading.Thread):
    """One request of a tab, in its own thread and database connection."""

    def __init__(self, name: str, work: Callable[[], object]):
        super().__init__(name=name, daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            connection.close()

    def outcome(self):
        self.join(WAIT)
        assert not self.is_alive(), f"{self.name} never ended"
        return self.result, self.error


def held(monkeypatch, module, name: str, tab: str) -> tuple[threading.Event, threading.Event]:
    """Hold the thread named `tab` right after its first call of module.name returns: (reached, let_go)."""
    reached, let_go, real = threading.Event(), threading.Event(), getattr(module, name)

    def holding(*args, **kwargs):
        answer = real(*args, **kwargs)
        if threading.current_thread().name == tab and not reached.is_set():
            reached.set()
            assert let_go.wait(WAIT), f"{tab} was never let go"
        return answer

    monkeypatch.setattr(module, name, holding)
    return reached, let_go


def timepoint() -> Timepoint:
    return Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")


def fresh(upload: Upload) -> Upload:
    """The session as a request loads it (the tab's own request, with what it knew when it began)."""
    return Upload.objects.select_related("timepoint__subject__trial").get(pk=upload.pk)


def test_a_request_still_sending_when_another_tab_discards_the_empty_session_acknowledges_nothing(
    cast, series, monkeypatch
):
    upload = upload_open(actor=cast.cora, timepoint=timepoint())
    written, let_go = held(monkeypatch, store, "quarantine_put", tab="tab A")
    sending = Tab("tab A", lambda: upload_receive(upload=fresh(upload), files=series))
    sending.start()
    assert written.wait(WAIT), "tab A never wrote its files"
    # Tab B drops a folder the server already holds all of, and finishes: the session has received no file yet.
    assert upload_finish(actor=cast.cora, upload=upload).state == Upload.State.CANCELLED
    let_go.set()
    items, error = sending.outcome()
    assert isinstance(error, InvalidState), (items, error)  # tab A is told; its page sends them in a new session
    assert not UploadItem.objects.exists()
    assert storage_keys(store.quarantine_storage()) == []  # its copies went with the refusal
    assert timepoint().state == Timepoint.State.EXPECTED
    assert_end_state()


def test_a_request_still_sending_when_another_tab_finishes_the_session_adds_nothing_to_it(cast, series, monkeypatch):
    upload = upload_open(actor=cast.cora, timepoint=timepoint())
    [first] = upload_receive(upload=upload, files=series[:1])
    written, let_go = held(monkeypatch, store, "quarantine_put", tab="tab A")
    sending = Tab("tab A", lambda: upload_receive(upload=fresh(upload), files=series[1:]))
    sending.start()
    assert written.wait(WAIT), "tab A never wrote its files"
    assert upload_finish(actor=cast.cora, upload=upload).state == Upload.State.PROCESSING
    let_go.set()
    _items, error = sending.outcome()
    assert isinstance(error, InvalidState)
    assert list(UploadItem.objects.values_list("pk", flat=True)) == [first.pk]
    upload_batch_process(item_ids=[first.pk])
    upload.refresh_from_db()
    assert upload.state == Upload.State.COMPLETE
    assert timepoint().state == Timepoint.State.UPLOADED
    assert Instance.objects.count() == 1
    assert_end_state()


def lock_waiters() -> int:
    """Backends of this database waiting for a row or table lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_a_finish_waits_for_the_request_committing_files_and_then_counts_them(cast, series, monkeypatch):
    upload = upload_open(actor=cast.cora, timepoint=timepoint())
    acknowledging, let_go = threading.Event(), threading.Event()

    def hold(upload_id):
        if threading.current_thread().name == "tab A":
            acknowledging.set()
            assert let_go.wait(WAIT), "tab A was never let go"

    monkeypatch.setitem(services.FAULT_HOOKS, "acknowledging", hold)
    sending = Tab("tab A", lambda: upload_receive(upload=fresh(upload), files=series))
    sending.start()
    assert acknowledging.wait(WAIT), "tab A never reached its commit"
    finishing = Tab("tab B", lambda: upload_finish(actor=cast.cora, upload=fresh(upload)))
    finishing.start()
    while finishing.is_alive() and not lock_waiters():
        finishing.join(0.01)  # until tab B waits for tab A's lock, or ends without waiting
    assert finishing.is_alive(), "the finish decided while files were being acknowledged"
    let_go.set()
    items, error = sending.outcome()
    assert error is None and len(items) == 3
    finished, error = finishing.outcome()
    assert error is None and finished.state == Upload.State.PROCESSING
    upload_batch_process(item_ids=[i.pk for i in items])
    assert fresh(upload).state == Upload.State.COMPLETE and timepoint().state == Timepoint.State.UPLOADED
    assert_end_state()


def test_a_browser_request_still_sending_when_another_tab_discards_the_session_stores_nothing(
    cast, series, api, monkeypatch
):
    Trial.objects.filter(pk=cast.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    upload_id = open_upload(api, cast.cora).json()["id"]
    outputs, records = in_browser(key_of(api, cast.cora, upload_id).json(), series)
    assert send_records(api, cast.cora, upload_id, records).status_code == 200
    upload = Upload.objects.get(pk=upload_id)
    written, let_go = held(monkeypatch, store.StagedWrites, "settle", tab="tab A")
    sending = Tab("tab A", lambda: upload_receive(upload=fresh(upload), files=outputs))
    sending.start()
    assert written.wait(WAIT), "tab A never wrote its files"
    assert upload_finish(actor=cast.cora, upload=upload).state == Upload.State.CANCELLED
    let_go.set()
    _items, error = sending.outcome()
    assert isinstance(error, InvalidState)
    assert not UploadItem.objects.exists() and not Instance.objects.exists()
    assert storage_keys(store.image_storage()) == []
    assert timepoint().state == Timepoint.State.EXPECTED
    assert_end_state()


def test_a_tab_resuming_the_session_another_tab_is_discarding_gets_a_new_open_one(cast, monkeypatch):
    """Tab B finishes the empty session (a discard) while tab A, reloaded, opens the visit's upload again: A must
    not be handed the session B is cancelling (its first request would be refused), but a new one."""
    Trial.objects.filter(pk=cast.trial.pk).update(deid_paths=Trial.DeidPaths.EITHER)
    upload = upload_open(actor=cast.cora, timepoint=timepoint())
    discarding, let_go = held(monkeypatch, services, "_discard", tab="tab B")
    finishing = Tab("tab B", lambda: upload_finish(actor=cast.cora, upload=fresh(upload)))
    finishing.start()
    assert discarding.wait(WAIT), "tab B never discarded the session"
    opening = Tab("tab A", lambda: upload_open_with_path(actor=cast.cora, timepoint=timepoint(), browser=True))
    opening.start()
    while opening.is_alive() and not lock_waiters():
        opening.join(0.01)  # until tab A waits for tab B's lock on the session, or ends without waiting
    let_go.set()
    assert finishing.outcome()[0].state == Upload.State.CANCELLED
    opened, error = opening.outcome()
    assert error is None, error
    assert opened.pk != upload.pk and opened.state == Upload.State.OPEN
    assert fresh(opened).deid_path == Upload.DeidPath.BROWSER
    assert timepoint().state == Timepoint.State.UPLOADING


# --- sessions left idle ----------------------------------------------------------------------------------------


def idle_for(upload: Upload, hours: float) -> None:
    """Make the session, and each file it received, `hours` old."""
    then = timezone.now() - timedelta(hours=hours)
    Upload.objects.filter(pk=upload.pk).update(created_at=then)
    UploadItem.objects.filter(upload=upload).update(received_at=then)


def audited(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_an_empty_session_left_idle_is_discarded_and_the_visit_goes_back(world, stores, settings):
    settings.UPLOAD_IDLE_HOURS = 24
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    assert timepoint().state == Timepoint.State.UPLOADING
    idle_for(upload, 23)
    assert uploads_idle_close() == 0
    idle_for(upload, 25)
    assert uploads_idle_close() == 1
    upload.refresh_from_db()
    assert upload.state == Upload.State.CANCELLED and not upload.idle_closed
    assert timepoint().state == Timepoint.State.EXPECTED
    [discard] = audited("upload.discard")
    assert discard.actor is None and discard.summary == {"idle_hours": 24}
    assert uploads_idle_close() == 0


def test_a_session_left_idle_with_files_keeps_them_and_says_it_was_not_finished(
    world, stores, series, settings, monkeypatch, client
):
    settings.UPLOAD_IDLE_HOURS = 24
    upload, item_ids = received_in_quarantine(monkeypatch, world.cora, series[:2])
    damaged = UploadItem.objects.create(upload=upload, sha256="a" * 64, size=1, state=UploadItem.State.RESEND)
    idle_for(upload, 25)
    assert uploads_idle_close() == 1
    upload.refresh_from_db()
    assert upload.state == Upload.State.PROCESSING and upload.idle_closed
    assert timepoint().state == Timepoint.State.UPLOADING  # its files are still being processed
    damaged.refresh_from_db()
    assert (damaged.state, damaged.code) == ("rejected", "lost")  # nobody will send it again into this session
    [closed] = audited("upload.close_idle")
    assert closed.actor is None and closed.summary == {"files": 3, "idle_hours": 24}
    upload_batch_process(item_ids=item_ids)  # acknowledged files are processed as always
    upload.refresh_from_db()
    assert upload.state == Upload.State.COMPLETE
    assert timepoint().state == Timepoint.State.UPLOADED and Instance.objects.count() == 2
    client.force_login(world.cora)
    page = client.get(reverse("timepoint-upload", args=["ALPHA", SUBJECT, "BL"])).content.decode()
    assert 'id="upload-idle-closed"' in page and "kept the 3 files" in page
    assert "drop it again" in page  # the visit still accepts uploads: the rest can be sent
    client.force_login(world.quinn)
    subject_page = client.get(reverse("subject-detail", args=["ALPHA", SUBJECT])).content.decode()
    assert "Closed unfinished" in subject_page


def test_a_session_that_received_a_file_lately_or_opened_lately_stays_open(
    world, stores, series, settings, monkeypatch
):
    settings.UPLOAD_IDLE_HOURS = 24
    upload, _ids = received_in_quarantine(monkeypatch, world.cora, series[:1])
    idle_for(upload, 30)
    UploadItem.objects.filter(upload=upload).update(received_at=timezone.now() - timedelta(hours=1))
    other = upload_open(actor=world.cora, timepoint=Timepoint.objects.get(subject__code=SUBJECT, visit__code="W6"))
    assert uploads_idle_close() == 0
    assert {u.state for u in Upload.objects.filter(pk__in=[upload.pk, other.pk])} == {Upload.State.OPEN}


def test_no_session_is_closed_when_the_idle_time_is_zero(world, stores, settings):
    settings.UPLOAD_IDLE_HOURS = 0
    upload = upload_open(actor=world.cora, timepoint=timepoint())
    idle_for(upload, 24 * 365)
    assert uploads_idle_close() == 0 and tasks.uploads_idle_close.delay().get() == 0
    settings.UPLOAD_IDLE_HOURS = 1
    assert tasks.uploads_idle_close.delay().get() == 1  # the beat's task


def test_the_idle_close_runs_on_the_beat_schedule(settings):
    from ctims.celery import app

    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "trials.tasks.uploads_idle_close"]
    assert entry["schedule"] <= 3600 and entry["task"] in app.tasks


# --- metrics ------------------------------------------------------------------------------------------------------


def ingest_figures() -> dict[str, float]:
    return {
        metric.name: sum(sample.value for sample in metric.samples if not sample.name.endswith("_created"))
        for metric in IngestCollector().collect()
        if metric.name.startswith("ctims_upload")
    }


def test_a_session_counts_as_received_at_its_first_file_and_a_discarded_one_apart(world, stores, series, monkeypatch):
    empty = upload_open(actor=world.cora, timepoint=timepoint())
    assert ingest_figures() == {
        "ctims_uploads_received": 0,
        "ctims_uploads_discarded": 0,
        "ctims_uploads_idle_closed": 0,
        "ctims_upload_sessions": 1,
    }
    upload_finish(actor=world.cora, upload=empty)  # nothing was sent: discarded
    assert ingest_figures()["ctims_uploads_received"] == 0
    assert ingest_figures()["ctims_uploads_discarded"] == 1
    upload, _ids = received_in_quarantine(monkeypatch, world.cora, series[:1])
    assert ingest_figures()["ctims_uploads_received"] == 1
    upload_finish(actor=world.cora, upload=upload)
    figures = ingest_figures()
    assert (figures["ctims_uploads_received"], figures["ctims_uploads_discarded"]) == (1, 1)
    assert figures["ctims_upload_sessions"] == 1  # processing


# --- two sessions of one visit --------------------------------------------------------------------------------------


@pytest.fixture
def cleo(world):
    """A second coordinator at SEO: her upload of a visit is a session of its own beside cora's."""
    cleo = make_user("cleo")
    trial_services.membership_grant(
        actor=world.alice, trial=world.trial, user=cleo, role=Role.SITE_COORDINATOR, sites=[world.seo]
    )
    return cleo


def sent_and_processed(coordinator, upload: Upload, files: list[bytes], monkeypatch) -> None:
    monkeypatch.setattr(services, "_enqueue_on_commit", lambda item_ids: None)
    items = upload_receive(upload=upload, files=files)
    upload_finish(actor=coordinator, upload=upload)
    upload_batch_process(item_ids=[i.pk for i in items])
    upload.refresh_from_db()
    assert upload.state == Upload.State.COMPLETE


def test_a_visit_stays_uploading_until_the_last_of_its_sessions_closes(
    world, cleo, stores, series, monkeypatch, on_commit_now
):
    first = upload_open(actor=world.cora, timepoint=timepoint())
    second = upload_open(actor=cleo, timepoint=timepoint())
    sent_and_processed(world.cora, first, series[:2], monkeypatch)
    # Cleo is still sending: QC cannot begin on a visit whose images are still arriving.
    assert timepoint().state == Timepoint.State.UPLOADING
    with pytest.raises(InvalidState):
        qc_pass(actor=world.quinn, timepoint=timepoint())
    sent_and_processed(cleo, second, series[2:], monkeypatch)
    assert timepoint().state == Timepoint.State.UPLOADED
    assert Instance.objects.count() == 3
    qc_pass(actor=world.quinn, timepoint=timepoint())
    assert_end_state()


def test_the_last_session_discarded_leaves_the_visit_uploaded_when_another_stored_images(
    world, cleo, stores, series, monkeypatch, on_commit_now
):
    checks = []
    monkeypatch.setattr(tasks.timepoint_checks, "delay", checks.append)
    first = upload_open(actor=world.cora, timepoint=timepoint())  # the visit was expected when it opened
    second = upload_open(actor=cleo, timepoint=timepoint())
    sent_and_processed(cleo, second, series, monkeypatch)
    assert timepoint().state == Timepoint.State.UPLOADING and not checks
    assert upload_finish(actor=world.cora, upload=first).state == Upload.State.CANCELLED
    assert timepoint().state == Timepoint.State.UPLOADED
    assert checks == [timepoint().pk]  # QC runs on what cleo's session stored


def test_sessions_that_all_received_nothing_give_the_visit_back_its_state(world, cleo, stores):
    first = upload_open(actor=world.cora, timepoint=timepoint())
    second = upload_open(actor=cleo, timepoint=timepoint())
    upload_finish(actor=world.cora, upload=first)
    assert timepoint().state == Timepoint.State.UPLOADING
    upload_finish(actor=cleo, upload=second)
    assert timepoint().state == Timepoint.State.EXPECTED
