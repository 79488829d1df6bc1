"""How received files are split into processing tasks: the fewest batches, of nearly equal size, each with the same
database work whatever its number of files."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import received_in_quarantine
from trials.ingest import services
from trials.ingest.services import BATCH_SIZE, processing_batches
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import UploadItem


@pytest.mark.parametrize(
    ("files", "sizes"),
    [(0, []), (1, [1]), (BATCH_SIZE, [BATCH_SIZE]), (BATCH_SIZE + 1, [17, 16]), (300, [30] * 10), (65, [22, 22, 21])],
)
def test_files_are_processed_in_the_fewest_batches_of_nearly_equal_size(files, sizes):
    ids = list(range(1000, 1000 + files))
    batches = processing_batches(ids)
    assert [len(batch) for batch in batches] == sizes
    assert [i for batch in batches for i in batch] == ids  # every file once, in order


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_a_batchs_database_work_does_not_grow_with_its_files(world, monkeypatch):
    """A processing task's queries are the same for 2 files as for 5: the index is read and written per batch,
    never per file (a per-file query is a round trip per instance on a busy worker)."""
    files = synthesize_ct_series(real_ct_template(large=False), slices=8, seed="batch-queries")
    upload, ids = received_in_quarantine(monkeypatch, world.cora, files)  # the test runs the batches
    services.upload_batch_process(item_ids=ids[:1])  # the subject's first file: its study and series are made

    def queries(batch: list[int]) -> int:
        with CaptureQueriesContext(connection) as captured:
            services.upload_batch_process(item_ids=batch)
        return len(captured)

    # The files claimed and read (1), their upload (1); in one transaction (its savepoint and release here: 2), the
    # files locked (1), the index read (study, series, instances: 3), the instances written and counted (2), the
    # upload locked and the files' outcomes written (2). The subject is not read again once it has its patient.
    assert queries(ids[1:3]) == queries(ids[3:8]) == 12
    assert set(UploadItem.objects.filter(upload=upload).values_list("state", flat=True)) == {"accepted"}


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_a_batchs_outcomes_are_written_in_one_statement_on_postgresql(world, monkeypatch):
    """The files' outcomes went as one UPDATE per file (an executemany, each statement bound on the client in
    turn: 0.1 ms of the worker's CPU per file); on PostgreSQL they are one UPDATE from a list of values. SQLite,
    in the process, keeps its executemany: there the outcomes it writes are checked alike."""
    files = synthesize_ct_series(real_ct_template(large=False), slices=4, seed="batch-outcomes")
    upload, ids = received_in_quarantine(monkeypatch, world.cora, files)
    services.upload_batch_process(item_ids=ids[:1])
    UploadItem.objects.filter(pk=ids[3]).update(sha256="0" * 64)  # its copy is "lost": asked for again
    statements = []

    def recorded(execute, sql, params, many, context):
        statements.append((sql, many))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(recorded):
        services.upload_batch_process(item_ids=ids[1:])
    if connection.vendor == "postgresql":  # SQLite keeps its executemany
        assert not [sql for sql, many in statements if many]
    items = {i.pk: i for i in UploadItem.objects.filter(upload=upload)}
    assert [items[pk].state for pk in ids] == ["accepted", "accepted", "accepted", "resend"]
    assert items[ids[1]].instance is not None and items[ids[1]].processed_at is not None
    assert items[ids[1]].reason_text == {} and items[ids[1]].code == ""
    assert items[ids[3]].instance is None and items[ids[3]].processed_at is None
    assert items[ids[3]].code == "resend" and items[ids[3]].reason_text["template"]


@pytest.mark.usefixtures("stores", "on_commit_now")
def test_a_processing_batch_leaves_what_the_process_held_before_it_out_of_every_later_garbage_collection(
    world, monkeypatch
):
    """A worker's full garbage collections walked every object it holds (Django, pydicom's dictionaries, the
    engine's tables: some 190,000) while a batch's parsing set them off: about 200 ms each, a quarter of a
    millisecond per CT slice. What a process holds when it begins its first batch lives as long as it does, and is
    frozen out of the collections then (gc.freeze); the objects each batch makes are collected as before."""
    import gc

    files = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="batch-gc")
    _upload, ids = received_in_quarantine(monkeypatch, world.cora, files)
    freezes = []
    monkeypatch.setattr(services.gc, "freeze", lambda freeze=gc.freeze: freezes.append(1) or freeze())
    gc.unfreeze()  # as a process that has processed no batch yet
    try:
        services.upload_batch_process(item_ids=ids[:1])
        assert freezes == [1] and gc.get_freeze_count() > 0
        services.upload_batch_process(item_ids=ids[1:])
        assert freezes == [1]  # once per process: what a later batch makes is not frozen
    finally:
        gc.unfreeze()
