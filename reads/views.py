"""The reader's, the adjudicator's and the sponsor's pages. Every task page answers 404 to anyone but the
task's holder, so nobody learns that another reader's task exists."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from ctims import safe_csv
from ctims.api_errors import error_body
from ctims.exceptions import CTIMSError, InvalidState, NotFound, NotPermitted, ValidationFailed
from ctims.models import User
from ctims.pagination import page_of
from ctims.signatures import user_id_asked
from trials.access import Actor
from trials.forms import add_service_errors
from trials.ingest.store import image_storage
from trials.models import ApiToken
from trials.views._common import _posted, _trial, _trial_page, scoped

from . import read_services, results, selectors
from .assessment import assessment_display
from .forms import ReadDesignForm
from .models import ReadDesign, ReadTask
from .services import DESIGN_FIELDS, assignment_replace, design_fixed, read_design_set


def _task(request, pk: int) -> ReadTask:
    with scoped():
        return read_services.require_task(request.user, pk)


@login_required
def worklist(request):
    """The reader's and adjudicator's tasks: pseudonymous case labels, visit, state and due date."""
    groups = selectors.worklist(request.user)
    # Each list a page at a time, each by its own parameter: paging the signed reads leaves the to-do page be.
    pages = {name: page_of(request, rows, WORKLIST_PAGE_SIZE, param=name) for name, rows in groups.items()}
    return render(request, "reads/worklist.html", {"pages": pages})


def _task_page(request, task: ReadTask, *, sign_error: str | None = None, status: int = 200):
    if task.kind == ReadTask.Kind.ADJUDICATION:
        context = selectors.adjudication_page(task)
        context["endpoints"] = selectors.adjudication_endpoints(task)
        context["meaning_text"] = _(results.ADJUDICATOR_MEANING)
        template = "reads/adjudicate.html"
    else:
        context = selectors.read_page(task)
        context["meaning_text"] = _(read_services.READER_MEANING)
        template = "reads/read.html"
    context["sign_error"] = sign_error
    context["asks_code"] = task.design.trial.two_factor_at_signing
    context["asks_user_id"] = user_id_asked(request)
    return render(request, template, context, status=status)


def _signing_form(request) -> dict:
    """What the read and adjudication forms send to sign with (templates/reads/_sign_credentials.html), as the
    signing services take it; which of it counts is theirs to decide (`reads.services.signer_components`)."""
    return {
        "request": request,
        "password": request.POST.get("password", ""),
        "second_factor": request.POST.get("otp_code", ""),
        "user_id": request.POST.get("user_id", ""),
    }


# The viewer decodes compressed frames with WebAssembly codecs; the sign and adjudicate answers re-render it.
VIEWER_CSP = {"script-src": ["'wasm-unsafe-eval'"]}
WORKLIST_PAGE_SIZE = 50  # tasks per page of each list of My reads
RESULTS_PAGE_SIZE = 100  # locked visits per page of the read results


@login_required
@csp_update(VIEWER_CSP)
def task_page(request, pk: int):
    return _task_page(request, _task(request, pk))


def _json_error(exc: CTIMSError) -> JsonResponse:
    return JsonResponse(error_body(exc.code, exc.message, exc.fields), status=exc.status)


def _draft_json(task: ReadTask) -> dict:
    read = read_services.current_read(task)
    return {
        "revision": read_services.draft_revision(read),
        "content": read.content if read else None,
        "assessment": assessment_display(read.assessment) if read else None,
        "ready": bool(read and read_services.ready_to_sign(read)),
        "signed": task.state == ReadTask.State.SIGNED,
    }


@login_required
@require_http_methods(["GET", "PUT"])
def draft(request, pk: int):
    """The read's draft as JSON: GET it, or PUT {"content": ..., "revision": ...} to save it and get its assessment
    and new revision back; `revision` is the one the content was edited from (409 if the draft changed since)."""
    task = _task(request, pk)
    if task.kind != ReadTask.Kind.READ:
        raise Http404(_("No such task."))
    if request.method == "PUT":
        try:
            body = json.loads(request.body or b"{}", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            return _json_error(ValidationFailed(_("The request is not JSON.")))
        if not isinstance(body, dict):
            return _json_error(ValidationFailed(_("Send an object with the content.")))
        revision = body.get("revision")
        if not isinstance(revision, str):
            return _json_error(
                ValidationFailed(
                    _("Say which revision of the read this changes: reload the page."),
                    fields={"revision": [_("Required.")]},
                )
            )
        try:
            read_services.read_save(actor=request.user, task_id=task.pk, raw=body.get("content"), based_on=revision)
        except CTIMSError as exc:
            return _json_error(exc)
        task.refresh_from_db()
    return JsonResponse(_draft_json(task))


@login_required
@require_POST
@csp_update(VIEWER_CSP)
def sign(request, pk: int):
    task = _task(request, pk)
    try:
        read_services.read_sign(
            actor=request.user,
            task_id=task.pk,
            meaning_confirmed=request.POST.get("meaning") == "author",
            confirmed_response=request.POST.get("confirmed_response", ""),
            revision=request.POST.get("revision", ""),
            **_signing_form(request),
        )
    except (ValidationFailed, InvalidState, NotPermitted) as exc:
        task.refresh_from_db()
        return _task_page(request, task, sign_error=exc.message, status=400)
    except NotFound:
        raise Http404(_("No such task.")) from None
    messages.success(request, _("Signed. The read is locked."))
    return redirect("read-worklist")


@login_required
@require_POST
def correct(request, pk: int):
    return _correction_step(
        request, pk, read_services.read_correct, _("A correction was started; the signed read stays on record.")
    )


@login_required
@require_POST
def correction_discard(request, pk: int):
    return _correction_step(
        request,
        pk,
        read_services.read_correction_discard,
        _("The correction was discarded; the signed read stands as it was."),
    )


def _correction_step(request, pk: int, service, done: str):
    """Start or discard a correction of the reader's signed read, and go back to the read page saying so."""
    task = _task(request, pk)
    try:
        service(actor=request.user, task_id=task.pk)
    except InvalidState as exc:
        messages.error(request, exc.message)
    except NotFound:
        raise Http404(_("No such task.")) from None
    else:
        messages.success(request, done)
    return redirect("read-task", pk=task.pk)


@login_required
@require_POST
@csp_update(VIEWER_CSP)
def adjudicate(request, pk: int):
    task = _task(request, pk)
    try:
        results.adjudicate(
            actor=request.user,
            task_id=task.pk,
            choice=request.POST.get("choice", ""),
            reason=request.POST.get("reason", ""),
            meaning_confirmed=request.POST.get("meaning") == "adjudicator",
            **_signing_form(request),
        )
    except (ValidationFailed, InvalidState, NotPermitted) as exc:
        return _task_page(request, task, sign_error=exc.message, status=400)
    except NotFound:
        raise Http404(_("No such task.")) from None
    messages.success(
        request, _("Adjudication signed. The chosen reader's reads are the result at every visit of the case.")
    )
    return redirect("read-worklist")


# --- the read design and reading progress (trial admins) ----------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def design(request, code: str):
    """The trial's read design, the reader and adjudicator pools with their load, and each subject's reading."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    current = ReadDesign.objects.filter(trial=trial).first()
    form = ReadDesignForm(_posted(request), instance=current, fixed=design_fixed(current))
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in DESIGN_FIELDS if name in form.changed_data or not current}
        try:
            read_design_set(actor=request.user, trial=trial, **fields)
        except CTIMSError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("The read design was saved."))
            return redirect("read-design", code=trial.code)
    context = {"form": form, "design": current, **selectors.reading_progress(trial)}
    return _trial_page(request, actor, trial, "reads/design.html", "read-design", context)


@login_required
@require_POST
def adjudicators_assign(request, code: str):
    """Give the disagreements that wait for an adjudicator to the trial's adjudicators."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    try:
        given = results.adjudicators_assign(actor=request.user, trial=trial)
    except InvalidState as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Adjudications given to adjudicators: %(n)s.") % {"n": given})
    return redirect("read-design", code=trial.code)


@login_required
@require_POST
def assignment_replace_view(request, code: str, pk: int):
    """Give the case of a reader or adjudicator who left to someone from the pool."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code, "manage_trial")
    chosen = request.POST.get("reader", "")
    reader = User.objects.filter(pk=int(chosen)).first() if chosen.isdecimal() else None
    try:
        if reader is None:
            raise ValidationFailed(_("Choose who takes the case over."))
        assignment = assignment_replace(actor=request.user, assignment_id=pk, trial=trial, reader=reader)
    except (ValidationFailed, InvalidState) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Case %(case)s now goes to %(who)s.")
            % {"case": assignment.case_label, "who": reader.full_name or reader.email},
        )
    return redirect("read-design", code=trial.code)


# --- results (sponsors and trial admins) ---------------------------------------------------------------------


def _utc_offset(moment: datetime) -> str:
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


def time_zone_label() -> str:
    """The zone a cut-off is typed and shown in, with its offset: "Asia/Seoul (UTC+09:00)"; a zone with summer
    time gives both, since the page's times fall in either: "Europe/Berlin (UTC+01:00; UTC+02:00 in daylight
    saving time)". Summer's is the larger offset (zoneinfo's own flag is negative in Europe/Dublin's winter)."""
    zone = timezone.get_current_timezone()
    name = timezone.get_current_timezone_name()
    year = timezone.localdate().year
    # One of January and July is winter, the other summer, in either hemisphere.
    moments = sorted((datetime(year, month, 1, 12, tzinfo=zone) for month in (1, 7)), key=lambda m: m.utcoffset())
    standard, daylight = _utc_offset(moments[0]), _utc_offset(moments[1])
    if standard == daylight:
        return f"{name} ({_utc_offset(timezone.localtime())})"
    return _("%(zone)s (%(standard)s; %(daylight)s in daylight saving time)") % {
        "zone": name,
        "standard": standard,
        "daylight": daylight,
    }


def results_trial_or_404(request, code: str):
    """The person and the trial whose locked results they may see (sponsor viewer, trial admin); 404 otherwise."""
    actor = Actor.from_request(request)
    try:
        return actor, selectors.results_trial(actor=actor, code=code)
    except (NotFound, NotPermitted):
        raise Http404(_("No such trial.")) from None


@login_required
def results_page(request, code: str):
    """The trial's locked read results, a page at a time; nothing that is not locked."""
    actor, trial = results_trial_or_404(request, code)
    page = Paginator(selectors.results_query(trial), RESULTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": selectors.result_rows(trial, results=page.object_list),
        "time_zone": time_zone_label(),
    }
    return _trial_page(request, actor, trial, "reads/results.html", "read-results", context)


CSV_COLUMNS = [
    "subject",
    "visit",
    "overall",
    "target",
    "non_target",
    "new_lesions",
    "sum_mm",
    "source",
    "reader",
    "locked_at",
    # New columns go last: consumers read the columns before them by position.
    "adjudicated",
    *selectors.READ_SIGNATURE_COLUMNS.values(),
    *selectors.ADJUDICATION_SIGNATURE_COLUMNS.values(),
]
MOMENT_COLUMNS = ("locked_at", "signed_at", "adjudicated_at")  # ISO 8601 with the offset: the zone is stated


def _excel(request) -> bool | None:
    """`?excel=1`: the CSV for Excel; absent (or 0): for programs; None for any other value (refused)."""
    value = request.GET.get("excel", "0")
    return {"0": False, "1": True}.get(value)


def _csv(request, trial, kind: str, filename: str, columns: list[str], rows: list[dict]) -> HttpResponse:
    """A CSV download in UTF-8, audited as a download of `kind` (`results.results_download_record`). For programs
    (pandas, R's read.csv, SAS, Python's csv) it has no byte-order mark: R and SAS without an explicit encoding,
    and Python's csv with utf-8, take the mark for part of the first column's name. With `?excel=1` it starts
    with one, the only thing that makes Excel read it as UTF-8 rather than in the Windows code page (Korean and
    accents garbled otherwise)."""
    excel = _excel(request)
    if excel is None:
        return HttpResponse(
            _("excel: 1 for a CSV Excel opens as UTF-8, 0 (the default) for programs.") + "\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if excel:
        response.write("\ufeff")
    writer = safe_csv.DictWriter(response, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    results.results_download_record(actor=request.user, trial=trial, kind=kind, excel=excel, rows=len(rows))
    return response


@login_required
def results_csv(request, code: str):
    _actor, trial = results_trial_or_404(request, code)
    rows = [
        {
            **row,
            **{column: row[column].isoformat() if row[column] else "" for column in MOMENT_COLUMNS},
            "adjudicated": "Y" if row["adjudicated"] else "N",
        }
        for row in selectors.result_rows(trial)
    ]
    return _csv(request, trial, "results_csv", f"{trial.code}-read-results.csv", CSV_COLUMNS, rows)


LESION_COLUMNS = [
    "subject",
    "visit",
    "reader",
    "lesion",
    "tracking_uid",
    "category",
    "site_code",
    "site",
    "node",
    "status",
    "long_axis_mm",
    "short_axis_mm",
    "sop_instance_uid",
]


@login_required
def results_lesions_csv(request, code: str):
    """Every lesion of every locked result, with its measurements and the image they were drawn on."""
    _actor, trial = results_trial_or_404(request, code)
    rows = selectors.result_lesion_rows(trial)
    return _csv(request, trial, "lesions_csv", f"{trial.code}-read-lesions.csv", LESION_COLUMNS, rows)


@login_required
def result_sr(request, code: str, pk: int):
    """The DICOM SR of a locked result."""
    _actor, trial = results_trial_or_404(request, code)
    with scoped():
        return sr_download(request, selectors.result_get(trial=trial, pk=pk), kind="sr")


def request_api_token(request) -> ApiToken | None:
    """The API token a request came with (DRF's `request.auth`); None for a session, a page or a test client."""
    token = getattr(request, "auth", None)
    return token if isinstance(token, ApiToken) else None


def sr_download(request, result, *, kind: str) -> FileResponse:
    """A locked result's SR as a Part 10 file download, named by subject and visit; audited as a download of
    `kind` once the file is open (`results.result_sr_download_record`), with the API token it came through."""
    stored = image_storage().open(result.sr.storage_key, "rb")
    results.result_sr_download_record(actor=request.user, result=result, kind=kind, token=request_api_token(request))
    return FileResponse(
        stored,
        as_attachment=True,
        filename=f"{result.timepoint.subject.code}-{result.timepoint.visit.code}-SR.dcm",
        content_type="application/dicom",
    )
