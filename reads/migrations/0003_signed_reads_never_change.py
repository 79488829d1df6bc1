"""On PostgreSQL, the database itself refuses to change or delete what was signed.

A signed read, its measurements, a signed adjudication and a locked result are never updated or deleted;
a correction is a new read. TRUNCATE is left to the table owner (the test database flush uses it).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION reads_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signed read data never changes: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS reads_read_signed ON reads_read;
CREATE TRIGGER reads_read_signed BEFORE UPDATE OR DELETE ON reads_read
    FOR EACH ROW WHEN (OLD.state = 'signed') EXECUTE FUNCTION reads_refuse_change();
DROP TRIGGER IF EXISTS reads_measurement_signed ON reads_measurement;
CREATE TRIGGER reads_measurement_signed BEFORE UPDATE OR DELETE ON reads_measurement
    FOR EACH ROW EXECUTE FUNCTION reads_refuse_change();
DROP TRIGGER IF EXISTS reads_adjudication_signed ON reads_adjudication;
CREATE TRIGGER reads_adjudication_signed BEFORE UPDATE OR DELETE ON reads_adjudication
    FOR EACH ROW WHEN (OLD.signature_id IS NOT NULL) EXECUTE FUNCTION reads_refuse_change();
DROP TRIGGER IF EXISTS reads_result_locked ON reads_timepointresult;
CREATE TRIGGER reads_result_locked BEFORE UPDATE OR DELETE ON reads_timepointresult
    FOR EACH ROW EXECUTE FUNCTION reads_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS reads_read_signed ON reads_read;
DROP TRIGGER IF EXISTS reads_measurement_signed ON reads_measurement;
DROP TRIGGER IF EXISTS reads_adjudication_signed ON reads_adjudication;
DROP TRIGGER IF EXISTS reads_result_locked ON reads_timepointresult;
DROP FUNCTION IF EXISTS reads_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("reads", "0002_reads_lesions_results")]
    operations = [migrations.RunPython(forwards, backwards)]
