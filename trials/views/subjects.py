"""Pages of subjects and their visits: the visit grid, a subject, the upload page and the viewer."""

from __future__ import annotations

import json
from dataclasses import dataclass

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from ctims.exceptions import InvalidState, ValidationFailed
from ctims.pagination import page_of

from .. import selectors, services
from ..access import Actor
from ..forms import (
    SubjectEnrollForm,
    add_service_errors,
)
from ..ingest.browser import browser_allowed
from ..ingest.services import UPLOADABLE_STATES
from ..models import Query, Timepoint, Trial
from ._common import QC_STATES, _posted, _trial, _trial_page, scoped

SUBJECT_PAGE_SIZE = 100  # subjects (rows of the visit grid) per page

# --- subjects -----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def trial_subjects(request, code):
    """The visit grid of the subjects the person may see; a trial admin also enrolls subjects here."""
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        selectors.require_subject_access(actor=actor, trial=trial)
    can_enroll = actor.has_trial_perm(trial, "manage_trial")
    if request.method == "POST" and not can_enroll:
        raise PermissionDenied(_("Only a trial admin enrolls subjects."))
    form = None
    if can_enroll:
        form = SubjectEnrollForm(_posted(request), sites=selectors.enrollable_sites(actor=actor, trial=trial))
    if request.method == "POST" and form.is_valid():
        try:
            subject = services.subject_enroll(actor=request.user, site=form.cleaned_data["site"])
        except (ValidationFailed, InvalidState) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Subject %(code)s was enrolled at %(site)s.") % {"code": subject.code, "site": subject.site.code},
            )
            return redirect("trial-subjects", code=trial.code)
    page = page_of(request, selectors.visit_grid_subjects(actor=actor, trial=trial), SUBJECT_PAGE_SIZE)
    visits, rows = selectors.visit_grid(actor=actor, trial=trial, subjects=page.object_list)
    grid = [(row, list(zip(visits, row.cells, strict=True))) for row in rows]
    context = (
        {"visits": visits, "rows": rows, "grid": grid, "form": form, "page": page}
        | _upload_links(actor, trial)
        | _qc_links(actor, trial)
    )
    return _trial_page(request, actor, trial, "trials/subjects.html", "trial-subjects", context)


@login_required
def subject_detail(request, code, subject_code):
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        selectors.require_subject_access(actor=actor, trial=trial)
    with scoped():
        subject = selectors.subject_get(actor=actor, trial=trial, code=subject_code)
    timepoints = selectors.timepoints_with_counts().filter(subject=subject).order_by("visit__order")
    with scoped():
        open_queries = selectors.query_list(actor=actor, trial=trial).filter(timepoint__subject=subject)
        open_queries = open_queries.exclude(state=Query.State.CLOSED).order_by("pk")
    queries_by_timepoint: dict[int, list[Query]] = {}
    for query in open_queries:
        queries_by_timepoint.setdefault(query.timepoint_id, []).append(query)
    context = (
        {
            "subject": subject,
            "timepoints": [(tp, queries_by_timepoint.get(tp.pk, [])) for tp in timepoints],
            "can_view_images": selectors.sees_images(actor=actor, trial=trial, subject=subject),
            # The site's coordinators and the QC reviewers (the people who see the subject's uploads).
            "upload_history": selectors.upload_history(actor=actor, trial=trial, subject_code=subject.code),
        }
        | _upload_links(actor, trial)
        | _qc_links(actor, trial)
    )
    return _trial_page(request, actor, trial, "trials/subject_detail.html", "trial-subjects", context)


def _qc_links(actor: Actor, trial: Trial) -> dict:
    """What a page needs to offer a link to a timepoint's QC page to QC reviewers."""
    return {"reviews_qc": actor.has_trial_perm(trial, "review_qc"), "qc_states": QC_STATES}


def _upload_links(actor: Actor, trial: Trial) -> dict:
    """What a page needs to offer "Upload images" only where the person may upload and the visit still accepts it."""
    return {
        "upload_site_ids": actor.site_ids(trial, "upload_to_site"),
        "uploadable_states": UPLOADABLE_STATES,
    }


# --- upload -------------------------------------------------------------------------------------------------


@login_required
@require_GET
# The de-identification engine is WebAssembly (Pyodide) in a worker: compiling it is all this adds.
@csp_update({"script-src": ["'wasm-unsafe-eval'"]})
def timepoint_upload(request, code, subject_code, visit_code):
    """The coordinator's upload page: the browser reads, checks, hashes and sends the files through the API.

    Opening the page changes nothing: the browser opens an upload session only when there is a file to send,
    and resumes the person's unfinished one (after a reload or a dropped network).
    """
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        timepoint = selectors.upload_timepoint_get(
            actor=actor, trial=trial, subject_code=subject_code, visit_code=visit_code
        )
    state = selectors.upload_page_state(actor=actor, trial=trial, timepoint=timepoint)
    # The API routes of one upload, with a placeholder id the browser replaces.
    status_url = reverse("api-upload", kwargs={"code": trial.code, "pk": 0})
    finish_url = reverse("api-upload-finish", kwargs={"code": trial.code, "pk": 0})
    browser = browser_allowed(trial)
    context = {
        "subject": timepoint.subject,
        "visit": timepoint.visit,
        "timepoint": timepoint,
        "accepts_uploads": timepoint.state in UPLOADABLE_STATES,
        "stored": {"series": state.stored_series, "instances": state.stored_instances},
        "status_url": status_url,
        "finish_url": finish_url,
        # De-identification in the browser: the subject key is fetched only after an upload is open.
        "deid_paths": trial.deid_paths if browser else Trial.DeidPaths.SERVER,
        "key_url": reverse("api-upload-key", kwargs={"code": trial.code, "pk": 0}) if browser else "",
        "resume_url": reverse("api-upload", kwargs={"code": trial.code, "pk": state.resumable.pk})
        if state.resumable
        else "",
        "received_json": json.dumps(state.received, separators=(",", ":")),
        "state_labels_json": json.dumps({value: str(label) for value, label in Timepoint.State.choices}),
        "idle_closed": state.idle_closed,
        "idle_closed_files": state.idle_closed_files,
    }
    return _trial_page(request, actor, trial, "trials/upload.html", "trial-subjects", context)


# --- viewer -------------------------------------------------------------------------------------------------


@login_required
@require_GET
# The image codecs are WebAssembly: compiling it is the one thing this page adds to the scripts' policy.
@csp_update({"script-src": ["'wasm-unsafe-eval'"]})
def timepoint_viewer(request, code, subject_code, visit_code):
    """The image viewer of one timepoint, over the trial's DICOMweb root, with the subject's other timepoints.

    It shows the subject's pseudonym and the visits' labels, nothing of the site and no dates. Readers,
    adjudicators and sponsors see nothing here (404): their images come through their read tasks.
    """
    actor = Actor.from_request(request)
    trial = _trial(actor, code)
    with scoped():
        subject = selectors.subject_get(actor=actor, trial=trial, code=subject_code)
    if not selectors.sees_images(actor=actor, trial=trial, subject=subject):
        raise Http404(_("No such subject."))
    timepoints = subject.timepoints.select_related("visit").prefetch_related("studies").order_by("visit__order")
    timepoint = next((t for t in timepoints if t.visit.code == visit_code), None)
    if timepoint is None:
        raise Http404(_("No such visit."))
    # The subject's visits that hold images, in schedule order: this one and those to compare it with.
    visits = [
        {
            "visit": t.visit.code,
            "label": t.visit.label,
            "studies": sorted(study.study_instance_uid for study in t.studies.all()),
            "current": t.pk == timepoint.pk,
        }
        for t in timepoints
        if t.pk == timepoint.pk or t.studies.all()
    ]
    current = next(n for n, v in enumerate(visits) if v["current"])
    earlier, later = visits[:current], visits[current + 1 :]
    # Compare with the latest earlier visit first (the usual baseline/follow-up reading), else the next one.
    default_compare = (earlier[-1] if earlier else later[0] if later else visits[current])["visit"]
    root = reverse("dicomweb-trial-studies", kwargs={"scope_code": trial.code}).removesuffix("/studies")
    back = _way_back(request, actor, trial, timepoint)
    context = {
        "back": back,
        "subject": subject,
        "visit": timepoint.visit,
        "timepoint": timepoint,
        "has_images": bool(visits[current]["studies"]),
        "compare_visits": [v for v in visits if v["studies"]],
        "default_compare": default_compare,
        "panes": ["left", "right"],
        "viewer_config": {"root": root, "wasmBase": static("dist/viewer/"), "timepoints": visits},
    }
    current = back.nav if back else "trial-subjects"
    return _trial_page(request, actor, trial, "trials/viewer.html", current, context)


@dataclass(frozen=True)
class WayBack:
    """The page "View images" was pressed on, for the image page's way back: its address, link text and tab."""

    url: str
    label: str
    nav: str


def _way_back(request, actor: Actor, trial: Trial, timepoint: Timepoint) -> WayBack | None:
    """The QC review of this visit (?from=qc, for a QC reviewer) or a query on it (?query=<id>, one the person
    sees) when the image page was opened from there; else None, and the page leads back to the subject."""
    subject, visit = timepoint.subject, timepoint.visit
    if request.GET.get("from") == "qc" and actor.has_trial_perm(trial, "review_qc"):
        url = reverse("qc-timepoint", args=[trial.code, subject.code, visit.code])
        return WayBack(url=url, label=_("Back to the QC review"), nav="qc-worklist")
    pk = request.GET.get("query", "")
    if pk.isdecimal():  # not isdigit(): a superscript digit is one, and int() refuses it
        with scoped():
            query = selectors.query_list(actor=actor, trial=trial).filter(pk=int(pk), timepoint=timepoint).first()
        if query is not None:
            url = reverse("query-detail", args=[trial.code, query.pk])
            return WayBack(url=url, label=_("Back to query %(n)s") % {"n": query.pk}, nav="query-list")
    return None
