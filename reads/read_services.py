"""A reader's work on a task: save the draft (assessed on every save), sign it, correct a signed read.

Signing re-checks the password, locks the read, stores the signature over the read's content and
assessment, writes the DICOM SR into the de-identified study, opens the reader's next visit and lets
`reads.results` decide whether the visit's result stands or goes to adjudication.
"""

from __future__ import annotations

import hashlib
import json
from decimal import ROUND_CEILING, Decimal

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from pydicom.uid import generate_uid

from ctims.audit import audit_record
from ctims.exceptions import InvalidState, NotFound, ValidationFailed
from ctims.models import AuditEvent
from ctims.signatures import signature_create, signature_verify, signing
from trials.ingest.store import stored_files_undone_on_error
from trials.models import Instance, Timepoint

from . import results
from .assessment import assess_baseline, assess_follow_up
from .content import Content, ContentError, drawn_length_mm, mm_text, parse_content, points_mm
from .models import Lesion, Measurement, Read, ReaderAssignment, ReadTask
from .services import held_by, may_open, signer_components
from .sr import SRError
from .sr_store import read_sr_store, sr_problem, sr_recorded

# Stored in English with the signature; shown translated beside the checkbox.
READER_MEANING = gettext_noop("I am the author of this assessment")
EDITABLE = (ReadTask.State.OPEN, ReadTask.State.IN_PROGRESS)


def is_baseline(task: ReadTask) -> bool:
    """The reader's first visit of the subject is the baseline: no read task of theirs comes before it."""
    return not ReadTask.objects.filter(
        assignment=task.assignment, kind=ReadTask.Kind.READ, timepoint__visit__order__lt=task.timepoint.visit.order
    ).exists()


def task_timepoints(task: ReadTask) -> QuerySet[Timepoint]:
    """The visits a task shows (its DICOMweb root and its pages): its own, and the subject's earlier ones if the
    design allows, as it always does for an adjudicator, who compares both reads over every visit."""
    timepoints = Timepoint.objects.filter(subject_id=task.timepoint.subject_id).select_related("visit")
    if task.kind == ReadTask.Kind.ADJUDICATION or task.design.show_prior_timepoints:
        timepoints = timepoints.filter(visit__order__lte=task.timepoint.visit.order)
    else:
        timepoints = timepoints.filter(pk=task.timepoint_id)
    return timepoints.order_by("visit__order")


def current_read(task: ReadTask) -> Read | None:
    """The task's latest version: the draft being written, or the signed read that stands."""
    return task.reads.order_by("-version").first()


def draft_revision(read: Read | None) -> str:
    """The revision of a task's read that a page shows: the read's version and a digest of its content ("" before
    the first save). A save names the revision it changes and a signature the one the reader saw, so that what
    another tab or window saved meanwhile is never overwritten or signed unseen."""
    if read is None:
        return ""
    body = json.dumps(read.content, sort_keys=True, separators=(",", ":"), default=str)
    return f"{read.version}-{hashlib.sha256(body.encode()).hexdigest()[:16]}"


def _changed_elsewhere() -> InvalidState:
    return InvalidState(
        _(
            "This read was changed in another tab or window after this page showed it, so nothing was saved or "
            "signed here. Reload the page to see the read as it is now."
        ),
        code="read_changed",
    )


def signed_reads_before(task: ReadTask) -> list[Read]:
    """The reader's signed reads of the subject's earlier visits, oldest first (the latest version of each)."""
    earlier = ReadTask.objects.filter(
        assignment=task.assignment, kind=ReadTask.Kind.READ, timepoint__visit__order__lt=task.timepoint.visit.order
    ).order_by("timepoint__visit__order")
    out = []
    for t in earlier:
        read = t.reads.filter(state=Read.State.SIGNED).order_by("-version").first()
        if read is None:
            raise InvalidState(_("An earlier visit of this case is not signed yet."))
        out.append(read)
    return out


def assess(task: ReadTask, content: Content) -> dict:
    """The assessment of `content` as this task's read: baseline, or follow-up against the reader's earlier reads."""
    if is_baseline(task):
        return assess_baseline(content, slice_thickness=_slice_thickness(task, content))
    earlier = signed_reads_before(task)
    baseline, history = earlier[0], earlier[1:]
    return assess_follow_up(
        content,
        baseline=parse_content(baseline.content),
        history=[parse_content(r.content) for r in history],
        names=[r.task.timepoint.visit.label for r in history] if task.design.show_visit_label else None,
    )


def _slice_thickness(task: ReadTask, content: Content) -> dict[str, int]:
    """The Slice Thickness (0018,0050) of each of this visit's images the targets are measured on, by SOP Instance
    UID, in tenths of a millimetre rounded up (the series' where the instance has none; left out where neither
    says): twice it is the smallest measurable non-nodal lesion on slices thicker than 5 mm."""
    sops = {e.image.sop for e in content.targets if e.image is not None}
    if not sops:
        return {}
    rows = Instance.objects.filter(sop_instance_uid__in=sops, series__study__timepoint=task.timepoint).values_list(
        "sop_instance_uid", "slice_thickness", "series__slice_thickness"
    )
    out = {}
    for sop, own, series in rows:
        thickness = own if own is not None else series
        if thickness is not None and thickness > 0:
            out[sop] = int((Decimal(str(thickness)) * 10).to_integral_value(rounding=ROUND_CEILING))
    return out


def _task_for_reader(actor, task_id: int, *, lock: bool = False) -> ReadTask:
    """The reader's task, else 404. With `lock`, the case's reader assignment is locked first, then the task:
    a reader's saves, signatures and corrections of one case follow one another, so a check over the case's
    other visits (a correction open, a later visit signed) still holds when the change commits. The order
    (assignment, task) is the one `assignment_replace` takes too."""
    tasks = held_by(actor).select_related(
        "assignment__reader", "timepoint__visit", "timepoint__subject", "design__trial"
    )
    if lock:
        assignment_id = tasks.filter(pk=task_id, kind=ReadTask.Kind.READ).values_list("assignment_id", flat=True)
        ReaderAssignment.objects.select_for_update(of=("self",)).filter(pk__in=list(assignment_id)).first()
        tasks = tasks.select_for_update(of=("self",))
    task = tasks.filter(pk=task_id, kind=ReadTask.Kind.READ).first()
    if task is None:
        raise NotFound(_("No such task."))
    return task


def _open_correction_before(task: ReadTask) -> ReadTask | None:
    """The reader's earliest earlier visit of the case with a correction started and not signed, if any: this
    visit's assessment would rest on a read that is about to change."""
    return (
        ReadTask.objects.filter(
            assignment=task.assignment,
            kind=ReadTask.Kind.READ,
            timepoint__visit__order__lt=task.timepoint.visit.order,
            state__in=EDITABLE,
            reads__state=Read.State.SIGNED,
        )
        .select_related("timepoint__visit")
        .order_by("timepoint__visit__order")
        .first()
    )


def _check_correction_allowed(task: ReadTask) -> None:
    """Refuse to correct (start or sign) the task's signed read once it can no longer change: the case went to
    another reader, the visit's result is locked or under adjudication, or a later visit of the reader is signed
    (its assessment rests on this read). Called holding the task's lock; takes the visit's (as its settling does,
    after the task's), so another reader's signature cannot lock the visit between this check and the commit."""
    task.timepoint = (
        Timepoint.objects.select_for_update(of=("self",)).select_related("visit", "subject").get(pk=task.timepoint_id)
    )
    if task.assignment.retired_at is not None:
        raise InvalidState(_("This case went to another reader; your signed reads stay on record as they are."))
    if task.timepoint.state in (Timepoint.State.LOCKED, Timepoint.State.IN_ADJUDICATION):
        raise InvalidState(_("The result of this visit is locked or under adjudication; it cannot be corrected."))
    later_signed = ReadTask.objects.filter(
        assignment=task.assignment,
        kind=ReadTask.Kind.READ,
        timepoint__visit__order__gt=task.timepoint.visit.order,
        reads__state=Read.State.SIGNED,
    ).exists()
    if later_signed:
        raise InvalidState(_("A later visit of this case is signed; this read can no longer be corrected."))


# A recorded length may differ from its drawn line by the rounding to tenths (0.05 mm) and no more than this.
DRAWN_LENGTH_TOLERANCE = Decimal("0.1")
# A line shorter than this rounds to 0.0 mm: it measures nothing.
MIN_DRAWN_LENGTH = Decimal("0.05")


def _image_problem(message: str, where: str) -> ValidationFailed:
    return ValidationFailed(message, fields={where: [message]})


def _on_image(points, instance: dict) -> bool:
    """Whether both ends of a line lie on the image: image (column, row) coordinates run from 0,0 (the top left
    corner of the first pixel) to Columns,Rows (the bottom right corner of the last; PS3.3 C.18.6.1.1)."""
    columns, rows = instance["columns"], instance["rows"]
    if columns is None or rows is None:
        return True  # not known for this instance: nothing to hold the line to
    return all(0 <= column <= columns and 0 <= row <= rows for column, row in points)


def _check_images(task: ReadTask, content: Content) -> None:
    """What a read records on images must be there to see, as the SR will show it:

    - every image a lesion refers to is an instance of this task's visit, under the study and series it
      belongs to, and the frame is one the instance has; a new lesion names the image it is seen on;
    - every length recorded for a target has its drawn line, and every line drawn its length, on one of those
      images, inside the image, not of zero length, and as long as the recorded length at the image's Pixel
      Spacing (within 0.1 mm): the size a reader signs is the size the SR's SCOORD shows.
    """
    for n, entry in enumerate(content.new):
        if entry.image is None:
            raise _image_problem(
                _('Show an image new lesion %(label)s is seen on and choose "Use the image shown".')
                % {"label": entry.label},
                f"new[{n}].image",
            )
    for n, entry in enumerate(content.targets):
        for axis, name, recorded, points in (
            ("long", _("long axis"), entry.long_axis, entry.long_points),
            ("short", _("short axis"), entry.short_axis, entry.short_points),
        ):
            if recorded is not None and (points is None or entry.image is None):
                raise _image_problem(
                    _(
                        "The %(axis)s of %(label)s is recorded as %(recorded)s mm but no line is drawn for it on an "
                        "image: measure it on the image."
                    )
                    % {"axis": name, "label": entry.label, "recorded": mm_text(recorded)},
                    f"targets[{n}].{axis}_mm",
                )
            if points is not None and recorded is None:
                raise _image_problem(
                    _(
                        "A line is drawn for the %(axis)s of %(label)s but no length is recorded for it: measure it "
                        "again on the image."
                    )
                    % {"axis": name, "label": entry.label},
                    f"targets[{n}].{axis}_mm",
                )
            if points is not None and entry.image is None:
                raise _image_problem(
                    _("The line drawn for the %(axis)s of %(label)s names no image: measure it again on the image.")
                    % {"axis": name, "label": entry.label},
                    f"targets[{n}].image",
                )
    refs = {image.sop for image in content.images()}
    if not refs:
        return
    instances = {
        row["sop_instance_uid"]: row
        for row in Instance.objects.filter(sop_instance_uid__in=refs, series__study__timepoint=task.timepoint).values(
            "sop_instance_uid",
            "pixel_spacing",
            "rows",
            "columns",
            "number_of_frames",
            series_uid=F("series__series_instance_uid"),
            study_uid=F("series__study__study_instance_uid"),
        )
    }
    if refs - set(instances):
        raise ValidationFailed(
            _("A measurement refers to an image that is not part of this visit."),
            fields={"image": [_("Measure on this visit's images.")]},
        )
    for key, entries in (("targets", content.targets), ("non_targets", content.non_targets), ("new", content.new)):
        for n, entry in enumerate(entries):
            image = entry.image
            if image is None:
                continue
            instance = instances[image.sop]
            if (image.study, image.series) != (instance["study_uid"], instance["series_uid"]):
                raise _image_problem(
                    _(
                        "The image of %(label)s is named with a study or series it is not part of: choose the image "
                        "again."
                    )
                    % {"label": entry.label},
                    f"{key}[{n}].image",
                )
            if image.frame > instance["number_of_frames"]:
                raise _image_problem(
                    _("The image of %(label)s has %(frames)s frame(s), not a frame %(frame)s: choose the frame again.")
                    % {"label": entry.label, "frames": instance["number_of_frames"], "frame": image.frame},
                    f"{key}[{n}].image",
                )
    for n, entry in enumerate(content.targets):
        for axis, name, recorded, points in (
            ("long", _("long axis"), entry.long_axis, entry.long_points),
            ("short", _("short axis"), entry.short_axis, entry.short_points),
        ):
            if points is None:
                continue
            where = f"targets[{n}].{axis}_mm"
            instance = instances[entry.image.sop]
            if not _on_image(points, instance):
                raise _image_problem(
                    _(
                        "The line drawn for the %(axis)s of %(label)s goes outside the image: measure it again on "
                        "the image."
                    )
                    % {"axis": name, "label": entry.label},
                    where,
                )
            pixel_spacing = instance["pixel_spacing"]
            if not pixel_spacing or len(pixel_spacing) != 2:
                raise ValidationFailed(
                    _("The image %(label)s is measured on has no pixel spacing, so no length can be measured on it.")
                    % {"label": entry.label},
                    fields={where: [_("Measure on an image with a pixel spacing.")]},
                )
            drawn = drawn_length_mm(points, pixel_spacing)
            if recorded == 0 or drawn < MIN_DRAWN_LENGTH:
                raise _image_problem(
                    _(
                        "The %(axis)s of %(label)s is a line of no length: a lesion no longer seen has the status "
                        '"Disappeared", one too small to measure "Too small to measure".'
                    )
                    % {"axis": name, "label": entry.label},
                    where,
                )
            if abs(drawn - Decimal(recorded) / 10) > DRAWN_LENGTH_TOLERANCE:
                message = _(
                    "The %(axis)s of %(label)s is recorded as %(recorded)s mm but the line drawn for it is "
                    "%(drawn)s mm long at the image's pixel spacing: measure it again."
                ) % {"axis": name, "label": entry.label, "recorded": mm_text(recorded), "drawn": f"{drawn:.1f}"}
                raise ValidationFailed(message, fields={where: [message]})
        if entry.long_points is not None and entry.short_points is not None:
            pixel_spacing = instances[entry.image.sop]["pixel_spacing"]
            for drawn_right, refusal in (
                (
                    _at_right_angles,
                    _(
                        "The short axis of %(label)s is not drawn at a right angle to its long axis: measure it "
                        "again with the long and short axis tool."
                    ),
                ),
                (
                    short_axis_crosses,
                    _(
                        "The short axis of %(label)s does not cross its long axis: the short axis is measured "
                        "across the lesion, through its long axis. Measure it again with the long and short axis "
                        "tool."
                    ),
                ),
            ):
                if not drawn_right(entry.long_points, entry.short_points, pixel_spacing):
                    message = refusal % {"label": entry.label}
                    raise ValidationFailed(message, fields={f"targets[{n}].short_mm": [message]})


def short_axis_crosses(long_points, short_points, pixel_spacing) -> bool:
    """Whether a short axis meets its long axis (RECIST 1.1 section 3.1.1: the longest diameter perpendicular to
    the long axis, across the same lesion), in millimetres at the image's Pixel Spacing (rows first).

    The segments may cross or touch, with a gap of one pixel at most, and never more than 1 mm: less than a
    pixel cannot be seen on the image, covers the tenth of a pixel the read page rounds each end to (and a client
    that rounds to whole pixels), while a millimetre off on a coarse image is a line drawn beside the lesion's
    long axis. Touching counts: the viewer's tool lets the long axis be shortened until its end meets the short.
    """
    (a, b), (c, d) = points_mm(long_points, pixel_spacing), points_mm(short_points, pixel_spacing)
    pixel = max(Decimal(str(v)) for v in pixel_spacing)
    tolerance = max(min(pixel, Decimal(1)), pixel * Decimal("0.15"))
    return _segment_gap(a, b, c, d) <= tolerance


def _segment_gap(a, b, c, d) -> Decimal:
    """The shortest distance between the segments ab and cd of the plane: 0 where they cross or touch."""

    def side(p, q, r):  # > 0 when r lies left of pq, < 0 right, 0 on its line
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    if side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
        return Decimal(0)

    def to_segment(p, q, r):  # from r to the nearest point of pq
        dx, dy = q[0] - p[0], q[1] - p[1]
        length2 = dx * dx + dy * dy
        t = ((r[0] - p[0]) * dx + (r[1] - p[1]) * dy) / length2 if length2 else Decimal(0)
        t = min(max(t, Decimal(0)), Decimal(1))
        ex, ey = p[0] + t * dx - r[0], p[1] + t * dy - r[1]
        return (ex * ex + ey * ey).sqrt()

    return min(to_segment(a, b, c), to_segment(a, b, d), to_segment(c, d, a), to_segment(c, d, b))


def _at_right_angles(long_points, short_points, pixel_spacing) -> bool:
    """Whether a short axis is drawn perpendicular to its long axis, in millimetres at the image's Pixel Spacing
    (rows first): within about 6 degrees, or within the tenth of a pixel the read page rounds each end to."""

    def vector(points):
        (x1, y1), (x2, y2) = points_mm(points, pixel_spacing)
        return x2 - x1, y2 - y1

    (ax, ay), (bx, by) = vector(long_points), vector(short_points)
    long_mm, short_mm = (ax * ax + ay * ay).sqrt(), (bx * bx + by * by).sqrt()
    if not long_mm or not short_mm:
        return True  # a line of no length is refused on its own
    along = abs(ax * bx + ay * by) / long_mm  # the short axis's extent along the long one, in mm
    return along <= short_mm / 10 or along <= Decimal("0.15") * max(Decimal(str(v)) for v in pixel_spacing)


def read_save(*, actor, task_id: int, raw, based_on: str | None = None) -> Read:
    """Save the reader's draft and assess it; the first save starts the task.

    `based_on` is the revision (`draft_revision`) the page's content was edited from: if the draft has changed
    since (another tab or window saved it), the save is refused (409, code read_changed) unless it changes
    nothing. None (services and tests that hold the draft themselves) skips the check.
    """
    with transaction.atomic():
        task = _task_for_reader(actor, task_id, lock=True)
        if task.state not in EDITABLE:
            raise InvalidState(
                _("This read is signed; start a correction to change it.")
                if task.state == ReadTask.State.SIGNED
                else _("This visit opens once the previous visit is signed.")
            )
        try:
            content = parse_content(raw)
        except ContentError as exc:
            raise ValidationFailed(_("The read could not be saved."), fields={k: [v] for k, v in exc.errors.items()})
        _check_images(task, content)
        read = current_read(task)
        if read is not None and read.state != Read.State.DRAFT:
            read = None
        stale = based_on is not None and based_on != draft_revision(read)
        if stale and (read is None or read.content != content.as_json()):
            raise _changed_elsewhere()
        before = read.content if read is not None else None
        if read is None:
            read = Read(task=task, version=1)
        read.content = content.as_json()
        read.assessment = assess(task, content)
        read.save()
        changes = content_changes(before, read.content)
        if changes:
            audit_record(
                actor=actor,
                action="read.save",
                obj=read,
                trial_id=task.design.trial_id,
                summary={
                    "case": task.assignment.case_label,
                    "visit": task.timepoint.visit.code,
                    "version": read.version,
                }
                | changes,
            )
        if task.state == ReadTask.State.OPEN:
            task.state = ReadTask.State.IN_PROGRESS
            task.save(update_fields=["state"])
    return read


# What the audit trail calls each field of a lesion's entry (names of their own: the audit page translates them,
# and no other app's key of the same name, a trial "site" say, is taken for one); `image` as its SOP Instance UID
# and frame.
AUDITED_FIELDS = {
    "category": "lesion_category",
    "site": "finding_site",
    "is_node": "lymph_node",
    "status": "lesion_status",
    "long_mm": "long_axis_mm",
    "short_mm": "short_axis_mm",
    "long_points": "long_axis_line",
    "short_points": "short_axis_line",
    "image": "measured_on",
}


def _by_label(content: dict | None) -> dict[str, dict]:
    """A read's content (`Content.as_json`) as {label: its entry's fields under their audited names}."""
    out = {}
    for key, category in (("targets", "target"), ("non_targets", "non_target"), ("new", "new")):
        for entry in (content or {}).get(key, []):
            fields = {"category": category} | {k: v for k, v in entry.items() if k != "label"}
            if fields.get("image"):
                fields["image"] = f"{fields['image']['sop']}/{fields['image'].get('frame', 1)}"
            out[entry["label"]] = {AUDITED_FIELDS.get(k, k): v for k, v in fields.items()}
    return out


def content_changes(before: dict | None, after: dict) -> dict:
    """What a save changed in a read's draft, for its audit event (21 CFR 11.10(e)): under "lesions", each lesion
    added, changed or removed, by label, with each field that changed as [before, after] (None where the lesion
    was not there); under "new_lesions", the reader's call on new lesions as [before, after] if it changed.
    Empty if the save changed nothing (a save repeated, a tab that sent what was there): no event then, so the
    trail holds one event per save that changed the read, and each says exactly what changed."""
    old, new = _by_label(before), _by_label(after)
    lesions = {}
    for label in sorted(set(old) | set(new)):
        was, now = old.get(label, {}), new.get(label, {})
        fields = {
            key: [was.get(key), now.get(key)] for key in sorted(set(was) | set(now)) if was.get(key) != now.get(key)
        }
        if fields:
            lesions[label] = fields
    out: dict = {"lesions": lesions} if lesions else {}
    call_before = (before or {}).get("new_lesions")
    if call_before != after.get("new_lesions"):
        out["new_lesions"] = [call_before, after.get("new_lesions")]
    return out


def ready_to_sign(read: Read) -> bool:
    return read.state == Read.State.DRAFT and bool(read.assessment) and not read.assessment.get("problems")


def signed_content(read: Read) -> dict:
    """What a reader's signature covers: the read, its assessment and what it is a read of."""
    task = read.task
    return {
        "read": read.pk,
        "version": read.version,
        "supersedes": read.supersedes_id,
        "task": task.pk,
        "case": task.assignment.case_label,
        "visit": task.timepoint.visit.code,
        "content": read.content,
        "assessment": read.assessment,
    }


def read_signature_check(signature) -> str:
    """The problem, if any, with the read a reader's signature names (21 CFR 11.70): it must still hold that
    signature and still hash to what was signed. "" if it does."""
    read = (
        Read.objects.select_related("task__assignment", "task__timepoint__visit", "sr_instance")
        .filter(pk=int(signature.object_id))
        .first()
    )
    if read is None:
        return "the read it signs is gone"
    if read.signature_id != signature.pk:
        return "the read it names does not hold it"
    if not signature_verify(signature, signed_content(read)):
        return "the read was changed after it was signed"
    if read.sr_instance is None:
        return ""
    event = AuditEvent.objects.filter(action="read.sign", object_type="reads.read", object_id=str(read.pk)).first()
    return sr_problem(read.sr_instance, event.summary if event is not None else {})


def _record_lesions(read: Read, content: Content) -> None:
    """Create the lesions this read introduces (with their tracking UIDs) and one measurement per lesion."""
    assignment = read.task.assignment
    known = {lesion.label: lesion for lesion in assignment.lesions.select_related("first_read")}
    rows = []
    for entry in content.entries():
        lesion = known.get(entry.label)
        if lesion is not None and lesion.first_read.task_id == read.task_id:
            # A correction of the read that introduced the lesion may rename its site.
            changed = (lesion.site_code, lesion.is_node) != (entry.site, entry.is_node)
            if changed:
                lesion.site_code, lesion.site_meaning, lesion.is_node = (
                    entry.site,
                    _site_meaning(entry.site),
                    entry.is_node,
                )
                lesion.save(update_fields=["site_code", "site_meaning", "is_node"])
        if lesion is None:
            lesion = Lesion.objects.create(
                assignment=assignment,
                label=entry.label,
                tracking_uid=generate_uid(prefix=None),
                category=entry.category,
                site_code=entry.site,
                site_meaning=_site_meaning(entry.site),
                is_node=entry.is_node,
                first_read=read,
            )
            known[entry.label] = lesion
        image = entry.image
        rows.append(
            Measurement(
                read=read,
                lesion=lesion,
                status=entry.status,
                long_axis=entry.long_axis,
                short_axis=entry.short_axis,
                long_points=[list(p) for p in entry.long_points] if entry.long_points else None,
                short_points=[list(p) for p in entry.short_points] if entry.short_points else None,
                study_uid=image.study if image else "",
                series_uid=image.series if image else "",
                sop_instance_uid=image.sop if image else "",
                frame=image.frame if image else None,
            )
        )
    Measurement.objects.bulk_create(rows)


def _site_meaning(code: str) -> str:
    from .sites import BY_CODE

    return BY_CODE[code].meaning


def _move(task: ReadTask, state: str, *, actor, action: str, obj, **summary) -> None:
    """Put the task in `state` and record why, naming its case and visit (never the subject) beside `summary`."""
    task.state = state
    task.save(update_fields=["state"])
    audit_record(
        actor=actor,
        action=action,
        obj=obj,
        trial_id=task.design.trial_id,
        summary={"case": task.assignment.case_label, "visit": task.timepoint.visit.code, **summary},
    )


def _open_next(task: ReadTask) -> None:
    """Open the reader's waiting visits whose earlier visits are now all signed."""
    waiting = ReadTask.objects.filter(
        assignment=task.assignment, kind=ReadTask.Kind.READ, state=ReadTask.State.WAITING
    ).select_related("timepoint__visit__trial")
    for later in waiting.order_by("timepoint__visit__order"):
        if not may_open(task.assignment, later.timepoint):
            break
        _move(later, ReadTask.State.OPEN, actor=None, action="read_task.open", obj=later)


def read_sign(
    *,
    actor,
    task_id: int,
    password: str,
    meaning_confirmed: bool,
    confirmed_response: str,
    request=None,
    second_factor: str = "",
    user_id: str = "",
    revision: str | None = None,
) -> Read:
    """Sign the task's draft: the reader confirms the computed response and the meaning, and re-enters the password.

    `revision` is the draft's revision the reader saw (`draft_revision`); a draft changed since (in another tab or
    window) is not signed. None (services and tests) skips the check.

    A wrong password is recorded by `signing` (with the request, it counts towards the log-in lock-out). If
    anything fails after the SR was written, the SR file goes with the rolled-back rows.
    """
    with signing(user=actor, request=request), stored_files_undone_on_error(), transaction.atomic():
        task = _task_for_reader(actor, task_id, lock=True)
        read = current_read(task)
        if read is None or read.state != Read.State.DRAFT or task.state not in EDITABLE:
            raise InvalidState(_("There is no unsigned read to sign."))
        if revision is not None and revision != draft_revision(read):
            raise _changed_elsewhere()
        if read.supersedes_id is not None:
            _check_correction_allowed(task)  # again: what allowed it to start may have changed since
        pending = _open_correction_before(task)
        if pending is not None:
            from .selectors import visit_label  # selectors reads through this module

            raise InvalidState(
                _(
                    "Your correction of %(visit)s is not signed yet, and this visit is assessed against it: sign "
                    "the correction of %(visit)s first, then sign this visit again."
                )
                % {"visit": visit_label(task, pending.timepoint)}
            )
        content = parse_content(read.content)
        _check_images(task, content)  # again: a draft saved before a check was added, or its images since changed
        read.assessment = assess(task, content)  # again: an earlier visit may have been corrected since
        if read.assessment["problems"]:
            raise ValidationFailed(
                _("The read is not complete: %(problem)s") % {"problem": read.assessment["problems"][0]["message"]}
            )
        shown = read.assessment["overall_response"] or "baseline"
        if confirmed_response != shown:
            raise ValidationFailed(
                _("The computed response changed since it was shown; review it and sign again."),
                fields={"confirmed_response": [_("Confirm the response shown.")]},
            )
        if not meaning_confirmed:
            raise ValidationFailed(
                _("Confirm that you are the author of this assessment."), fields={"meaning": [_("Required.")]}
            )
        read.save(update_fields=["assessment", "updated_at"])
        signature = signature_create(
            user=actor,
            meaning=READER_MEANING,
            obj=read,
            content=signed_content(read),
            trial_id=task.design.trial_id,
            second_factor_required=task.design.trial.two_factor_at_signing,
            **signer_components(request=request, password=password, second_factor=second_factor, user_id=user_id),
        )
        _record_lesions(read, content)
        try:
            read.sr_instance = read_sr_store(read, signer=signature)
        except SRError as exc:
            raise InvalidState(
                _("The structured report could not be written, so nothing was signed: %(why)s") % {"why": exc}
            ) from None
        read.state = Read.State.SIGNED
        read.signature = signature
        read.signed_at = signature.at
        read.overall_response = read.assessment["overall_response"] or ""
        read.save()
        _move(
            task,
            ReadTask.State.SIGNED,
            actor=actor,
            action="read.sign",
            obj=read,
            version=read.version,
            overall_response=read.overall_response or "baseline",
            signature=signature.pk,
            **sr_recorded(read.sr_instance),
        )
        _open_next(task)
        results.timepoint_settle(task.timepoint)
    return read


def read_correct(*, actor, task_id: int) -> Read:
    """Start a correction of a signed read: a new draft version that will supersede it once signed.

    Refused once the visit's result is locked or under adjudication, or once a later visit of the
    reader is signed (its assessment rests on this one); asked again when the correction is signed. While it
    is open, the reader's later visits cannot be signed.
    """
    with transaction.atomic():
        task = _task_for_reader(actor, task_id, lock=True)
        read = current_read(task)
        if read is None or read.state != Read.State.SIGNED:
            raise InvalidState(_("Only a signed read can be corrected."))
        _check_correction_allowed(task)
        correction = Read.objects.create(
            task=task,
            version=read.version + 1,
            supersedes=read,
            content=read.content,
            assessment=read.assessment,
        )
        _move(task, ReadTask.State.IN_PROGRESS, actor=actor, action="read.correct", obj=correction, supersedes=read.pk)
    return correction


def read_correction_discard(*, actor, task_id: int) -> Read:
    """Discard the open correction of a signed read (started by mistake, or no longer wanted): its draft goes, and
    the signed version it would have superseded is the read again, as if no correction had been started. The
    draft was never signed, so nothing on record changes; the trail keeps that it was started and discarded."""
    with transaction.atomic():
        task = _task_for_reader(actor, task_id, lock=True)
        draft = current_read(task)
        if draft is None or draft.state != Read.State.DRAFT or draft.supersedes_id is None:
            raise InvalidState(_("This read has no correction open: there is nothing to discard."))
        signed = draft.supersedes
        version = draft.version
        draft.delete()
        _move(
            task,
            ReadTask.State.SIGNED,
            actor=actor,
            action="read.correction_discard",
            obj=signed,
            version=version,
            supersedes=signed.pk,
        )
    return signed


def require_task(actor, task_id: int) -> ReadTask:
    """A task the actor holds (`held_by`), else 404: nobody learns that another's task, or a waiting one, exists."""
    task = (
        held_by(actor)
        .select_related("assignment", "timepoint__visit", "timepoint__subject", "design__trial")
        .filter(pk=task_id)
        .first()
    )
    if task is None:
        raise NotFound(_("No such task."))
    return task
