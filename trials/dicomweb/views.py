"""DICOMweb views over a Scope: QIDO-RS searches, WADO-RS retrieval, metadata, frames, rendered and bulk data.

The views know nothing of trials or tasks: a root is a prefix and a scope function (see `dicomweb_urls`).
Anything outside the scope is 404. Instance-level responses never change (de-identified instances are
written once) and are cached for a year; series and study responses carry an ETag and are revalidated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions

from ..access import Actor
from ..api.auth import TrialTokenAuthentication
from . import qido, wado
from .negotiation import parse_accept, wants
from .scopes import Scope

DICOM_JSON = "application/dicom+json"
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"

ScopeFunction = Callable[..., Scope]


def _json(data, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data, separators=(",", ":")), status=status, content_type=DICOM_JSON)


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse(json.dumps({"error": message}), status=status, content_type="application/json")


def _actor(request: HttpRequest) -> Actor | None:
    """Session or Bearer token; None when neither authenticates."""
    if request.META.get("HTTP_AUTHORIZATION"):
        try:
            result = TrialTokenAuthentication().authenticate(request)
        except drf_exceptions.AuthenticationFailed:
            return None
        if result is not None:
            return Actor(user=result[0], token=result[1])
    if request.user.is_authenticated:
        return Actor(user=request.user)
    return None


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.META.get("HTTP_ORIGIN")
    if origin and origin in settings.DICOMWEB_CORS_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
        response["Access-Control-Expose-Headers"] = "ETag, Content-Type, Content-Range, Content-Length"
    return response


def _etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40] + '"'


def _cached(request: HttpRequest, etag: str, cache_control: str, make: Callable[[], HttpResponse]) -> HttpResponse:
    if etag in [t.strip() for t in request.META.get("HTTP_IF_NONE_MATCH", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = make()
    response["ETag"] = etag
    response["Cache-Control"] = cache_control
    response["Vary"] = "Accept, Authorization, Cookie"
    return response


def endpoint(handler):
    """Authenticate, resolve the scope, answer CORS pre-flights and turn errors into DICOMweb answers."""

    @csrf_exempt
    def view(request: HttpRequest, *args, scope_function: ScopeFunction, **kwargs):
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "GET, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Authorization, Accept, Range, If-None-Match"
            response["Access-Control-Max-Age"] = "600"
            return _cors(request, response)
        if request.method not in ("GET", "HEAD"):
            return _cors(request, _error(405, "Method not allowed."))
        actor = _actor(request)
        if actor is None:
            response = _error(401, "Authentication required.")
            response["WWW-Authenticate"] = 'Bearer realm="ctims"'
            return _cors(request, response)
        scope_args = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("scope_")}
        try:
            scope = scope_function(actor, **{k.removeprefix("scope_"): v for k, v in scope_args.items()})
            response = handler(request, scope, *args, **kwargs)
        except Http404 as exc:
            response = _error(404, str(exc) or "Not found.")
        except qido.BadQuery as exc:
            response = _error(400, str(exc))
        except wado.NotAcceptable as exc:
            response = _error(406, str(exc))
        except IndexError as exc:
            response = _error(404, str(exc))
        return _cors(request, response)

    return view


# -- QIDO-RS ----------------------------------------------------------------------------------------------


@endpoint
def search_studies(request, scope: Scope):
    studies = qido.search_studies(scope.studies, scope.query(request.GET), scope.visible)
    return _json([scope.blind(qido.study_json(s, scope.root)) for s in studies])


@endpoint
def search_series(request, scope: Scope, study: str | None = None):
    if study:
        scope.study(study)
    series = qido.search_series(scope.series(), scope.query(request.GET), study_uid=study)
    return _json([scope.blind(qido.series_json(s, scope.root)) for s in series])


@endpoint
def search_instances(request, scope: Scope, study: str | None = None, series: str | None = None):
    if series:
        scope.one_series(study, series)
    elif study:
        scope.study(study)
    instances = qido.search_instances(scope.instances(), scope.query(request.GET), study_uid=study, series_uid=series)
    return _json([scope.blind(qido.instance_json(i, scope.root)) for i in instances])


# -- WADO-RS: instances, series and studies as DICOM ------------------------------------------------------


def _instances_of(scope: Scope, study: str, series: str | None = None):
    qs = (
        scope.instances()
        .filter(series__study__study_instance_uid=study)
        .select_related("series__study")
        .defer("metadata")
    )
    if series:
        qs = qs.filter(series__series_instance_uid=series)
    instances = list(qs.order_by("series__series_number", "series_id", "instance_number", "pk"))
    if not instances:
        raise Http404("No such study or series.")
    return instances


def _dicom_response(request, scope: Scope, instances) -> HttpResponse:
    if not scope.serves_files:
        raise wado.NotAcceptable("this root serves metadata, frames and rendered images, not whole instances")
    accepted = parse_accept(request.META.get("HTTP_ACCEPT"))
    choice = wants(accepted, "multipart/related", "application/dicom")
    if choice is None or (choice.part_type and choice.part_type not in ("application/dicom", "*/*")):
        raise wado.NotAcceptable('send Accept: multipart/related; type="application/dicom"')
    if choice.transfer_syntax not in ("", "*") and any(
        i.transfer_syntax_uid != choice.transfer_syntax for i in instances
    ):
        raise wado.NotAcceptable("instances are available in the transfer syntax they were stored in (use *)")
    boundary = wado.new_boundary()

    def make():
        parts = (
            (f"application/dicom; transfer-syntax={i.transfer_syntax_uid}", wado.file_chunks(i)) for i in instances
        )
        response = StreamingHttpResponse(
            wado.multipart_stream(parts, boundary),
            content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )
        return response

    cache = IMMUTABLE if len(instances) == 1 else REVALIDATE
    return _cached(request, _etag("dicom", *(i.sha256 for i in instances)), cache, make)


@endpoint
def retrieve_study(request, scope: Scope, study: str):
    return _dicom_response(request, scope, _instances_of(scope, study))


@endpoint
def retrieve_series(request, scope: Scope, study: str, series: str):
    return _dicom_response(request, scope, _instances_of(scope, study, series))


@endpoint
def retrieve_instance(request, scope: Scope, study: str, series: str, instance: str):
    return _dicom_response(request, scope, [scope.instance(study, series, instance)])


# -- metadata -----------------------------------------------------------------------------------------------


def _metadata_response(request, scope: Scope, instances) -> HttpResponse:
    etag = _etag("metadata", scope.root, *(i.sha256 for i in instances))

    def make():
        # The body depends only on the instances and the root (both in the ETag): keep it for the next viewer.
        body = cache.get_or_set(f"dicomweb:{etag}", lambda: json.dumps(build(), separators=(",", ":")), 3600)
        return HttpResponse(body, content_type=DICOM_JSON)

    def build():
        wado.load_metadata(instances)
        body = []
        for i in instances:
            url = f"{scope.root}/studies/{i.series.study.study_instance_uid}/series/{i.series.series_instance_uid}/instances/{i.sop_instance_uid}"
            body.append(scope.blind(wado.with_bulk_data(wado.instance_metadata(i), i, url)))
        return body

    return _cached(request, etag, IMMUTABLE if len(instances) == 1 else REVALIDATE, make)


@endpoint
def study_metadata(request, scope: Scope, study: str):
    return _metadata_response(request, scope, _instances_of(scope, study))


@endpoint
def series_metadata(request, scope: Scope, study: str, series: str):
    return _metadata_response(request, scope, _instances_of(scope, study, series))


@endpoint
def instance_metadata(request, scope: Scope, study: str, series: str, instance: str):
    return _metadata_response(request, scope, [scope.instance(study, series, instance)])


# -- frames and bulk data -----------------------------------------------------------------------------------


def _frame_numbers(text: str) -> list[int]:
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise Http404("Frame numbers are a comma-separated list of whole numbers.")
    return [int(n) for n in text.split(",")]


@endpoint
def retrieve_frames(request, scope: Scope, study: str, series: str, instance: str, frames: str):
    item = scope.instance(study, series, instance)
    numbers = _frame_numbers(frames)
    accepted = parse_accept(request.META.get("HTTP_ACCEPT"))
    choice = wants(accepted, "multipart/related", "application/octet-stream")
    if choice is None:
        raise wado.NotAcceptable('send Accept: multipart/related; type="application/octet-stream"')
    syntax = choice.transfer_syntax
    if choice.media_type == "*/*":
        syntax = "*"

    def make():
        layout = wado.native_layout(item)
        if layout and syntax in ("*", "", wado.EXPLICIT_VR_LE, item.transfer_syntax_uid):
            data, used = wado.read_native_frames(item, layout, numbers), wado.EXPLICIT_VR_LE
        else:
            data, used = wado.frames_for(wado.read_instance(item), numbers, syntax)
        boundary = wado.new_boundary()
        part_type = "application/octet-stream"
        body = b"".join(
            wado.multipart_stream(((f"{part_type}; transfer-syntax={used}", [frame]) for frame in data), boundary)
        )
        return HttpResponse(body, content_type=f'multipart/related; type="{part_type}"; boundary={boundary}')

    return _cached(request, _etag("frames", item.sha256, frames, syntax), IMMUTABLE, make)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@endpoint
def retrieve_bulkdata(request, scope: Scope, study: str, series: str, instance: str, tag: str):
    item = scope.instance(study, series, instance)
    if tag.upper() != "7FE00010":
        raise Http404("Bulk data is served for the pixel data (7FE00010).")
    ds = wado.read_instance(item)
    data = ds.PixelData
    etag = _etag("bulk", item.sha256)
    match = _RANGE.match(request.META.get("HTTP_RANGE", "").strip())
    if match and (match.group(1) or match.group(2)):
        start_text, end_text = match.groups()
        if start_text:
            start, end = int(start_text), min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
        else:
            start, end = max(len(data) - int(end_text), 0), len(data) - 1
        if start > end or start >= len(data):
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{len(data)}"
            return response
        response = HttpResponse(data[start : end + 1], status=206, content_type="application/octet-stream")
        response["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    else:
        response = HttpResponse(data, content_type="application/octet-stream")
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE
    return response


# -- rendered and thumbnails ----------------------------------------------------------------------------------


def _render_params(request) -> dict:
    params = {}
    if window := request.GET.get("window"):
        try:
            center, width, *_ = (float(v) for v in window.split(","))
        except ValueError:
            raise qido.BadQuery("window is center,width[,function]") from None
        params["window"] = (center, width)
    if viewport := request.GET.get("viewport"):
        try:
            w, h = (int(v) for v in viewport.split(",")[:2])
        except ValueError:
            raise qido.BadQuery("viewport is width,height") from None
        params["viewport"] = (max(1, min(w, 4096)), max(1, min(h, 4096)))
    if quality := request.GET.get("quality"):
        params["quality"] = max(1, min(int(quality), 100)) if quality.isdigit() else 90
    choice = wants(parse_accept(request.META.get("HTTP_ACCEPT")), "image/png", "image/jpeg")
    if choice is None:
        raise wado.NotAcceptable("rendered images are image/png or image/jpeg")
    params["media_type"] = "image/jpeg" if choice.media_type == "image/jpeg" else "image/png"
    return params


def _rendered(request, item, frame: int, thumbnail: bool = False) -> HttpResponse:
    params = _render_params(request)
    if thumbnail:
        params.setdefault("viewport", (128, 128))

    def make():
        return HttpResponse(
            wado.render(wado.read_instance(item), frame=frame, **params), content_type=params["media_type"]
        )

    return _cached(request, _etag("rendered", item.sha256, str(frame), repr(sorted(params.items()))), IMMUTABLE, make)


@endpoint
def rendered_instance(request, scope: Scope, study: str, series: str, instance: str):
    return _rendered(request, scope.instance(study, series, instance), 1)


@endpoint
def thumbnail_instance(request, scope: Scope, study: str, series: str, instance: str):
    return _rendered(request, scope.instance(study, series, instance), 1, thumbnail=True)


@endpoint
def rendered_frame(request, scope: Scope, study: str, series: str, instance: str, frames: str):
    numbers = _frame_numbers(frames)
    return _rendered(request, scope.instance(study, series, instance), numbers[0])


@endpoint
def thumbnail_series(request, scope: Scope, study: str, series: str):
    instances = _instances_of(scope, study, series)
    return _rendered(request, instances[len(instances) // 2], 1, thumbnail=True)


def dicomweb_urls(prefix: str, scope_function: ScopeFunction, name: str) -> list:
    """The DICOMweb routes of one root. `prefix` holds the scope's arguments as `scope_`-named converters."""
    kw = {"scope_function": scope_function}
    st, se, inst = "studies/<str:study>", "series/<str:series>", "instances/<str:instance>"
    routes = [
        ("studies", search_studies, "studies"),
        ("series", search_series, "series"),
        ("instances", search_instances, "instances"),
        (st, retrieve_study, "study"),
        (f"{st}/metadata", study_metadata, "study-metadata"),
        (f"{st}/series", search_series, "study-series"),
        (f"{st}/instances", search_instances, "study-instances"),
        (f"{st}/{se}", retrieve_series, "series-retrieve"),
        (f"{st}/{se}/metadata", series_metadata, "series-metadata"),
        (f"{st}/{se}/thumbnail", thumbnail_series, "series-thumbnail"),
        (f"{st}/{se}/instances", search_instances, "series-instances"),
        (f"{st}/{se}/{inst}", retrieve_instance, "instance"),
        (f"{st}/{se}/{inst}/metadata", instance_metadata, "instance-metadata"),
        (f"{st}/{se}/{inst}/rendered", rendered_instance, "instance-rendered"),
        (f"{st}/{se}/{inst}/thumbnail", thumbnail_instance, "instance-thumbnail"),
        (f"{st}/{se}/{inst}/frames/<str:frames>", retrieve_frames, "frames"),
        (f"{st}/{se}/{inst}/frames/<str:frames>/rendered", rendered_frame, "frames-rendered"),
        (f"{st}/{se}/{inst}/bulkdata/<str:tag>", retrieve_bulkdata, "bulkdata"),
    ]
    return [path(prefix + route, view, kw, name=f"dicomweb-{name}-{suffix}") for route, view, suffix in routes]
