"""`manage.py bench reads`: what a reader waits for (saving a draft, signing, the worklist, the read page),
each against a baseline measured in the same run: the criteria engine alone, the SR alone, the bare query."""

from __future__ import annotations

import json
import secrets
import uuid
from io import BytesIO

import pydicom
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ctims.bench import median_ms, scratch, signed_in_client, undone
from trials import services
from trials.ingest.services import BATCH_SIZE, upload_batch_process, upload_finish, upload_open, upload_receive
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Instance, Role, Timepoint

from . import read_services, sr
from .assessment import assess_follow_up
from .content import parse_content
from .models import ReaderAssignment, ReadTask
from .services import case_label, held, read_design_set, read_tasks_create
from .sr_store import build_report

PASSWORD = secrets.token_urlsafe(16)  # the bench readers' password, for this run only


def _undone(run):
    """Run and undo: each signing run starts from the same unsigned draft."""

    def once():
        with undone():
            run()

    return once


def _world(slices: int, small: bool):
    User = get_user_model()
    tag = uuid.uuid4().hex[:8]
    admin = User.objects.create_user(f"bench-admin-{tag}@bench.invalid", None, full_name="Bench admin")
    readers = [
        User.objects.create_user(f"bench-reader{n}-{tag}@bench.invalid", PASSWORD, full_name=f"Bench Reader{n}")
        for n in (1, 2)
    ]
    trial = services.trial_create(actor=admin, code="BENCHRD", title="Bench", sponsor="Bench", protocol_number="B")
    site = services.site_create(actor=admin, trial=trial, code="S", name="Bench site", country="KR")
    services.visit_create(actor=admin, trial=trial, code="BL", label="Baseline", order=1, target_day=0)
    services.visit_create(actor=admin, trial=trial, code="W6", label="Week 6", order=2, target_day=42)
    services.membership_grant(actor=admin, trial=trial, user=admin, role=Role.SITE_COORDINATOR, sites=[site])
    for reader in readers:
        services.membership_grant(actor=admin, trial=trial, user=reader, role=Role.READER)
    read_design_set(actor=admin, trial=trial, paradigm="double")
    subject = services.subject_enroll(actor=admin, site=site)
    template = real_ct_template(large=not small)
    for n, timepoint in enumerate(subject.timepoints.order_by("visit__order")):
        timepoint_read_ready(admin, timepoint, synthesize_ct_series(template, slices=slices, seed=f"bench-reads-{n}"))
    return admin, trial, site, subject, readers


def timepoint_read_ready(admin, timepoint: Timepoint, files: list[bytes]) -> None:
    """A visit's files through the ingest pipeline, then ready for read with its read tasks (QC taken as passed)."""
    upload = upload_open(actor=admin, timepoint=timepoint)
    ids = [i.pk for i in upload_receive(upload=upload, files=files)]
    for start in range(0, len(ids), BATCH_SIZE):
        upload_batch_process(item_ids=ids[start : start + BATCH_SIZE])
    upload_finish(actor=admin, upload=upload)
    Timepoint.objects.filter(pk=timepoint.pk).update(state=Timepoint.State.READY_FOR_READ)
    read_tasks_create(timepoint=Timepoint.objects.get(pk=timepoint.pk))


def image_ref(task: ReadTask, n: int) -> dict:
    """The reference a read gives to the `n`th image of its visit (SRs aside), as the read page sends it."""
    instance = (
        Instance.objects.filter(series__study__timepoint=task.timepoint)
        .exclude(series__modality="SR")
        .select_related("series__study")
        .order_by("instance_number")[n]
    )
    return {
        "study": instance.series.study.study_instance_uid,
        "series": instance.series.series_instance_uid,
        "sop": instance.sop_instance_uid,
        "frame": 1,
    }


def drawn_line(image: dict, mm: str, *, at=(10, 10), vertical: bool = False) -> list[list[float]]:
    """Two image (column, row) points `mm` millimetres apart on `image` (an `image_ref`), as a reader would
    draw them: across the columns, or down the rows if `vertical`, at the instance's Pixel Spacing (from `at`,
    near the top left corner, so that a line up to 75 mm stays on the 128-pixel CT_small of the tests)."""
    row_spacing, column_spacing = Instance.objects.get(sop_instance_uid=image["sop"]).pixel_spacing
    col, row = at
    # A tenth of a pixel is well within the 0.1 mm a recorded length may differ from its line.
    if vertical:
        return [[col, row], [col, round(row + float(mm) / row_spacing, 1)]]
    return [[col, row], [round(col + float(mm) / column_spacing, 1), row]]


def _content(task: ReadTask, sizes: list[str]) -> dict:
    """Five targets in five organs and three non-targets, as a reader would record them."""
    sites = ["10200004", "39607008", "64033007", "23451007", "78961009"]
    targets = [
        {
            "label": f"T0{n + 1}",
            "site": site,
            "status": "measured",
            "long_mm": size,
            "long_points": drawn_line(image_ref(task, n), size, at=(10 + n, 10 + 10 * n)),
            "image": image_ref(task, n),
        }
        for n, (site, size) in enumerate(zip(sites, sizes, strict=True))
    ]
    non_targets = [
        {"label": f"NT0{n + 1}", "site": "3120008", "status": "present", "image": image_ref(task, n)} for n in range(3)
    ]
    return {"targets": targets, "non_targets": non_targets, "new_lesions": "none", "new": []}


def _many_tasks(admin, trial, site, reader, n: int) -> None:
    """`n` more subjects with a baseline task for `reader`: a long worklist."""
    design = trial.read_design
    subjects = [services.subject_enroll(actor=admin, site=site) for _ in range(n)]
    assignments = ReaderAssignment.objects.bulk_create(
        ReaderAssignment(subject=s, reader=reader, slot=1, case_label=case_label(s)) for s in subjects
    )
    today = design.tasks.first().due_date
    ReadTask.objects.bulk_create(
        ReadTask(design=design, timepoint=a.subject.timepoints.order_by("visit__order").first(), assignment=a,
                 state=ReadTask.State.OPEN, due_date=today)
        for a in assignments
    )  # fmt: skip


def bench_reads(out, *, slices: int, runs: int, small: bool, tasks: int = 500) -> None:
    with scratch("ctims-bench-reads-"):
        _run(out, slices=slices, runs=runs, small=small, tasks=tasks)


def _run(out, *, slices: int, runs: int, small: bool, tasks: int) -> None:
    admin, trial, site, _subject, (reader, _other) = _world(slices, small)
    client = signed_in_client(reader)
    bl = ReadTask.objects.get(assignment__reader=reader, timepoint__visit__code="BL")
    w6 = ReadTask.objects.get(assignment__reader=reader, timepoint__visit__code="W6")
    out.write(
        f"One subject, two visits of {slices} CT slices; 5 targets and 3 non-targets per read; "
        f"requests through Django's test client in one process ({connection.vendor}); medians of {runs} runs."
    )

    baseline = _content(bl, ["23.0", "31.5", "18.2", "12.0", "44.4"])
    read_services.read_save(actor=reader, task_id=bl.pk, raw=baseline)
    sign_baseline = _undone(
        lambda: read_services.read_sign(
            actor=reader, task_id=bl.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
        )
    )
    signing = median_ms(sign_baseline, runs)
    password = median_ms(lambda: reader.check_password(PASSWORD), runs)
    read = read_services.read_sign(
        actor=reader, task_id=bl.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
    )

    def sr_alone():
        report, evidence, _study = build_report(read, signer=read.signature)
        pydicom.dcmwrite(BytesIO(), sr.write_measurement_report(report, evidence), enforce_file_format=True)

    sr_only = median_ms(sr_alone, runs)
    out.write(
        f"  sign a baseline read:             {signing:8.1f} ms; of which the password check {password:6.1f} ms and "
        f"the SR built and encoded {sr_only:6.1f} ms"
    )

    follow_up = _content(w6, ["16.1", "22.0", "12.7", "8.4", "31.1"])
    body = json.dumps({"content": follow_up})
    url = f"/reads/tasks/{w6.pk}/draft/"
    save = median_ms(lambda: client.put(url, body, content_type="application/json"), runs)
    parsed, base = parse_content(follow_up), parse_content(baseline)
    engine = median_ms(lambda: assess_follow_up(parsed, baseline=base, history=[]), runs)
    out.write(
        f"  save a follow-up draft (PUT):     {save:8.1f} ms; the RECIST engine alone {engine:6.2f} ms "
        f"(the request is {save / engine:,.0f}x the arithmetic)"
    )

    page = median_ms(lambda: client.get(f"/reads/tasks/{w6.pk}/"), runs)
    out.write(f"  open the follow-up's read page:   {page:8.1f} ms")

    _many_tasks(admin, trial, site, reader, tasks)

    def task_query(tasks):
        return list(tasks.select_related("assignment", "timepoint__visit", "design__trial"))

    bare = median_ms(lambda: task_query(ReadTask.objects.filter(assignment__reader=reader)), runs)
    in_role = median_ms(lambda: task_query(held(ReadTask.objects.filter(assignment__reader=reader))), runs)
    worklist = median_ms(lambda: client.get("/reads/"), runs)
    with CaptureQueriesContext(connection) as queries:
        client.get("/reads/")
    out.write(
        f"  worklist of {tasks + 2} tasks:           {worklist:8.1f} ms in {len(queries)} queries; "
        f"the bare task query {bare:6.1f} ms (ratio {worklist / bare:.1f})"
    )
    out.write(
        f"  the worklist's task query with the role check (held): {in_role:6.1f} ms, "
        f"{in_role / bare:.2f}x the bare query"
    )
