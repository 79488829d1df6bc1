"""The read-task DICOMweb root, `/dicomweb/tasks/<id>/`: a scope over the trial's DICOMweb views.

A reader sees the task's studies and, if the design allows, the same subject's earlier visits. What the answers
carry is an allowlist (READER_KEYWORDS): what a viewer needs to show and measure, the patient named by the case
label, and nothing else (no dates, no site, no device, no people). No SR series exists through this root: the
readers' results are stored in the same studies.
"""

from __future__ import annotations

import hashlib

from django.http import Http404
from pydicom.datadict import dictionary_VR

from ctims.exceptions import NotFound
from trials.access import Actor
from trials.dicomweb import qido
from trials.dicomweb.allowlist import DATE_VRS, Allowlist, tags_of
from trials.dicomweb.scopes import Scope
from trials.dicomweb.views import dicomweb_urls
from trials.models import Study

from .read_services import require_task, task_timepoints

# What a reader's answers may carry, at any depth: what a viewer needs to find a series, show its images and
# measure on them, under pseudonymous UIDs, and nothing else. Anything not named here (the site, the station, the
# device's serial number, the people, the protocol's and the procedure's names, the patient's characteristics,
# the dates and times, private elements, whatever a future de-identification option keeps) never reaches a reader.
READER_KEYWORDS = (
    # SOP common, and how the instance is stored and found
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "InstanceAvailability",
    "RetrieveURL",
    "AvailableTransferSyntaxUID",
    "PixelData",  # as its BulkDataURI on this root, or the pixels of a whole instance
    # the patient and the study: the case label and pseudonymous UIDs
    "PatientName",
    "PatientID",
    "StudyInstanceUID",
    "ModalitiesInStudy",
    # the series
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",  # how a reader tells the phases apart
    "NumberOfSeriesRelatedInstances",
    "Modality",
    "BodyPartExamined",
    "Laterality",
    "ImageLaterality",
    "PatientPosition",
    # geometry: frame of reference and image plane
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PatientOrientation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PixelSpacingCalibrationType",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SliceLocation",
    # the image and its pixels
    "ImageType",
    "AcquisitionNumber",
    "NumberOfFrames",
    "FrameIncrementPointer",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "PixelAspectRatio",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "PresentationLUTShape",
    # modality and VOI LUTs: Hounsfield units and windowing
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "ModalityLUTType",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "LUTDescriptor",
    "LUTExplanation",
    "LUTData",
    # enhanced multi-frame images: the functional groups that place, scale and window each frame
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PixelMeasuresSequence",
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
    "FrameContentSequence",
    "StackID",
    "InStackPositionNumber",
    "TemporalPositionIndex",
    "DimensionIndexValues",
    # ultrasound calibration: what a length measured on a region is in millimetres
    "SequenceOfUltrasoundRegions",
    "RegionSpatialFormat",
    "RegionDataType",
    "RegionFlags",
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
    "ReferencePixelX0",
    "ReferencePixelY0",
    "PhysicalUnitsXDirection",
    "PhysicalUnitsYDirection",
    "ReferencePixelPhysicalValueX",
    "ReferencePixelPhysicalValueY",
    "PhysicalDeltaX",
    "PhysicalDeltaY",
)
READER_TAGS = tags_of(READER_KEYWORDS)
# In the ETag of what the list filters: a body kept under an older list is not the answer under this one.
READER_TAGS_VERSION = hashlib.sha256(",".join(sorted(READER_TAGS)).encode()).hexdigest()[:12]
PATIENT_TAGS = tags_of(["PatientName", "PatientID"])
MODALITIES_IN_STUDY = "00080061"
HIDDEN_MODALITIES = frozenset({"SR"})


def _blinded_key(key: qido.Key) -> bool:
    """A search key on what the answers do not show: matching on it would reveal the value by the number of
    answers."""
    tags = tags_of(key.keyword.split("."))
    return (
        not tags <= READER_TAGS
        or bool(tags & PATIENT_TAGS)  # shown, but as the case label: the subject code is not to be tested
        or key.keyword == "ModalitiesInStudy"  # would count the hidden SR series
        or any(dictionary_VR(int(tag, 16)) in DATE_VRS for tag in tags)
    )


# Every QIDO key on an attribute a reader does not see, by keyword and by tag: a task root leaves them out of the
# search and says so in a Warning header, so an answer never depends on them.
IGNORED_KEYS = frozenset(name for name, key in qido.BY_NAME.items() if _blinded_key(key))


def reader_allowlist(case_label: str) -> Allowlist:
    """What a reader of the case labelled `case_label` is shown: READER_TAGS, the patient named by the label."""
    return Allowlist(
        tags=READER_TAGS,
        replace={
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": case_label}]},
            "00100020": {"vr": "LO", "Value": [case_label]},
        },
    )


def blind_metadata(metadata: dict, *, case_label: str) -> dict:
    """A reader's copy of an instance's DICOM JSON (or a search's answer): the allowed attributes alone, the
    patient named by the case label, the hidden modalities out of Modalities in Study."""
    out = reader_allowlist(case_label).json(metadata)
    modalities = out.get(MODALITIES_IN_STUDY)
    if modalities and "Value" in modalities:
        out[MODALITIES_IN_STUDY] = {"vr": "CS", "Value": [m for m in modalities["Value"] if m not in HIDDEN_MODALITIES]}
    return out


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
    allowlist = reader_allowlist(label)
    return Scope(
        studies=studies,
        root=f"/dicomweb/tasks/{task.pk}",
        blind=lambda metadata: blind_metadata(metadata, case_label=label),
        blind_dataset=allowlist.dataset,
        blinding=f"reader:{READER_TAGS_VERSION}:{label}",
        allows=lambda study: study.pk in allowed,
        stores="A reader's task root stores nothing.",
        hidden_modalities=HIDDEN_MODALITIES,
        ignored_keys=IGNORED_KEYS,
    )


urlpatterns = dicomweb_urls("tasks/<str:scope_task_id>/", task_scope, "task")
