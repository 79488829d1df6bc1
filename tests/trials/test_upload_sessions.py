"""Upload sessions under concurrency and abandonment: two tabs of one coordinator share a session (the open one is
resumed), so a tab's "finish" can meet a request the other tab is still sending; a session left idle is closed by
the periodic job.

A request of a tab runs in its own thread and database connection; it is held at a named point (a fault hook, or
the moment its files are durable) while the other tab acts, then let go: no timer decides an outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from ctims.exceptions import InvalidState
from tests.conftest import build_world
from tests.trials.durability import assert_end_state, storage_keys
from trials.ingest import services, store
from trials.ingest.services import upload_batch_process, upload_finish, upload_open, upload_receive
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Timepoint, Trial, Upload, UploadItem

from .test_browser_deid_api import in_browser, key_of, open_upload, send_records

SUBJECT = "ALPHA-SEO-001"
WAIT = 30  # seconds a step may take before the test says which one never came (a bound, never a pace)


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=3, seed="upload-sessions")


@pytest.fixture
def cast(transactional_db, stores):
    """The cast, committed (each tab's thread has its own connection), and no processing task queued: the tests
    run the batches themselves when they want them."""
    world = build_world()
    real = services._enqueue_on_commit
    services._enqueue_on_commit = lambda item_ids: None
    yield world
    services._enqueue_on_commit = real


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
