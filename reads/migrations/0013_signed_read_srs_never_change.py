"""The database refuses to change or delete the index rows of the SR a signed read (or an adjudication's result)
was written as: its instance and its series.

The SR is the read as delivered to the sponsor (transfers, the results pages, DICOMweb); its file is written once
to the image store and its instance row holds where (storage key) and what (SHA-256, size, UIDs). The read and its
result rows never change (0003/0005); an SR row that could be repointed or deleted would make them name another
file. The one change allowed is the filling in of DICOMweb's caches of an instance row (its DICOM JSON and its
frames' layout, made on first request from the file itself): from nothing to a value, never rewritten.

Which instance is a signed read's SR: one a read or a locked result names (`sr_instance`); a read names one only
once it is signed, in the same save, and neither row moves after that. A series is refused when it holds such an
instance (and says it was written by a read, which is asked first as it costs nothing: ingest's count of a
series' instances updates series rows in every batch).
`audit_verify` checks each SR's row and file against the signing events; this keeps the application and anyone
using its database role from rewriting them. TRUNCATE is left to the table owner (row triggers do not fire on it).
PostgreSQL and SQLite (the embedded default of `make run`) alike, as 0012 does.
"""

from django.db import migrations

MESSAGE = "what was signed or delivered never changes"
CACHES = ("metadata", "pixel_layout")  # DICOMweb's, filled in once from the file (trials.dicomweb.wado)
NAMED = (
    "(EXISTS (SELECT 1 FROM reads_read WHERE sr_instance_id = {id})"
    " OR EXISTS (SELECT 1 FROM reads_timepointresult WHERE sr_instance_id = {id}))"
)
SR_INSTANCE = NAMED.format(id="OLD.id")
SR_SERIES = "EXISTS (SELECT 1 FROM trials_instance i WHERE i.series_id = OLD.id AND {named})".format(
    named=NAMED.format(id="i.id")
)
FILLED_ONCE = " AND ".join(f"(OLD.{c} IS NULL OR OLD.{c} {{same}} NEW.{c})" for c in CACHES)

POSTGRESQL_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION reads_refuse_sr_instance_change() RETURNS trigger AS $$
BEGIN
    IF {SR_INSTANCE} THEN
        IF TG_OP = 'UPDATE'
            AND (to_jsonb(OLD) - '{CACHES[0]}' - '{CACHES[1]}') = (to_jsonb(NEW) - '{CACHES[0]}' - '{CACHES[1]}')
            AND {FILLED_ONCE.format(same="IS NOT DISTINCT FROM")} THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION reads_refuse_sr_series_change() RETURNS trigger AS $$
BEGIN
    IF {SR_SERIES} THEN
        RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""
FUNCTIONS = ("reads_refuse_sr_instance_change", "reads_refuse_sr_series_change")
TRIGGERS = {
    "trials_instance": ("reads_sr_instance_never_changes", "", "reads_refuse_sr_instance_change"),
    "trials_series": ("reads_sr_series_never_changes", " WHEN (OLD.origin = 'read')", "reads_refuse_sr_series_change"),
}


def _postgresql() -> list[str]:
    statements = [POSTGRESQL_FUNCTIONS]
    for table, (name, when, function) in TRIGGERS.items():
        statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        statements.append(
            f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW{when} EXECUTE FUNCTION {function}()"
        )
    return statements


def _sqlite(instance_columns: list[str]) -> list[str]:
    """SQLite's triggers, given the instance table's columns (its other columns must stay as they are)."""
    kept = " AND ".join(f"OLD.{c} IS NEW.{c}" for c in instance_columns if c not in CACHES)
    conditions = {
        ("trials_instance", "UPDATE"): f"{SR_INSTANCE} AND NOT ({kept} AND {FILLED_ONCE.format(same='IS')})",
        ("trials_instance", "DELETE"): SR_INSTANCE,
        ("trials_series", "UPDATE"): f"OLD.origin = 'read' AND {SR_SERIES}",
        ("trials_series", "DELETE"): f"OLD.origin = 'read' AND {SR_SERIES}",
    }
    statements = []
    for (table, op), condition in conditions.items():
        name = f"reads_sr_{table}_no_{op.lower()}"
        statements.append(f"DROP TRIGGER IF EXISTS {name}")
        statements.append(
            f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW WHEN {condition} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {op} refused on {table}'); END"
        )
    return statements


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        statements = _postgresql()
    elif connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            columns = [c.name for c in connection.introspection.get_table_description(cursor, "trials_instance")]
        statements = _sqlite(columns)
    else:
        statements = []
    for statement in statements:
        schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table, (name, _, _) in TRIGGERS.items():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)
        for function in FUNCTIONS:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()", params=None)
    elif vendor == "sqlite":
        for statement in _sqlite([]):
            if statement.startswith("DROP"):
                schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("reads", "0012_signatures_and_delivered_transfers_never_change"),
        ("trials", "0026_uploaditem_ordering_without_join"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
