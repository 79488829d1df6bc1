"""Read tasks: created when QC passes a timepoint, two balanced readers per subject, follow-ups in order,
and a read-task DICOMweb root that shows a reader only their case, blinded."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pydicom
import pytest

from ctims.exceptions import InvalidState
from reads.models import ReaderAssignment, ReadTask
from reads.services import case_label, read_design_set, read_tasks_create
from tests.conftest import make_user, upload_files
from trials import qc_services, services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Role, Timepoint


def ready(world, subject_code: str, visit: str, *, day: int = 0, seed: str = "") -> Timepoint:
    files = synthesize_ct_series(
        real_ct_template(large=False),
        slices=4,
        seed=seed or f"{subject_code}/{visit}",
        study_date=date(2026, 3, 2) + timedelta(days=day),
    )
    coordinator = world.cora if "SEO" in subject_code else world.bruno
    timepoint = upload_files(coordinator, subject_code, files, visit)
    return qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))


def test_passing_qc_creates_a_task_for_each_of_two_readers(world):
    ready(world, "ALPHA-SEO-001", "BL")
    tasks = list(ReadTask.objects.select_related("assignment__reader"))
    assert sorted(t.assignment.reader.email for t in tasks) == ["ravi@example.org", "rhea@example.org"]
    assert {t.state for t in tasks} == {"open"} and {t.assignment.slot for t in tasks} == {1, 2}
    assert all(t.assignment.reader.has_perm("reads.read_task", t) for t in tasks)
    assert not world.ravi.has_perm("reads.read_task", next(t for t in tasks if t.assignment.reader == world.rhea))
    assert Timepoint.objects.get(subject__code="ALPHA-SEO-001", visit__code="BL").state == "in_read"


def test_readers_are_balanced_across_subjects(world):
    carl = make_user("carl")
    services.membership_grant(actor=world.alice, trial=world.trial, user=carl, role=Role.READER)
    for code in ("ALPHA-SEO-001", "ALPHA-BUS-001", "ALPHA-SEO-002"):
        ready(world, code, "BL")
    load = {
        u: ReaderAssignment.objects.filter(reader__email=u).count()
        for u in ("rhea@example.org", "ravi@example.org", "carl@example.org")
    }
    assert sorted(load.values()) == [2, 2, 2]


def test_a_subject_keeps_its_readers_and_a_follow_up_waits_for_the_baseline(world):
    ready(world, "ALPHA-SEO-001", "BL")
    readers = set(ReaderAssignment.objects.values_list("reader__email", flat=True))
    ready(world, "ALPHA-SEO-001", "W6", day=42, seed="w6")
    follow_ups = ReadTask.objects.filter(timepoint__visit__code="W6")
    assert set(follow_ups.values_list("assignment__reader__email", flat=True)) == readers
    assert set(follow_ups.values_list("state", flat=True)) == {"waiting"}


def test_creating_tasks_twice_creates_nothing_more(world):
    tp = ready(world, "ALPHA-SEO-001", "BL")
    assert len(read_tasks_create(timepoint=tp)) == 2 and ReadTask.objects.count() == 2


def test_a_double_read_needs_two_readers(world):
    from trials.models import Membership

    services.membership_revoke(actor=world.alice, membership=Membership.objects.get(user=world.ravi, trial=world.trial))
    with pytest.raises(InvalidState, match="2 readers"):
        ready(world, "ALPHA-SEO-001", "BL")


def test_the_case_label_reveals_neither_site_nor_code(world):
    label = case_label(world.subjects["ALPHA-SEO-001"])
    assert label.startswith("C-") and "SEO" not in label and "001" not in label
    assert label != case_label(world.subjects["ALPHA-SEO-002"])


def _task(world, reader):
    return ReadTask.objects.get(assignment__reader=reader, timepoint__visit__code="BL")


def test_the_task_root_shows_the_reader_their_case_blinded(world, client):
    ready(world, "ALPHA-SEO-001", "BL")
    task = _task(world, world.rhea)
    root = f"/dicomweb/tasks/{task.pk}"
    client.force_login(world.rhea)
    [study] = client.get(f"{root}/studies").json()
    assert study["00100020"]["Value"] == [task.assignment.case_label]
    assert "00080020" not in study  # no study date
    study_uid = study["0020000D"]["Value"][0]
    metadata = client.get(f"{root}/studies/{study_uid}/metadata").json()
    text = str(metadata)
    assert "ALPHA-SEO-001" not in text and "SEO" not in text
    assert all(element.get("vr") not in ("DA", "DT", "TM") for item in metadata for element in item.values())
    instance = Instance.objects.filter(series__study__study_instance_uid=study_uid).first()
    frame = client.get(
        f"{root}/studies/{study_uid}/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}/frames/1",
        HTTP_ACCEPT='multipart/related; type="application/octet-stream"; transfer-syntax=*',
    )
    assert frame.status_code == 200
    whole = client.get(
        f"{root}/studies/{study_uid}/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    # The Part 10 file a reader gets is rebuilt with what the metadata shows: the case label, no date.
    assert whole.status_code == 200
    part = whole.content.split(b"\r\n\r\n", 1)[1]
    ds = pydicom.dcmread(io.BytesIO(part))
    assert ds.PatientID == task.assignment.case_label and "PixelData" in ds
    assert not [e.keyword for e in ds.iterall() if e.VR in ("DA", "DT", "TM")]


@pytest.mark.parametrize("who", ["ravi", "quinn", "alice", "cora", "sam", "otto"])
def test_no_one_else_reaches_a_readers_task_root(world, client, who):
    ready(world, "ALPHA-SEO-001", "BL")
    task = _task(world, world.rhea)
    client.force_login(world.people[who])
    assert client.get(f"/dicomweb/tasks/{task.pk}/studies").status_code == 404


def test_the_trial_root_still_gives_readers_nothing(world, client):
    ready(world, "ALPHA-SEO-001", "BL")
    client.force_login(world.rhea)
    assert client.get("/dicomweb/trials/ALPHA/studies").status_code == 404


def test_a_bad_read_design_is_refused_with_the_field_named(world):
    from ctims.exceptions import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        read_design_set(actor=world.alice, trial=world.trial, paradigm="triple")
    assert "paradigm" in info.value.fields


def _open_baselines(world, n: int) -> list[ReadTask]:
    """`n` new subjects, each with an open baseline task for rhea (made directly: no images are needed to list
    them)."""
    from reads.models import ReadDesign
    from reads.services import _task_new, readers_assign

    design = ReadDesign.objects.get(trial=world.trial)
    ReadDesign.objects.filter(pk=design.pk).update(show_visit_label=False)  # the labels counted, per visit
    design.refresh_from_db()
    tasks = []
    for _ in range(n):
        subject = services.subject_enroll(actor=world.alice, site=world.seo)
        mine = next(a for a in readers_assign(subject=subject, design=design) if a.reader == world.rhea)
        tasks.append(_task_new(mine, subject.timepoints.get(visit__code="BL"), design))
    return tasks


def _worklist(client, params=None) -> tuple[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get("/reads/", params or {})
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/reads/", params or {})
    return response.content.decode(), len(queries)


def test_my_reads_pages_each_list_by_its_own_parameter_and_counts_the_whole_list(world, client, monkeypatch):
    import re

    tasks = _open_baselines(world, 5)
    ReadTask.objects.filter(pk__in=[t.pk for t in tasks[:3]]).update(state=ReadTask.State.SIGNED)
    monkeypatch.setattr("reads.views.WORKLIST_PAGE_SIZE", 2, raising=False)
    client.force_login(world.rhea)
    html, _ = _worklist(client, {"done": 2})
    todo, done = html.split('id="todo-heading"', 1)[1].split('id="done-heading"', 1)
    assert '<span class="count">2</span>' in todo and '<span class="count">3</span>' in done
    assert len(re.findall(r'data-task="(\d+)"', done)) == 1  # the second page of three signed
    assert len(re.findall(r'data-task="(\d+)"', todo)) == 2
    # The signed list's links keep its own page; paging it keeps the to-do page, and the other way round.
    assert "?done=1" in done and "?todo" not in done
    html, _ = _worklist(client, {"done": 2, "todo": 1})
    assert "done=2&amp;todo=1" in html or "todo=1&amp;done=2" in html


def test_my_reads_asks_as_many_queries_for_a_long_list_as_for_a_short_one(world, client):
    import re

    _open_baselines(world, 2)
    client.force_login(world.rhea)
    _, short = _worklist(client)
    _open_baselines(world, 6)
    html, long = _worklist(client)
    assert len(re.findall(r'data-task="(\d+)"', html)) == 8 and "(visit 1)" in html
    assert long == short
