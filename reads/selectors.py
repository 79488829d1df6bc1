"""What the read pages show: a reader's worklist, a task's images and lesions, both reads for an adjudicator,
and the locked results for sponsors. Blinded views never carry a subject code, a site or a date."""

from __future__ import annotations

import hashlib

from django.db.models import Count, F, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ctims.models import Signature
from trials.models import Study, Timepoint, Trial

from .assessment import assessment_display, new_lesions_assessed, response_label
from .content import mm_text
from .criteria import recist11
from .models import (
    READER_SLOTS,
    Adjudication,
    Lesion,
    Read,
    ReaderAssignment,
    ReadTask,
    TimepointResult,
    evaluator_numbers_by_subject,
)
from .read_services import current_read, draft_revision, is_baseline, signed_reads_before, task_timepoints
from .results import adjudication_reads
from .services import departed, handover, held, replacements
from .sites import BY_CODE, site_options

STATUS_LABELS = {
    "measured": gettext_lazy("measured"),
    "too_small": gettext_lazy("too small to measure"),
    "disappeared": gettext_lazy("disappeared"),
    "not_evaluable": gettext_lazy("not evaluable"),
    "present": gettext_lazy("present"),
    "absent": gettext_lazy("absent"),
    "unequivocal_progression": gettext_lazy("unequivocal progression"),
}


def _order_key(task: ReadTask, randomize: bool) -> tuple:
    if randomize:
        # A stable shuffle per reader: the same reader always sees the same order, another reader another one.
        digest = hashlib.sha256(f"{task.assignment.reader_id}:{task.assignment.subject_id}".encode()).hexdigest()
        return (digest, task.timepoint.visit.order)
    return (task.due_date.isoformat(), task.pk)


def earlier_visit_count() -> Coalesce:
    """The number of the task's subject's visits before the task's own, counted in the tasks' query (to annotate
    a ReadTask queryset with): what a reader calls the visit when the design hides its label."""
    earlier = (
        Timepoint.objects.filter(
            subject_id=OuterRef("timepoint__subject_id"), visit__order__lt=OuterRef("timepoint__visit__order")
        )
        .order_by()
        .values("subject_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(earlier[:1]), 0)


def worklist(user) -> dict[str, list[dict]]:
    """The user's tasks by what can be done with them: to do, waiting, done."""
    tasks = (
        held(ReadTask.objects.filter(assignment__reader=user))
        .select_related("assignment", "timepoint__visit", "design__trial")
        # When the task was last signed: its latest read's signature, or its adjudication's.
        .annotate(signed_at=Coalesce(Max("reads__signed_at"), F("adjudication__decided_at")))
        # The visit's place in the subject's sequence, for a design that hides the visit labels (one query
        # for the whole list, not one a row).
        .annotate(place=earlier_visit_count())
    )
    rows = []
    for task in tasks:
        rows.append(
            {
                "task": task,
                "trial": task.design.trial.code,
                "case_label": task.assignment.case_label,
                "visit_label": visit_label(task, task.timepoint, place=task.place),
                "kind": task.get_kind_display(),
                "state": task.state,
                "state_label": task.get_state_display(),
                "due_date": task.due_date,
                "key": _order_key(task, task.design.randomize_order),
            }
        )
    rows.sort(key=lambda row: row["key"])
    groups = {"todo": [], "waiting": [], "done": []}
    for row in rows:
        state = row["state"]
        group = "done" if state == ReadTask.State.SIGNED else "waiting" if state == ReadTask.State.WAITING else "todo"
        groups[group].append(row)
    # What was signed last first: the list only grows, and the reader looks for what they just did.
    groups["done"].sort(key=lambda row: (row["task"].signed_at is not None, row["task"].signed_at), reverse=True)
    return groups


def visit_label(task: ReadTask, timepoint: Timepoint, *, place: int | None = None) -> str:
    """What a reader calls a visit: its label if the design shows it, else its place in the reader's sequence
    (`place`, the number of the subject's earlier visits, if the caller counted them already)."""
    if task.design.show_visit_label:
        return timepoint.visit.label
    if place is None:
        place = Timepoint.objects.filter(
            subject_id=timepoint.subject_id, visit__order__lt=timepoint.visit.order
        ).count()
    if timepoint.pk == task.timepoint_id:
        return _("Current visit (visit %(n)s)") % {"n": place + 1}
    return _("Visit %(n)s") % {"n": place + 1}


def _viewer_visit(task: ReadTask, timepoint: Timepoint, n: int) -> str:
    """The key of the `n`th of a task's visits in the viewer: its code, or only its place if labels are hidden."""
    return timepoint.visit.code if task.design.show_visit_label else f"V{n + 1}"


def viewer_context(task: ReadTask) -> dict:
    """The viewer's configuration over the task's DICOMweb root, as the trial viewer page has it."""
    timepoints = task_timepoints(task)
    studies: dict[int, list[str]] = {}
    for study in Study.objects.filter(timepoint__in=timepoints).order_by("study_instance_uid"):
        studies.setdefault(study.timepoint_id, []).append(study.study_instance_uid)
    visits = [
        {
            "visit": _viewer_visit(task, t, n),
            "label": visit_label(task, t),
            "studies": studies.get(t.pk, []),
            "current": t.pk == task.timepoint_id,
        }
        for n, t in enumerate(timepoints)
        if t.pk == task.timepoint_id or studies.get(t.pk)
    ]
    current = next(n for n, v in enumerate(visits) if v["current"])
    earlier = visits[:current]
    root = reverse("dicomweb-task-studies", kwargs={"scope_task_id": str(task.pk)}).removesuffix("/studies")
    return {
        "has_images": bool(visits[current]["studies"]),
        "compare_visits": [v for v in visits if v["studies"]],
        "default_compare": (earlier[-1] if earlier else visits[current])["visit"],
        "panes": ["left", "right"],
        "viewer_config": {"root": root, "wasmBase": static("dist/viewer/"), "timepoints": visits},
    }


def _entry_previous(entry: dict, category: str) -> dict:
    return {
        "status": entry.get("status") if category != "new" else "present",
        "long_mm": entry.get("long_mm"),
        "short_mm": entry.get("short_mm"),
    }


def _prior(entry: dict, visit: str, label: str) -> dict | None:
    """Where a lesion was recorded at an earlier visit, to draw it there read-only and jump to it: the image
    (de-identified UIDs and frame) and, for a measured target, its axes as image (column, row) points."""
    if not entry.get("image"):
        return None
    return {
        "visit": visit,
        "visit_label": label,
        "image": entry["image"],
        "long_points": entry.get("long_points"),
        "short_points": entry.get("short_points"),
        "long_mm": entry.get("long_mm"),
        "short_mm": entry.get("short_mm"),
    }


def tracked_lesions(task: ReadTask) -> list[dict]:
    """The reader's lesions followed from earlier visits, with what was last recorded of each, and where the
    reader recorded each of them in their own signed reads of the visits the viewer shows ("priors")."""
    earlier = signed_reads_before(task)
    if not earlier:
        return []
    shown = {t.pk: _viewer_visit(task, t, n) for n, t in enumerate(task_timepoints(task))}
    last: dict[str, tuple[str, dict]] = {}
    priors: dict[str, list[dict]] = {}
    for read in earlier:
        label = visit_label(task, read.task.timepoint)
        for key, category in (("targets", "target"), ("non_targets", "non_target"), ("new", "new")):
            for entry in read.content.get(key, []):
                last[entry["label"]] = (label, _entry_previous(entry, category))
                prior = _prior(entry, shown[read.task.timepoint_id], label) if read.task.timepoint_id in shown else None
                if prior:
                    priors.setdefault(entry["label"], []).append(prior)
    out = []
    for lesion in Lesion.objects.filter(assignment=task.assignment).order_by("category", "label"):
        if lesion.label not in last:
            continue
        visit, previous = last[lesion.label]
        out.append(
            {
                "label": lesion.label,
                "tracking_uid": lesion.tracking_uid,
                "category": lesion.category,
                "site": lesion.site_code,
                "site_meaning": str(BY_CODE[lesion.site_code].label) if lesion.site_code in BY_CODE else "",
                "is_node": lesion.is_node,
                "previous": {"visit": visit, **previous},
                "priors": priors.get(lesion.label, []),
            }
        )
    return out


LIMITS = {
    "max_targets": recist11.MAX_TARGETS,
    "max_per_organ": recist11.MAX_TARGETS_PER_ORGAN,
    "min_long_mm": mm_text(recist11.MIN_NON_NODAL_LONG_AXIS),
    "min_node_short_mm": mm_text(recist11.MIN_NODAL_SHORT_AXIS),
}


def read_page(task: ReadTask) -> dict:
    """Everything the read page needs: viewer, lesions, the draft and its assessment, the signature."""
    read = current_read(task)
    baseline = is_baseline(task)
    editable = task.state in (ReadTask.State.OPEN, ReadTask.State.IN_PROGRESS)
    signed = read is not None and read.state == Read.State.SIGNED and not editable
    config = {
        "task": task.pk,
        "kind": "read",
        "baseline": baseline,
        "editable": editable,
        "draft_url": reverse("read-draft", args=[task.pk]),
        "sites": site_options(),
        "tracked": [] if baseline or task.state == ReadTask.State.WAITING else tracked_lesions(task),
        "content": read.content if read else None,
        "revision": draft_revision(read),
        "assessment": assessment_display(read.assessment) if read else None,
        "limits": LIMITS,
    }
    return {
        "task": task,
        "read": read,
        "case_label": task.assignment.case_label,
        "visit_label": visit_label(task, task.timepoint),
        "read_config": config,
        "assessment": config["assessment"],
        "signed": signed,
        "signature": read.signature if signed else None,
        # The signed version an open correction would supersede (the page offers to discard the correction).
        "correcting": read.supersedes if editable and read is not None and read.supersedes_id else None,
        "waiting": task.state == ReadTask.State.WAITING,
        **viewer_context(task),
    }


def _lesion_rows(read: Read) -> list[dict]:
    rows = []
    for key in ("targets", "non_targets", "new"):
        for entry in read.content.get(key, []):
            site = BY_CODE.get(entry.get("site") or "")
            rows.append(
                {
                    "label": entry["label"],
                    "on_image": bool(entry.get("image")),
                    "site_meaning": str(site.label) if site else "",
                    "status": str(STATUS_LABELS.get(entry.get("status", "present"), "")),
                    "long_mm": entry.get("long_mm"),
                    "short_mm": entry.get("short_mm"),
                }
            )
    return rows


# The categories of a read's content, with the assessment field that answers for each.
CATEGORIES = (
    ("targets", "target", "target_response"),
    ("non_targets", "non_target", "non_target_response"),
    ("new", "new", "new_lesions"),
)


def _overlays(read: Read, slot: int, visit: str, disputed: set[str]) -> list[dict]:
    """Every lesion of a reader's read of one visit, for the adjudicator's list: a measured target is drawn
    from its points, a non-target or new lesion is shown by its image, and one the reader tied to no image (a
    non-target judged absent, a target too small to measure) is listed all the same; `disputed` names the
    categories whose response the two readers gave differently at a visit in question."""
    out = []
    for key, category, _field in CATEGORIES:
        for entry in read.content.get(key, []):
            out.append(
                {
                    "reader": slot,
                    "visit": visit,
                    "label": entry["label"],
                    "category": category,
                    "disputed": category in disputed,
                    "image": entry.get("image"),
                    "long_points": entry.get("long_points"),
                    "short_points": entry.get("short_points"),
                    "long_mm": entry.get("long_mm"),
                    "short_mm": entry.get("short_mm"),
                }
            )
    return out


def adjudication_page(task: ReadTask) -> dict:
    """Both readers' signed reads of every visit up to the one in question, side by side, with overlays."""
    adjudication = Adjudication.objects.get(task=task)
    reads = adjudication_reads(adjudication)
    in_question = set(adjudication.timepoints.values_list("pk", flat=True))
    viewer = viewer_context(task)
    rows, overlays = [], []
    for n, timepoint in enumerate(task_timepoints(task)):
        by_slot = reads.get(timepoint.pk, {})
        if not by_slot:
            continue
        label = visit_label(task, timepoint)
        readers = []
        for slot in (1, 2):
            read = by_slot.get(slot)
            a = (read.assessment or {}) if read else {}
            readers.append(
                {
                    "slot": slot,
                    "overall": response_label(a.get("overall_response")) if read else "",
                    "target": response_label(a.get("target_response")) if a.get("target_response") else "",
                    "non_target": response_label(a.get("non_target_response")) if a.get("non_target_response") else "",
                    "new_lesions": new_lesions_assessed(a),
                    "sum_mm": a.get("sum_mm"),
                    "lesions": _lesion_rows(read) if read else [],
                }
            )
        assessments = [(by_slot[slot].assessment or {}) if slot in by_slot else {} for slot in (1, 2)]
        disputed = {
            category
            for _key, category, field in CATEGORIES
            if timepoint.pk in in_question and assessments[0].get(field) != assessments[1].get(field)
        }
        for slot, read in sorted(by_slot.items()):
            overlays += _overlays(read, slot, _viewer_visit(task, timepoint, n), disputed)
        rows.append(
            {
                "visit": _viewer_visit(task, timepoint, n),
                "visit_label": label,
                "in_question": timepoint.pk in in_question,
                "readers": readers,
                "differs": readers[0]["overall"] != readers[1]["overall"],
            }
        )
    config = {
        "task": task.pk,
        "kind": "adjudication",
        "baseline": False,
        "editable": False,
        "sites": site_options(),
        "tracked": [],
        "content": None,
        "assessment": None,
        "limits": LIMITS,
        "overlays": overlays,
    }
    signed = adjudication.signature_id is not None
    return {
        "task": task,
        "adjudication": adjudication,
        "case_label": task.assignment.case_label,
        "visit_label": visit_label(task, task.timepoint),
        "rows": rows,
        "read_config": config,
        "signed": signed,
        "signature": adjudication.signature if signed else None,
        **viewer,
    }


def results_trial(*, actor, code: str) -> Trial:
    """The trial whose locked results the actor may read (sponsors and trial admins), else NotFound."""
    from ctims.exceptions import NotFound
    from trials.selectors import trial_get

    trial = trial_get(actor=actor, code=code)
    if not (actor.has_trial_perm(trial, "view_results") or actor.has_trial_perm(trial, "manage_trial")):
        raise NotFound(_("No such trial."))
    return trial


def trial_evaluator_numbers(trial: Trial) -> dict[int, int]:
    """{reader assignment id: evaluator number} of every reader of the trial's cases: "Reader 3" is the reader who
    took a case over from one retired from it, as in the sponsor's transfer (`ReaderAssignment.evaluator_number`)."""
    return evaluator_numbers_by_subject(ReaderAssignment.objects.filter(subject__trial=trial, slot__in=READER_SLOTS))[1]


def adjudicated_visits(timepoint_ids) -> set[int]:
    """Of these visits, those an adjudicator decided: the readers disagreed on them, so their first result was
    the adjudication's. A visit locked by the readers' agreement whose result an adjudication of a later visit
    replaced (or confirmed) was not adjudicated: reader quality counts it as agreed, and so do the results."""
    first = TimepointResult.history.filter(timepoint_id__in=timepoint_ids, supersedes__isnull=True)
    return set(first.filter(source=TimepointResult.Source.ADJUDICATION).values_list("timepoint_id", flat=True))


def source_label(result: TimepointResult, adjudicated: set[int]) -> str:
    """How a locked result was decided, in words: a visit that follows a later visit's adjudication says so."""
    if result.source == TimepointResult.Source.ADJUDICATION and result.timepoint_id not in adjudicated:
        return _("Readers agreed; follows the adjudication")
    return result.get_source_display()


READ_SIGNATURE_COLUMNS = {"by": "signed_by", "at": "signed_at", "meaning": "signature_meaning"}
ADJUDICATION_SIGNATURE_COLUMNS = {"by": "adjudicated_by", "at": "adjudicated_at", "meaning": "adjudication_meaning"}


def result_rows(trial: Trial, *, results: list[TimepointResult] | None = None) -> list[dict]:
    """One row per locked result (of `results`, a page of `results_list`, if given): what the results page, its
    CSV and the API give; `reader` is the evaluator number of the reader whose read stands.

    Each row carries the signatures it stands on (21 CFR 11.50): the reader's of the read, and the adjudicator's
    where an adjudication decided the visit, each with the printed name, the moment and the meaning."""
    results = results_list(trial) if results is None else list(results)
    # Evaluator numbers are a subject's own (`evaluator_numbers_by_subject`): those of the rows' subjects.
    subjects = {r.timepoint.subject_id for r in results}
    numbers = evaluator_numbers_by_subject(
        ReaderAssignment.objects.filter(subject_id__in=subjects, slot__in=READER_SLOTS)
    )[1]
    adjudicated = adjudicated_visits([r.timepoint_id for r in results])
    rows = []
    for result in results:
        assessment = result.read.assessment or {}
        rows.append(
            {
                "result": result,
                "subject": result.timepoint.subject.code,
                "visit": result.timepoint.visit.code,
                "visit_label": result.timepoint.visit.label,
                "overall": assessment.get("overall_response") or "",
                "overall_label": response_label(assessment.get("overall_response")),
                "target": assessment.get("target_response") or "",
                "non_target": assessment.get("non_target_response") or "",
                "new_lesions": new_lesions_assessed(assessment),
                "sum_mm": assessment.get("sum_mm") or "",
                "source": result.source,
                "source_label": source_label(result, adjudicated),
                # `source` is "adjudication" for every visit whose result follows a decision (consumers rely on
                # it); this says whether the adjudicator decided this visit (the readers disagreed on it).
                "adjudicated": result.timepoint_id in adjudicated,
                "reader": numbers[result.read.task.assignment_id],
                "locked_at": result.locked_at,
                **signature_columns(result.read.signature, **READ_SIGNATURE_COLUMNS),
                **signature_columns(
                    result.adjudication.signature if result.adjudication else None, **ADJUDICATION_SIGNATURE_COLUMNS
                ),
            }
        )
    return rows


def signature_columns(signature: Signature | None, *, by: str, at: str, meaning: str) -> dict:
    """A signature's manifestation (11.50) under the given column names: the signer's printed name, the moment
    (aware, so every output states its zone) and the meaning, kept in English as it was signed; empty (the moment
    None) where nothing was signed."""
    if signature is None:
        return {by: "", at: None, meaning: ""}
    return {by: signature.signer_name, at: signature.at, meaning: signature.meaning}


def result_lesion_rows(trial: Trial) -> list[dict]:
    """One row per lesion of every locked result: the measurement table behind the responses."""
    from .models import Measurement

    numbers = trial_evaluator_numbers(trial)

    measurements = (
        Measurement.objects.filter(
            read__results__timepoint__subject__trial=trial,
            read__results__timepoint__state=Timepoint.State.LOCKED,
            read__results__superseded_by__isnull=True,  # the standing result, not one an adjudication replaced
        )
        .select_related(
            "lesion", "read__task__assignment", "read__task__timepoint__subject", "read__task__timepoint__visit"
        )
        .order_by("read__task__timepoint__subject__code", "read__task__timepoint__visit__order", "lesion__label")
    )
    return [
        {
            "subject": m.read.task.timepoint.subject.code,
            "visit": m.read.task.timepoint.visit.code,
            "reader": numbers[m.read.task.assignment_id],
            "lesion": m.lesion.label,
            "tracking_uid": m.lesion.tracking_uid,
            "category": m.lesion.category,
            "site_code": m.lesion.site_code,
            "site": m.lesion.site_meaning,
            "node": "Y" if m.lesion.is_node else "N",
            "status": m.status,
            "long_axis_mm": mm_text(m.long_axis) or "",
            "short_axis_mm": mm_text(m.short_axis) or "",
            "sop_instance_uid": m.sop_instance_uid,
        }
        for m in measurements
    ]


def result_get(*, trial: Trial, pk: int) -> TimepointResult:
    """One locked result of the trial, with its SR; NotFound otherwise."""
    from ctims.exceptions import NotFound

    result = (
        TimepointResult.objects.filter(pk=pk, timepoint__subject__trial=trial, timepoint__state=Timepoint.State.LOCKED)
        .select_related("read__sr_instance", "timepoint__subject", "timepoint__visit")
        .first()
    )
    if result is None or result.read.sr_instance is None:
        raise NotFound(_("No such result."))
    return result


def results_query(trial: Trial) -> QuerySet[TimepointResult]:
    """The trial's locked results, in the order every list of them takes (subject, visit): a queryset, so that a
    page of them (the results page, the API) is a page in the database, not a slice of them all."""
    return (
        TimepointResult.objects.filter(timepoint__subject__trial=trial, timepoint__state=Timepoint.State.LOCKED)
        .select_related(
            "timepoint__subject",
            "timepoint__visit",
            "read__task__assignment",
            "read__sr_instance",
            "read__signature",
            "sr_instance",  # an adjudication's result SR (`TimepointResult.sr`)
            "adjudication__signature",
        )
        .order_by("timepoint__subject__code", "timepoint__visit__order", "pk")
    )


def results_list(trial: Trial) -> list[TimepointResult]:
    """The trial's locked results: the only read results a sponsor ever sees."""
    return list(results_query(trial))


def departures(trial: Trial) -> list[dict]:
    """Cases whose reader or adjudicator left the role: who held them, what is open, and who may take them over."""
    rows = []
    assignments = departed(ReaderAssignment.objects.filter(subject__trial=trial, retired_at__isnull=True))
    for assignment in assignments.select_related("subject__trial", "reader").order_by("case_label", "slot"):
        plan = handover(assignment, list(assignment.tasks.exclude(state=ReadTask.State.WITHDRAWN)))
        if not plan.open:
            continue  # their work in the case is done; nothing waits for anyone
        rows.append(
            {
                "assignment": assignment,
                "subject": assignment.subject,
                "plan": plan,
                "candidates": [] if plan.waits_for_adjudication else replacements(assignment),
            }
        )
    return rows


def reading_progress(trial: Trial) -> dict:
    """The trial admin's view of reading: each subject's readers, each visit's tasks and result, and the pools."""
    from trials.models import Membership, Role

    tasks = (
        ReadTask.objects.filter(design__trial=trial)
        .select_related("assignment__reader", "timepoint__visit", "timepoint__subject")
        .order_by("timepoint__subject__code", "timepoint__visit__order", "kind", "assignment__slot")
    )
    locked = {
        r.timepoint_id: r
        for r in TimepointResult.objects.filter(timepoint__subject__trial=trial).select_related(
            "read__task__assignment"
        )
    }
    subjects: dict[int, dict] = {}
    for task in tasks:
        subject = task.timepoint.subject
        row = subjects.setdefault(
            subject.pk, {"subject": subject, "case_label": task.assignment.case_label, "visits": {}}
        )
        visit = row["visits"].setdefault(
            task.timepoint_id,
            {"timepoint": task.timepoint, "tasks": [], "result": locked.get(task.timepoint_id)},
        )
        visit["tasks"].append(task)
    load: dict[int, dict] = {}
    for task in tasks:
        counts = load.setdefault(task.assignment.reader_id, {"open": 0, "signed": 0})
        counts["signed" if task.state == ReadTask.State.SIGNED else "open"] += 1
    pools = []
    for role in (Role.READER, Role.ADJUDICATOR):
        members = Membership.objects.filter(trial=trial, role=role, user__is_active=True).select_related("user")
        pools.append(
            {
                "role": role.label,
                "people": [
                    {"user": m.user, **load.get(m.user_id, {"open": 0, "signed": 0})}
                    for m in members.order_by("user__email")
                ],
            }
        )
    return {
        "subjects": [{**row, "visits": list(row["visits"].values())} for row in subjects.values()],
        "pools": pools,
        "departures": departures(trial),
        "waiting_adjudications": Adjudication.objects.filter(
            subject__trial=trial, task__isnull=True, signature__isnull=True
        ).count(),
    }


def adjudication_endpoints(task: ReadTask) -> list[dict]:
    """Each reader's subject-level endpoints up to the adjudicated visit, side by side for the adjudicator:
    best overall response, the visit the response starts at and the visit progression dates from."""
    from .assessment import reason_display
    from .series import subject_series

    series = subject_series(task.timepoint.subject, locked_only=False, up_to_order=task.timepoint.visit.order)
    timepoints = {t.visit.code: t for t in task_timepoints(task)}

    def label(code: str | None) -> str:
        return visit_label(task, timepoints[code]) if code in timepoints else ""

    rows = []
    for slot in (1, 2):
        s = series.readers.get(slot)
        e = s.endpoints if s else None
        rows.append(
            {
                "slot": slot,
                "best_response": e.best_response.value if e else "",
                "response_start": label(e.response_start.visit) if e and e.response_start else "",
                "progression": label(e.progression.visit) if e and e.progression else "",
                "progression_confirmed_at": label(e.progression.confirmed_at)
                if e and e.progression and e.progression.back_dated
                else "",
                "reasons": [reason_display(reason) for reason in e.reasons] if e else [],
            }
        )
    return rows
