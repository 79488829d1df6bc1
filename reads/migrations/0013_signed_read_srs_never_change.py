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
SR_SERIES = (  # constant SQL, of no input
    f"EXISTS (SELECT 1 FROM trials_instance i WHERE i.series_id = OLD.id AND {NAMED.format(id='i.id')})"  # noqa: S608
)
FILLED_ONCE = " AND ".join(f"(OLD.{c} IS NULL OR OLD.{c} {{same}} NEW.{c})" for c in CACHES)


def _refusing_function(name: str, condition: str, allowed: str = "") -> str:
    """A PL/pgSQL trigger function that refuses the row's UPDATE or DELETE when `condition` holds, unless `allowed`
    (a statement of its own, run first under the condition) lets it through."""
    allow = "".join(f"        {line}\n" for line in allowed.splitlines())
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
BEGIN
    IF {condition} THEN
{allow}        RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


# An SR instance's update that only fills in its caches goes through.
CACHES_FILLED = f"""IF TG_OP = 'UPDATE'
    AND (to_jsonb(OLD) - '{CACHES[0]}' - '{CACHES[1]}') = (to_jsonb(NEW) - '{CACHES[0]}' - '{CACHES[1]}')
    AND {FILLED_ONCE.format(same="IS NOT DISTINCT FROM")} THEN
    RETURN NEW;
END IF;"""
POSTGRESQL_FUNCTIONS = (
    "\n"
    + _refusing_function("reads_refuse_sr_instance_change", SR_INSTANCE, CACHES_FILLED)
    + _refusing_function("reads_refuse_sr_series_change", SR_SERIES)
)
FUNCTIONS = ("reads_refuse_sr_instance_change", "reads_refuse_sr_series_change")
# DICOMweb fills an instance's caches in statements that set them alone (trials.dicomweb.wado), for every image it
# serves: such an update fires no trigger unless it rewrites a cache already kept (asked in the trigger's WHEN, with
# no function called), so that filling them costs nothing more than before. Every other column fires the check.
CACHE_REWRITTEN = " OR ".join(f"(OLD.{c} IS NOT NULL AND OLD.{c} IS DISTINCT FROM NEW.{c})" for c in CACHES)
SERIES_WHEN = "OLD.origin = 'read'"  # asked first, in C: ingest counts a series' instances in every batch


def _postgresql(instance_columns: list[str]) -> list[str]:
    """PostgreSQL's triggers, given the instance table's columns (an UPDATE setting any but the caches is checked)."""
    kept = ", ".join(f'"{c}"' for c in instance_columns if c not in CACHES)
    caches = ", ".join(CACHES)
    return [
        POSTGRESQL_FUNCTIONS,
        "DROP TRIGGER IF EXISTS reads_sr_instance_never_changes ON trials_instance",
        "CREATE TRIGGER reads_sr_instance_never_changes BEFORE DELETE OR UPDATE OF "
        f"{kept} ON trials_instance FOR EACH ROW EXECUTE FUNCTION reads_refuse_sr_instance_change()",
        "DROP TRIGGER IF EXISTS reads_sr_instance_caches_kept ON trials_instance",
        f"CREATE TRIGGER reads_sr_instance_caches_kept BEFORE UPDATE OF {caches} ON trials_instance "
        f"FOR EACH ROW WHEN ({CACHE_REWRITTEN}) EXECUTE FUNCTION reads_refuse_sr_instance_change()",
        "DROP TRIGGER IF EXISTS reads_sr_series_never_changes ON trials_series",
        "CREATE TRIGGER reads_sr_series_never_changes BEFORE UPDATE OR DELETE ON trials_series "
        f"FOR EACH ROW WHEN ({SERIES_WHEN}) EXECUTE FUNCTION reads_refuse_sr_series_change()",
    ]


def _sqlite(instance_columns: list[str]) -> list[str]:
    """SQLite's triggers, given the instance table's columns (its other columns must stay as they are)."""
    kept = " AND ".join(f"OLD.{c} IS NEW.{c}" for c in instance_columns if c not in CACHES)
    conditions = {
        ("trials_instance", "UPDATE"): f"{SR_INSTANCE} AND NOT ({kept} AND {FILLED_ONCE.format(same='IS')})",
        ("trials_instance", "DELETE"): SR_INSTANCE,
        ("trials_series", "UPDATE"): f"{SERIES_WHEN} AND {SR_SERIES}",
        ("trials_series", "DELETE"): f"{SERIES_WHEN} AND {SR_SERIES}",
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


def _instance_columns(connection) -> list[str]:
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, "trials_instance")]


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        statements = _postgresql(_instance_columns(connection))
    elif connection.vendor == "sqlite":
        statements = _sqlite(_instance_columns(connection))
    else:
        statements = []
    for statement in statements:
        schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in _postgresql([]):
            if statement.startswith("DROP"):
                schema_editor.execute(statement, params=None)
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
