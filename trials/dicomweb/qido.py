"""QIDO-RS (PS3.18 10.6): searches over the index, answered as DICOM JSON without opening a file.

Every matching key of PS3.18 Table 10.6.1-5 is matched (single value, wildcard, UID list and range matching as
PS3.4 C.2.2.2 defines them), at its own level and, for study and series keys, from the levels below it. A key
that names a DICOM attribute this server does not match on is reported in a Warning header, never silently
ignored; a parameter that names no attribute is refused. Answers hold the default attributes of Table 10.6.3-3,
-4 and -5 (present even when empty), plus what `includefield` asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.db.models import Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.functions import Concat, Left, Replace, RPad, StrIndex, Substr, Trim
from django.db.models.lookups import GreaterThan, GreaterThanOrEqual, LessThanOrEqual
from django.http import QueryDict
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from ..models import Instance, Series, Study

# Integers the index stores (IS values, offsets) fit a signed 32-bit column; bigger ones are refused, not sent.
INT_MAX = 2**31 - 1
CAPPED = "The number of results exceeded the maximum supported by the server. Additional results can be requested."
PARAMETERS = {"limit", "offset", "includefield", "fuzzymatching"}
STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)


class BadQuery(ValueError):
    """A query parameter QIDO-RS cannot use; answered with 400 and this message."""


def whole_number(name: str, text: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """`text` as an integer in [minimum, maximum], or BadQuery naming the parameter."""
    if not re.fullmatch(r"[+-]?\d{1,20}", text.strip()):
        raise BadQuery(f"{name} must be a whole number, not {text[:40]!r}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadQuery(f"{name} must be between {minimum} and {maximum}")
    return value


# -- matching --------------------------------------------------------------------------------------------------


def _wildcard_regex(pattern: str) -> str:
    return "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"


def _string(path: str, value: str, *, case: bool) -> Q:
    """Single value or wildcard matching (PS3.4 C.2.2.2.1, C.2.2.2.4); `case=False` for PN and descriptions."""
    if value.strip("*") == "":
        return Q()  # "*" alone is universal matching
    if "*" in value or "?" in value:
        return Q(**{f"{path}__{'regex' if case else 'iregex'}": _wildcard_regex(value)})
    return Q(**{f"{path}__{'exact' if case else 'iexact'}": value})


def _list(value: str) -> list[str]:
    """A value list: UIDs (and codes such as Modality) may be separated by commas or backslashes."""
    return [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]


def _range(key: str, value: str, bound: Callable[[str], object], form: str) -> tuple:
    """A DA or TM value split into its bounds (PS3.4 C.2.2.2.5: A, A-B, -B or A-); a value that is none of these
    is refused whole (a date written 2016-03-15 is not the range from 2016 to 03-15)."""
    start, end = value.split("-", 1) if "-" in value else (value, value)
    try:
        if "-" in end or not (start or end):
            raise ValueError
        return bound(start, upper=False), bound(end, upper=True)
    except ValueError:
        raise BadQuery(
            f"{key} must be {form} or a range of them ({form}-{form}, -{form} or {form}-), not {value[:40]!r}"
        ) from None


def _date(text: str, *, upper: bool) -> date | None:
    if not text:
        return None
    if not re.fullmatch(r"\d{8}", text):
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))  # ValueError: no such day


def _date_match(key: str, path: str, value: str) -> Q:
    """Single value or range matching of a DA key (PS3.4 C.2.2.2.5): YYYYMMDD, A-B, -B or A-."""
    start, end = _range(key, value, _date, "YYYYMMDD")
    condition = Q()
    if start:
        condition &= Q(**{f"{path}__gte": start})
    if end:
        condition &= Q(**{f"{path}__lte": end})
    return condition


_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")


def _time(text: str, *, upper: bool) -> str | None:
    """A TM bound as a full HHMMSS.FFFFFF: the first instant it names, or (upper) the last (1030 is 10:30:00.000000
    to 10:30:59.999999)."""
    if not text:
        return None
    match = _TIME.fullmatch(text.replace(":", ""))
    if not match:
        raise ValueError(text)
    hh, mm, ss, fraction = match.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:
        raise ValueError(text)
    fill = "59" if upper else "00"
    return f"{hh}{mm or fill}{ss or fill}.{(fraction or '').ljust(6, '9' if upper else '0')}"


def full_time(path: str) -> Case:
    """A stored TM value as a full HHMMSS.FFFFFF, so that times compare by value: 1030, 103000 and 103000.0 are
    one instant (and the colons of ACR-NEMA's 10:30:00 are dropped)."""
    text = Replace(Trim(F(path)), Value(":"), Value(""))
    dot = StrIndex(text, Value("."))
    return Case(
        When(
            GreaterThan(dot, 0),
            then=Concat(
                RPad(Left(text, dot - 1), 6, Value("0")), Value("."), RPad(Substr(text, dot + 1), 6, Value("0"))
            ),
        ),
        default=Concat(RPad(text, 6, Value("0")), Value(".000000")),
        output_field=CharField(),
    )


def _time_match(key: str, path: str, value: str) -> Q:
    """Single value or range matching of a TM key, by value: a partial time (HHMM) matches every time within it,
    and a stored value of any precision is the instant it names."""
    low, high = _range(key, value, _time, "HHMMSS.FFFFFF")
    condition = Q(**{f"{path}__gt": ""})  # a study without a time matches no time key
    if low:
        condition &= Q(GreaterThanOrEqual(full_time(path), Value(low)))
    if high:
        condition &= Q(LessThanOrEqual(full_time(path), Value(high)))
    return condition


def _int_match(key: str, path: str, value: str) -> Q:
    return Q(**{f"{path}__in": [whole_number(key, v, minimum=-INT_MAX) for v in _list(value)]})


@dataclass(frozen=True)
class Key:
    """One matching key: its keyword and tag, the level it belongs to, the column it matches and how."""

    keyword: str
    level: str
    path: str  # from the level's model
    match: str  # uid, string, text (case-insensitive), pn, code (value list), date, time, int, modalities

    @property
    def tag(self) -> str:
        return f"{tag_for_keyword(self.keyword.split('.')[-1]):08X}"

    def condition(self, prefix: str, value: str, visible: Callable[[str], Q]) -> Q:
        path, name = prefix + self.path, self.keyword
        if self.match in ("uid", "code"):
            values = _list(value)
            if self.match == "uid" and any("*" in v or "?" in v for v in values):
                raise BadQuery(f"{name} takes UIDs, not wildcards")
            return Q(**{f"{path}__in": values})
        if self.match == "modalities":
            return Q(
                **{f"{prefix}pk__in": Series.objects.filter(visible(""), modality__in=_list(value)).values("study_id")}
            )
        if self.match == "date":
            return _date_match(name, path, value)
        if self.match == "time":
            return _time_match(name, path, value)
        if self.match == "int":
            return _int_match(name, path, value)
        return _string(path, value, case=self.match == "string")


KEYS = [
    # Study level (Table 10.6.1-5, plus the description)
    Key("StudyDate", STUDY, "study_date", "date"),
    Key("StudyTime", STUDY, "study_time", "time"),
    Key("AccessionNumber", STUDY, "accession_number", "string"),
    Key("ModalitiesInStudy", STUDY, "", "modalities"),
    Key("ReferringPhysicianName", STUDY, "referring_physician_name", "pn"),
    Key("PatientName", STUDY, "subject__code", "pn"),  # de-identified: the name is the subject code
    Key("PatientID", STUDY, "subject__code", "string"),
    Key("StudyInstanceUID", STUDY, "study_instance_uid", "uid"),
    Key("StudyID", STUDY, "study_id", "string"),
    Key("StudyDescription", STUDY, "description", "text"),
    Key("PatientBirthDate", STUDY, "patient_birth_date", "date"),
    Key("PatientSex", STUDY, "patient_sex", "string"),
    # Series level
    Key("Modality", SERIES, "modality", "code"),
    Key("SeriesInstanceUID", SERIES, "series_instance_uid", "uid"),
    Key("SeriesNumber", SERIES, "series_number", "int"),
    Key("PerformedProcedureStepStartDate", SERIES, "performed_procedure_step_start_date", "date"),
    Key("PerformedProcedureStepStartTime", SERIES, "performed_procedure_step_start_time", "time"),
    Key("RequestAttributesSequence.ScheduledProcedureStepID", SERIES, "scheduled_procedure_step_id", "string"),
    Key("RequestAttributesSequence.RequestedProcedureID", SERIES, "requested_procedure_id", "string"),
    Key("SeriesDescription", SERIES, "description", "text"),
    Key("BodyPartExamined", SERIES, "body_part", "string"),
    # Instance level
    Key("SOPClassUID", INSTANCE, "sop_class_uid", "uid"),
    Key("SOPInstanceUID", INSTANCE, "sop_instance_uid", "uid"),
    Key("InstanceNumber", INSTANCE, "instance_number", "int"),
]


def _names(key: Key) -> set[str]:
    """The spellings of a key in a query: keyword or tag, for sequences each path element either way."""
    parts = key.keyword.split(".")
    tags = [f"{tag_for_keyword(p):08X}" for p in parts]
    if len(parts) == 1:
        return {parts[0], tags[0]}
    return {".".join(parts), ".".join(tags), f"{parts[0]}.{tags[1]}", f"{tags[0]}.{parts[1]}"}


BY_NAME: dict[str, Key] = {name: key for key in KEYS for name in _names(key)}
# How each target level reaches the model of a key's level.
PREFIX = {
    STUDY: {STUDY: ""},
    SERIES: {STUDY: "study__", SERIES: ""},
    INSTANCE: {STUDY: "series__study__", SERIES: "series__", INSTANCE: ""},
}


def attribute_tag(name: str) -> str | None:
    """The tag (8 hex digits) a query names by keyword or tag, or None if it names no attribute."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return name.upper()
    tag = tag_for_keyword(name)
    return f"{tag:08X}" if tag is not None else None


@dataclass
class Search:
    """The rows of one QIDO-RS answer, what it must add to each, and the warnings to send with it."""

    rows: list
    include: set[str] = field(default_factory=set)  # tags asked for by includefield
    include_all: bool = False
    warnings: list[str] = field(default_factory=list)
    # The levels above the target whose attributes each answer carries: those the search spans.
    above: set[str] = field(default_factory=set)
    # The study and series attributes of the rows, made once per study and series (many rows share them).
    made: dict[tuple[str, int], dict] = field(default_factory=dict)
    # Instance searches: the rows' series by primary key (with their study and subject).
    series: dict[int, Series] = field(default_factory=dict)
    urls: dict[int, str] = field(default_factory=dict)  # and their Retrieve URLs

    def once(self, kind: str, pk: int, make: Callable[[], dict]) -> dict:
        found = self.made.get((kind, pk))
        if found is None:
            found = self.made[kind, pk] = make()
        return found


@dataclass
class _Query:
    conditions: Q
    include: set[str]
    include_all: bool
    warnings: list[str]
    limit: int
    offset: int
    capped_limit: bool  # the client asked for more than the maximum (or for no limit at all)


def _parse(params: QueryDict, level: str, visible: Callable[[str], Q], ignored: Iterable[str] = ()) -> _Query:
    conditions, include, include_all, warnings = Q(), set(), False, []
    unsupported: list[str] = list(ignored)
    maximum = settings.DICOMWEB_MAX_RESULTS
    limit, offset, capped_limit = maximum, 0, True
    if "limit" in params:
        asked = whole_number("limit", params["limit"], minimum=1)
        limit, capped_limit = min(asked, maximum), asked > maximum
    if "offset" in params:
        offset = whole_number("offset", params["offset"])
    for name in params:
        values = params.getlist(name)
        if name in ("limit", "offset"):
            continue
        if name == "includefield":
            for value in values:
                for item in _list(value):
                    if item == "all":
                        include_all = True
                    elif (tag := attribute_tag(item)) is None:
                        raise BadQuery(f"includefield {item[:40]!r} is not a DICOM attribute keyword or tag")
                    else:
                        include.add(tag)
            continue
        if name == "fuzzymatching":
            if any(v.lower() == "true" for v in values):
                warnings.append("fuzzymatching is not supported: names are matched exactly or with wildcards")
            continue
        key = BY_NAME.get(name)
        if key is None:
            if attribute_tag(name) is None:
                raise BadQuery(f"{name[:40]!r} is neither a QIDO-RS parameter nor a DICOM attribute")
            if any(values):
                unsupported.append(name)
            else:
                include.add(attribute_tag(name))  # an empty key asks for the attribute (universal matching)
            continue
        if key.level not in PREFIX[level]:
            for value in filter(None, values):
                key.condition("", value, visible)  # a bad value is refused even where the key is not matched
                unsupported.append(name)
            continue
        for value in values:
            if value:
                conditions &= key.condition(PREFIX[level][key.level], value, visible)
    if unsupported:
        warnings.append(
            "The following attributes were not supported for matching and were ignored: " + ", ".join(unsupported)
        )
    return _Query(conditions, include, include_all, warnings, limit, offset, capped_limit)


def _page(qs: QuerySet, query: _Query) -> Search:
    rows = list(qs[query.offset : query.offset + query.limit + 1])
    search = Search(rows=rows[: query.limit], include=query.include, include_all=query.include_all)
    search.warnings = list(query.warnings)
    if len(rows) > query.limit and query.capped_limit:
        search.warnings.append(CAPPED)
    return search


def _every_series(prefix: str = "") -> Q:
    return Q()


def search_studies(
    studies: QuerySet[Study],
    params: QueryDict,
    visible: Callable[[str], Q] = _every_series,
    ignored: Iterable[str] = (),
) -> Search:
    """Studies matching the QIDO keys. `visible(prefix)` is the condition on a series (reached through `prefix`)
    for it to exist: only those count in a study's modalities and its numbers of series and instances.
    `ignored` are keys the root does not match on (reported in the answer's Warning)."""
    query = _parse(params, STUDY, visible, ignored)
    qs = studies.filter(query.conditions).select_related("subject")
    search = _page(qs.order_by("study_date", "pk"), query)
    # The visible series of the page's studies, read once as plain values: the studies' modalities and counts
    # come from them (no GROUP BY over every matching study's series).
    found: dict[int, list[tuple[str, int]]] = {study.pk: [] for study in search.rows}
    rows = Series.objects.filter(visible(""), study_id__in=found).values_list("study_id", "modality", "instance_count")
    for study_id, modality, count in rows:
        found[study_id].append((modality, count))
    for study in search.rows:
        study.visible_series = found[study.pk]
    return search


def search_series(
    series: QuerySet[Series],
    params: QueryDict,
    study_uid: str | None = None,
    visible: Callable[[str], Q] = _every_series,
    ignored: Iterable[str] = (),
) -> Search:
    query = _parse(params, SERIES, visible, ignored)
    qs = series.filter(query.conditions).select_related("study__subject")
    if study_uid:
        qs = qs.filter(study__study_instance_uid=study_uid)
    search = _page(qs.order_by("study_id", "series_number", "pk"), query)
    search.above = set() if study_uid else {STUDY}
    return search


def search_instances(
    instances: QuerySet[Instance],
    params: QueryDict,
    study_uid: str | None = None,
    series_uid: str | None = None,
    visible: Callable[[str], Q] = _every_series,
    ignored: Iterable[str] = (),
    series: Series | None = None,
) -> Search:
    """Instances matching the QIDO keys; `series` (already found visible) narrows them to its own, the index's
    cheapest question. Without includefield the rows are plain tuples of INSTANCE_COLUMNS (no model instances
    for a 500-slice series); with it, instances with their metadata."""
    query = _parse(params, INSTANCE, visible, ignored)
    if series is not None:
        instances = Instance.objects.filter(series_id=series.pk)
    qs = instances.filter(query.conditions)
    if query.include or query.include_all:
        qs = qs.defer("pixel_layout")
    else:
        qs = qs.values_list(*INSTANCE_COLUMNS, named=True)
    if study_uid and series is None:
        qs = qs.filter(series__study__study_instance_uid=study_uid)
    if series_uid and series is None:
        qs = qs.filter(series__series_instance_uid=series_uid)
    search = _page(qs.order_by("series_id", "instance_number", "pk"), query)
    # Many rows share a series: load each series (with its study and subject) once, not once per row.
    if series is not None:
        search.series = {series.pk: series}
    else:
        search.series = Series.objects.select_related("study__subject").in_bulk({i.series_id for i in search.rows})
    search.above = set() if series_uid else {SERIES} if study_uid else {STUDY, SERIES}
    return search


# What an instance's answer needs of its row (its metadata only when includefield asks for more).
INSTANCE_COLUMNS = (
    "series_id",
    "sop_class_uid",
    "sop_instance_uid",
    "instance_number",
    "transfer_syntax_uid",
    "number_of_frames",
    "rows",
    "columns",
    "bits_allocated",
)


# -- answers ---------------------------------------------------------------------------------------------------


def _attr(vr: str, *values) -> dict:
    values = [v for v in values if v is not None and v != ""]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _pn(name: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]} if name else {"vr": "PN"}


def _da(day: date | None) -> dict:
    return _attr("DA", day.strftime("%Y%m%d") if day else None)


ONLINE = {"vr": "CS", "Value": ["ONLINE"]}


def study_attributes(study: Study, root: str, *, counts: bool) -> dict:
    """Table 10.6.3-3: the study's default attributes, present even when empty."""
    out = {
        "00080020": _da(study.study_date),
        "00080030": _attr("TM", study.study_time),
        "00080050": _attr("SH", study.accession_number),
        "00080056": ONLINE,
        "00080090": _pn(study.referring_physician_name),
        "00081030": _attr("LO", study.description),
        "00100010": _pn(study.subject.code),
        "00100020": _attr("LO", study.subject.code),
        "00100030": _da(study.patient_birth_date),
        "00100040": _attr("CS", study.patient_sex),
        "0020000D": _attr("UI", study.study_instance_uid),
        "00200010": _attr("SH", study.study_id),
    }
    if counts:
        series = study.visible_series  # (modality, instance count) of each series the root shows
        out["00080061"] = _attr("CS", *sorted({modality for modality, _ in series}))
        out["00081190"] = _attr("UR", f"{root}/studies/{study.study_instance_uid}")
        out["00201206"] = _attr("IS", len(series))
        out["00201208"] = _attr("IS", sum(count for _, count in series))
    return out


def series_attributes(series: Series, root: str) -> dict:
    """Table 10.6.3-4: the series' default attributes, present even when empty."""
    request = {}
    if series.requested_procedure_id or series.scheduled_procedure_step_id:
        request = {
            "00400009": _attr("SH", series.scheduled_procedure_step_id),
            "00401001": _attr("SH", series.requested_procedure_id),
        }
    return {
        "00080056": ONLINE,
        "00080060": _attr("CS", series.modality),
        "0008103E": _attr("LO", series.description),
        "00081190": _attr("UR", series_url(series, root)),
        "00180015": _attr("CS", series.body_part),
        "0020000E": _attr("UI", series.series_instance_uid),
        "00200011": _attr("IS", series.series_number),
        "00201209": _attr("IS", series.instance_count),
        "00400244": _da(series.performed_procedure_step_start_date),
        "00400245": _attr("TM", series.performed_procedure_step_start_time),
        "00400275": {"vr": "SQ", "Value": [request]} if request else {"vr": "SQ"},
    }


def _us(value: int | None) -> dict:
    return {"vr": "US", "Value": [value]} if value is not None else {"vr": "US"}


def _is(value: int | None) -> dict:
    return {"vr": "IS", "Value": [value]} if value is not None else {"vr": "IS"}


def _ui(value: str) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def series_url(series: Series, root: str) -> str:
    return f"{root}/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"


def instance_attributes(instance, series_url: str) -> dict:
    """Table 10.6.3-5: the instance's default attributes, present even when empty, in tag order. `instance` is
    an Instance or a row of INSTANCE_COLUMNS; made for every row of a 500-slice series, so written out flat."""
    return {
        "00080016": _ui(instance.sop_class_uid),
        "00080018": _ui(instance.sop_instance_uid),
        "00080056": ONLINE,
        "00081190": {
            "vr": "UR",
            "Value": [f"{series_url}/instances/{instance.sop_instance_uid}"],
        },
        "00083002": _ui(instance.transfer_syntax_uid),
        "00200013": _is(instance.instance_number),
        "00280008": _is(instance.number_of_frames),
        "00280010": _us(instance.rows),
        "00280011": _us(instance.columns),
        "00280100": _us(instance.bits_allocated),
    }


def _with_includes(out: dict, search: Search, metadata: dict | None) -> dict:
    """The default attributes plus those `includefield` names that the row (or its metadata) holds."""
    if metadata is not None:
        if search.include_all:
            extra = {t: e for t, e in metadata.items() if t != "7FE00010" and "BulkDataURI" not in e}
        else:
            extra = {t: metadata[t] for t in search.include if t in metadata}
        out = extra | out
    for tag in search.include - out.keys():
        vr = _vr(tag)
        if vr:
            out[tag] = {"vr": vr}  # asked for, not held at this level: present and empty
    return dict(sorted(out.items()))


def _vr(tag: str) -> str | None:
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return None
    return vr.split(" or ")[0] if keyword_for_tag(int(tag, 16)) else None


def study_json(study: Study, root: str, search: Search | None = None) -> dict:
    return _with_includes(study_attributes(study, root, counts=True), search or Search([]), None)


def series_json(series: Series, root: str, search: Search | None = None) -> dict:
    """A series answer; the study's attributes too when the search spans studies (PS3.18 10.6.3.3.2)."""
    search = search or Search([])
    out = series_attributes(series, root)
    if search.above >= {STUDY}:
        out = search.once("study", series.study_id, lambda: study_attributes(series.study, root, counts=False)) | out
    return _with_includes(out, search, None)


def instance_json(instance, root: str, search: Search | None = None) -> dict:
    """An instance answer; with its series' attributes when the search spans series, and its study's when it
    spans studies (PS3.18 10.6.3.3.3). `instance` is an Instance, or a row of INSTANCE_COLUMNS."""
    search = search or Search([])
    series = search.series.get(instance.series_id) or instance.series
    url = search.urls.get(series.pk) or search.urls.setdefault(series.pk, series_url(series, root))
    out = instance_attributes(instance, url)
    if not (search.above or search.include or search.include_all):
        return out  # already in tag order
    if search.above:
        above = search.once("series", series.pk, lambda: _above(series, root, search.above))
        out = above | out
    metadata = instance.metadata if (search.include or search.include_all) else None
    return _with_includes(out, search, metadata)


def _above(series: Series, root: str, levels: set[str]) -> dict:
    out = series_attributes(series, root)
    out.pop("00081190")  # the instance's own Retrieve URL is the one that counts
    if STUDY in levels:
        out = study_attributes(series.study, root, counts=False) | out
    return out
