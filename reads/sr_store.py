"""A signed read as a DICOM SR in the image store: a new series of the de-identified study it reads.

The SR is built by `reads.sr` from the read's measurements and the headers of the de-identified images
they were drawn on, written once to the image store like an ingested instance, and indexed as a Series
and an Instance so that DICOMweb serves it. An adjudication writes a result SR per visit it decides: the
accepted reader's read again, observed and verified by the adjudicator, naming the reader's SR (and the
visit's earlier result SR) as its predecessors, so that the accepted read is known from the SRs alone.

What the SR says of people and time: observers are the trial's reader codes ("Radiologist 1", "Adjudicator";
"Radiologist 3" for a reader who took a case over from one retired from it, `ReaderAssignment.evaluator_number`),
the person stays with the signature and the audit trail; dates are in the study's shifted timeline (the
subject's date offset applied to the moment of signing), times are real with their offset from UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from io import BytesIO

import pydicom
from django.db.models import Max
from pydicom.uid import generate_uid

from ctims.models import Signature
from trials.dicomweb.wado import read_instance
from trials.ingest.store import image_storage, instance_key, store_instance, stored_sha256
from trials.ingest.subject_keys import subject_space
from trials.models import Instance, Series, Study, Subject

from . import sr
from .assessment import new_lesions_assessed
from .models import Adjudication, Read

SR_SERIES_FROM = 9001  # series numbers of read results start here, after anything a scanner writes
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def _mm(tenths: int | None) -> Decimal | None:
    """Tenths of a millimetre as a Decimal that keeps its tenth: 140 -> 14.0, never 14."""
    return None if tenths is None else Decimal(tenths).scaleb(-1)


def shifted(at: dt.datetime, subject: Subject) -> dt.datetime:
    """A moment in the subject's shifted timeline: in UTC, moved by the subject's date offset like its images."""
    offset = subject_space(subject.trial, subject.code).date_offset_days(subject.code)
    return at.astimezone(dt.UTC) + dt.timedelta(days=offset)


def _points(points) -> sr.Segment | None:
    return None if not points else (tuple(points[0]), tuple(points[1]))


def _study(read: Read, measurements) -> Study:
    uids = {m.study_uid for m in measurements if m.study_uid}
    studies = Study.objects.filter(timepoint=read.task.timepoint)
    if uids:
        studies = studies.filter(study_instance_uid__in=uids)
    study = studies.order_by("pk").first()
    if study is None:
        raise sr.SRError("the read's visit has no stored study")
    return study


# A result SR's Series Description names the reader whose series the adjudicator accepted.
_ACCEPTED = re.compile(r"\((Radiologist \d+) accepted\)")


def result_description(visit_label: str, reader: str) -> str:
    """A result SR's Series Description: the visit, and the reader (`reader_code`) the adjudicator accepted."""
    return f"Result {visit_label} ({reader} accepted)"


def accepted_in_description(description: str) -> str | None:
    """The reader a result SR's Series Description names as accepted (`result_description`); None if it names
    no one (cut at the VR's 64 characters)."""
    match = _ACCEPTED.search(description)
    return match.group(1) if match else None


def build_report(
    read: Read, *, signer: Signature, adjudicator: bool = False
) -> tuple[sr.ReadReport, list[pydicom.Dataset], Study]:
    """The SR's content for a read whose measurements are recorded, and the evidence headers it needs; with
    `adjudicator`, the result SR of an adjudication that accepted this read (`signer` the adjudicator's)."""
    measurements = list(read.measurements.select_related("lesion").order_by("lesion__category", "lesion__label"))
    study = _study(read, measurements)
    sops = {m.sop_instance_uid for m in measurements if m.sop_instance_uid}
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(series__study=study, sop_instance_uid__in=sops)}
    if not instances:  # nothing drawn (every lesion gone or not evaluable): the study's first image is the evidence
        first = Instance.objects.filter(series__study=study).exclude(series__modality="SR").order_by("pk").first()
        if first is None:
            raise sr.SRError("the read's study has no image")
        instances = {first.sop_instance_uid: first}
    evidence = [read_instance(i, pixels=False) for i in instances.values()]

    lesions = []
    for m in measurements:
        instance = instances.get(m.sop_instance_uid)
        image = None
        if instance is not None:
            image = sr.SourceImage(
                study_uid=study.study_instance_uid,
                series_uid=m.series_uid,
                sop_instance_uid=instance.sop_instance_uid,
                sop_class_uid=instance.sop_class_uid,
                frame=(m.frame or 1) if instance.number_of_frames > 1 else None,
            )
        lesion = m.lesion
        lesions.append(
            sr.LesionMeasurement(
                tracking_uid=lesion.tracking_uid,
                tracking_label=lesion.label,
                category=lesion.category,
                finding_site=(lesion.site_code, lesion.site_meaning),
                image=image,
                is_node=lesion.is_node,
                long_axis_mm=_mm(m.long_axis),
                short_axis_mm=_mm(m.short_axis),
                long_axis_points=_points(m.long_points) if image else None,
                short_axis_points=_points(m.short_points) if image else None,
                status=m.status if lesion.category == "target" else None,
                non_target_status=m.status if lesion.category == "non_target" else None,
            )
        )
    assessment = read.assessment or {}
    series_number = (
        Series.objects.filter(study=study, series_number__gte=SR_SERIES_FROM).aggregate(n=Max("series_number"))["n"]
        or SR_SERIES_FROM - 1
    ) + 1
    task = read.task
    reader = task.assignment.reader_code
    observer = "Adjudicator" if adjudicator else reader
    at = shifted(signer.at, task.timepoint.subject)
    report = sr.ReadReport(
        study_uid=study.study_instance_uid,
        series_uid=generate_uid(prefix=None),
        sop_instance_uid=generate_uid(prefix=None),
        series_number=series_number,
        instance_number=1,
        reader_name=observer,
        verifying_observer_name=observer,
        verification_datetime=at,
        content_datetime=at,
        timepoint_label=task.timepoint.visit.label,
        timepoint_code=task.timepoint.visit.code,
        timepoint_order=task.timepoint.visit.order,
        timepoint_is_baseline=bool(assessment.get("baseline")),
        observer_role="adjudicator" if adjudicator else None,
        description=result_description(task.timepoint.visit.label, reader) if adjudicator else None,
        lesions=lesions,
        target_response=_sr_response(assessment.get("target_response")),
        non_target_response=_sr_response(assessment.get("non_target_response")),
        overall_response=_sr_response(assessment.get("overall_response")),
        new_lesions=new_lesions_assessed(assessment).upper() or None,  # a follow-up's call; none at baseline
        sum_of_diameters_mm=Decimal(assessment["sum_mm"]) if assessment.get("sum_mm") else None,
    )
    return report, evidence, study


def _sr_response(value: str | None) -> str | None:
    """The engine's response names as reads.sr writes them; "not applicable" is not written at all."""
    if value in (None, "NOT_APPLICABLE"):
        return None
    return sr.NON_CR_NON_PD if value == "NON_CR_NON_PD" else value


def _reference(instance: Instance) -> pydicom.Dataset:
    """A hierarchical SOP instance reference (study, series, instance) to an SR this one replaces."""
    sop = pydicom.Dataset()
    sop.ReferencedSOPClassUID = instance.sop_class_uid
    sop.ReferencedSOPInstanceUID = instance.sop_instance_uid
    series = pydicom.Dataset()
    series.SeriesInstanceUID = instance.series.series_instance_uid
    series.ReferencedSOPSequence = [sop]
    study = pydicom.Dataset()
    study.StudyInstanceUID = instance.series.study.study_instance_uid
    study.ReferencedSeriesSequence = [series]
    return study


def read_sr_store(read: Read, *, signer: Signature) -> Instance:
    """Write the read's SR into the image store and index it; returns the new Instance. A correction's SR names
    the SR of the read it supersedes as its predecessor."""
    report, evidence, study = build_report(read, signer=signer)
    dataset = sr.write_measurement_report(report, evidence)
    if read.supersedes_id and read.supersedes.sr_instance_id:
        dataset.PredecessorDocumentsSequence = [_reference(read.supersedes.sr_instance)]
    return _store(dataset, report, study)


def result_sr_store(
    *, read: Read, adjudication: Adjudication, signer: Signature, previous: Instance | None
) -> Instance:
    """Write the result SR of a visit an adjudication decided: `read` (the accepted reader's) observed and verified
    by the adjudicator, with the read's SR and the visit's `previous` result SR as predecessors."""
    report, evidence, study = build_report(read, signer=signer, adjudicator=True)
    dataset = sr.write_measurement_report(report, evidence)
    dataset.PredecessorDocumentsSequence = [
        _reference(instance) for instance in (read.sr_instance, previous) if instance is not None
    ]
    return _store(dataset, report, study)


def _store(dataset: pydicom.Dataset, report: sr.ReadReport, study: Study) -> Instance:
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    data = buffer.getvalue()
    key = instance_key(study.trial.code, study.study_instance_uid, report.series_uid, report.sop_instance_uid)
    store_instance(key, data)
    series = Series.objects.create(
        study=study,
        series_instance_uid=report.series_uid,
        modality="SR",
        series_number=report.series_number,
        description=str(dataset.get("SeriesDescription", ""))[:200],
        manufacturer="CTIMS",
        instance_count=1,
        origin=Series.Origin.READ,
    )
    return Instance.objects.create(
        series=series,
        sop_instance_uid=report.sop_instance_uid,
        sop_class_uid=COMPREHENSIVE_3D_SR,
        instance_number=1,
        transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
        storage_key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        deid_method="Read result written by CTIMS from de-identified images",
    )


def sr_recorded(instance: Instance) -> dict:
    """What the audit event that wrote an SR records of it (the read's signing, a result's locking): which SR, and
    its file's SHA-256 (`sr_problem` checks the SR against it)."""
    return {"sr": instance.sop_instance_uid, "sr_sha256": instance.sha256}


def sr_problem(instance: Instance, recorded: dict) -> str:
    """The problem, if any, with a signed read's (or an adjudication's result) SR: its index row must still name
    the SR and the SHA-256 its audit event `recorded` (`sr_recorded`; an event of an older release may lack the
    hash), and its stored file must still hash to that. "" if it does; ids and words only, never a UID."""
    changed = [key for key, held in sr_recorded(instance).items() if key in recorded and recorded[key] != held]
    if changed:
        return f"its SR (instance #{instance.pk}) differs from what its audit event recorded ({', '.join(changed)})"
    stored = stored_sha256(image_storage(), instance.storage_key)
    if stored is None:
        return f"its SR's file (instance #{instance.pk}) is missing from the image store"
    if stored != instance.sha256:
        return f"its SR's file (instance #{instance.pk}) was changed after it was written"
    return ""


def read_sr_dataset(read: Read) -> pydicom.Dataset:
    """The stored SR of a signed read, as written."""
    return read_instance(read.sr_instance)
