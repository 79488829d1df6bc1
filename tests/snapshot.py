"""The rows a fixture's builder adds to the test database, made once per process and replayed for each test.

Building the tests' cast through the real services (`tests.conftest.build_world`) takes about 480 queries and
0.4 s, and more than half the suite's tests start from it. A `RowSnapshot` builds once for real, in a savepoint
it rolls back, and keeps the rows that the build added (PostgreSQL's COPY text of each table, before and after);
each later call writes the same rows back with COPY, checks every deferred constraint at once, and hands back
the builder's result loaded afresh from those rows. The rows are exactly the build's: the same keys, hashes and
audit chain.

It replays only into the state it was made in. Where a table the build writes to or found rows in holds other
rows than when a snapshot was made (a test that made rows first; content types and permissions made again under
new keys after a transactional test's flush), or on another day (pages show dates), it takes a snapshot of that
state first: the build made there, for real. It builds for real every time on another database engine, or where
the build changed a row it found.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone


@dataclass
class _Taken:
    day: tuple[datetime.date, datetime.date]
    rows: dict[str, bytes]  # table -> the COPY text lines the build added
    state: tuple[str, ...]  # _state() of the tables the build wrote to or found rows in, as the build found them
    tables: list[str]
    keys: Any  # what `load` needs to give the builder's result back (primary keys)
    replayable: bool  # False where the build changed or removed a row it found


def _copy_out(cursor, table: str) -> list[bytes]:
    with cursor.copy(f'COPY "{table}" TO STDOUT') as copy:
        data = b"".join(bytes(block) for block in copy)
    return data.splitlines(keepends=True)


def _days() -> tuple[datetime.date, datetime.date]:
    return timezone.now().date(), timezone.localdate()


class RowSnapshot:
    """`build()` makes the rows and returns a result; `keys(result)` says what identifies it; `load(keys)` reads
    it back from the database."""

    def __init__(self, build: Callable[[], Any], keys: Callable[[Any], Any], load: Callable[[Any], Any]):
        self._build, self._keys, self._load = build, keys, load
        self._taken: dict[tuple, _Taken] = {}  # by the day and the state of the tables watched
        self._watched: list[str] | None = None  # the tables of the last snapshot taken

    def __call__(self) -> Any:
        if connection.vendor != "postgresql":
            return self._build()
        taken = self._taken.get((_days(), _state(self._watched))) if self._watched is not None else None
        if taken is None:
            taken = self._take()
            if not taken.replayable:
                return self._build()
            while len(self._taken) >= 8:  # the oldest goes: a test that made rows of its own makes a state once
                self._taken.pop(next(iter(self._taken)))
            self._taken[(taken.day, taken.state)] = taken
            self._watched = taken.tables
        with transaction.atomic(), connection.cursor() as cursor:
            for table, data in taken.rows.items():
                with cursor.copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(data)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # a broken reference fails here, not at a commit
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        return self._load(taken.keys)

    def _take(self) -> _Taken:
        day = _days()
        tables = sorted(connection.introspection.table_names(include_views=False))
        with transaction.atomic(), connection.cursor() as cursor:
            before = {table: _copy_out(cursor, table) for table in tables}
            keys = self._keys(self._build())
            rows, replayable = {}, True
            for table in tables:
                after = _copy_out(cursor, table)
                had, now = set(before[table]), set(after)
                replayable = replayable and had <= now
                added = [line for line in after if line not in had]
                if added:
                    rows[table] = b"".join(added)
            transaction.set_rollback(True)
        watched = sorted(set(rows) | {table for table in tables if before[table]})
        state = _state(watched)  # as the build found it
        return _Taken(day=day, rows=rows, state=state, tables=watched, keys=keys, replayable=replayable)


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
