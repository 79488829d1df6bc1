"""On PostgreSQL, refuse UPDATE and DELETE on the audit trail in the database itself.

TRUNCATE is left to the table owner (the test database flush uses it); production runs the
application as a role that is granted only SELECT and INSERT on ctims_auditevent.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION ctims_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused on ctims_auditevent', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS ctims_audit_append_only ON ctims_auditevent;
CREATE TRIGGER ctims_audit_append_only BEFORE UPDATE OR DELETE ON ctims_auditevent
    FOR EACH ROW EXECUTE FUNCTION ctims_audit_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS ctims_audit_append_only ON ctims_auditevent;
DROP FUNCTION IF EXISTS ctims_audit_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("ctims", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
