"""An instance's documents (its DICOM JSON, its de-identification record) are inserted as parameters of their own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trials.models import Instance

from .test_browser_deid_api import browser_trial, in_browser, key_of, open_upload, series, stow_with_records

__all__ = ["browser_trial", "series"]  # fixtures of the browser path, shared


@pytest.mark.usefixtures("stores", "on_commit_now", "browser_trial")
def test_a_requests_instances_are_inserted_with_their_dicom_json_as_values_not_one_array(world, api, series):
    """On PostgreSQL Django inserted the instances of a request as arrays (UNNEST), and psycopg quoted each
    instance's DICOM JSON into an array literal with a regular expression over its text: about 0.7 to 1.1 ms of
    CPU an instance on the browser path, where the DICOM JSON is written at receipt, against 0.1 ms as VALUES."""
    upload_id = open_upload(api, world.cora).json()["id"]
    outputs, records = in_browser(key_of(api, world.cora, upload_id).json(), series)
    with CaptureQueriesContext(connection) as queries:
        response = stow_with_records(api, world.cora, upload_id, records, outputs)
    assert response.status_code == 200, response.content
    [insert] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "trials_instance"')]
    assert "UNNEST" not in insert.upper()
    stored = list(Instance.objects.order_by("pk"))
    assert len(stored) == len(outputs) and all(isinstance(i.metadata, dict) and i.metadata for i in stored)
