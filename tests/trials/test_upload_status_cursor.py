"""The upload's status with a cursor: a page polling while it sends gets the files still in flight, not all."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.trials.durability import open_upload, stow
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Upload, UploadItem

from .test_ingest import finish

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=5, seed="status-cursor")


def status(api, user, upload_id, **query):
    response = api.as_(user).get(reverse("api-upload", args=["ALPHA", upload_id]), query)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_poll_from_the_cursor_lists_only_the_files_not_settled_and_those_received_since(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, upload_id, series[:3]).status_code == 200
    items = list(UploadItem.objects.filter(upload_id=upload_id).order_by("pk"))
    assert [i.state for i in items] == ["accepted"] * 3
    # The second file still being processed: the cursor stops at it; the first, settled before it, is left out.
    UploadItem.objects.filter(pk=items[1].pk).update(state=UploadItem.State.QUARANTINED)
    whole = status(api, world.cora, upload_id)
    assert len(whole["items"]) == 3 and whole["cursor"] == items[1].pk

    answer = status(api, world.cora, upload_id, items_from=whole["cursor"])
    assert [i["sha256"] for i in answer["items"]] == [items[1].sha256, items[2].sha256]
    assert answer["counts"] == whole["counts"]  # the counts are always of every file

    assert stow(api, world.cora, upload_id, series[3:]).status_code == 200
    answer = status(api, world.cora, upload_id, items_from=answer["cursor"])
    new = set(UploadItem.objects.filter(upload_id=upload_id).order_by("pk").values_list("sha256", flat=True)[3:])
    assert {i["sha256"] for i in answer["items"]} == {items[1].sha256, items[2].sha256} | new

    # All settled: the cursor moves past the last file, and a poll from it lists none.
    UploadItem.objects.filter(pk=items[1].pk).update(state=UploadItem.State.ACCEPTED)
    settled = status(api, world.cora, upload_id)
    last = UploadItem.objects.filter(upload_id=upload_id).order_by("pk").last()
    assert settled["cursor"] == last.pk + 1
    assert status(api, world.cora, upload_id, items_from=settled["cursor"])["items"] == []


def test_a_complete_upload_lists_every_file_whatever_the_cursor(world, api, series):
    upload_id = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, upload_id, series[:2]).status_code == 200
    assert finish(api, world.cora, upload_id).status_code == 200
    assert Upload.objects.get(pk=upload_id).state == Upload.State.COMPLETE
    answer = status(api, world.cora, upload_id, items_from=10**9)
    assert len(answer["items"]) == 2


def test_a_cursor_that_is_not_a_number_is_refused(world, api):
    upload_id = open_upload(api, world.cora).json()["id"]
    response = api.as_(world.cora).get(reverse("api-upload", args=["ALPHA", upload_id]), {"items_from": "x"})
    assert response.status_code == 400


def test_uploads_listed_together_each_carry_their_own_files_and_cursor(world, api, series):
    from trials.api.serializers import UploadOut

    first = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, first, series[:2]).status_code == 200
    assert finish(api, world.cora, first).status_code == 200
    second = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, second, series[2:5]).status_code == 200
    answers = UploadOut(Upload.objects.filter(pk__in=[first, second]).order_by("pk"), many=True).data
    for answer, upload_id in zip(answers, (first, second), strict=True):
        files = UploadItem.objects.filter(upload_id=upload_id)
        assert {i["sha256"] for i in answer["items"]} == set(files.values_list("sha256", flat=True))
        assert answer["cursor"] == max(files.values_list("pk", flat=True)) + 1


def test_a_poll_from_the_cursor_reads_from_the_database_only_the_files_it_lists(world, api, series, monkeypatch):
    # The counts and the cursor are of every file, but come from one aggregate: a page polling an upload of
    # hundreds of files while it sends no longer has the server load every row each time.
    upload_id = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, upload_id, series).status_code == 200
    cursor = status(api, world.cora, upload_id)["cursor"]
    loaded = []
    from_db = UploadItem.from_db.__func__
    monkeypatch.setattr(UploadItem, "from_db", classmethod(lambda cls, *a: loaded.append(1) or from_db(cls, *a)))
    answer = status(api, world.cora, upload_id, items_from=cursor)
    assert answer["items"] == [] and answer["counts"]["accepted"] == answer["counts"]["total"] == 5
    assert loaded == []


def test_a_session_the_idle_job_closed_says_so_and_one_the_site_finished_does_not(world, api, series, settings):
    """`idle_closed`: the periodic job closed the session before the site finished it (uploads_idle_close); the
    API's upload said nothing of it, so a DICOMweb client polling its session could not tell."""
    from datetime import timedelta

    from django.utils import timezone

    from trials.ingest.services import uploads_idle_close

    settings.UPLOAD_IDLE_HOURS = 24
    finished = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, finished, series[:2]).status_code == 200
    assert status(api, world.cora, finished)["idle_closed"] is False  # open
    assert finish(api, world.cora, finished).json()["idle_closed"] is False
    left = open_upload(api, world.cora).json()["id"]
    assert stow(api, world.cora, left, series[2:4]).status_code == 200
    then = timezone.now() - timedelta(hours=25)
    Upload.objects.filter(pk=left).update(created_at=then)
    UploadItem.objects.filter(upload_id=left).update(received_at=then)
    assert uploads_idle_close() == 1
    closed = status(api, world.cora, left)
    assert closed["idle_closed"] is True and closed["state"] == Upload.State.COMPLETE
    assert status(api, world.cora, finished)["idle_closed"] is False
    schema = api.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["UploadOut"]
    described = schema["properties"]["idle_closed"]
    assert described["type"] == "boolean" and described["readOnly"] and "periodic job" in described["description"]
