"""The rows a fixture's builder adds to the test database, made once per process and replayed for each test.

Building the tests' cast through the real services (`tests.conftest.build_world`) takes about 480 queries and
0.4 s, and more than half the suite's tests start from it. A `RowSnapshot` builds once for real, in a savepoint
it rolls back, and keeps the rows that the build added (PostgreSQL's COPY text of each table, before and after);
each later call writes the same rows back with COPY (a row the build changed is deleted and written as the
build left it), checks every deferred constraint at once, and hands back the builder's result loaded afresh
from those rows. The rows are exactly the build's: the same keys, hashes and audit chain.

It replays only into the state it was made in. Where a table the build writes to or found rows in holds other
rows than when a snapshot was made (a test that made rows first; content types and permissions made again under
new keys after a transactional test's flush), or on another day (pages show dates), it takes a snapshot of that
state first: the build made there, for real. It builds for real every time on another database engine, where
the build changed a row of a table without a one-column key, or, outside a test's transaction, where the build
left work for its commit.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files.storage import FileSystemStorage, storages
from django.db import connection, transaction
from django.utils import timezone


@dataclass
class _Taken:
    day: tuple[datetime.date, datetime.date]
    rows: dict[str, bytes]  # table -> the COPY text lines the build added (or wrote anew: rows it changed)
    gone: dict[str, tuple[str, list[str]]]  # table -> its key column and the keys of the rows the build changed
    state: tuple[str, ...]  # _state() of the tables the build wrote to or found rows in, as the build found them
    tables: list[str]
    keys: Any  # what `load` needs to give the builder's result back (primary keys)
    files: dict[str, dict[str, bytes]]  # store alias -> the files the build wrote there, by name in the store
    replayable: bool  # False where the build changed a row of a table without a one-column key
    pending: bool  # the build left work for a commit (queued tasks): a replay cannot do it


def _copy_out(cursor, table: str) -> list[bytes]:
    with cursor.copy(f'COPY "{table}" TO STDOUT') as copy:
        data = b"".join(bytes(block) for block in copy)
    return data.splitlines(keepends=True)


def _days() -> tuple[datetime.date, datetime.date]:
    return timezone.now().date(), timezone.localdate()


class RowSnapshot:
    """`build(*args)` makes the rows and returns a result; `keys(result)` says what identifies it; `load(keys)`
    reads it back from the database.

    The arguments must be what the database holds (objects a replay of another snapshot gave, say): the state
    is read from the tables, not from them. `stores` names the file stores the build writes to (the image store,
    say); their files are kept too and written back into the test's own stores, which must be on the file
    system (anywhere else, the build runs for real).
    """

    def __init__(
        self,
        build: Callable[..., Any],
        keys: Callable[[Any], Any],
        load: Callable[[Any], Any],
        *,
        stores: tuple[str, ...] = (),
    ):
        self._build, self._keys, self._load, self._stores = build, keys, load, stores
        self._taken: dict[tuple, _Taken] = {}  # by the day, the state of the tables watched and the stores' files
        self._watched: list[str] | None = None  # the tables of the last snapshot taken

    def __call__(self, *args) -> Any:
        if connection.vendor != "postgresql" or not all(_on_disk(alias) for alias in self._stores):
            return self._build(*args)
        taken, held = None, self._files_held()
        if self._watched is not None:
            taken = self._taken.get((_days(), _state(self._watched), held))
        if taken is None:
            if self._stores and not connection.in_atomic_block:
                return self._build(*args)  # a snapshot's build leaves its files: taken in a test's transaction only
            taken = self._take(args)
            while len(self._taken) >= 8:  # the oldest goes: a test that made rows of its own makes a state once
                self._taken.pop(next(iter(self._taken)))
            self._taken[(taken.day, taken.state, held)] = taken
            self._watched = taken.tables
        if not taken.replayable or (taken.pending and not connection.in_atomic_block):
            # Outside a test's transaction the build's commit runs what it left for it (an upload's processing).
            return self._build(*args)
        with transaction.atomic(), connection.cursor() as cursor:
            for table, (column, keys) in taken.gone.items():  # the rows the build changed, as they were
                cursor.execute(f'DELETE FROM "{table}" WHERE "{column}"::text = ANY(%s)', [keys])  # noqa: S608
            for table, data in taken.rows.items():
                with cursor.copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(data)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # a broken reference fails here, not at a commit
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for alias, files in taken.files.items():
            root = Path(storages[alias].location)
            for name, data in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
        return self._load(taken.keys)

    def _files_held(self) -> tuple:
        return tuple(tuple(sorted(_files(alias))) for alias in self._stores)

    def _take(self, args: tuple) -> _Taken:
        day = _days()
        tables = sorted(connection.introspection.table_names(include_views=False))
        files_before = {alias: _files(alias) for alias in self._stores}
        with transaction.atomic(), connection.cursor() as cursor:
            before = {table: _copy_out(cursor, table) for table in tables}
            callbacks = len(connection.run_on_commit)
            keys = self._keys(self._build(*args))
            pending = len(connection.run_on_commit) > callbacks
            rows, gone, replayable = {}, {}, True
            for table in tables:
                after = _copy_out(cursor, table)
                had, now = set(before[table]), set(after)
                added = [line for line in after if line not in had]
                if added:
                    rows[table] = b"".join(added)
                changed = [line for line in before[table] if line not in now]
                if changed:
                    column = connection.introspection.get_primary_key_column(cursor, table)
                    names = [c.name for c in connection.introspection.get_table_description(cursor, table)]
                    if column is None:
                        replayable = False
                        continue
                    at = names.index(column)
                    gone[table] = (column, [line.rstrip(b"\n").split(b"\t")[at].decode() for line in changed])
            transaction.set_rollback(True)
        watched = sorted(set(rows) | {table for table in tables if before[table]})
        state = _state(watched)  # as the build found it
        files = {}
        for alias in self._stores:  # what the build wrote stays on disk: the database's rollback leaves files
            root = Path(storages[alias].location)
            files[alias] = {name: (root / name).read_bytes() for name in _files(alias) - files_before[alias]}
        return _Taken(
            day=day,
            rows=rows,
            gone=gone,
            state=state,
            tables=watched,
            keys=keys,
            files=files,
            replayable=replayable,
            pending=pending,
        )


def _on_disk(alias: str) -> bool:
    return isinstance(storages[alias], FileSystemStorage)


def _files(alias: str) -> set[str]:
    root = Path(storages[alias].location)
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _state(tables: list[str]) -> tuple[str, ...]:
    """A digest of each table's rows: the build's rows refer to rows that were there (content types and
    permissions, which a flush of the database makes again under new keys)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT "
            + ", ".join(
                f"(SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM \"{table}\" t)"
                for table in tables
            )
        )
        return tuple(cursor.fetchone())
