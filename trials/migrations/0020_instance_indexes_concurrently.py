"""The QIDO indexes on the instance table, built with CREATE INDEX CONCURRENTLY on PostgreSQL.

A plain CREATE INDEX holds a SHARE lock on `trials_instance` for the whole build: searches go on, but ingest
and the first read of an instance's frame layout (an UPDATE) wait, on a million-row index for minutes. Built
concurrently, nothing waits. 0013 as released built the same two indexes the plain way; an installation that
ran it keeps them (a valid index of that name is left alone); a concurrent build that failed half-way leaves an
INVALID index, which is dropped and built again. Elsewhere than PostgreSQL, a plain CREATE INDEX.

The pattern for every index added to the instance table from now on (tests/test_production.py checks it).
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyIfMissing(AddIndexConcurrently):
    """AddIndexConcurrently that keeps a valid index of the same name and rebuilds an invalid one."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(connection.alias, model):
            return None
        if schema_editor.collect_sql:  # sqlmigrate shows what a fresh database runs
            schema_editor.add_index(model, self.index, concurrently=True)
            return None
        self._ensure_not_in_transaction(schema_editor)
        with connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [self.index.name])
            found = cursor.fetchone()
            if found and found[0]:
                return None
            # A concurrent build holds back no read or write, but waits for every older transaction: migrate's
            # lock_timeout (MIGRATE_LOCK_TIMEOUT_SECONDS, for ALTER TABLE) would only make it fail half-way.
            cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', '0', false)")
            kept = cursor.fetchone()[0]
        try:
            if found:
                schema_editor.remove_index(model, self.index, concurrently=True)
            schema_editor.add_index(model, self.index, concurrently=True)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [kept])
        return None

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("trials", "0019_query_title_is_what_failed"),
    ]

    operations = [
        AddIndexConcurrentlyIfMissing(
            model_name="instance",
            index=models.Index(fields=["series", "instance_number"], name="trials_instance_series_number"),
        ),
        AddIndexConcurrentlyIfMissing(
            model_name="instance",
            index=models.Index(fields=["sop_class_uid"], name="trials_instance_sop_class"),
        ),
    ]
