"""What a request costs the database before it does its own work: the upload status the upload page polls while
files are processed, and the top bar's inbox count on every page.

The counts are pinned: a regression (one query more) fails here. The answers are compared byte for byte with
what the serializer makes of an upload fetched afresh, the way the API answered before its queries were cut.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.renderers import JSONRenderer

from ctims.i18n import text_json
from tests.conftest import received_in_quarantine
from trials.api.serializers import UploadOut
from trials.ingest import services as ingest_services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Upload, UploadItem

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")

# A request's own frame, before the view: the session, the user, their second factor (django-otp).
FRAME = 3
# Opening, resuming and finishing an upload: the services' own reads and writes (locks, the visit's transition,
# the audit event) and one read of the upload with its visit for the answer (finishing: the service's own last
# read is the answer's, and its locked read brings the subject and visit its audit event names). Whether the
# person uploads at the subject's site is read from the trial's permissions, loaded with the trial, and so is the
# role checks of opening and resuming (`has_trial_perm`) once that load has happened.
OPEN_QUERIES, RESUME_QUERIES, FINISH_QUERIES = 37, 17, 22


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    return synthesize_ct_series(real_ct_template(large=False), slices=7, seed="request-queries")


def as_before(upload_pk: int, items_from: int | None = None) -> bytes:
    """The answer as the API made it before: the upload fetched again with its visit and trial, serialized."""
    upload = Upload.objects.select_related("timepoint__subject__trial", "timepoint__visit").get(pk=upload_pk)
    return JSONRenderer().render(UploadOut(upload, context={"items_from": items_from}).data)


@pytest.fixture
def mixed_upload(world, monkeypatch, series) -> tuple[Upload, list[int]]:
    """Seoul's open upload of seven files: three accepted, one a duplicate, one rejected with its reason, two
    still waiting to be processed."""
    upload, ids = received_in_quarantine(monkeypatch, world.cora, series)
    UploadItem.objects.filter(pk__in=ids[:3]).update(state=UploadItem.State.ACCEPTED)
    UploadItem.objects.filter(pk=ids[3]).update(state=UploadItem.State.DUPLICATE)
    reason = ingest_services.DAMAGED_REASON
    UploadItem.objects.filter(pk=ids[4]).update(
        state=UploadItem.State.REJECTED, code="lost", reason=str(reason), reason_text=text_json(reason)
    )
    return upload, ids


def poll(client, upload_pk, **query):
    return client.get(reverse("api-upload", args=["ALPHA", upload_pk]), query)


def test_the_status_poll_reads_the_upload_once_and_its_files_in_two_queries(
    world, api, mixed_upload, django_assert_num_queries
):
    upload, ids = mixed_upload
    client = api.as_(world.cora)
    poll(client, upload.pk)  # warms the content types' cache
    # The frame, the trial and the person's permissions on it, the upload, its files' counts, its files.
    with django_assert_num_queries(FRAME + 5):
        whole = poll(client, upload.pk)
    assert whole.status_code == 200
    assert whole.content == as_before(upload.pk)
    assert whole.json()["counts"]["quarantined"] == 2 and len(whole.json()["items"]) == 7

    cursor = whole.json()["cursor"]
    assert cursor == ids[5]
    with django_assert_num_queries(FRAME + 5):
        since = poll(client, upload.pk, items_from=cursor)
    assert since.content == as_before(upload.pk, items_from=cursor)
    assert [i["sha256"] for i in since.json()["items"]] == [i["sha256"] for i in whole.json()["items"][5:]]


def test_the_status_poll_of_a_complete_upload_adds_only_the_visits_stored_images(
    world, api, mixed_upload, django_assert_num_queries
):
    upload, ids = mixed_upload
    UploadItem.objects.filter(pk__in=ids[5:]).update(state=UploadItem.State.ACCEPTED)
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.COMPLETE)
    client = api.as_(world.cora)
    poll(client, upload.pk)
    with django_assert_num_queries(FRAME + 6):
        answer = poll(client, upload.pk, items_from=10**9)
    assert answer.content == as_before(upload.pk, items_from=10**9)
    assert answer.json()["timepoint_stored"] is not None and len(answer.json()["items"]) == 7


def test_the_poll_costs_the_same_for_seven_files_as_for_one(world, api, monkeypatch, series):
    """No query a file: the files are one query whatever their number."""
    one, _ = received_in_quarantine(monkeypatch, world.cora, series[:1], subject_code="ALPHA-SEO-002")
    many, _ = received_in_quarantine(monkeypatch, world.cora, series)
    client = api.as_(world.cora)
    poll(client, one.pk)
    counted = {}
    for upload in (one, many):
        with CaptureQueriesContext(connection) as queries:
            assert poll(client, upload.pk).status_code == 200
        counted[upload.pk] = len(queries)
    assert counted[one.pk] == counted[many.pk]


def _queries_of(request) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = request()
    return response, [q["sql"] for q in queries.captured_queries]


def _reads_of_the_upload(sqls: list[str], upload_pk: int) -> int:
    """The SELECTs of the upload's own row (alone or with its visit and subject), not of its files."""
    return sum(
        1
        for sql in sqls
        if sql.startswith('SELECT "trials_upload"."id"')
        and f'"trials_upload"."id" = {upload_pk}' in sql
        and "trials_uploaditem" not in sql
    )


def test_finishing_reads_the_finished_upload_once_for_its_answer(world, api, mixed_upload):
    upload, _ids = mixed_upload
    client = api.as_(world.cora)
    poll(client, upload.pk)
    response, sqls = _queries_of(lambda: client.post(reverse("api-upload-finish", args=["ALPHA", upload.pk])))
    assert response.status_code == 200, response.content
    assert response.content == as_before(upload.pk)
    assert response.json()["state"] == "processing"
    # upload_get's read, the service's row lock, and its read of the upload and its visit as it left them
    # (ingest.services.upload_finish), which is the answer.
    assert _reads_of_the_upload(sqls, upload.pk) == 3, "\n".join(sqls)
    assert len(sqls) == FINISH_QUERIES, "\n".join(sqls)


def test_finishing_an_upload_whose_files_are_all_processed_answers_the_visits_new_state(world, api, mixed_upload):
    """It completes on finishing, and the visit moves on (its own row, read apart by the transition): the answer
    reads both as they are after the commit."""
    upload, ids = mixed_upload
    UploadItem.objects.filter(pk__in=ids[5:]).update(state=UploadItem.State.ACCEPTED)
    client = api.as_(world.cora)
    response, sqls = _queries_of(lambda: client.post(reverse("api-upload-finish", args=["ALPHA", upload.pk])))
    assert response.status_code == 200, response.content
    assert response.content == as_before(upload.pk)
    assert response.json()["state"] == "complete" and response.json()["timepoint_state"] != "uploading"
    assert _reads_of_the_upload(sqls, upload.pk) == 3, "\n".join(sqls)


def test_finishing_a_finished_upload_answers_from_the_locked_read(world, api, mixed_upload):
    """Finished twice (a second tab, a retried request): nothing changes, and the row the service locked, read with
    its visit, is the answer."""
    upload, _ids = mixed_upload
    client = api.as_(world.cora)
    url = reverse("api-upload-finish", args=["ALPHA", upload.pk])
    assert client.post(url).status_code == 200
    response, sqls = _queries_of(lambda: client.post(url))
    assert response.status_code == 200, response.content
    assert response.content == as_before(upload.pk)
    # upload_get's read and the service's row lock.
    assert _reads_of_the_upload(sqls, upload.pk) == 2, "\n".join(sqls)


def test_opening_and_resuming_read_the_upload_once_for_the_answer(world, api):
    client = api.as_(world.cora)
    url = reverse("api-upload-open", args=["ALPHA", "ALPHA-SEO-001", "BL"])
    response, sqls = _queries_of(lambda: client.post(url))
    assert response.status_code == 201, response.content
    upload_pk = response.json()["id"]
    assert response.content == as_before(upload_pk)
    assert len(sqls) == OPEN_QUERIES, "\n".join(sqls)
    # Resumed: the same session.
    response, sqls = _queries_of(lambda: client.post(url))
    assert response.status_code == 201 and response.json()["id"] == upload_pk
    assert response.content == as_before(upload_pk)
    assert len(sqls) == RESUME_QUERIES, "\n".join(sqls)


# --- The top bar's inbox count -------------------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Each time a page counts the top bar's inbox: how many queries the count took."""
    from trials import context_processors

    counting = context_processors.inbox_counts
    runs: list[int] = []

    def inbox_counts(actor):
        with CaptureQueriesContext(connection) as queries:
            counts = counting(actor)
        runs.append(len(queries))
        return counts

    monkeypatch.setattr(context_processors, "inbox_counts", inbox_counts)
    return runs


def test_a_page_with_the_top_bar_counts_the_inbox_once_in_one_query(world, client, counted):
    for person in (world.cora, world.alice, world.quinn, world.rhea, world.sam):
        client.force_login(person)
        counted.clear()
        response = client.get(reverse("trial-detail", args=["ALPHA"]))
        assert response.status_code == 200
        assert b'class="inbox-link"' in response.content
        assert counted == [1], person


def test_error_pages_do_not_count_the_inbox(world, client, counted):
    client.force_login(world.cora)
    assert client.get("/no/such/page/").status_code == 404
    assert client.get(reverse("trial-detail", args=["OMEGA"])).status_code == 404
    assert client.get(reverse("qc-worklist", args=["ALPHA"])).status_code == 403
    assert counted == []


def test_the_log_in_and_second_factor_pages_do_not_count_the_inbox(world, client, counted):
    from tests.conftest import authenticator_of, unverified_login

    assert client.get(reverse("login")).status_code == 200
    authenticator_of(world.alice)
    unverified_login(client, world.alice)  # a trial admin who has not entered her one-time code yet
    for url in (reverse("two-factor"), reverse("two-factor-enrol")):
        assert client.get(url).status_code in (200, 302)
    assert counted == []


def test_api_answers_do_not_count_the_inbox(world, api, counted, mixed_upload):
    upload, _ids = mixed_upload
    assert poll(api.as_(world.cora), upload.pk).status_code == 200
    assert counted == []


# --- The top bar's "My reads" link ---------------------------------------------------------------------------

MY_READS = ">My reads</a>"
# The link's question asked on its own (it was base.html's `user.reader_assignments.exists`, on every page).
ASKED_ALONE = 'SELECT 1 AS "a" FROM "reads_readerassignment"'


@pytest.fixture
def read_design(world):
    """ALPHA read twice: a subject's case assigned to its readers (rhea, ravi), as its first read task would."""
    from reads.services import read_design_set, readers_assign

    design = read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
    assert len(readers_assign(subject=world.subjects["ALPHA-SEO-001"], design=design)) == 2
    return world


def test_the_my_reads_link_is_read_with_the_inbox_count_and_shown_to_those_given_a_case(read_design, client):
    from reads.models import ReaderAssignment

    world = read_design
    shown = set()
    for name, person in world.people.items():
        client.force_login(person)
        for url in (reverse("home"), reverse("trial-detail", args=["ALPHA"]), reverse("inbox")):
            client.get(url)
            response, sqls = _queries_of(lambda: client.get(url))  # noqa: B023
            if response.status_code != 200:  # otto's: not in ALPHA
                continue
            assert not [sql for sql in sqls if sql.startswith(ASKED_ALONE)], (name, url)
            has_link = MY_READS in response.content.decode()
            assert has_link == ReaderAssignment.objects.filter(reader=person).exists(), (name, url)
            if has_link:
                shown.add(name)
    assert shown == {"rhea", "ravi"}


def test_an_error_page_asks_for_the_my_reads_link_alone_without_counting_the_inbox(read_design, client, counted):
    world = read_design
    client.force_login(world.rhea)
    client.get("/no/such/page/")
    for url in ("/no/such/page/", reverse("trial-detail", args=["OMEGA"])):
        response, sqls = _queries_of(lambda: client.get(url))  # noqa: B023
        assert response.status_code == 404
        assert MY_READS in response.content.decode()
        assert len([sql for sql in sqls if "reads_readerassignment" in sql]) == 1, url
    client.force_login(world.cora)
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and MY_READS not in response.content.decode()
    assert counted == []


def test_a_reader_owing_her_second_factor_keeps_the_my_reads_link_without_an_inbox_count(read_design, client, counted):
    from tests.conftest import authenticator_of, unverified_login

    world = read_design
    authenticator_of(world.rhea)
    unverified_login(client, world.rhea)
    response = client.get(reverse("two-factor"))
    assert response.status_code == 200
    assert MY_READS in response.content.decode()  # as base.html's own question showed it
    assert counted == []
