"""DICOMweb views over a Scope: QIDO-RS searches, WADO-RS retrieval, metadata, frames, rendered and bulk data.

The views know nothing of trials or tasks: a root is a prefix and a scope function (see `dicomweb_urls`).
Anything outside the scope is 404. Instance-level responses never change (de-identified instances are
written once) and are cached for a year; series and study responses carry an ETag and are revalidated.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from urllib.parse import quote

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db.models.base import ModelState
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from pydicom.uid import UID
from rest_framework import exceptions as drf_exceptions

from ctims.api_errors import error_body

from ..access import Actor
from ..api.auth import TrialTokenAuthentication
from ..models import Series
from . import qido, wado
from .dicom_xml import XML_MEDIA_TYPE as XML
from .dicom_xml import dataset_xml
from .negotiation import EXPLICIT_VR_LE, FRAME_MEDIA_TYPES, Accepted, covers, frame_choice, parse_accept
from .scopes import Scope

DICOM_JSON = "application/dicom+json"
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
ALLOW = "GET, HEAD, OPTIONS"
ONE_BODY = 16 << 20  # an instance up to this size is answered as one body, a larger one streamed

ScopeFunction = Callable[..., Scope]


def _json(data, status: int = 200) -> HttpResponse:
    # orjson: a 500-instance answer is serialised in a tenth of json.dumps' time.
    return HttpResponse(orjson.dumps(data), status=status, content_type=DICOM_JSON)


_ERROR_CODES = {
    400: "invalid",
    401: "not_authenticated",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
}


def _error(status: int, message: str) -> HttpResponse:
    """An error in the API's one shape ({"error": {"code", "message"}}), so that clients parse one kind."""
    body = error_body(_ERROR_CODES.get(status, "error"), message)
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


def _warn(request: HttpRequest, response: HttpResponse, messages: list[str]) -> HttpResponse:
    """PS3.18 8.6.2 warnings: `299 {service}: "text"`, one per message."""
    if messages:
        host = request.get_host()
        response["Warning"] = ", ".join('299 {}: "{}"'.format(host, m.replace('"', "'")) for m in messages)
    return response


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
        # Added to what the answer varies by (Accept, Authorization, Cookie), never in its place.
        patch_vary_headers(response, ["Origin"])
        # What a viewer reads beyond the safelisted headers: Warning (a search cut at the maximum, keys left out),
        # Content-Location (which bulk data a part holds), the ETag and the range of a partial answer.
        response["Access-Control-Expose-Headers"] = (
            "ETag, Content-Type, Content-Range, Content-Length, Content-Location, Warning"
        )
    return response


def _etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40] + '"'


def _not_modified(request: HttpRequest, etag: str) -> bool:
    """Whether If-None-Match names the current representation: `*`, or its tag by weak comparison (RFC 9110
    13.1.2 and 8.8.3.2: W/"x" matches "x")."""
    tags = [t.strip().removeprefix("W/") for t in request.META.get("HTTP_IF_NONE_MATCH", "").split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _cached(request: HttpRequest, etag: str, cache_control: str, make: Callable[[], HttpResponse]) -> HttpResponse:
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
        del response["Content-Type"]  # a 304 has no body, so no type (Django's default is text/html)
    else:
        response = make()
    response["ETag"] = etag
    response["Cache-Control"] = cache_control
    response["Vary"] = "Accept, Authorization, Cookie"
    return response


def _fresh_copy(found):
    """A copy of a kept instance: what a request loads onto it (its metadata) is not kept. Its fields and a copy
    of its cache of related rows, as Model.__getstate__ does, without copy.copy's reduce-and-rebuild (three
    times slower, on the hot path of frames)."""
    clone = found.__class__.__new__(found.__class__)
    clone.__dict__.update(found.__dict__)
    clone._state = ModelState()
    clone._state.__dict__.update(found._state.__dict__, fields_cache=dict(found._state.fields_cache))
    return clone


class _InstanceRows:
    """Instance rows (with their series, study and subject) kept by the process for token clients, by SOP
    Instance UID. Nothing in them that decides access ever changes once written (an instance's series, a
    series' study, modality and origin, a study's trial and subject, a subject's site), and they are kept apart
    from the permissions: each request still asks its scope (rebuilt every DICOMWEB_ACCESS_CACHE_SECONDS)
    whether the row exists for it. So a viewer's next visit to a series, after its permissions were read
    again, costs no query per instance."""

    LIMIT = 5000  # a few MB a process; cleared when full

    def __init__(self):
        self.rows: dict[str, object] = {}

    def find(self, scope: Scope, sop_uid: str):
        found = self.rows.get(sop_uid)
        if found is None:
            found = scope.find_instance(sop_uid)
            if found is not None:
                if len(self.rows) >= self.LIMIT:
                    self.rows.clear()
                self.rows[sop_uid] = found
        return found

    def clear(self) -> None:
        self.rows.clear()


_instance_rows = _InstanceRows()


class _KeptScope:
    """A token client's scope kept between requests. Where the scope's test is one of the row alone (`allows`),
    its instances come from the process's kept rows; otherwise it remembers those it looked up itself."""

    LIMIT = 5000

    def __init__(self, scope: Scope):
        self._scope = scope
        self._instances: dict[tuple[str, str, str], object] = {}

    def __getattr__(self, name):
        return getattr(self._scope, name)

    def instance(self, study_uid: str, series_uid: str, sop_uid: str):
        if self._scope.allows is not None:
            found = _instance_rows.find(self._scope, sop_uid)
            if found is None or not self._scope.admits(found, study_uid, series_uid):
                raise Http404("No such instance.")
            return _fresh_copy(found)
        key = (study_uid, series_uid, sop_uid)
        found = self._instances.get(key)
        if found is None:
            found = self._scope.instance(study_uid, series_uid, sop_uid)
            if len(self._instances) < self.LIMIT:
                self._instances[key] = found
        return _fresh_copy(found)


class _TokenScopes:
    """A token client's scopes, kept for DICOMWEB_ACCESS_CACHE_SECONDS: a viewer asks for hundreds of frames in a
    burst, and each would otherwise authenticate its token and read its permissions again. A revoked token or
    role reaches token clients within that many seconds (0 turns this off); sessions are never cached."""

    LIMIT = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.entries: dict[tuple, tuple[float, Scope]] = {}
        self.clock = clock  # a test moves it forward instead of waiting

    def _key(self, request, scope_function, scope_args) -> tuple | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not settings.DICOMWEB_ACCESS_CACHE_SECONDS or not header.startswith("Bearer "):
            return None
        digest = hashlib.sha256(header.encode("latin-1", "replace")).hexdigest()
        return digest, scope_function, tuple(sorted(scope_args.items()))

    def get(self, request, scope_function, scope_args) -> Scope | None:
        key = self._key(request, scope_function, scope_args)
        entry = self.entries.get(key) if key else None
        if entry is None or entry[0] < self.clock():
            return None
        return entry[1]

    def put(self, request, scope_function, scope_args, scope: Scope) -> Scope:
        """Keep the scope (if the cache is on); returns the scope the request should use."""
        key = self._key(request, scope_function, scope_args)
        if key is None:
            return scope
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        kept = _KeptScope(scope)
        self.entries[key] = (self.clock() + settings.DICOMWEB_ACCESS_CACHE_SECONDS, kept)
        return kept

    def clear(self) -> None:
        self.entries.clear()
        _instance_rows.clear()


_token_scopes = _TokenScopes()


def _not_allowed(request: HttpRequest, scope: Scope) -> HttpResponse:
    """405 (RFC 9110 15.5.6) with Allow, and for a Store (POST) where files go instead."""
    message = f"{request.method[:20]} is not allowed here; this resource answers {ALLOW}."
    if request.method == "POST" and scope.stores:
        message += " " + scope.stores
    response = _error(405, message)
    response["Allow"] = ALLOW
    return response


def endpoint(handler):
    """Authenticate, resolve the scope, answer CORS pre-flights and turn errors into DICOMweb answers."""

    @csrf_exempt
    def view(request: HttpRequest, *args, scope_function: ScopeFunction, **kwargs):
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "GET, OPTIONS"
            response["Allow"] = ALLOW
            response["Access-Control-Allow-Headers"] = "Authorization, Accept, Range, If-None-Match"
            response["Access-Control-Max-Age"] = "600"
            return _cors(request, response)
        scope_args = {k.removeprefix("scope_"): kwargs.pop(k) for k in list(kwargs) if k.startswith("scope_")}
        try:
            scope = _token_scopes.get(request, scope_function, scope_args)
            if scope is None:
                actor = _actor(request)
                if actor is None:
                    response = _error(401, "Authentication required.")
                    response["WWW-Authenticate"] = 'Bearer realm="ctims"'
                    return _cors(request, response)
                scope = scope_function(actor, **scope_args)
                if actor.token is not None:
                    scope = _token_scopes.put(request, scope_function, scope_args, scope)
            if request.method not in ("GET", "HEAD"):
                # Answered once the root is known to exist for the actor: 401 or 404 first, as for a GET.
                return _cors(request, _not_allowed(request, scope))
            response = handler(request, scope, *args, **kwargs)
        except Http404 as exc:
            response = _error(404, str(exc) or "Not found.")
        except qido.BadQuery as exc:
            response = _error(400, str(exc))
        except wado.NotAcceptable as exc:
            response = _error(406, str(exc))
        except IndexError as exc:
            response = _error(404, str(exc))
        except wado.Unreadable as exc:
            response = _error(500, str(exc))
        return _cors(request, response)

    return view


# -- QIDO-RS ----------------------------------------------------------------------------------------------


def _query(request: HttpRequest, scope: Scope) -> tuple[QueryDict, list[str]]:
    """The search keys this root matches on, and those it leaves out (named in the answer's Warning)."""
    params = scope.query(request.GET)
    return params, [key for key in request.GET if key not in params]


def root_url(request: HttpRequest, scope: Scope) -> str:
    """The root as an absolute URI, the base of every Retrieve URL and BulkDataURI an answer carries.

    A UR value is a URI of RFC 3986 (PS3.5 6.2), which names its scheme: a path alone is only a relative
    reference, and clients such as dicomweb-client follow a BulkDataURI as given. The host is the one the client
    asked for, as Django checks it against ALLOWED_HOSTS (another is refused with 400 before it is written
    anywhere); the scheme is the TLS proxy's where SECURE_PROXY_SSL_HEADER says so (BEHIND_TLS_PROXY).
    """
    return request.build_absolute_uri(scope.root)


def wants_xml(request: HttpRequest) -> bool:
    """Whether a search or metadata answer is to be XML (PS3.18 10.4.4 and 10.6.3: application/dicom+json, the
    default, or multipart/related; type="application/dicom+xml", both required), for the client's first
    acceptable entry; 406 if neither is acceptable."""
    for entry in parse_accept(request.META.get("HTTP_ACCEPT")):
        if covers(entry.media_type, DICOM_JSON) or entry.media_type == "application/json":
            return False
        if covers(entry.media_type, "multipart/related") and entry.part_type in ("", "*/*", "application/*", XML):
            return True
    raise wado.NotAcceptable(f'this resource is {DICOM_JSON} or multipart/related; type="{XML}"')


def _xml_body(items: list[dict], boundary: str) -> bytes:
    """One application/dicom+xml part per data set."""
    return b"".join(wado.multipart_stream(((XML, [dataset_xml(item)]) for item in items), boundary))


def _xml_type(boundary: str) -> str:
    return f'multipart/related; type="{XML}"; boundary={boundary}'


def _search_answer(request: HttpRequest, scope: Scope, search: qido.Search, to_json) -> HttpResponse:
    xml = wants_xml(request)
    root = root_url(request, scope)
    items = [scope.blind(to_json(row, root, search)) for row in search.rows]
    if xml:
        boundary = wado.new_boundary()
        response = HttpResponse(_xml_body(items, boundary), content_type=_xml_type(boundary))
    else:
        response = _json(items)
    return _warn(request, response, search.warnings)


@endpoint
def search_studies(request, scope: Scope):
    params, ignored = _query(request, scope)
    search = qido.search_studies(scope.studies, params, scope.visible, ignored)
    return _search_answer(request, scope, search, qido.study_json)


@endpoint
def search_series(request, scope: Scope, study: str | None = None):
    if study:
        scope.study(study)
    params, ignored = _query(request, scope)
    search = qido.search_series(scope.series(), params, study_uid=study, visible=scope.visible, ignored=ignored)
    return _search_answer(request, scope, search, qido.series_json)


@endpoint
def search_instances(request, scope: Scope, study: str | None = None, series: str | None = None):
    found = scope.one_series(study, series) if series else None
    if study and not series:
        scope.study(study)
    params, ignored = _query(request, scope)
    search = qido.search_instances(
        scope.instances(),
        params,
        study_uid=study,
        series_uid=series,
        visible=scope.visible,
        ignored=ignored,
        series=found,
    )
    if search.include or search.include_all:
        wado.load_metadata(search.rows, skip_unreadable=True)
    return _search_answer(request, scope, search, qido.instance_json)


# -- WADO-RS: instances, series and studies as DICOM ------------------------------------------------------


def _instances_query(scope: Scope, study: str, series: str | None = None):
    qs = scope.instances().filter(series__study__study_instance_uid=study)
    if series:
        qs = qs.filter(series__series_instance_uid=series)
    return qs.order_by("series__series_number", "series_id", "instance_number", "pk")


def _instances_of(scope: Scope, study: str, series: str | None = None):
    instances = list(_instances_query(scope, study, series).select_related("series__study").defer("metadata"))
    if not instances:
        raise Http404("No such study or series.")
    return instances


def _dicom_choice(accepted: list[Accepted], instances) -> tuple[bool, list[str]]:
    """(single part?, the transfer syntax of each instance) for the client's first acceptable entry that this
    server can make for every instance (PS3.18 8.7.3: the default is Explicit VR Little Endian)."""
    for entry in accepted:
        single = entry.media_type != "*/*" and covers(entry.media_type, "application/dicom")
        multipart = covers(entry.media_type, "multipart/related") and entry.part_type in (
            "",
            "*/*",
            "application/*",
            "application/dicom",
        )
        if not (single or multipart) or (single and len(instances) > 1):
            continue
        syntaxes = [wado.produce_syntax(i.transfer_syntax_uid, [entry.transfer_syntax]) for i in instances]
        if None not in syntaxes:
            return single, syntaxes
    raise wado.NotAcceptable(
        'send Accept: multipart/related; type="application/dicom" (application/dicom for one instance); '
        f"instances are available as stored or in {EXPLICIT_VR_LE}"
    )


def _instance_chunks(instance, syntax: str, blind=None):
    """The instance's Part 10 bytes in `syntax`, its file opened now (so an unreadable one fails here); rebuilt
    through `blind` where the root blinds (see Scope.blind_dataset)."""
    try:
        if blind is not None:
            return [wado.blinded_part10(instance, syntax, blind)]
        if syntax == instance.transfer_syntax_uid:
            return wado.open_chunks(instance)
        return list(wado.transcoded_chunks(instance))
    except wado.UNREADABLE as exc:
        raise wado.Unreadable(instance) from exc


def _single_instance(instance, syntax: str, blind=None) -> HttpResponse:
    """One instance as application/dicom: the stored file handed to the reverse proxy (X-Accel-Redirect, when
    DICOMWEB_ACCEL_REDIRECT names its internal location) or to the server's sendfile (FileResponse); a blinded
    root's copy, or one in another syntax, made here."""
    content_type = f"application/dicom; transfer-syntax={syntax}"
    if syntax != instance.transfer_syntax_uid or blind is not None:
        return HttpResponse(b"".join(_instance_chunks(instance, syntax, blind)), content_type=content_type)
    if settings.DICOMWEB_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.DICOMWEB_ACCEL_REDIRECT.rstrip("/") + "/" + quote(instance.storage_key)
        return response
    try:
        stored = wado.image_storage().open(instance.storage_key, "rb")
    except wado.UNREADABLE as exc:
        raise wado.Unreadable(instance) from exc
    response = FileResponse(stored, content_type=content_type)
    response.block_size = wado.CHUNK  # a server without sendfile (granian) writes 1 MiB at a time, not 4 KiB
    return response


def _dicom_response(request, scope: Scope, instances) -> HttpResponse:
    """Instances as multipart/related application/dicom (or one as application/dicom), in a transfer syntax the
    client accepts: as stored when it accepts that one (or `*`), else Explicit VR Little Endian, decoded or
    re-encoded here. A blinded root's instances are rebuilt with the attributes its allowlist names alone."""
    blind = scope.blind_dataset
    single, syntaxes = _dicom_choice(parse_accept(request.META.get("HTTP_ACCEPT")), instances)
    plan = list(zip(instances, syntaxes, strict=True))
    versions = (f"{i.sha256}:{syntax}" for i, syntax in plan)
    etag = _etag("dicom", "single" if single else "multipart", scope.blinding, *versions)
    cache_control = IMMUTABLE if len(instances) == 1 else REVALIDATE
    if single:
        return _cached(request, etag, cache_control, lambda: _single_instance(*plan[0], blind))
    boundary = wado.new_boundary()

    def parts(first):
        if first is not None:  # one instance: its own error (unreadable, undecodable) was the answer's
            yield f"application/dicom; transfer-syntax={plan[0][1]}", first
            return
        for instance, syntax in plan:
            try:
                chunks = _instance_chunks(instance, syntax, blind)
            except (wado.Unreadable, wado.NotAcceptable):
                continue  # an unreadable file is left out; the others still arrive
            yield f"application/dicom; transfer-syntax={syntax}", chunks

    def make():
        first = _instance_chunks(*plan[0], blind) if len(plan) == 1 else None
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        if first is not None and plan[0][0].size <= ONE_BODY:
            # One instance of a usual size: one body with its length, written at once (a viewer fetches
            # hundreds; a stream costs each the streaming machinery and a write per piece).
            return HttpResponse(b"".join(wado.multipart_stream(parts(first), boundary)), content_type=content_type)
        return StreamingHttpResponse(wado.multipart_stream(parts(first), boundary), content_type=content_type)

    return _cached(request, etag, cache_control, make)


def _released_retrieved(scope: Scope, response: HttpResponse, what: str, study: str, sr_uids) -> HttpResponse:
    """Record (Scope.record_retrieved) the released SRs an answer carries: one event a request, once the answer is
    made, and none for a 304 (the client's copy is current: nothing leaves). `sr_uids` is a function, called
    only where the root records (a trial admin's), so that no one else's retrieval costs anything."""
    if scope.retrieved is not None and response.status_code == 200:
        scope.record_retrieved(what, study, sr_uids())
    return response


def _srs_among(instances) -> Callable[[], list[str]]:
    return lambda: [i.sop_instance_uid for i in instances if i.series.origin == Series.Origin.READ]


def _srs_of(scope: Scope, study: str, series: str | None = None) -> Callable[[], list[str]]:
    query = _instances_query(scope, study, series).filter(series__origin=Series.Origin.READ)
    return lambda: list(query.values_list("sop_instance_uid", flat=True))


@endpoint
def retrieve_study(request, scope: Scope, study: str):
    instances = _instances_of(scope, study)
    return _released_retrieved(
        scope, _dicom_response(request, scope, instances), "instances", study, _srs_among(instances)
    )


@endpoint
def retrieve_series(request, scope: Scope, study: str, series: str):
    instances = _instances_of(scope, study, series)
    return _released_retrieved(
        scope, _dicom_response(request, scope, instances), "instances", study, _srs_among(instances)
    )


@endpoint
def retrieve_instance(request, scope: Scope, study: str, series: str, instance: str):
    instances = [scope.instance(study, series, instance)]
    return _released_retrieved(
        scope, _dicom_response(request, scope, instances), "instances", study, _srs_among(instances)
    )


# -- metadata -----------------------------------------------------------------------------------------------


def _metadata_response(request, scope: Scope, instances, hashes: list[str] | None = None) -> HttpResponse:
    """`instances` is a list, or a function that loads them: with `hashes` (their sha256, in order), they are
    loaded only when the body is not already kept (a revalidation or a kept body costs one narrow query)."""
    hashes = hashes if hashes is not None else [i.sha256 for i in instances]
    if not hashes:
        raise Http404("No such study or series.")
    xml = wants_xml(request)
    root = root_url(request, scope)  # the BulkDataURIs' base: in the ETag, as the body depends on it
    etag = _etag("metadata", root, scope.blinding, "xml" if xml else "json", *hashes)
    boundary = etag.strip('"')  # an XML body is kept whole: its boundary is the representation's own
    failed: list = []

    def make():
        # The body depends only on the instances, the root and the encoding (all in the ETag): keep it for the
        # next viewer, unless a file could not be read (it is left out, and may be readable again later).
        key = f"dicomweb:{etag}"
        body = cache.get(key)
        if body is None:
            loaded = instances() if callable(instances) else instances
            items = build(loaded)
            body = _xml_body(items, boundary) if xml else orjson.dumps(items)
            # (Not kept if an instance arrived between the two queries: the body is not the ETag's then.)
            if not failed and [i.sha256 for i in loaded] == hashes:
                cache.set(key, body, 3600)
        response = HttpResponse(body, content_type=_xml_type(boundary) if xml else DICOM_JSON)
        unreadable = ", ".join(i.sop_instance_uid for i in failed)
        return _warn(
            request, response, [f"These instances could not be read and are left out: {unreadable}"] if failed else []
        )

    def build(instances):
        failed.extend(wado.load_metadata(instances, skip_unreadable=True))
        if failed and len(instances) == 1:
            raise wado.Unreadable(instances[0])
        body = []
        for i in instances:
            if i in failed:
                continue
            url = f"{root}/studies/{i.series.study.study_instance_uid}/series/{i.series.series_instance_uid}/instances/{i.sop_instance_uid}"
            body.append(scope.blind(wado.with_bulk_data(wado.instance_metadata(i), i, url)))
        return body

    return _cached(request, etag, IMMUTABLE if len(hashes) == 1 else REVALIDATE, make)


def _many_metadata(request, scope: Scope, study: str, series: str | None = None) -> HttpResponse:
    hashes = list(_instances_query(scope, study, series).values_list("sha256", flat=True))
    response = _metadata_response(request, scope, lambda: _instances_of(scope, study, series), hashes)
    return _released_retrieved(scope, response, "metadata", study, _srs_of(scope, study, series))


@endpoint
def study_metadata(request, scope: Scope, study: str):
    return _many_metadata(request, scope, study)


@endpoint
def series_metadata(request, scope: Scope, study: str, series: str):
    return _many_metadata(request, scope, study, series)


@endpoint
def instance_metadata(request, scope: Scope, study: str, series: str, instance: str):
    instances = [scope.instance(study, series, instance)]
    response = _metadata_response(request, scope, instances)
    return _released_retrieved(scope, response, "metadata", study, _srs_among(instances))


# -- frames and bulk data -----------------------------------------------------------------------------------


def _frame_numbers(text: str, item) -> list[int]:
    """The frame numbers of a path, each one a frame the instance has (404 otherwise, before any If-None-Match:
    `*` matches only a representation there is)."""
    numbers = [qido.whole_number("frame number", n, minimum=1) for n in text.split(",")]
    if len(numbers) > 10_000:
        raise qido.BadQuery("at most 10000 frames per request")
    if len(set(numbers)) != len(numbers):
        # PS3.18's frame list: non-duplicate frame numbers, in any order (1,1,1,... sent one frame 10,000 times).
        raise qido.BadQuery("a frame list names each frame once")
    if max(numbers) > item.number_of_frames:
        raise IndexError(f"this instance has {item.number_of_frames} frame(s)")
    return numbers


def _frames_as(instance, numbers: list[int], syntax: str) -> tuple[list[bytes], str]:
    """The frames in `syntax` ('*' or the stored one: as stored; else Explicit VR Little Endian), read as byte
    ranges when the file's layout is indexed and no decoding is needed."""
    stored = instance.transfer_syntax_uid
    layout = wado.frame_layout(instance)
    if layout and "fragments" not in layout and syntax in ("*", "", EXPLICIT_VR_LE, stored):
        return wado.read_layout_frames(instance, layout, numbers), EXPLICIT_VR_LE
    if layout and "fragments" in layout and syntax in ("*", stored):
        return wado.read_layout_frames(instance, layout, numbers), stored
    return wado.frames_for(wado.read_instance(instance), numbers, syntax)


@endpoint
def retrieve_frames(request, scope: Scope, study: str, series: str, instance: str, frames: str):
    item = scope.instance(study, series, instance)
    numbers = _frame_numbers(frames, item)
    accepted = parse_accept(request.META.get("HTTP_ACCEPT"))
    choice = frame_choice(accepted, item.transfer_syntax_uid, one=len(numbers) == 1)
    if choice is None:
        own = "".join(f' or type="{t}"' for t in FRAME_MEDIA_TYPES.get(item.transfer_syntax_uid, ())[:1])
        one = " (application/octet-stream alone for one frame)" if len(numbers) > 1 else ""
        raise wado.NotAcceptable(f'send Accept: multipart/related; type="application/octet-stream"{own}{one}')
    part_type, syntax, single = choice

    def make():
        data, used = _frames_as(item, numbers, syntax)
        if single:
            return HttpResponse(data[0], content_type=f"{part_type}; transfer-syntax={used}")
        boundary = wado.new_boundary()
        body = b"".join(
            wado.multipart_stream(((f"{part_type}; transfer-syntax={used}", [frame]) for frame in data), boundary)
        )
        return HttpResponse(body, content_type=f'multipart/related; type="{part_type}"; boundary={boundary}')

    etag = _etag("frames", item.sha256, frames, syntax, part_type, "single" if single else "multipart")
    return _cached(request, etag, IMMUTABLE, make)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _ranged(request, data: bytes) -> HttpResponse:
    """One application/octet-stream part, honouring a single byte Range."""
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
    return response


@endpoint
def retrieve_bulkdata(request, scope: Scope, study: str, series: str, instance: str, tag: str):
    """The pixel data as bulk data (PS3.18 10.4.1.1.5): multipart/related with application/octet-stream parts
    or one application/octet-stream body, as the Accept header asks. Compressed pixel data as stored comes as
    its frames, one part each (never wrapped in its encapsulation items); otherwise the native pixels."""
    item = scope.instance(study, series, instance)
    if tag.upper() != "7FE00010":
        raise Http404("Bulk data is served for the pixel data (7FE00010).")
    accepted = parse_accept(request.META.get("HTTP_ACCEPT"))
    choice = next(
        (
            e
            for e in accepted
            if (
                covers(e.media_type, "multipart/related")
                and e.part_type in ("", "*/*", "application/*", "application/octet-stream")
            )
            or covers(e.media_type, "application/octet-stream")
        ),
        None,
    )
    if choice is None:
        raise wado.NotAcceptable("bulk data is application/octet-stream, alone or in multipart/related")
    multipart = choice.media_type in ("multipart/related", "multipart/*")
    syntax = wado.produce_syntax(item.transfer_syntax_uid, [choice.transfer_syntax])
    if syntax is None:
        raise wado.NotAcceptable(f"bulk data is available as stored or in {EXPLICIT_VR_LE}")
    as_fragments = syntax == item.transfer_syntax_uid and UID(syntax).is_encapsulated
    if as_fragments and item.number_of_frames > 1 and not multipart:
        raise wado.NotAcceptable("compressed frames come one part each: accept multipart/related")

    # PS3.18 10.4.3.3.5: each part names the URI the metadata gives its bulk data (a compressed frame sent as
    # a part of its own, its frame resource).
    instance_url = f"{root_url(request, scope)}/studies/{study}/series/{series}/instances/{instance}"

    def make():
        frames, used = _frames_as(item, list(range(1, item.number_of_frames + 1)), syntax)
        compressed = used != EXPLICIT_VR_LE
        if not compressed:
            frames = [b"".join(frames)]
        if multipart:
            boundary = wado.new_boundary()
            locations = (
                [f"{instance_url}/frames/{n}" for n in range(1, len(frames) + 1)]
                if compressed
                else [f"{instance_url}/bulkdata/7FE00010"]
            )
            parts = (
                (f"application/octet-stream; transfer-syntax={used}", [f], location)
                for f, location in zip(frames, locations, strict=True)
            )
            return HttpResponse(
                b"".join(wado.multipart_stream(parts, boundary)),
                content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
            )
        if len(frames) == 1:
            return _ranged(request, frames[0])
        raise wado.NotAcceptable("compressed frames come one part each: accept multipart/related")

    # (The syntax made is a function of the stored one and the one asked for: the ETag names those.)
    etag = _etag("bulk", item.sha256, syntax, "multipart" if multipart else "single", instance_url)
    return _cached(request, etag, IMMUTABLE, make)


# -- rendered and thumbnails ----------------------------------------------------------------------------------


def _render_params(request) -> dict:
    """window=center,width[,function], viewport=vw,vh[,sx,sy,sw,sh] and quality (PS3.18 8.3.5), checked."""
    params = {}
    if "window" in request.GET:
        pieces = request.GET["window"].split(",")
        if len(pieces) not in (2, 3):
            raise qido.BadQuery("window is center,width[,function] with function linear, linear-exact or sigmoid")
        try:
            center, width = float(pieces[0]), float(pieces[1])
        except ValueError:
            raise qido.BadQuery("window center and width are numbers") from None
        function = pieces[2].strip().lower() if len(pieces) == 3 else "linear"
        if function not in wado.WINDOW_FUNCTIONS:
            raise qido.BadQuery("the window function is linear, linear-exact or sigmoid")
        if not (math.isfinite(center) and math.isfinite(width)) or width <= 0 or (function == "linear" and width < 1):
            raise qido.BadQuery("the window width must be positive (at least 1 for linear)")
        params["window"] = (center, width, function)
    if "viewport" in request.GET:
        pieces = request.GET["viewport"].split(",")
        if len(pieces) not in (2, 6):
            raise qido.BadQuery("viewport is vw,vh or vw,vh,sx,sy,sw,sh")
        params["viewport"] = (
            qido.whole_number("viewport width", pieces[0], minimum=1, maximum=4096),
            qido.whole_number("viewport height", pieces[1], minimum=1, maximum=4096),
        )
    if "quality" in request.GET:
        params["quality"] = qido.whole_number("quality", request.GET["quality"], minimum=1, maximum=100)
    return params


def _render_media_type(request, *, multipart: bool) -> str:
    accepted = parse_accept(request.META.get("HTTP_ACCEPT"))
    for entry in accepted:
        in_parts = entry.media_type in ("multipart/related", "multipart/*")
        kind = entry.part_type if in_parts else entry.media_type
        if in_parts and not multipart:
            continue
        if kind in ("image/png", "image/jpeg"):
            return kind
        if kind in ("", "*/*", "image/*"):
            return "image/png"
    wanted = 'multipart/related; type="image/png" or "image/jpeg"' if multipart else "image/png or image/jpeg"
    raise wado.NotAcceptable(f"rendered images are {wanted}")


def _rendered(request, item, frame: int, thumbnail: bool = False) -> HttpResponse:
    params = _render_params(request)
    params["media_type"] = _render_media_type(request, multipart=False)
    if thumbnail:
        params.setdefault("viewport", (128, 128))

    def make():
        try:
            ds = wado.read_instance(item)
        except wado.UNREADABLE as exc:
            raise wado.Unreadable(item) from exc
        return HttpResponse(wado.render(ds, frame=frame, **params), content_type=params["media_type"])

    return _cached(request, _etag("rendered", item.sha256, str(frame), repr(sorted(params.items()))), IMMUTABLE, make)


def _rendered_many(request, instances) -> HttpResponse:
    """Rendered Study and Series (PS3.18 10.4.1.1.3): every frame of every instance, one image part each."""
    params = _render_params(request)
    params["media_type"] = media_type = _render_media_type(request, multipart=True)
    boundary = wado.new_boundary()

    def images():
        for instance in instances:
            try:
                ds = wado.read_instance(instance)
            except wado.UNREADABLE:
                continue
            if "PixelData" not in ds:
                continue
            for frame in range(1, wado.frame_count(ds) + 1):
                try:
                    picture = wado.render(ds, frame=frame, **params)
                except wado.NotAcceptable:
                    break  # pixels this server cannot decode: the instance is left out, as an unreadable one
                yield media_type, [picture]

    def make():
        return StreamingHttpResponse(
            wado.multipart_stream(images(), boundary),
            content_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
        )

    etag = _etag("rendered-many", repr(sorted(params.items())), *(i.sha256 for i in instances))
    return _cached(request, etag, REVALIDATE, make)


@endpoint
def rendered_study(request, scope: Scope, study: str):
    return _rendered_many(request, _instances_of(scope, study))


@endpoint
def rendered_series(request, scope: Scope, study: str, series: str):
    return _rendered_many(request, _instances_of(scope, study, series))


@endpoint
def rendered_instance(request, scope: Scope, study: str, series: str, instance: str):
    return _rendered(request, scope.instance(study, series, instance), 1)


@endpoint
def thumbnail_instance(request, scope: Scope, study: str, series: str, instance: str):
    return _rendered(request, scope.instance(study, series, instance), 1, thumbnail=True)


@endpoint
def rendered_frame(request, scope: Scope, study: str, series: str, instance: str, frames: str):
    item = scope.instance(study, series, instance)
    return _rendered(request, item, _frame_numbers(frames, item)[0])


@endpoint
def thumbnail_frame(request, scope: Scope, study: str, series: str, instance: str, frames: str):
    item = scope.instance(study, series, instance)
    return _rendered(request, item, _frame_numbers(frames, item)[0], thumbnail=True)


@endpoint
def thumbnail_series(request, scope: Scope, study: str, series: str):
    return _rendered(request, _middle(_instances_of(scope, study, series)), 1, thumbnail=True)


@endpoint
def thumbnail_study(request, scope: Scope, study: str):
    """The study's first series' representative image (instances come in series order)."""
    instances = _instances_of(scope, study)
    return _rendered(
        request, _middle([i for i in instances if i.series_id == instances[0].series_id]), 1, thumbnail=True
    )


def _middle(instances: list):
    """A series' representative image: the one in the middle of its instances."""
    return instances[len(instances) // 2]


def dicomweb_urls(prefix: str, scope_function: ScopeFunction, name: str) -> list:
    """The DICOMweb routes of one root. `prefix` holds the scope's arguments as `scope_`-named converters."""
    kw = {"scope_function": scope_function}
    st, se, inst = "studies/<str:study>", "series/<str:series>", "instances/<str:instance>"
    # A viewer's hot paths first (each request walks this list until a route matches): frames, instances,
    # bulk data, then the rest. No two routes match the same path, so the order changes nothing else.
    routes = [
        (f"{st}/{se}/{inst}/frames/<str:frames>", retrieve_frames, "frames"),
        (f"{st}/{se}/{inst}", retrieve_instance, "instance"),
        (f"{st}/{se}/{inst}/bulkdata/<str:tag>", retrieve_bulkdata, "bulkdata"),
        ("studies", search_studies, "studies"),
        ("series", search_series, "series"),
        ("instances", search_instances, "instances"),
        (st, retrieve_study, "study"),
        (f"{st}/metadata", study_metadata, "study-metadata"),
        (f"{st}/rendered", rendered_study, "study-rendered"),
        (f"{st}/thumbnail", thumbnail_study, "study-thumbnail"),
        (f"{st}/series", search_series, "study-series"),
        (f"{st}/instances", search_instances, "study-instances"),
        (f"{st}/{se}", retrieve_series, "series-retrieve"),
        (f"{st}/{se}/metadata", series_metadata, "series-metadata"),
        (f"{st}/{se}/rendered", rendered_series, "series-rendered"),
        (f"{st}/{se}/thumbnail", thumbnail_series, "series-thumbnail"),
        (f"{st}/{se}/instances", search_instances, "series-instances"),
        (f"{st}/{se}/{inst}/metadata", instance_metadata, "instance-metadata"),
        (f"{st}/{se}/{inst}/rendered", rendered_instance, "instance-rendered"),
        (f"{st}/{se}/{inst}/thumbnail", thumbnail_instance, "instance-thumbnail"),
        (f"{st}/{se}/{inst}/frames/<str:frames>/rendered", rendered_frame, "frames-rendered"),
        (f"{st}/{se}/{inst}/frames/<str:frames>/thumbnail", thumbnail_frame, "frames-thumbnail"),
    ]
    return [path(prefix + route, view, kw, name=f"dicomweb-{name}-{suffix}") for route, view, suffix in routes]
