"""Driving reads through the services in tests: visits made ready for read, lesions drawn on stored images,
reads saved and signed."""

from __future__ import annotations

from datetime import date, timedelta

from reads import read_services
from reads.bench import drawn_line, image_ref
from reads.models import Read, ReadTask
from tests.conftest import PASSWORD, upload_files
from trials import qc_services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import Timepoint

SUBJECT = "ALPHA-SEO-001"


def ready(world, visit: str, *, day: int = 0, subject: str = SUBJECT) -> Timepoint:
    """A visit of a subject made ready for read: uploaded by its site's coordinator, passed by QC."""
    files = synthesize_ct_series(
        real_ct_template(large=False),
        slices=3,
        seed=f"{subject}/{visit}",
        study_date=date(2026, 3, 2) + timedelta(days=day),
    )
    coordinator = world.cora if "-SEO-" in subject else world.bruno
    timepoint = upload_files(coordinator, subject, files, visit)
    return qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))


def task_of(reader, visit: str, subject: str = SUBJECT) -> ReadTask:
    return ReadTask.objects.get(
        assignment__reader=reader, timepoint__visit__code=visit, timepoint__subject__code=subject, kind="read"
    )


def image(task: ReadTask, n: int = 0) -> dict:
    return image_ref(task, n)


def target(task, label, mm, *, site="10200004", status="measured", short=None, node=False):
    entry = {"label": label, "site": site, "is_node": node, "status": status, "long_mm": None, "short_mm": None}
    if status == "measured":
        on = image(task)
        entry.update(long_mm=mm, short_mm=short, long_points=drawn_line(on, mm) if mm else None, image=on)
        if short:
            entry["short_points"] = _short_axis(on, short, entry["long_points"])
    return entry


def _short_axis(on: dict, short: str, long_points) -> list[list[float]]:
    """A short axis down the rows, across the middle of the long axis (lower, at row 40, so that the short
    axis stays on the image) as a reader draws it; on its own where there is no long axis."""
    if long_points is None:
        return drawn_line(on, short, at=(120, 10), vertical=True)
    (c1, _r), (c2, _r) = long_points
    long_points[:] = [[c1, 40], [c2, 40]]
    (c, r1), (_c, r2) = drawn_line(on, short, at=(round((c1 + c2) / 2, 1), 40), vertical=True)
    half = round((r2 - r1) / 2, 1)
    return [[c, round(r1 - half, 1)], [c, round(r2 - half, 1)]]


def baseline_content(task, t1="23.0", t2="12.0"):
    return {
        "targets": [target(task, "T01", t1), target(task, "T02", t2, site="39607008")],
        "non_targets": [{"label": "NT01", "site": "3120008", "status": "present", "image": image(task, 1)}],
        "new_lesions": "none",
        "new": [],
    }


def follow_up_content(task, t1, t2, *, nt="present", new="none"):
    content = {
        "targets": [target(task, "T01", t1), target(task, "T02", t2, site="39607008")],
        "non_targets": [{"label": "NT01", "site": "3120008", "status": nt, "image": None}],
        "new_lesions": new,
        "new": [],
    }
    if new != "none":
        content["new"] = [{"label": "N01", "site": "10200004", "image": image(task, 2)}]
    return content


def save_and_sign(reader, task, content) -> Read:
    read = read_services.read_save(actor=reader, task_id=task.pk, raw=content)
    assert not read.assessment["problems"], read.assessment["problems"]
    return read_services.read_sign(
        actor=reader,
        task_id=task.pk,
        password=PASSWORD,
        meaning_confirmed=True,
        confirmed_response=read.assessment["overall_response"] or "baseline",
    )


def signed_baseline_then_week_6(world, reader=None) -> tuple[ReadTask, ReadTask]:
    """Baseline and week 6 ready for read, the reader's (rhea's) baseline signed: their two tasks."""
    reader = reader or world.rhea
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(reader, "BL")
    save_and_sign(reader, bl, baseline_content(bl))
    return bl, task_of(reader, "W6")


def readers_disagree_at_week_6(world):
    """Both readers sign baseline alike and week 6 apart (rhea PR, ravi PD): the adjudication now waiting."""
    from reads.models import Adjudication

    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    ready(world, "W6", day=42)
    for reader, (t1, t2) in ((world.rhea, ("15.0", "8.0")), (world.ravi, ("30.0", "13.0"))):
        task = task_of(reader, "W6")
        save_and_sign(reader, task, follow_up_content(task, t1, t2))
    return Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True)


def adjudicate(world, adjudication, choice: str, reason: str) -> None:
    """The adjudicator (ada) signs the read of reader `choice` ("1" or "2") as the result, saying why."""
    from reads import results

    results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=choice,
        reason=reason,
        password=PASSWORD,
        meaning_confirmed=True,
    )


def adjudicated_for_reader_1(world) -> None:
    """readers_disagree_at_week_6, then the adjudicator (ada) signs reader 1's (rhea's) week 6 as the result."""
    adjudicate(world, readers_disagree_at_week_6(world), "1", "Reader 1 measured the true long axes.")


def dciodvfy_errors(dataset, tmp_path) -> list[str]:
    """What Debian's dicom3tools `dciodvfy` calls an error in `dataset` (it must recognise the SR IOD)."""
    import shutil
    import subprocess

    assert shutil.which("dciodvfy"), "dciodvfy is missing: `make test` installs Debian's dicom3tools"
    path = tmp_path / "sr.dcm"
    dataset.save_as(path, enforce_file_format=True)
    proc = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert "Comprehensive3DSR" in lines, "dciodvfy did not recognise the IOD"
    return [line for line in lines if line.startswith("Error")]
