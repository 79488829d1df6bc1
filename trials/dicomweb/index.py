"""What the QIDO-RS index keeps of a de-identified instance beyond what QC needs: its matching keys.

Ingest calls these with the index attributes the de-identification read from its output
(`trials.deid.index.build_index`), so the columns QIDO matches on hold exactly what the stored file says.
"""

from __future__ import annotations

from typing import Any


def _text(index: dict[str, Any], key: str, length: int) -> str:
    return (index.get(key) or "")[:length]


def study_fields(index: dict[str, Any]) -> dict[str, Any]:
    """The Study columns of PS3.18 Table 10.6.1-5 and 10.6.3-3 not already kept for QC."""
    return {
        "accession_number": _text(index, "accession_number", 64),
        "study_id": _text(index, "study_id", 64),
        "referring_physician_name": _text(index, "referring_physician_name", 200),
        "patient_birth_date": index.get("patient_birth_date"),
        "patient_sex": _text(index, "patient_sex", 16),
    }


def series_fields(index: dict[str, Any]) -> dict[str, Any]:
    """The Series columns of PS3.18 Table 10.6.1-5 and 10.6.3-4 not already kept for QC."""
    return {
        "performed_procedure_step_start_date": index.get("performed_procedure_step_start_date"),
        "performed_procedure_step_start_time": _text(index, "performed_procedure_step_start_time", 16),
        "requested_procedure_id": _text(index, "requested_procedure_id", 64),
        "scheduled_procedure_step_id": _text(index, "scheduled_procedure_step_id", 64),
    }


def instance_fields(index: dict[str, Any]) -> dict[str, Any]:
    """The Instance columns of PS3.18 Table 10.6.3-5 not already kept for QC."""
    return {"bits_allocated": index.get("bits_allocated")}
