"""The database itself refuses to change or delete a signature, a transfer once it was delivered, and the visits
a signed adjudication decided.

A signature (21 CFR 11.70) binds a signer, a meaning and a moment to a hash of what was signed; it is made once
and never updated or deleted (the record it signs is protected by 0003/0005). A transfer that is ready was
delivered to the sponsor as it stands (its zip's SHA-256, its cut-off, what changed since its predecessor): later
transfers are compared with it, so it never changes either; a queued, building or failed one still moves. The
visits a signed adjudication decided are rows of its many-to-many table, which 0003 left out; a row is inserted
only while the adjudication is open, so INSERT stays allowed (as a replay of rows needs).
`audit_verify` finds a row rewritten with these refusals switched off; this keeps the application and anyone
using its database role from doing it. TRUNCATE is left to the table owner (row triggers do not fire on it).
PostgreSQL and SQLite (the embedded default of `make run`) alike, as 0003 and 0005 do for signed reads.
"""

from django.db import migrations

MESSAGE = "what was signed or delivered never changes"
SIGNED_ADJUDICATION = "(SELECT signature_id FROM reads_adjudication WHERE id = OLD.adjudication_id) IS NOT NULL"
# table -> the condition on the old row under which UPDATE and DELETE are refused (None: always)
TABLES = {
    "ctims_signature": None,
    "reads_transfer": "OLD.state = 'ready'",
    "reads_adjudication_timepoints": SIGNED_ADJUDICATION,
}

# PostgreSQL allows no subquery in a trigger's WHEN: a function of their own asks whether the adjudication whose
# visit rows change is signed.
POSTGRESQL_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION reads_refuse_record_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION reads_refuse_decided_visits_change() RETURNS trigger AS $$
BEGIN
    IF {SIGNED_ADJUDICATION} THEN
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
POSTGRESQL_WHEN = {"reads_transfer": "OLD.state = 'ready'"}
POSTGRESQL_FUNCTION_OF = {"reads_adjudication_timepoints": "reads_refuse_decided_visits_change"}
FUNCTIONS = ("reads_refuse_record_change", "reads_refuse_decided_visits_change")


def _name(table: str) -> str:
    return f"{table}_never_changes"


def _postgresql() -> list[str]:
    statements = [POSTGRESQL_FUNCTIONS]
    for table in TABLES:
        when = POSTGRESQL_WHEN.get(table)
        condition = f" WHEN ({when})" if when else ""
        function = POSTGRESQL_FUNCTION_OF.get(table, "reads_refuse_record_change")
        statements.append(f"DROP TRIGGER IF EXISTS {_name(table)} ON {table}")
        statements.append(
            f"CREATE TRIGGER {_name(table)} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW{condition} EXECUTE FUNCTION {function}()"
        )
    return statements


def _sqlite() -> list[str]:
    statements = []
    for table, when in TABLES.items():
        condition = f" WHEN {when}" if when else ""
        for op in ("UPDATE", "DELETE"):
            name = f"{table}_no_{op.lower()}"
            statements.append(f"DROP TRIGGER IF EXISTS {name}")
            statements.append(
                f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW{condition} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: {op} refused on {table}'); END"
            )
    return statements


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = _postgresql() if vendor == "postgresql" else _sqlite() if vendor == "sqlite" else []
    for statement in statements:
        schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {_name(table)} ON {table}", params=None)
        for function in FUNCTIONS:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()", params=None)
    elif vendor == "sqlite":
        for statement in _sqlite():
            if statement.startswith("DROP"):
                schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("reads", "0011_transfer_error_text"), ("ctims", "0004_audit_keyed_chain")]
    operations = [migrations.RunPython(forwards, backwards)]
