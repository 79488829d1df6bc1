"""Each upload's outcome stays on the visit after the upload page is left: what was stored, what was already
there, and what was rejected and why, for the site's coordinator and the QC reviewer; never a patient value."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import upload_files
from trials.access import Actor
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.selectors import upload_history

pytestmark = pytest.mark.usefixtures("stores", "on_commit_now")

SUBJECT = "ALPHA-SEO-001"


@pytest.fixture
def uploaded(world):
    """Two uploads of ALPHA-SEO-001's baseline: three slices and a structured report (not an image), then the
    same three slices again."""
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="history")
    report = Path(get_testdata_file("test-SR.dcm")).read_bytes()
    upload_files(world.cora, SUBJECT, [*files, report])
    upload_files(world.cora, SUBJECT, files)
    world.patient_name = str(pydicom.dcmread(__import__("io").BytesIO(files[0])).PatientName)
    return world


def test_the_history_keeps_each_uploads_outcome_newest_first(uploaded):
    history = upload_history(actor=Actor(user=uploaded.cora), trial=uploaded.trial, subject_code=SUBJECT)
    assert [
        (r.counts.get("accepted", 0), r.counts.get("duplicate", 0), r.counts.get("rejected", 0)) for r in history
    ] == [
        (0, 3, 0),
        (3, 0, 1),
    ]
    (rejected,) = history[1].rejected
    assert rejected.code == "sop_class_not_accepted" and len(rejected.reason) > 20


@pytest.mark.parametrize("who", ["cora", "quinn", "alice"])
def test_the_coordinator_and_the_qc_reviewer_see_it_on_the_subject_page(uploaded, client, who):
    client.force_login(uploaded.people[who])
    page = client.get(f"/trials/ALPHA/subjects/{SUBJECT}/").content.decode()
    assert "Upload history" in page
    assert "Already stored" in page and "De-identified and stored" in page and "Rejected" in page
    assert uploaded.patient_name not in page


def test_the_qc_reviewer_sees_the_visits_uploads_on_the_qc_page(uploaded, client):
    client.force_login(uploaded.quinn)
    page = client.get(f"/trials/ALPHA/subjects/{SUBJECT}/visits/BL/qc/").content.decode()
    assert "Upload history" in page and "Rejected" in page
    assert uploaded.patient_name not in page


def test_another_sites_coordinator_sees_no_history(uploaded):
    assert upload_history(actor=Actor(user=uploaded.bruno), trial=uploaded.trial, subject_code=SUBJECT) == []


def test_the_history_reads_in_korean(uploaded, client, settings):
    from django.utils import translation

    client.force_login(uploaded.cora)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    # The locale middleware leaves the request's language active in this thread: the next test gets English.
    with translation.override(settings.LANGUAGE_CODE):
        page = client.get(f"/trials/ALPHA/subjects/{SUBJECT}/").content.decode()
    assert "업로드 이력" in page and "거부된 파일과 사유" in page


def test_a_rejection_is_stored_in_english_and_read_in_the_readers_language(world, client, settings):
    """Another patient's file: the reason is stored as English text with its template and the subject code, and
    the coordinator's Korean page (and the API in Korean) says it in Korean; never a value from the file."""
    from django.urls import reverse
    from django.utils import translation

    from trials.models import UploadItem

    stranger = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="ko/x", patient_id="PID0999")
    own = synthesize_ct_series(real_ct_template(large=False), slices=1, seed="ko/own")
    with translation.override("ko"):  # a Korean request that runs the pipeline in-process stores English all the same
        upload_files(world.cora, SUBJECT, [*own, *stranger])
    item = UploadItem.objects.get(code="other_patient")
    assert item.reason.startswith("This file belongs to a different patient") and SUBJECT in item.reason
    assert item.reason_text["params"] == {"subject": SUBJECT}
    with translation.override("ko"):
        assert item.reason_display.startswith("이 파일은") and SUBJECT in item.reason_display
    client.force_login(world.cora)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    with translation.override(settings.LANGUAGE_CODE):
        page = client.get(f"/trials/ALPHA/subjects/{SUBJECT}/").content.decode()
        api = client.get(reverse("api-upload", args=["ALPHA", item.upload_id])).json()
    assert "이 파일은" in page and "different patient" not in page and "PID0999" not in page
    assert any(i["reason"].startswith("이 파일은") for i in api["items"])


# --- a session that received nothing ------------------------------------------------------------------------


def _open_and_finish_empty(coordinator, visit: str = "BL"):
    from trials.ingest.services import upload_finish, upload_open
    from trials.models import Timepoint

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code=visit)
    session = upload_open(actor=coordinator, timepoint=timepoint)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploading"
    return upload_finish(actor=coordinator, upload=session), Timepoint.objects.get(pk=timepoint.pk)


def test_a_session_finished_with_no_file_is_discarded_and_the_visit_keeps_its_state(uploaded):
    """The browser opens a session to de-identify (it needs the subject key) and then finds every file already
    held: nothing was sent, so the session is discarded, the visit goes back to what it was, and the history
    does not list an empty upload."""
    from ctims.models import AuditEvent

    session, timepoint = _open_and_finish_empty(uploaded.cora)
    assert session.state == "cancelled" and session.closed_at is not None
    assert timepoint.state == "uploaded"
    history = upload_history(actor=Actor(user=uploaded.cora), trial=uploaded.trial, subject_code=SUBJECT)
    assert len(history) == 2 and all(record.counts for record in history)
    assert AuditEvent.objects.filter(action="upload.discard", object_id=str(session.pk)).exists()
    assert not AuditEvent.objects.filter(action="upload.complete", object_id=str(session.pk)).exists()


def test_an_empty_session_on_a_visit_without_images_leaves_it_expected(world):
    session, timepoint = _open_and_finish_empty(world.cora)
    assert session.state == "cancelled" and timepoint.state == "expected"
    assert upload_history(actor=Actor(user=world.cora), trial=world.trial, subject_code=SUBJECT) == []


def test_an_empty_session_leaves_a_visit_answered_by_a_re_upload_with_qc(uploaded):
    """A re-upload answered the QC query (the visit is "uploaded", the query answered, not closed); dropping the
    folder again sends nothing and must not put the visit back to "query open"."""
    from trials.models import Query, Timepoint
    from trials.qc_services import qc_fail

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    qc_fail(actor=uploaded.quinn, timepoint=timepoint, series=[], reason="Slices missing.")
    more = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="history-more")
    upload_files(uploaded.cora, SUBJECT, more)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    assert Query.objects.get(timepoint=timepoint).state == "answered"
    session, timepoint = _open_and_finish_empty(uploaded.cora)
    assert session.state == "cancelled" and timepoint.state == "uploaded"


def test_an_empty_session_leaves_a_query_open_visit_query_open(uploaded):
    from trials.models import Timepoint
    from trials.qc_services import qc_fail

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    qc_fail(actor=uploaded.quinn, timepoint=timepoint, series=[], reason="Slices missing.")
    session, timepoint = _open_and_finish_empty(uploaded.cora)
    assert session.state == "cancelled" and timepoint.state == "query_open"


def test_an_empty_session_leaves_the_visit_uploading_while_another_upload_is_open(uploaded):
    """Another person's upload of the visit is still receiving, so the visit stays uploading."""
    from trials.ingest.services import upload_open
    from trials.models import Timepoint

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    other = upload_open(actor=uploaded.alice, timepoint=timepoint)
    session, timepoint = _open_and_finish_empty(uploaded.cora)
    assert session.state == "cancelled" and timepoint.state == "uploading" and other.state == "open"


def test_a_re_upload_that_brings_nothing_new_leaves_a_visit_answered_by_an_earlier_one_with_qc(uploaded):
    """A re-upload answered the QC query (the visit is "uploaded", waiting for the reviewer); the coordinator then
    sends the same folder again as it is (server path): every file is already stored. The answer stands and the
    visit stays with QC; only a visit still waiting for the site (query open) stays "query open"."""
    from trials.models import Query, Timepoint
    from trials.qc_services import qc_fail

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    qc_fail(actor=uploaded.quinn, timepoint=timepoint, series=[], reason="Slices missing.")
    more = synthesize_ct_series(real_ct_template(large=False), slices=2, seed="history-more")
    upload_files(uploaded.cora, SUBJECT, more)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    upload_files(uploaded.cora, SUBJECT, more)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "uploaded"
    assert Query.objects.get(timepoint=timepoint).state == "answered"


def test_a_re_upload_that_brings_nothing_new_to_an_open_query_leaves_it_open(uploaded):
    from trials.models import Timepoint
    from trials.qc_services import qc_fail

    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    qc_fail(actor=uploaded.quinn, timepoint=timepoint, series=[], reason="Slices missing.")
    files = synthesize_ct_series(real_ct_template(large=False), slices=3, seed="history")
    upload_files(uploaded.cora, SUBJECT, files)
    assert Timepoint.objects.get(pk=timepoint.pk).state == "query_open"


def test_the_discard_and_the_state_it_went_back_to_read_as_words_in_the_audit_trail(world):
    from django.utils import translation

    from ctims.audit_display import event_view
    from ctims.models import AuditEvent

    session, _timepoint = _open_and_finish_empty(world.cora)
    opened = AuditEvent.objects.get(action="upload.open", object_id=str(session.pk))
    discarded = AuditEvent.objects.get(action="upload.discard", object_id=str(session.pk))
    back = AuditEvent.objects.filter(action="timepoint.transition").latest("seq")
    with translation.override("ko"):
        views = [event_view(event) for event in (opened, discarded, back)]
    assert views[0].summary[-1] == ("이전 방문 상태", "예정")
    assert views[1].action == "업로드 취소: 보낸 파일 없음"
    assert ("사유", "업로드 취소: 보낸 파일 없음") in views[2].summary


def test_the_qc_worklist_dates_the_visit_by_its_last_upload_not_a_discarded_session(uploaded):
    from trials import selectors
    from trials.models import Upload

    (last, _first) = Upload.objects.order_by("-pk")[:2]
    session, _timepoint = _open_and_finish_empty(uploaded.cora)
    assert session.closed_at > last.closed_at
    row = selectors.qc_worklist(actor=Actor(user=uploaded.quinn), trial=uploaded.trial).get(subject__code=SUBJECT)
    assert row.uploaded_at == last.closed_at
