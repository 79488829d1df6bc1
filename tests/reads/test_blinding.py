"""Blinding and permissions of the reads: a reader reaches their own tasks, reads and images alone and never
another reader's work, the subject's code, site or dates; an adjudicator sees both reads of their case and
nobody else does; a sponsor sees locked results and nothing that is not locked."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

import pydicom
import pytest
from django.utils import dateformat

from reads import read_services
from reads.models import Adjudication, Lesion, Read, ReadTask, TimepointResult
from reads.services import read_design_set
from reads.sr import parse_measurement_report
from tests.conftest import PASSWORD
from tests.reads.flow import SUBJECT, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials.dicomweb import wado
from trials.models import Instance, Study, Timepoint

BUSAN = "ALPHA-BUS-001"
# What the synthetic images' scanner wrote about the place; de-identification removes it, blinding must too.
PLACE = ("JFK IMAGING CENTER", "CT01_OC0", "Seoul Hospital", "Busan Hospital")
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
DATE_VRS = {"DA", "DT", "TM"}


def _dates(value) -> set[str]:
    """Every DA value in a DICOM JSON item, at any depth."""
    found: set[str] = set()
    for element in value.values():
        if element.get("vr") == "DA":
            found.update(v for v in element.get("Value", []) if v)
        elif element.get("vr") == "SQ":
            for child in element.get("Value", []):
                found |= _dates(child)
    return found


def study_dates(*subjects: str) -> set[str]:
    """The subjects' dates as a page could print them: the synthetic ones (2026-03-02 on) and the stored ones."""
    days = {date(2026, 3, 2), date(2026, 3, 2) + timedelta(days=42)}
    days |= {s.study_date for s in Study.objects.filter(subject__code__in=subjects) if s.study_date}
    for instance in Instance.objects.filter(series__study__subject__code__in=subjects).exclude(series__modality="SR"):
        for text in _dates(wado.instance_metadata(instance)):
            days.add(date(int(text[:4]), int(text[4:6]), int(text[6:8])))
    out = set()
    for day in days:
        out |= {day.strftime("%Y%m%d"), day.isoformat(), day.strftime("%m/%d/%Y"), dateformat.format(day, "N j, Y")}
    return out


def assert_blinded(text: str, *subjects: str) -> None:
    """No subject code, site, place or study date of `subjects` in `text`."""
    subjects = subjects or (SUBJECT,)
    for subject in subjects:
        assert subject not in text
        site = subject.split("-")[1]
        assert not re.search(rf"\b{site}\b", text), f"site {site} shown"
    for place in PLACE:
        assert place not in text
    for shown in study_dates(*subjects):
        assert shown not in text, f"study date {shown} shown"


def assert_no_date_elements(items: list[dict]) -> None:
    def walk(item):
        for tag, element in item.items():
            assert element.get("vr") not in DATE_VRS, tag
            if element.get("vr") == "SQ":
                for child in element.get("Value", []):
                    walk(child)

    for item in items:
        walk(item)


def json_block(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no {element_id} block"
    return json.loads(match.group(1))


def task_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-task="(\d+)"', html)}


def values(item: dict, tag: str) -> list:
    return item.get(tag, {}).get("Value", [])


def _both_sign_baseline(world) -> None:
    """Baseline and week 6 ready; both readers sign the baseline, each with measurements of their own."""
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl))
    bl = task_of(world.ravi, "BL")
    save_and_sign(world.ravi, bl, baseline_content(bl, t1="31.7", t2="14.3"))


def _sr_instances() -> list[Instance]:
    instances = list(Instance.objects.filter(series__modality="SR").select_related("series__study"))
    assert instances
    return instances


# --- the worklist -------------------------------------------------------------------------------------------


def test_a_readers_worklist_lists_their_own_tasks_by_case_label_and_due_date_only(world, client):
    ready(world, "BL")
    ready(world, "W6", day=42)
    ready(world, "BL", subject=BUSAN)
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl))

    client.force_login(world.rhea)
    page = client.get("/reads/")
    assert page.status_code == 200
    html = page.content.decode()
    mine = ReadTask.objects.filter(assignment__reader=world.rhea)
    assert task_ids(html) == set(mine.values_list("pk", flat=True)) and len(mine) == 3
    labels = set(mine.values_list("assignment__case_label", flat=True))
    assert len(labels) == 2 and all(re.fullmatch(r"C-[A-Z2-7]{7}", label) for label in labels)
    assert all(label in html for label in labels)
    assert_blinded(html, SUBJECT, BUSAN)
    due = {task.due_date for task in mine}
    assert set(re.findall(r"\d{4}-\d{2}-\d{2}", html)) <= {d.isoformat() for d in due}
    assert set(re.findall(r"\b\d{1,2}/\d{1,2}/\d{4}\b", html)) <= {d.strftime("%m/%d/%Y") for d in due}

    client.force_login(world.ravi)
    theirs = client.get("/reads/").content.decode()
    assert task_ids(theirs) == set(ReadTask.objects.filter(assignment__reader=world.ravi).values_list("pk", flat=True))
    assert not task_ids(theirs) & task_ids(html)
    assert_blinded(theirs, SUBJECT, BUSAN)


def test_nobody_but_readers_and_adjudicators_has_tasks_on_the_worklist(world, client):
    ready(world, "BL")
    for who in ("ada", "alice", "quinn", "cora", "sam", "otto"):
        client.force_login(world.people[who])
        page = client.get("/reads/")
        assert page.status_code == 200 and task_ids(page.content.decode()) == set(), who


# --- the task pages and their endpoints -------------------------------------------------------------------


def _requests(task: ReadTask, content: dict) -> list[tuple[str, str, dict]]:
    """Every request on a task's pages, each one a complete, valid request the task's holder could make."""
    base = f"/reads/tasks/{task.pk}/"
    return [
        ("get", base, {}),
        ("get", base + "draft/", {}),
        (
            "put",
            base + "draft/",
            {"data": json.dumps({"content": content, "revision": ""}), "content_type": "application/json"},
        ),
        (
            "post",
            base + "sign/",
            {"data": {"password": PASSWORD, "meaning": "author", "confirmed_response": "baseline", "revision": ""}},
        ),
        ("post", base + "correct/", {}),
        (
            "post",
            base + "adjudicate/",
            {"data": {"choice": "1", "reason": "T01", "password": PASSWORD, "meaning": "adjudicator"}},
        ),
    ]


@pytest.mark.parametrize("who", ["ravi", "ada", "quinn", "alice", "cora", "bruno", "sam", "otto"])
def test_a_readers_task_is_not_found_by_anyone_else(world, client, who):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    client.force_login(world.rhea)
    assert client.get(f"/reads/tasks/{task.pk}/").status_code == 200
    assert client.get(f"/reads/tasks/{task.pk}/draft/").status_code == 200

    client.force_login(world.people[who])
    for method, url, kwargs in _requests(task, baseline_content(task, t1="44.4")):
        assert getattr(client, method)(url, **kwargs).status_code == 404, (method, url)
    study = Study.objects.get(timepoint=task.timepoint).study_instance_uid
    for url in ("studies", "series", f"studies/{study}/metadata"):
        assert client.get(f"/dicomweb/tasks/{task.pk}/{url}").status_code == 404, url
    [read] = Read.objects.filter(task=task)
    assert read.state == "draft" and read.content["targets"][0]["long_mm"] == "23.0"
    assert ReadTask.objects.get(pk=task.pk).state == "in_progress"
    assert not Adjudication.objects.exists()


def test_a_task_that_does_not_exist_is_not_found_either(world, client):
    ready(world, "BL")
    client.force_login(world.ravi)
    missing = ReadTask.objects.order_by("-pk").first().pk + 100
    assert client.get(f"/reads/tasks/{missing}/").status_code == 404
    assert client.get(f"/reads/tasks/{missing}/draft/").status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    for url in (f"/reads/tasks/{task.pk}/", f"/reads/tasks/{task.pk}/draft/", "/reads/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/" in response["Location"]


def shows(value: str, text: str) -> bool:
    """Whether `text` holds `value` as a value of its own: a measurement such as "41.0" is not the seconds of a
    timestamp the page shows ("13:05:41.012345") nor part of a longer number."""
    return re.search(rf"(?<![\d.:]){re.escape(value)}(?!\d)", text) is not None


# --- the read page ------------------------------------------------------------------------------------------


def test_the_read_page_of_a_follow_up_shows_nothing_of_the_other_reader_the_subject_or_its_dates(world, client):
    _both_sign_baseline(world)
    ravi_w6 = task_of(world.ravi, "W6")
    save_and_sign(world.ravi, ravi_w6, follow_up_content(ravi_w6, "27.9", "13.1"))
    w6 = task_of(world.rhea, "W6")
    read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=follow_up_content(w6, "16.1", "8.4"))
    theirs = [
        *("31.7", "14.3", "46.0", "27.9", "13.1", "41.0"),  # the other reader's axes and sums
        *Lesion.objects.filter(assignment__reader=world.ravi).values_list("tracking_uid", flat=True),
        *(i.sop_instance_uid for i in _sr_instances()),  # neither reader's SR, the own one included
        *(i.series.series_instance_uid for i in _sr_instances()),
    ]
    mine = set(Lesion.objects.filter(assignment__reader=world.rhea).values_list("tracking_uid", flat=True))

    client.force_login(world.rhea)
    for task in (task_of(world.rhea, "BL"), w6):
        page = client.get(f"/reads/tasks/{task.pk}/")
        assert page.status_code == 200
        html = page.content.decode()
        draft = client.get(f"/reads/tasks/{task.pk}/draft/").content.decode()
        read_config, viewer_config = json_block(html, "read-config"), json_block(html, "viewer-config")
        for text in (html, draft, json.dumps(read_config), json.dumps(viewer_config)):
            assert_blinded(text)
            assert not [value for value in theirs if shows(value, text)]
            assert not re.search(r"\bravi\b", text, re.I)
        assert viewer_config["root"] == f"/dicomweb/tasks/{task.pk}"

    # The follow-up carries the reader's own draft and their own baseline's lesions, nothing else.
    assert [t["long_mm"] for t in read_config["content"]["targets"]] == ["16.1", "8.4"]
    assert {t["tracking_uid"] for t in read_config["tracked"]} <= mine
    assert {t["previous"]["long_mm"] for t in read_config["tracked"] if t["category"] == "target"} == {"23.0", "12.0"}
    shown = {uid for visit in viewer_config["timepoints"] for uid in visit["studies"]}
    assert shown == set(Study.objects.filter(subject__code=SUBJECT).values_list("study_instance_uid", flat=True))


def test_the_follow_up_carries_where_the_reader_measured_each_lesion_in_their_own_signed_reads(world, client):
    _both_sign_baseline(world)
    mine = Read.objects.get(task=task_of(world.rhea, "BL"), state="signed").content
    theirs = Read.objects.get(task=task_of(world.ravi, "BL"), state="signed").content
    client.force_login(world.rhea)
    html = client.get(f"/reads/tasks/{task_of(world.rhea, 'W6').pk}/").content.decode()
    tracked = {t["label"]: t for t in json_block(html, "read-config")["tracked"]}
    visits = {v["visit"]: v for v in json_block(html, "viewer-config")["timepoints"]}

    for entry in mine["targets"]:
        [prior] = tracked[entry["label"]]["priors"]
        assert prior["visit"] in visits and not visits[prior["visit"]]["current"]
        assert prior["visit_label"] == "Baseline"
        assert prior["image"] == entry["image"] and prior["long_points"] == entry["long_points"]
        assert prior["long_mm"] == entry["long_mm"]
    # A non-target is shown where it was seen; nothing comes from the other reader's read.
    [nt] = tracked["NT01"]["priors"]
    assert nt["image"] == mine["non_targets"][0]["image"] and nt["long_points"] is None
    other_points = [t["long_points"] for t in theirs["targets"]]
    assert not [p for t in tracked.values() for p in t["priors"] if p["long_points"] in other_points]


def test_no_earlier_image_is_offered_when_the_design_hides_the_earlier_visits(world, client):
    read_design_set(actor=world.alice, trial=world.trial, show_prior_timepoints=False)
    _both_sign_baseline(world)
    client.force_login(world.rhea)
    html = client.get(f"/reads/tasks/{task_of(world.rhea, 'W6').pk}/").content.decode()
    tracked = json_block(html, "read-config")["tracked"]
    assert tracked and all(t["priors"] == [] for t in tracked)
    assert {t["label"]: t["previous"]["long_mm"] for t in tracked}["T01"] == "23.0"  # the value still is


# --- the read task's DICOMweb root --------------------------------------------------------------------------


def test_a_readers_task_root_never_lists_or_serves_an_sr(world, client):
    _both_sign_baseline(world)
    srs = _sr_instances()
    assert len(srs) == 2  # both readers' baseline SRs are in the baseline study
    sr_uids = {i.sop_instance_uid for i in srs} | {i.series.series_instance_uid for i in srs}
    client.force_login(world.rhea)
    for task, n_studies in ((task_of(world.rhea, "BL"), 1), (task_of(world.rhea, "W6"), 2)):
        root = f"/dicomweb/tasks/{task.pk}"
        studies = client.get(f"{root}/studies").json()
        assert len(studies) == n_studies
        answers = [studies]
        for study in studies:
            assert "SR" not in values(study, "00080061") and values(study, "00080061") == ["CT"]
            assert "00201206" not in study and "00201208" not in study  # the counts would count the SRs
            uid = values(study, "0020000D")[0]
            series = client.get(f"{root}/studies/{uid}/series").json()
            assert {m for s in series for m in values(s, "00080060")} == {"CT"}
            metadata = client.get(f"{root}/studies/{uid}/metadata").json()
            assert {m for item in metadata for m in values(item, "00080060")} == {"CT"}
            assert_no_date_elements(metadata)
            instances = client.get(f"{root}/studies/{uid}/instances").json()
            assert {m for i in instances for m in values(i, "00080060")} == {"CT"}
            answers += [series, metadata, instances]
        answers += [
            client.get(f"{root}/series").json(),
            client.get(f"{root}/instances").json(),
        ]
        assert client.get(f"{root}/series", {"Modality": "SR"}).json() == []
        for sr in srs:
            assert client.get(f"{root}/instances", {"SOPInstanceUID": sr.sop_instance_uid}).json() == []
        for answer in answers:
            text = json.dumps(answer)
            assert not [uid for uid in sr_uids if uid in text]
            assert '"SR"' not in text
            assert_blinded(text)
            assert_no_date_elements(answer)


@pytest.mark.parametrize("whose", ["rhea", "ravi"])
def test_a_direct_request_for_an_sr_through_a_task_root_is_not_found(world, client, whose):
    _both_sign_baseline(world)
    sr = Read.objects.get(task=task_of(world.people[whose], "BL")).sr_instance
    study, series = sr.series.study.study_instance_uid, sr.series.series_instance_uid
    client.force_login(world.rhea)
    root = f"/dicomweb/tasks/{task_of(world.rhea, 'BL').pk}/studies/{study}/series/{series}"
    instance = f"{root}/instances/{sr.sop_instance_uid}"
    requests = [
        (root, 'multipart/related; type="application/dicom"'),
        (f"{root}/metadata", ""),
        (f"{root}/instances", ""),
        (f"{root}/thumbnail", "image/png"),
        (instance, 'multipart/related; type="application/dicom"'),
        (f"{instance}/metadata", ""),
        (f"{instance}/frames/1", FRAME_ACCEPT),
        (f"{instance}/frames/1/rendered", "image/png"),
        (f"{instance}/rendered", "image/png"),
        (f"{instance}/thumbnail", "image/png"),
        (f"{instance}/bulkdata/7FE00010", ""),
    ]
    for url, accept in requests:
        response = client.get(url, HTTP_ACCEPT=accept) if accept else client.get(url)
        assert response.status_code == 404, url


def test_a_task_roots_search_does_not_answer_questions_about_what_it_hides(world, client):
    _both_sign_baseline(world)
    task = task_of(world.rhea, "BL")
    root = f"/dicomweb/tasks/{task.pk}/studies"
    study = Study.objects.get(timepoint__subject__code=SUBJECT, timepoint__visit__code="BL")
    client.force_login(world.rhea)

    def found(**params) -> int:
        return len(client.get(root, params).json())

    day = study.study_date
    assert found(StudyDate=day.strftime("%Y%m%d")) == found(StudyDate=(day + timedelta(days=1)).strftime("%Y%m%d"))
    assert found(PatientID=SUBJECT) == found(PatientID="ALPHA-BUS-009")
    assert found(ModalitiesInStudy="SR") == found(ModalitiesInStudy="MG")


# --- adjudication -------------------------------------------------------------------------------------------


def _to_adjudication(world) -> Adjudication:
    """Both readers agree on the baseline (locked) and differ on week 6: PR for rhea, SD for ravi."""
    ready(world, "BL")
    ready(world, "W6", day=42)
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    w6 = task_of(world.rhea, "W6")
    save_and_sign(world.rhea, w6, follow_up_content(w6, "16.1", "8.4"))  # 24.5 mm, PR
    w6 = task_of(world.ravi, "W6")
    save_and_sign(world.ravi, w6, follow_up_content(w6, "22.0", "12.0"))  # 34.0 mm, SD
    return Adjudication.objects.select_related("task").get(subject__code=SUBJECT)


def test_only_the_assigned_adjudicator_opens_the_adjudication_and_sees_both_reads(world, client):
    adjudication = _to_adjudication(world)
    task = adjudication.task
    assert task.assignment.reader == world.ada
    base = f"/reads/tasks/{task.pk}/"

    client.force_login(world.ada)
    assert task_ids(client.get("/reads/").content.decode()) == {task.pk}
    page = client.get(base)
    assert page.status_code == 200
    html = page.content.decode()
    assert shows("24.5", html) and shows("34.0", html)  # reader 1's and reader 2's sums
    overlays = json_block(html, "read-config")["overlays"]
    assert {o["reader"] for o in overlays} == {1, 2}
    # Every lesion is listed, non-targets too; only the visit in question has disputes, and
    # there the readers differ on the targets (PR against SD) but not on the non-targets.
    assert {(o["label"], o["category"]) for o in overlays} == {
        ("T01", "target"),
        ("T02", "target"),
        ("NT01", "non_target"),
    }
    disputed = {(o["visit"], o["category"]) for o in overlays if o["disputed"]}
    assert disputed == {("W6", "target")}, disputed
    assert_blinded(html)
    assert not re.search(r"\b(rhea|ravi)\b", html, re.I)
    # The adjudicator's own reads are the adjudication: the readers' tasks stay theirs.
    for reader in (world.rhea, world.ravi):
        for visit in ("BL", "W6"):
            assert client.get(f"/reads/tasks/{task_of(reader, visit).pk}/").status_code == 404
            assert client.get(f"/reads/tasks/{task_of(reader, visit).pk}/draft/").status_code == 404
    assert client.get(f"{base}draft/").status_code == 404  # an adjudication has no draft

    decision = {"choice": "1", "reason": "T01 is measured right.", "password": PASSWORD, "meaning": "adjudicator"}
    for who in ("rhea", "ravi", "quinn", "alice", "cora", "sam", "otto"):
        client.force_login(world.people[who])
        assert client.get(base).status_code == 404, who
        assert client.post(f"{base}adjudicate/", decision).status_code == 404, who
        assert client.post(f"{base}sign/", {"password": PASSWORD}).status_code == 404, who
        assert client.get(f"/dicomweb/tasks/{task.pk}/studies").status_code == 404, who
    adjudication.refresh_from_db()
    assert adjudication.signature_id is None


def test_the_adjudicators_task_root_shows_every_visit_in_question_and_still_no_sr(world, client):
    adjudication = _to_adjudication(world)
    srs = _sr_instances()
    assert len(srs) == 4
    sr_uids = {i.sop_instance_uid for i in srs} | {i.series.series_instance_uid for i in srs}
    root = f"/dicomweb/tasks/{adjudication.task.pk}"
    client.force_login(world.ada)
    studies = client.get(f"{root}/studies").json()
    uids = {values(s, "0020000D")[0] for s in studies}
    assert uids == set(Study.objects.filter(subject__code=SUBJECT).values_list("study_instance_uid", flat=True))
    assert len(uids) == 2
    answers = [studies, client.get(f"{root}/series").json(), client.get(f"{root}/instances").json()]
    answers += [client.get(f"{root}/studies/{uid}/metadata").json() for uid in uids]
    for answer in answers:
        text = json.dumps(answer)
        assert '"SR"' not in text and not [uid for uid in sr_uids if uid in text]
        assert_blinded(text)
        assert_no_date_elements(answer)
    for sr in srs:
        url = f"{root}/studies/{sr.series.study.study_instance_uid}/series/{sr.series.series_instance_uid}/metadata"
        assert client.get(url).status_code == 404


# --- results for the sponsor ---------------------------------------------------------------------------------


def _rows(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-result="(\d+)"', html)}


def _csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _sr(response) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(b"".join(response.streaming_content)))


def test_a_sponsor_sees_locked_results_only_and_downloads_the_sr_of_the_read_that_stands(world, client):
    _to_adjudication(world)  # baseline locked by agreement, week 6 in adjudication
    ready(world, "BL", subject="ALPHA-SEO-002")
    half = task_of(world.rhea, "BL", subject="ALPHA-SEO-002")
    save_and_sign(world.rhea, half, baseline_content(half, t1="41.2", t2="17.6"))  # ravi has not read it
    assert Timepoint.objects.get(subject__code="ALPHA-SEO-002", visit__code="BL").state == "in_read"
    baseline = TimepointResult.objects.get()
    hidden = ("ALPHA-SEO-002", "Week 6", "24.5", "34.0", "58.8")

    client.force_login(world.sam)
    page = client.get("/reads/trials/ALPHA/results/")
    assert page.status_code == 200
    html = page.content.decode()
    assert _rows(html) == {baseline.pk} and not [text for text in hidden if text in html]
    [row] = _csv(client.get("/reads/trials/ALPHA/results.csv"))
    assert (row["subject"], row["visit"], row["source"], row["reader"]) == (SUBJECT, "BL", "agreement", "1")
    download = client.get(f"/reads/trials/ALPHA/results/{baseline.pk}/sr.dcm")
    assert download.status_code == 200 and download["Content-Type"] == "application/dicom"
    sr = _sr(download)
    assert sr.Modality == "SR" and sr.SOPInstanceUID == baseline.read.sr_instance.sop_instance_uid
    assert client.get(f"/reads/trials/ALPHA/results/{baseline.pk + 1}/sr.dcm").status_code == 404

    adjudication = Adjudication.objects.get()
    ravi_w6 = task_of(world.ravi, "W6")
    client.force_login(world.ada)
    decided = client.post(
        f"/reads/tasks/{adjudication.task.pk}/adjudicate/",
        {
            "choice": str(ravi_w6.assignment.slot),
            "reason": "T01 is measured across its true long axis by this reader.",
            "password": PASSWORD,
            "meaning": "adjudicator",
            "user_id": world.ada.email,  # her first signing since she logged in
        },
    )
    assert decided.status_code == 302
    w6 = TimepointResult.objects.get(timepoint__visit__code="W6")
    assert w6.read.task == ravi_w6
    # The accepted reader's reads stand at every visit: the baseline's result now is theirs too.
    baseline_now = TimepointResult.objects.get(timepoint__visit__code="BL")
    assert baseline_now.read.task.assignment == ravi_w6.assignment

    client.force_login(world.sam)
    html = client.get("/reads/trials/ALPHA/results/").content.decode()
    assert _rows(html) == {baseline_now.pk, w6.pk} and "ALPHA-SEO-002" not in html and not shows("58.8", html)
    rows = {row["visit"]: row for row in _csv(client.get("/reads/trials/ALPHA/results.csv"))}
    assert set(rows) == {"BL", "W6"}
    assert (rows["W6"]["overall"], rows["W6"]["source"], rows["W6"]["reader"], rows["W6"]["sum_mm"]) == (
        "SD",
        "adjudication",
        str(ravi_w6.assignment.slot),
        "34.0",
    )
    sr = _sr(client.get(f"/reads/trials/ALPHA/results/{w6.pk}/sr.dcm"))
    # The result SR the adjudication wrote: verified by the adjudicator, naming the accepted read's SR.
    assert sr.SOPInstanceUID == w6.sr_instance.sop_instance_uid
    [predecessor] = sr.PredecessorDocumentsSequence
    assert predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        Read.objects.get(task=ravi_w6).sr_instance.sop_instance_uid
    )
    report = parse_measurement_report(sr)
    assert report.overall_response == "SD" and report.verifying_observer_name == "Adjudicator^"
    assert report.observer_role == "adjudicator"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("alice", 200),
        ("sam", 200),
        ("cora", 404),
        ("bruno", 404),
        ("quinn", 404),
        ("rhea", 404),
        ("ravi", 404),
        ("ada", 404),
        ("otto", 404),
    ],
)
def test_the_results_pages_are_for_sponsors_and_trial_admins(world, client, who, status):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    result = TimepointResult.objects.get()
    client.force_login(world.people[who])
    for url in (
        "/reads/trials/ALPHA/results/",
        "/reads/trials/ALPHA/results.csv",
        f"/reads/trials/ALPHA/results/{result.pk}/sr.dcm",
    ):
        assert client.get(url).status_code == status, url


def test_nothing_shows_on_the_results_pages_while_no_visit_is_locked(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, task, baseline_content(task))
    client.force_login(world.sam)
    html = client.get("/reads/trials/ALPHA/results/").content.decode()
    assert _rows(html) == set() and SUBJECT not in html
    assert _csv(client.get("/reads/trials/ALPHA/results.csv")) == []


# --- the trial's DICOMweb root --------------------------------------------------------------------------------


def test_the_trial_root_gives_readers_and_sponsors_nothing_and_the_trial_admin_the_locked_results_sr(world, client):
    _both_sign_baseline(world)
    srs = _sr_instances()
    study = srs[0].series.study.study_instance_uid
    trial_root = "/dicomweb/trials/ALPHA"
    for who in ("rhea", "ravi", "ada", "sam"):
        client.force_login(world.people[who])
        assert client.get(f"{trial_root}/studies").status_code == 404, who
        assert client.get(f"{trial_root}/studies/{study}/series").status_code == 404, who
        for sr in srs:
            url = f"{trial_root}/studies/{study}/series/{sr.series.series_instance_uid}/metadata"
            assert client.get(url).status_code == 404, who

    # The readers agree: reader 1's read is the locked result, and only its SR is the trial admin's (issue 12).
    result = TimepointResult.objects.get(timepoint__visit__code="BL").read.sr_instance
    client.force_login(world.alice)
    [listed] = [s for s in client.get(f"{trial_root}/studies").json() if values(s, "0020000D") == [study]]
    assert "SR" in values(listed, "00080061")
    series = client.get(f"{trial_root}/studies/{study}/series", {"Modality": "SR"}).json()
    assert {values(s, "0020000E")[0] for s in series} == {result.series.series_instance_uid}
    for sr in srs:
        answer = client.get(f"{trial_root}/studies/{study}/series/{sr.series.series_instance_uid}/metadata")
        if sr != result:
            assert answer.status_code == 404
            continue
        [item] = answer.json()
        assert values(item, "00080060") == ["SR"] and values(item, "00080018") == [sr.sop_instance_uid]


def test_sites_and_qc_never_see_the_central_reads_through_the_trial_root(world, client):
    _both_sign_baseline(world)
    srs = _sr_instances()
    study = srs[0].series.study.study_instance_uid
    trial_root = "/dicomweb/trials/ALPHA"
    for who in ("cora", "quinn"):
        client.force_login(world.people[who])
        [listed] = [s for s in client.get(f"{trial_root}/studies").json() if values(s, "0020000D") == [study]]
        assert values(listed, "00080061") == ["CT"], who
        assert values(listed, "00201206") == [1], who  # the CT series only
        assert client.get(f"{trial_root}/studies", {"ModalitiesInStudy": "SR"}).json() == [], who
        assert client.get(f"{trial_root}/studies/{study}/series", {"Modality": "SR"}).json() == [], who
        for sr in srs:
            base = f"{trial_root}/studies/{study}/series/{sr.series.series_instance_uid}"
            assert client.get(f"{base}/metadata").status_code == 404, who
            assert client.get(f"{base}/instances/{sr.sop_instance_uid}/metadata").status_code == 404, who


def test_a_design_that_hides_visit_labels_shows_only_the_visits_order(world, client):
    read_design_set(actor=world.alice, trial=world.trial, show_visit_label=False)
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl))
    client.force_login(world.rhea)
    for page in (
        client.get("/reads/").content.decode(),
        client.get(f"/reads/tasks/{task_of(world.rhea, 'W6').pk}/").content.decode(),
    ):
        assert "Week 6" not in page and "Baseline" not in page.replace("Baseline read", "")
    page = client.get(f"/reads/tasks/{task_of(world.rhea, 'W6').pk}/").content.decode()
    assert "Current visit (visit 2)" in page and "Visit 1" in page


def test_the_signed_list_shows_the_latest_signed_first(world, client):
    """The "Signed" list was in the to-do order (due date, or the reader's shuffle): a reader looking for what
    they just signed found it anywhere in a list that only grows. The latest signature comes first."""
    ready(world, "BL")
    ready(world, "BL", subject=BUSAN)
    first = task_of(world.rhea, "BL", BUSAN)
    save_and_sign(world.rhea, first, baseline_content(first))
    second = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, second, baseline_content(second))
    # Whatever the to-do order says, the one signed last is listed first.
    ReadTask.objects.filter(pk=second.pk).update(due_date=first.due_date + timedelta(days=30))
    client.force_login(world.rhea)
    html = client.get("/reads/").content.decode()
    done = html.split('id="done-heading"', 1)[1]
    assert [int(pk) for pk in re.findall(r'data-task="(\d+)"', done)] == [second.pk, first.pk]
