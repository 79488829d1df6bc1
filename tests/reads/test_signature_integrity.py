"""`manage.py audit_verify` checks every signature too (21 CFR 11.70, 11.10(e)): against the audit event that
recorded it, and against the record it signs. A row rewritten in the database, below the application, with the
database's refusals switched off, is named; nothing identifying is."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ctims.models import Signature
from ctims.signatures import signatures_verify
from reads.models import Adjudication, Read
from tests.reads.flow import adjudicated_for_reader_1
from trials.models import Instance, Series


@pytest.fixture
def signed(world):
    """Both readers' baseline and week 6 (disagreeing), and the adjudication: five signatures."""
    adjudicated_for_reader_1(world)
    return world


def _tamper(table: str, *statements: tuple[str, list]) -> None:
    """Rewrite rows as someone with the tables' owner rights could: the refusing triggers off, then on again."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def test_untouched_signatures_verify(signed, capsys):
    report = signatures_verify()
    assert report.intact and report.checked == Signature.objects.count() == 5, report.problems
    call_command("audit_verify")
    assert "Signatures intact: 5 checked" in capsys.readouterr().out


def test_a_signed_read_changed_in_the_database_is_found(signed):
    read = Read.objects.filter(state="signed", task__timepoint__visit__code="W6").first()
    _tamper(
        "reads_read",
        (
            "UPDATE reads_read SET assessment = jsonb_set(assessment, '{overall_response}', '\"CR\"') WHERE id = %s",
            [read.pk],
        ),
    )
    [problem] = signatures_verify().problems
    assert f"signature #{read.signature_id} (reads.read:{read.pk})" in problem and "changed after" in problem
    with pytest.raises(CommandError, match=f"signature #{read.signature_id}"):
        call_command("audit_verify")


@pytest.mark.parametrize(
    ("column", "value"),
    [("meaning", "I reviewed this assessment"), ("content_hash", "0" * 64), ("at", "2020-01-01T00:00:00+00:00")],
)
def test_a_signature_changed_in_the_database_is_found(signed, column, value):
    signature = Signature.objects.filter(object_type="reads.read").first()
    _tamper("ctims_signature", (f"UPDATE ctims_signature SET {column} = %s WHERE id = %s", [value, signature.pk]))
    [problem] = signatures_verify().problems
    assert f"signature #{signature.pk}" in problem and column in problem


def test_a_signature_moved_to_another_record_is_found(signed, world):
    # Another reader's signature put on rhea's week 6 read, in place of her own.
    mine = Read.objects.get(state="signed", task__assignment__reader=world.rhea, task__timepoint__visit__code="W6")
    theirs = Read.objects.get(state="signed", task__assignment__reader=world.ravi, task__timepoint__visit__code="W6")
    swap = "UPDATE reads_read SET signature_id = %s WHERE id = %s"
    _tamper(
        "reads_read",
        (swap, [None, mine.pk]),
        (swap, [mine.signature_id, theirs.pk]),
        (swap, [theirs.signature_id, mine.pk]),
    )
    problems = signatures_verify().problems
    assert len(problems) == 2 and all("does not hold it" in p for p in problems)


def test_a_signature_no_event_recorded_is_found(signed, world):
    signature = Signature.objects.first()
    forged = Signature.objects.create(
        signer=world.rhea,
        signer_name="Rhea",
        at=signature.at,
        meaning=signature.meaning,
        object_type=signature.object_type,
        object_id=signature.object_id,
        content_hash=signature.content_hash,
    )
    [problem] = signatures_verify().problems
    assert f"signature #{forged.pk}" in problem and "no audit event" in problem


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("reads_adjudication", "UPDATE reads_adjudication SET reason = 'Another reason.' WHERE id = %s"),
        ("reads_adjudication", "UPDATE reads_adjudication SET chosen_slot = 3 - chosen_slot WHERE id = %s"),
        ("reads_adjudication_timepoints", "DELETE FROM reads_adjudication_timepoints WHERE adjudication_id = %s"),
    ],
)
def test_a_signed_adjudication_changed_in_the_database_is_found(signed, table, sql):
    """The adjudication's choice, reason and visits are checked against its hash-chained decision event: a row
    rewritten below the application is named, as a signed read's is."""
    from django.db import DatabaseError, transaction

    adjudication = Adjudication.objects.get(signature__isnull=False)
    with pytest.raises(DatabaseError, match="never changes"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [adjudication.pk])  # refused while the database's refusals are on
    _tamper(table, (sql, [adjudication.pk]))
    [problem] = signatures_verify().problems
    assert f"signature #{adjudication.signature_id} (reads.adjudication:{adjudication.pk})" in problem
    assert "changed after it was signed" in problem


def test_sqlite_refuses_what_postgresql_refuses(tmp_path):
    """`make run`'s SQLite gets the same refusals from the migration: a signature always, a transfer once ready, the
    visits of a signed adjudication."""
    import importlib
    import sqlite3

    migration = importlib.import_module("reads.migrations.0012_signatures_and_delivered_transfers_never_change")
    db = sqlite3.connect(tmp_path / "ctims.sqlite3")
    db.execute("CREATE TABLE ctims_signature (id integer primary key, meaning text)")
    db.execute("CREATE TABLE reads_transfer (id integer primary key, state text)")
    db.execute("CREATE TABLE reads_adjudication (id integer primary key, signature_id integer)")
    db.execute("CREATE TABLE reads_adjudication_timepoints (id integer primary key, adjudication_id, timepoint_id)")
    db.executemany("INSERT INTO ctims_signature VALUES (?, ?)", [(1, "I am the author of this assessment")])
    db.executemany("INSERT INTO reads_transfer VALUES (?, ?)", [(1, "ready"), (2, "building")])
    db.executemany("INSERT INTO reads_adjudication VALUES (?, ?)", [(1, 1), (2, None)])  # signed, open
    db.executemany("INSERT INTO reads_adjudication_timepoints VALUES (?, ?, ?)", [(1, 1, 10), (2, 2, 10)])
    for statement in migration._sqlite():
        db.execute(statement)
    for sql in (
        "UPDATE ctims_signature SET meaning = 'x'",
        "DELETE FROM ctims_signature",
        "UPDATE reads_transfer SET state = 'failed' WHERE id = 1",
        "DELETE FROM reads_transfer WHERE id = 1",
        "UPDATE reads_adjudication_timepoints SET timepoint_id = 11 WHERE adjudication_id = 1",
        "DELETE FROM reads_adjudication_timepoints WHERE adjudication_id = 1",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="never changes"):
            db.execute(sql)
    db.execute("UPDATE reads_transfer SET state = 'ready' WHERE id = 2")  # a transfer still building moves
    db.execute("DELETE FROM reads_adjudication_timepoints WHERE adjudication_id = 2")  # an open adjudication too
    db.execute("INSERT INTO reads_adjudication_timepoints VALUES (3, 1, 12)")  # a replay inserts rows
    assert db.execute("SELECT state FROM reads_transfer ORDER BY id").fetchall() == [("ready",), ("ready",)]
    assert db.execute("SELECT meaning FROM ctims_signature").fetchall() == [("I am the author of this assessment",)]


# --- the SRs written for signed reads: their index rows never change, and audit_verify checks their files ---------


def _sr_of_signed_read():
    read = Read.objects.filter(state="signed", sr_instance__isnull=False).select_related("sr_instance__series").first()
    return read, read.sr_instance


SR_SERIES = "(SELECT series_id FROM trials_instance WHERE id = %s)"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE trials_instance SET sha256 = repeat('0', 64) WHERE id = %s",
        "UPDATE trials_instance SET storage_key = 'elsewhere.dcm' WHERE id = %s",
        "UPDATE trials_instance SET metadata = '{}' WHERE id = %s",  # a cache kept is not rewritten either
        "DELETE FROM trials_instance WHERE id = %s",
        f"UPDATE trials_series SET description = 'Another' WHERE id = {SR_SERIES}",
        f"DELETE FROM trials_series WHERE id = {SR_SERIES}",
    ],
)
def test_the_database_refuses_to_change_a_signed_reads_sr_row(signed, sql):
    """The index rows of a signed read's SR (its instance and series) are refused like the read itself; only the
    DICOMweb caches an instance row keeps (its DICOM JSON, its frames' layout) may be filled in once."""
    from django.db import DatabaseError, transaction

    from trials.dicomweb.wado import instance_metadata

    _, instance = _sr_of_signed_read()
    instance_metadata(instance)  # retrieved once through DICOMweb: its caches are filled in, as any instance's
    instance.refresh_from_db()
    assert instance.metadata is not None
    with pytest.raises(DatabaseError, match="never changes"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [instance.pk])
    assert Instance.objects.filter(pk=instance.pk, sha256=instance.sha256, storage_key=instance.storage_key).exists()


def test_the_images_rows_still_change(signed):
    """Rows of images (and of series no signed read wrote) are not refused: ingest counts a series' instances,
    DICOMweb keeps its caches."""
    _, sr_instance = _sr_of_signed_read()
    image = Instance.objects.exclude(series__origin="read").first()
    assert Instance.objects.filter(pk=image.pk).update(metadata={"x": 1}, pixel_layout={}) == 1
    assert Instance.objects.filter(pk=image.pk).update(metadata={"x": 2}) == 1
    assert Series.objects.filter(pk=image.series_id).update(instance_count=7) == 1


def test_sqlite_refuses_to_change_a_signed_reads_sr_row(tmp_path):
    """`make run`'s SQLite gets the same refusals from reads.0013: a signed read's SR instance and series, but not
    the filling in of an instance's caches, nor the rows of images."""
    import importlib
    import sqlite3

    migration = importlib.import_module("reads.migrations.0013_signed_read_srs_never_change")
    db = sqlite3.connect(tmp_path / "ctims.sqlite3")
    db.execute("CREATE TABLE trials_series (id integer primary key, origin text, description text)")
    db.execute(
        "CREATE TABLE trials_instance (id integer primary key, series_id, sha256 text, metadata text, pixel_layout text)"
    )
    db.execute("CREATE TABLE reads_read (id integer primary key, sr_instance_id)")
    db.execute("CREATE TABLE reads_timepointresult (id integer primary key, sr_instance_id)")
    db.executemany(
        "INSERT INTO trials_series VALUES (?, ?, ?)", [(1, "upload", "CT"), (2, "read", "SR"), (3, "read", "SR")]
    )
    db.executemany("INSERT INTO trials_instance VALUES (?, ?, ?, NULL, NULL)", [(1, 1, "a"), (2, 2, "b"), (3, 3, "c")])
    db.execute("INSERT INTO reads_read VALUES (1, 2)")  # a signed read's SR
    db.execute("INSERT INTO reads_timepointresult VALUES (1, 3)")  # an adjudication's result SR
    columns = [row[1] for row in db.execute("PRAGMA table_info(trials_instance)")]
    for statement in migration._sqlite(columns):
        db.execute(statement)
    db.execute("UPDATE trials_instance SET metadata = '{}', pixel_layout = '{}' WHERE id IN (2, 3)")  # filled once
    for sql in (
        "UPDATE trials_instance SET sha256 = 'x' WHERE id = 2",
        "UPDATE trials_instance SET metadata = '{\"a\": 1}' WHERE id = 3",
        "UPDATE trials_instance SET pixel_layout = NULL WHERE id = 2",
        "DELETE FROM trials_instance WHERE id = 3",
        "UPDATE trials_series SET description = 'x' WHERE id = 2",
        "DELETE FROM trials_series WHERE id = 3",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="never changes"):
            db.execute(sql)
    db.execute("UPDATE trials_instance SET sha256 = 'z', metadata = '[]' WHERE id = 1")  # an image's row moves
    db.execute("UPDATE trials_series SET description = 'y' WHERE id = 1")
    assert db.execute("SELECT sha256, metadata FROM trials_instance ORDER BY id").fetchall() == [
        ("z", "[]"),
        ("b", "{}"),
        ("c", "{}"),
    ]


def _rewrite_file(instance, data: bytes) -> None:
    from trials.ingest.store import image_storage

    with open(image_storage().path(instance.storage_key), "wb") as f:
        f.write(data)


def test_the_signing_events_record_each_srs_sha256(signed):
    from ctims.models import AuditEvent
    from reads.models import TimepointResult

    read, instance = _sr_of_signed_read()
    event = AuditEvent.objects.get(action="read.sign", object_type="reads.read", object_id=str(read.pk))
    assert event.summary["sr"] == instance.sop_instance_uid and event.summary["sr_sha256"] == instance.sha256
    result = TimepointResult.objects.filter(sr_instance__isnull=False).select_related("sr_instance").first()
    event = AuditEvent.objects.filter(object_type="reads.timepointresult", object_id=str(result.pk)).get()
    assert event.summary["sr"] == result.sr_instance.sop_instance_uid
    assert event.summary["sr_sha256"] == result.sr_instance.sha256


def test_a_signed_reads_sr_file_changed_in_the_store_is_found(signed):
    read, instance = _sr_of_signed_read()
    _rewrite_file(instance, b"DICM" * 64)
    [problem] = signatures_verify().problems
    assert f"signature #{read.signature_id} (reads.read:{read.pk})" in problem
    assert "SR" in problem and "file" in problem and instance.sop_instance_uid not in problem
    with pytest.raises(CommandError, match=f"signature #{read.signature_id}"):
        call_command("audit_verify")


def test_a_signed_reads_sr_row_rewritten_with_its_file_is_found(signed):
    """The file rewritten and its row made to match it, with the refusals off: the signing event still says which
    SR and which SHA-256 the read was signed with."""
    import hashlib

    read, instance = _sr_of_signed_read()
    data = b"DICM" * 64
    _rewrite_file(instance, data)
    sql = "UPDATE trials_instance SET sha256 = %s, size = %s WHERE id = %s"
    _tamper("trials_instance", (sql, [hashlib.sha256(data).hexdigest(), len(data), instance.pk]))
    [problem] = signatures_verify().problems
    assert f"signature #{read.signature_id} (reads.read:{read.pk})" in problem and "SR" in problem


def test_an_adjudications_result_sr_changed_is_found(signed):
    from reads.models import TimepointResult

    result = TimepointResult.objects.filter(sr_instance__isnull=False).select_related("sr_instance").first()
    _rewrite_file(result.sr_instance, b"DICM" * 64)
    [problem] = signatures_verify().problems
    adjudication = result.adjudication
    assert f"signature #{adjudication.signature_id} (reads.adjudication:{adjudication.pk})" in problem
    assert "SR" in problem


@pytest.mark.django_db
def test_the_sr_row_trigger_names_every_column_the_instance_model_has_but_its_caches():
    """reads.0013's trigger checks an UPDATE OF the instance table's columns as they were when it ran: a later
    migration that adds a column must recreate it, or a signed read's SR row could be changed in that column."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_trigger t JOIN pg_attribute a ON a.attrelid = t.tgrelid "
            "AND a.attnum = ANY (t.tgattr::int2[]) WHERE t.tgname = 'reads_sr_instance_never_changes'"
        )
        named = {row[0] for row in cursor.fetchall()}
    columns = {field.column for field in Instance._meta.concrete_fields}
    assert named == columns - {"metadata", "pixel_layout"}
