"""Run `manage.py migrate` from zero on the database DATABASE_URL names and write every statement it executed.

    DATABASE_URL=postgres://.../scratch python -m tests.migrate_capture OUT.json

Used by tests/test_production.py on a scratch database of its own. Each statement is kept with the migration
that was being applied when it ran (`migrate`'s own progress callback). As soon as a migration has created the
instance index, one row is put in every table the index depends on and in the index itself (each NOT NULL
column filled by its type), so a data migration that walks rows runs the statements it would run on a live
installation instead of finding nothing to do; these statements are not recorded.
"""

from __future__ import annotations

import json
import os
import sys


def _fill(cursor, table: str, seen: set[str]) -> int:
    """The id of a row of `table` (made if it has none, with the rows its foreign keys need)."""
    cursor.execute(f'SELECT id FROM "{table}" LIMIT 1')  # noqa: S608
    row = cursor.fetchone()
    if row:
        return row[0]
    seen = seen | {table}
    cursor.execute(
        """SELECT c.column_name, c.data_type, ccu.table_name
             FROM information_schema.columns c
             LEFT JOIN information_schema.key_column_usage kcu
               ON kcu.table_name = c.table_name AND kcu.column_name = c.column_name
              AND kcu.constraint_name IN (SELECT constraint_name FROM information_schema.table_constraints
                                          WHERE constraint_type = 'FOREIGN KEY' AND table_name = %s)
             LEFT JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = kcu.constraint_name
            WHERE c.table_name = %s AND c.is_nullable = 'NO' AND c.column_default IS NULL
              AND c.is_identity = 'NO' AND c.column_name <> 'id'""",
        [table, table],
    )
    values = {}
    for column, kind, target in cursor.fetchall():
        if target and target not in seen:
            values[column] = _fill(cursor, target, seen)
        elif kind in ("integer", "bigint", "smallint", "numeric", "double precision", "real"):
            values[column] = 1
        elif kind == "boolean":
            values[column] = False
        elif kind.startswith("timestamp"):
            values[column] = "2026-01-01T00:00:00Z"
        elif kind == "date":
            values[column] = "2026-01-01"
        elif kind in ("jsonb", "json"):
            values[column] = "{}"
        elif kind == "uuid":
            values[column] = "00000000-0000-0000-0000-000000000001"
        else:
            values[column] = "1"
    columns = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join(["%s"] * len(values))
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({marks}) RETURNING id' if values else None
    cursor.execute(sql or f'INSERT INTO "{table}" DEFAULT VALUES RETURNING id', list(values.values()))  # noqa: S608
    return cursor.fetchone()[0]


def main(out: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.management.commands.migrate import Command
    from django.db import connection

    statements: list[dict] = []
    state = {"migration": None, "seeding": False}

    def capture(execute, sql, params, many, context):
        if not state["seeding"]:
            statements.append({"migration": state["migration"], "sql": sql, "params": repr(params)[:200]})
        return execute(sql, params, many, context)

    progress = Command.migration_progress_callback

    def callback(self, action, migration=None, fake=False):
        if action == "apply_start":
            state["migration"] = f"{migration.app_label}.{migration.name}"
        elif action == "apply_success":
            state["migration"] = None
            if "trials_instance" in connection.introspection.table_names():
                state["seeding"] = True
                try:
                    with connection.cursor() as cursor:
                        _fill(cursor, "trials_instance", set())
                finally:
                    state["seeding"] = False
        return progress(self, action, migration, fake)

    Command.migration_progress_callback = callback
    with connection.execute_wrapper(capture):
        call_command("migrate", interactive=False, verbosity=0)
    with open(out, "w") as f:
        json.dump(statements, f)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    main(sys.argv[1])
