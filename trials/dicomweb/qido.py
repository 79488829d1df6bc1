"""QIDO-RS (PS3.18 10.6): searches over the index, answered as DICOM JSON without opening a file."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.http import QueryDict

from ..models import Instance, Series, Study

MAX_LIMIT = 1000


class BadQuery(ValueError):
    """A query parameter QIDO-RS cannot use; answered with 400 and this message."""


def _values(params: QueryDict, *names: str) -> list[str]:
    """A key by keyword or by tag, e.g. StudyInstanceUID or 0020000D; UID lists may be comma-separated."""
    out: list[str] = []
    for name in names:
        for value in params.getlist(name):
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _wildcard(field: str, pattern: str) -> Q:
    """DICOM wildcard matching (* and ?), case-insensitive as most archives do for descriptions."""
    if "*" not in pattern and "?" not in pattern:
        return Q(**{f"{field}__iexact": pattern})
    regex = "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"
    return Q(**{f"{field}__iregex": regex})


def _date_range(value: str) -> tuple[date | None, date | None]:
    def parse(text: str) -> date | None:
        if not text:
            return None
        if not re.fullmatch(r"\d{8}", text):
            raise BadQuery(f"StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD, not {text!r}")
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            raise BadQuery(f"{text!r} is not a date") from None

    if "-" in value:
        start, end = value.split("-", 1)
        return parse(start), parse(end)
    day = parse(value)
    return day, day


def paginate(qs: QuerySet, params: QueryDict) -> QuerySet:
    try:
        limit = min(int(params.get("limit", MAX_LIMIT)), MAX_LIMIT)
        offset = max(int(params.get("offset", 0)), 0)
    except ValueError:
        raise BadQuery("limit and offset must be whole numbers") from None
    return qs[offset : offset + max(limit, 0)]


def _attr(vr: str, *values) -> dict:
    values = [v for v in values if v is not None and v != ""]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _pn(name: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]}


def _every_series(prefix: str = "") -> Q:
    return Q()


def search_studies(
    studies: QuerySet[Study], params: QueryDict, visible: Callable[[str], Q] = _every_series
) -> QuerySet[Study]:
    """Studies matching the QIDO keys. `visible(prefix)` is the condition on a series (reached through `prefix`)
    for it to exist: only those count in a study's modalities and its numbers of series and instances."""
    qs = studies.select_related("subject").prefetch_related(
        Prefetch("series", queryset=Series.objects.filter(visible("")))
    )
    if uids := _values(params, "StudyInstanceUID", "0020000D"):
        qs = qs.filter(study_instance_uid__in=uids)
    if ids := _values(params, "PatientID", "00100020"):
        qs = qs.filter(subject__code__in=ids)
    if value := params.get("StudyDate") or params.get("00080020"):
        start, end = _date_range(value)
        if start:
            qs = qs.filter(study_date__gte=start)
        if end:
            qs = qs.filter(study_date__lte=end)
    if modalities := _values(params, "ModalitiesInStudy", "00080061"):
        qs = qs.filter(pk__in=Series.objects.filter(visible(""), modality__in=modalities).values("study_id"))
    if pattern := params.get("StudyDescription") or params.get("00081030"):
        qs = qs.filter(_wildcard("description", pattern))
    qs = qs.annotate(
        n_series=Count("series", filter=visible("series__"), distinct=True),
        n_instances=Sum("series__instance_count", filter=visible("series__")),
    )
    return paginate(qs.order_by("study_date", "pk"), params)


def study_json(study: Study, root: str) -> dict:
    modalities = sorted({s.modality for s in study.series.all()})
    return {
        "00080020": _attr("DA", study.study_date.strftime("%Y%m%d") if study.study_date else None),
        "00080030": _attr("TM", study.study_time),
        "00080050": {"vr": "SH"},
        "00080061": _attr("CS", *modalities),
        "00081030": _attr("LO", study.description),
        "00081190": _attr("UR", f"{root}/studies/{study.study_instance_uid}"),
        "00100010": _pn(study.subject.code),
        "00100020": _attr("LO", study.subject.code),
        "0020000D": _attr("UI", study.study_instance_uid),
        "00201206": _attr("IS", getattr(study, "n_series", None)),
        "00201208": _attr("IS", getattr(study, "n_instances", None)),
    }


def search_series(series: QuerySet[Series], params: QueryDict, study_uid: str | None = None) -> QuerySet[Series]:
    qs = series.select_related("study")
    if study_uid:
        qs = qs.filter(study__study_instance_uid=study_uid)
    elif uids := _values(params, "StudyInstanceUID", "0020000D"):
        qs = qs.filter(study__study_instance_uid__in=uids)
    if uids := _values(params, "SeriesInstanceUID", "0020000E"):
        qs = qs.filter(series_instance_uid__in=uids)
    if modalities := _values(params, "Modality", "00080060"):
        qs = qs.filter(modality__in=modalities)
    if pattern := params.get("SeriesDescription") or params.get("0008103E"):
        qs = qs.filter(_wildcard("description", pattern))
    if numbers := _values(params, "SeriesNumber", "00200011"):
        try:
            qs = qs.filter(series_number__in=[int(n) for n in numbers])
        except ValueError:
            raise BadQuery("SeriesNumber must be a whole number") from None
    return paginate(qs.order_by("study_id", "series_number", "pk"), params)


def series_json(series: Series, root: str) -> dict:
    study_uid = series.study.study_instance_uid
    return {
        "00080060": _attr("CS", series.modality),
        "0008103E": _attr("LO", series.description),
        "00081190": _attr("UR", f"{root}/studies/{study_uid}/series/{series.series_instance_uid}"),
        "00180015": _attr("CS", series.body_part),
        "0020000D": _attr("UI", study_uid),
        "0020000E": _attr("UI", series.series_instance_uid),
        "00200011": _attr("IS", series.series_number),
        "00201209": _attr("IS", series.instance_count),
    }


def search_instances(
    instances: QuerySet[Instance], params: QueryDict, study_uid: str | None = None, series_uid: str | None = None
) -> QuerySet[Instance]:
    qs = instances.select_related("series__study")
    if study_uid:
        qs = qs.filter(series__study__study_instance_uid=study_uid)
    if series_uid:
        qs = qs.filter(series__series_instance_uid=series_uid)
    if uids := _values(params, "SOPInstanceUID", "00080018"):
        qs = qs.filter(sop_instance_uid__in=uids)
    if numbers := _values(params, "InstanceNumber", "00200013"):
        try:
            qs = qs.filter(instance_number__in=[int(n) for n in numbers])
        except ValueError:
            raise BadQuery("InstanceNumber must be a whole number") from None
    return paginate(qs.order_by("series_id", "instance_number", "pk"), params)


def instance_json(instance: Instance, root: str) -> dict:
    series = instance.series
    study_uid = series.study.study_instance_uid
    return {
        "00080016": _attr("UI", instance.sop_class_uid),
        "00080018": _attr("UI", instance.sop_instance_uid),
        "00080060": _attr("CS", series.modality),
        "00081190": _attr(
            "UR",
            f"{root}/studies/{study_uid}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}",
        ),
        "00083002": _attr("UI", instance.transfer_syntax_uid),
        "0020000D": _attr("UI", study_uid),
        "0020000E": _attr("UI", series.series_instance_uid),
        "00200013": _attr("IS", instance.instance_number),
        "00280008": _attr("IS", instance.number_of_frames),
        "00280010": _attr("US", instance.rows),
        "00280011": _attr("US", instance.columns),
    }
