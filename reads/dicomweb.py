"""The read-task DICOMweb root, `/dicomweb/tasks/<id>/`: a scope over the trial's DICOMweb views.

A reader sees the task's studies and, if the design allows, the same subject's earlier visits; every
instance's metadata is blinded on the way out: the patient is the case label, no dates, no site. No SR
series exists through this root: the readers' results are stored in the same studies.
"""

from __future__ import annotations

from django.http import Http404
from pydicom.datadict import dictionary_VR, tag_for_keyword

from ctims.exceptions import NotFound
from trials.access import Actor
from trials.dicomweb import qido
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
    # Where the scan was made or scheduled: a station, a room or an AE title is in one hospital. A trial that
    # retains device identity (PS3.15 Annex E's option) keeps them in its files.
    "00080055",  # Station AE Title
    "00081000",  # Network ID
    "00400001",  # Scheduled Station AE Title
    "00400010",  # Scheduled Station Name
    "00400011",  # Scheduled Procedure Step Location
    "00400241",  # Performed Station AE Title
    "00400242",  # Performed Station Name
    "00400243",  # Performed Location
    "00404025",  # Scheduled Station Name Code Sequence
    "00404027",  # Scheduled Station Geographic Location Code Sequence
    "00404028",  # Performed Station Name Code Sequence
    "00404030",  # Performed Station Geographic Location Code Sequence
    "00321020",  # Scheduled Study Location
    "00321021",  # Scheduled Study Location AE Title
    # The institution in coded form, and the site's ethics committee and coordinating centre.
    "00080082",  # Institution Code Sequence
    "00081041",  # Institutional Department Type Code Sequence
    "00120060",  # Clinical Trial Coordinating Center Name
    "00120081",  # Clinical Trial Protocol Ethics Committee Name
    "00120082",  # Clinical Trial Protocol Ethics Committee Approval Number
    "04000564",  # Source of Previous Values
}
PATIENT_TAGS = {"00100010", "00100020"}
# What else would tell a reader who the patient is, or which visit or request this is.
CHARACTERISTIC_TAGS = {
    "00100030",  # Patient's Birth Date
    "00100040",  # Patient's Sex
    "00101010",  # Patient's Age
    "00080050",  # Accession Number
    "00200010",  # Study ID
    "00400275",  # Request Attributes Sequence (requested procedure and scheduled step IDs)
}
# Study-level counts would count the series a reader does not see (read results).
COUNT_TAGS = {"00201206", "00201208"}
HIDDEN_MODALITIES = frozenset({"SR"})


def _blinded_key(key: qido.Key) -> bool:
    """A search key on what the answers hide: matching on it would reveal the value by the number of answers."""
    tags = {f"{tag_for_keyword(part):08X}" for part in key.keyword.split(".")}
    vrs = {dictionary_VR(int(tag, 16)) for tag in tags}
    return bool(
        tags & (SITE_TAGS | PATIENT_TAGS | CHARACTERISTIC_TAGS | COUNT_TAGS)
        or vrs & DATE_VRS
        or key.keyword == "ModalitiesInStudy"  # would count the hidden SR series
    )


# Every QIDO key on a blinded attribute, by keyword and by tag: a task root leaves them out of the search and
# says so in a Warning header, so an answer never depends on them.
IGNORED_KEYS = frozenset(name for name, key in qido.BY_NAME.items() if _blinded_key(key))


def blind_metadata(metadata: dict, *, case_label: str) -> dict:
    """A reader's copy of an instance's DICOM JSON: dates, times, site attributes and private elements removed
    at every depth, the patient named by the case label.

    A private element the trial's safelist keeps is opaque here (a vendor's scan date or the site's own code
    in a text or binary value): no rule knows its meaning, so none is shown to a reader."""

    def clean(item: dict) -> dict:
        out = {}
        for tag, element in item.items():
            if int(tag[3], 16) % 2:  # an odd group: a private element or its creator
                continue
            if tag in SITE_TAGS or tag in CHARACTERISTIC_TAGS or tag in COUNT_TAGS or element.get("vr") in DATE_VRS:
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
    if not actor.is_authenticated or actor.token is not None or not task_id.isdecimal():
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
