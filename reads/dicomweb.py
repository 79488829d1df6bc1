"""The read-task DICOMweb root, `/dicomweb/tasks/<id>/`: a scope over the trial's DICOMweb views.

A reader sees the task's studies and, if the design allows, the same subject's earlier visits; every
instance's metadata is blinded on the way out: the patient is the case label, no dates, no site. No SR
series exists through this root: the readers' results are stored in the same studies.
"""

from __future__ import annotations

from django.http import Http404

from ctims.exceptions import NotFound
from trials.access import Actor
from trials.dicomweb.scopes import Scope
from trials.dicomweb.views import dicomweb_urls
from trials.models import Study

from .read_services import require_task, task_timepoints

# Value representations that carry calendar dates and times of day.
DATE_VRS = {"DA", "DT", "TM"}
# Attributes a reader must not see whatever their value representation (the site, the people, the place).
SITE_TAGS = {
    "00080080",  # Institution Name
    "00080081",  # Institution Address
    "00081040",  # Institutional Department Name
    "00081010",  # Station Name
    "00080090",  # Referring Physician's Name
    "00081050",  # Performing Physician's Name
    "00081070",  # Operators' Name
    "00120030",  # Clinical Trial Site ID
    "00120031",  # Clinical Trial Site Name
    "00120040",  # Clinical Trial Subject ID
}
PATIENT_TAGS = {"00100010", "00100020"}
# Study-level counts would count the series a reader does not see (read results).
COUNT_TAGS = {"00201206", "00201208"}
HIDDEN_MODALITIES = frozenset({"SR"})
# Searching on what the answers hide would reveal it by the number of answers.
IGNORED_KEYS = frozenset(
    {
        "PatientID", "00100020", "PatientName", "00100010", "PatientBirthDate", "00100030",
        "StudyDate", "00080020", "StudyTime", "00080030", "SeriesDate", "00080021",
        "AccessionNumber", "00080050", "ModalitiesInStudy", "00080061",
        "InstitutionName", "00080080", "ReferringPhysicianName", "00080090",
    }
)  # fmt: skip


def blind_metadata(metadata: dict, *, case_label: str) -> dict:
    """A reader's copy of an instance's DICOM JSON: dates, times and site attributes removed at every depth,
    the patient named by the case label."""

    def clean(item: dict) -> dict:
        out = {}
        for tag, element in item.items():
            if tag in SITE_TAGS or tag in COUNT_TAGS or element.get("vr") in DATE_VRS:
                continue
            if tag == "00080061" and "Value" in element:  # Modalities in Study
                element = {"vr": "CS", "Value": [m for m in element["Value"] if m not in HIDDEN_MODALITIES]}
            if tag in PATIENT_TAGS:
                value = {"Alphabetic": case_label} if element.get("vr") == "PN" else case_label
                out[tag] = {"vr": element["vr"], "Value": [value]}
                continue
            if element.get("vr") == "SQ" and "Value" in element:
                element = {"vr": "SQ", "Value": [clean(child) for child in element["Value"]]}
            out[tag] = element
        return out

    return clean(metadata)


def task_scope(actor: Actor, *, task_id: str) -> Scope:
    """The studies of a read task the actor holds (else 404), with the subject's earlier visits if allowed."""
    if not actor.is_authenticated or actor.token is not None or not task_id.isdigit():
        raise Http404("No such task.")
    try:
        task = require_task(actor.user, int(task_id))
    except NotFound:
        raise Http404("No such task.") from None
    studies = Study.objects.filter(timepoint__in=task_timepoints(task).order_by())
    allowed = set(studies.values_list("pk", flat=True))
    label = task.assignment.case_label
    return Scope(
        studies=studies,
        root=f"/dicomweb/tasks/{task.pk}",
        blind=lambda metadata: blind_metadata(metadata, case_label=label),
        allows=lambda study: study.pk in allowed,
        serves_files=False,
        hidden_modalities=HIDDEN_MODALITIES,
        ignored_keys=IGNORED_KEYS,
    )


urlpatterns = dicomweb_urls("tasks/<str:scope_task_id>/", task_scope, "task")
