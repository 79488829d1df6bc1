"""Fill the new QIDO columns of what was stored before them, from each instance's kept DICOM JSON.

Cheap: one instance's metadata per study and per series (their rows are few), and one UPDATE statement for the
instances' Bits Allocated that touches only rows whose metadata is already made.
"""

import datetime

from django.db import migrations

STUDY = {
    "accession_number": ("00080050", 64),
    "study_id": ("00200010", 64),
    "referring_physician_name": ("00080090", 200),
    "patient_sex": ("00100040", 16),
}
SERIES = {"performed_procedure_step_start_time": ("00400245", 16)}


def _first(metadata: dict, tag: str):
    values = (metadata.get(tag) or {}).get("Value") or [None]
    value = values[0]
    if isinstance(value, dict):  # a person name
        value = value.get("Alphabetic")
    return value


def _date(metadata: dict, tag: str):
    text = _first(metadata, tag)
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])) if text else None
    except (TypeError, ValueError):
        return None


def _one_metadata(Instance, **where):
    return Instance.objects.filter(metadata__isnull=False, **where).values_list("metadata", flat=True).first()


def backfill(apps, schema_editor):
    Study, Series, Instance = (apps.get_model("trials", m) for m in ("Study", "Series", "Instance"))
    for study in Study.objects.all().iterator():
        metadata = _one_metadata(Instance, series__study=study)
        if metadata:
            for field, (tag, length) in STUDY.items():
                setattr(study, field, str(_first(metadata, tag) or "")[:length])
            study.patient_birth_date = _date(metadata, "00100030")
            study.save(update_fields=[*STUDY, "patient_birth_date"])
    for series in Series.objects.all().iterator():
        metadata = _one_metadata(Instance, series=series)
        if metadata:
            request = ((metadata.get("00400275") or {}).get("Value") or [{}])[0]
            series.performed_procedure_step_start_date = _date(metadata, "00400244")
            series.performed_procedure_step_start_time = str(_first(metadata, "00400245") or "")[:16]
            series.requested_procedure_id = str(_first(request, "00401001") or "")[:64]
            series.scheduled_procedure_step_id = str(_first(request, "00400009") or "")[:64]
            series.save(
                update_fields=[
                    "performed_procedure_step_start_date",
                    "performed_procedure_step_start_time",
                    "requested_procedure_id",
                    "scheduled_procedure_step_id",
                ]
            )
    table = Instance._meta.db_table
    if schema_editor.connection.vendor == "postgresql":
        value = "(metadata->'00280100'->'Value'->>0)::integer"
        has = "metadata ? '00280100'"
    else:
        value = "json_extract(metadata, '$.\"00280100\".Value[0]')"
        has = "json_extract(metadata, '$.\"00280100\".Value[0]') IS NOT NULL"
    schema_editor.execute(
        f"UPDATE {table} SET bits_allocated = {value} WHERE bits_allocated IS NULL AND metadata IS NOT NULL AND {has}"  # noqa: S608
    )


class Migration(migrations.Migration):
    dependencies = [("trials", "0013_qido_matching_keys")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
