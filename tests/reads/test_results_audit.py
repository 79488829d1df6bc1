"""Who took which locked results when: every download of results (the CSVs, an SR, a page of the API, reader
quality's data and charts) is one audit event naming its kind, its parameters and how much it held; looking at
the results on a page is not a download and leaves no event."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from ctims.audit import audit_verify
from ctims.audit_display import event_view
from ctims.models import AuditEvent
from reads.models import TimepointResult
from tests.reads.flow import baseline_content, ready, save_and_sign, task_of
from trials.models import Instance, Membership
from trials.services import api_token_create


@pytest.fixture
def locked(world) -> TimepointResult:
    """One subject's baseline read by both readers and locked."""
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    return TimepointResult.objects.get(timepoint__subject__code="ALPHA-SEO-001")


def _downloads(world) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="results.download", trial_id=world.trial.pk).order_by("seq"))


def test_each_results_csv_and_sr_download_is_one_event_naming_its_kind_and_what_it_held(world, client, locked):
    client.force_login(world.sam)
    assert client.get("/reads/trials/ALPHA/results/").status_code == 200
    assert _downloads(world) == []  # the page is looked at, not taken away

    assert client.get("/reads/trials/ALPHA/results.csv", {"excel": "1"}).status_code == 200
    assert client.get("/reads/trials/ALPHA/lesions.csv").status_code == 200
    sr = client.get(f"/reads/trials/ALPHA/results/{locked.pk}/sr.dcm")
    assert sr.status_code == 200
    b"".join(sr.streaming_content)

    results_csv, lesions_csv, sr_event = _downloads(world)
    assert all(e.actor == world.sam for e in (results_csv, lesions_csv, sr_event))
    assert results_csv.object_type == "trials.trial" and results_csv.object_id == str(world.trial.pk)
    assert results_csv.summary == {"kind": "results_csv", "excel": True, "rows": 1}
    # Baseline: two targets and one non-target.
    assert lesions_csv.summary == {"kind": "lesions_csv", "excel": False, "rows": 3}
    assert sr_event.object_type == "reads.timepointresult" and sr_event.object_id == str(locked.pk)
    assert sr_event.summary == {
        "kind": "sr",
        "subject": "ALPHA-SEO-001",
        "visit": "BL",
        "sr": locked.sr.sop_instance_uid,
    }
    assert audit_verify().intact


def test_a_refused_or_missing_download_leaves_no_event(world, client, locked):
    client.force_login(world.sam)
    assert client.get("/reads/trials/ALPHA/results.csv", {"excel": "yes"}).status_code == 400
    assert client.get("/reads/trials/ALPHA/results/999999/sr.dcm").status_code == 404
    client.force_login(world.cora)  # a site coordinator sees no results
    assert client.get("/reads/trials/ALPHA/results.csv").status_code == 404
    assert _downloads(world) == []


def test_an_api_read_of_results_is_one_event_a_request_naming_its_page_and_token(world, client, locked):
    """A script paging through the results leaves one event per request (per page), not one per result."""
    membership = Membership.objects.get(user=world.sam, trial=world.trial)
    token, secret = api_token_create(actor=world.sam, membership=membership, name="results export")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    body = client.get("/api/trials/ALPHA/read-results/", {"limit": "10"}, **auth).json()
    assert client.get(f"/api/trials/ALPHA/read-results/{locked.pk}/sr/", **auth).status_code == 200
    assert client.get("/api/trials/ALPHA/read-results/", {"limit": "0"}, **auth).status_code == 400
    assert client.get("/api/trials/ALPHA/read-results/999999/sr/", **auth).status_code == 404

    page, sr = _downloads(world)
    assert page.actor == world.sam and body["count"] == 1
    assert page.summary == {
        "kind": "results_api",
        "offset": 0,
        "limit": 10,
        "rows": 1,
        "total": 1,
        "token": str(token),
    }
    assert sr.summary == {
        "kind": "sr_api",
        "subject": "ALPHA-SEO-001",
        "visit": "BL",
        "sr": body["results"][0]["sr_sop_instance_uid"],
        "token": str(token),
    }


def test_reader_quality_data_and_chart_downloads_are_audited_but_not_the_page_and_its_charts(world, client, locked):
    client.force_login(world.alice)
    assert client.get("/reads/trials/ALPHA/quality/").status_code == 200
    assert client.get("/reads/trials/ALPHA/quality/waterfall.svg").status_code == 200  # drawn on the page
    assert client.get("/reads/trials/ALPHA/quality/pairs.csv", {"start": "2026-13-01"}).status_code == 400
    assert _downloads(world) == []

    period = {"start": "2000-01-01", "end": "2999-12-31", "cutoff": "2999-12-31T23:00"}
    assert client.get("/reads/trials/ALPHA/quality/readers.csv", period).status_code == 200
    assert client.get("/reads/trials/ALPHA/quality/bland-altman.png", {"download": "1"}).status_code == 200

    table, chart = _downloads(world)
    assert table.actor == world.alice
    assert table.summary.pop("cutoff").startswith("2999-12-31T23:00:00")
    assert table.summary == {
        "kind": "quality_csv",
        "table": "readers",
        "start": "2000-01-01",
        "end": "2999-12-31",
        "rows": 2,
    }
    assert chart.summary == {
        "kind": "quality_chart",
        "chart": "bland-altman",
        "format": "png",
        "start": None,
        "end": None,
        "cutoff": None,
    }


def test_a_download_event_reads_in_korean_on_the_audit_page(world, client, locked):
    client.force_login(world.sam)
    client.get("/reads/trials/ALPHA/results.csv", {"excel": "1"})
    (event,) = _downloads(world)
    with translation.override("ko"):
        view = event_view(event)
    assert view.action == "결과 내려받음"
    assert ("내려받은 자료", "판독 결과 (CSV)") in view.summary and ("엑셀용", "예") in view.summary
    assert ("행 수", "1") in view.summary
    client.force_login(world.alice)
    page = client.get(reverse("trial-audit", args=["ALPHA"]), HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "결과 내려받음" in page and "판독 결과 (CSV)" in page


# --- SRs retrieved through the trial's DICOMweb root ------------------------------------------------------------


def _dicomweb_downloads(world) -> list[AuditEvent]:
    return [e for e in _downloads(world) if e.summary["kind"] == "sr_dicomweb"]


def test_srs_retrieved_through_the_trials_dicomweb_root_are_one_event_a_request(world, client, locked):
    """A trial admin (sponsors have no DICOMweb root) sees the locked results' SRs through the trial's DICOMweb root: retrieving them (whole, or
    their metadata, which holds the whole report) is a download of results like the SR download of the results
    page, one event a request naming the SRs by their (pseudonymous) UIDs; images alone leave no event."""
    client.force_login(world.alice)
    sr = locked.sr
    study, series = sr.series.study.study_instance_uid, sr.series.series_instance_uid
    root = f"/dicomweb/trials/ALPHA/studies/{study}"
    image = Instance.objects.filter(series__study=sr.series.study).exclude(series__origin="read").first()
    image_path = f"{root}/series/{image.series.series_instance_uid}/instances/{image.sop_instance_uid}"

    assert client.get(image_path, HTTP_ACCEPT="application/dicom").status_code == 200
    assert (
        client.get(f"{image_path}/frames/1", HTTP_ACCEPT="multipart/related; type=application/octet-stream").status_code
        == 200
    )
    assert client.get(f"{image_path}/metadata").status_code == 200
    assert _dicomweb_downloads(world) == []  # images are not results

    one = client.get(f"{root}/series/{series}/instances/{sr.sop_instance_uid}", HTTP_ACCEPT="application/dicom")
    assert one.status_code == 200
    whole = client.get(root, HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert whole.status_code == 200
    b"".join(whole.streaming_content) if whole.streaming else whole.content
    assert client.get(f"{root}/metadata").status_code == 200
    # A revalidation that finds the copy the client has still current sends nothing.
    again = client.get(
        f"{root}/series/{series}/instances/{sr.sop_instance_uid}",
        HTTP_ACCEPT="application/dicom",
        HTTP_IF_NONE_MATCH=one["ETag"],
    )
    assert again.status_code == 304

    events = _dicomweb_downloads(world)
    assert [e.summary for e in events] == [
        {"kind": "sr_dicomweb", "retrieved": retrieved, "study": study, "sr": [sr.sop_instance_uid]}
        for retrieved in ("instances", "instances", "metadata")
    ]
    assert all(e.actor == world.alice and e.object_type == "trials.trial" for e in events)
    text = str([e.summary for e in events]) + str([e.object_label for e in events])
    assert "ALPHA-SEO-001" not in text
    assert audit_verify().intact


def test_an_sr_retrieved_through_dicomweb_with_a_token_names_the_token(world, client, locked):
    membership = Membership.objects.get(user=world.alice, trial=world.trial)
    token, secret = api_token_create(actor=world.alice, membership=membership, name="viewer")
    sr = locked.sr
    path = (
        f"/dicomweb/trials/ALPHA/studies/{sr.series.study.study_instance_uid}/series/"
        f"{sr.series.series_instance_uid}/instances/{sr.sop_instance_uid}/metadata"
    )
    assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    [event] = _dicomweb_downloads(world)
    assert event.summary["token"] == str(token) and event.summary["sr"] == [sr.sop_instance_uid]
