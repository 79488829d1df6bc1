"""The same refusal as 0003 on SQLite (the embedded default of `make run`): what was signed never changes."""

from django.db import migrations

TABLES = {
    "reads_read": "OLD.state = 'signed'",
    "reads_measurement": None,
    "reads_adjudication": "OLD.signature_id IS NOT NULL",
    "reads_timepointresult": None,
}


def _statements():
    for table, when in TABLES.items():
        condition = f" WHEN {when}" if when else ""
        for op in ("UPDATE", "DELETE"):
            name = f"{table}_no_{op.lower()}"
            yield f"DROP TRIGGER IF EXISTS {name}"
            yield (
                f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW{condition} "
                f"BEGIN SELECT RAISE(ABORT, 'signed read data never changes: {op} refused on {table}'); END"
            )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in _statements():
            schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in _statements():
            if statement.startswith("DROP"):
                schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("reads", "0004_adjudication_may_wait")]
    operations = [migrations.RunPython(forwards, backwards)]
