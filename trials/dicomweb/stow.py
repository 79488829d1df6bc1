"""STOW-RS (PS3.18 10.5) into an upload session: every part goes to quarantine, then through the pipeline."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import time
from dataclasses import dataclass, field

from django.core.handlers.asgi import ASGIRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ctims.exceptions import CTIMSError, ValidationFailed

from .. import selectors
from ..access import Actor
from ..ingest.browser import browser_records_checked
from ..ingest.services import BATCH_SIZE, WAITING_STATES, upload_receive
from ..ingest.validate import Refused, study_instance_uid
from ..models import BrowserDeidRecord, UploadItem
from .dicom_xml import XML_MEDIA_TYPE, dataset_xml
from .multipart import BodyTimeout, BodyTooLarge, BoundedBody, MultipartError, MultipartReader, parse_content_type
from .negotiation import DicomNegotiation

MAX_FILE_BYTES = 2 * 1024**3  # an enhanced multi-frame object can be large
MAX_REQUEST_BYTES = MAX_FILE_BYTES + 64 * 1024**2  # one such object and its multipart framing
FLUSH_BYTES = 64 * 1024**2  # parts held before they go to quarantine
# Parts one request may carry (the upload page sends 20): each costs a durable write and an upload item, so
# 20,000 parts of a few bytes held a web worker for 88 s. The parts past it are not read; the client sends the
# files not acknowledged again, as after a body cut short. High enough for a thin-slice or multi-phase series
# sent whole in one request (a few thousand instances), as clients such as dicomweb-client do.
MAX_PARTS = 10_000
MAX_PART_WARNINGS = 10  # parts of another type named one by one in the Warning header; the rest are counted
# A client whose body stops arriving for this long gets 408 and frees the worker; a whole request may take
# REQUEST_SECONDS (2 GiB at about 2 MB/s). Tests lower them through these names.
READ_TIMEOUT_SECONDS = 15.0
REQUEST_SECONDS = 1200.0
DICOM_JSON = "application/dicom+json"
# The upload page's de-identification records ({"records": [...]}, as POSTed to the records endpoint) in a part
# before the files they describe: one request per batch instead of two. Larger than any batch's records.
RECORDS_MEDIA = "application/vnd.ctims.deid-records+json"
MAX_RECORDS_BYTES = 4 * 1024**2

# PS3.18 Table I.2-2: the Failure Reason of a rejected instance, by the code of its rejection; any other
# (a file not de-identified, of another patient, unreadable) "cannot understand", 0xC000. The reason the upload
# status shows goes in the Warning header with the file's part number.
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_REASONS = {
    "sop_class_not_accepted": 0x0122,  # Referenced SOP Class not supported
    "pixel_data_missing": 0xA900,  # Data Set does not match SOP Class
    "lost": 0x0110,  # Processing failure: the received copy was damaged
}
# A part on a study's path (/studies/{study}) that is of another study: PS3.18 10.5.1.1 stores there only instances
# of that study, and 10.5.3 answers the mismatch as a conflict; Table I.2-2 has no code of its own for it, so it is
# the A9xx one, "Data Set does not match" (what was asked), told apart from a SOP Class mismatch by the Warning text.
FAILURE_OTHER_STUDY = 0xA900
WARNING_COERCION = 0xB000
# A UID as PS3.5 9.1 writes it: what a study's path may name.
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")


class DicomJsonRenderer:
    media_type = DICOM_JSON
    format = "dicomjson"
    charset = None
    render_style = "text"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import json

        return json.dumps(data).encode("utf-8")


class DicomXmlRenderer:
    """The answer as PS3.19's Native DICOM Model, for a client that accepts application/dicom+xml (PS3.18 10.5.3:
    the Store answer comes in the media type accepted). An error (the API's one shape, which is no data set) is
    answered as JSON, said so in its Content-Type."""

    media_type = XML_MEDIA_TYPE
    format = "dicomxml"
    charset = None
    render_style = "text"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and data and all(re.fullmatch(r"[0-9A-F]{8}", str(key)) for key in data):
            return dataset_xml(data)
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode("utf-8")


def _item_json(item: UploadItem, request, trial_code: str) -> dict:
    if item.instance_id is not None:
        instance = item.instance
        return {
            "00081150": {"vr": "UI", "Value": [instance.sop_class_uid]},
            "00081155": {"vr": "UI", "Value": [instance.sop_instance_uid]},
            "00081190": {
                "vr": "UR",
                "Value": [
                    request.build_absolute_uri(
                        f"/dicomweb/trials/{trial_code}/studies/{instance.series.study.study_instance_uid}"
                        f"/series/{instance.series.series_instance_uid}/instances/{instance.sop_instance_uid}"
                    )
                ],
            },
            # De-identification changed the attributes: the stored instance is a coerced copy.
            "00081196": {"vr": "US", "Value": [WARNING_COERCION]},
        }
    # No Referenced SOP Class or Instance UID (Table I.1-1 asks for them): a rejected file's may be the
    # originals, and the server cannot tell a pseudonym from an original, so it never sends one back.
    return {"00081197": {"vr": "US", "Value": [FAILURE_REASONS.get(item.code, FAILURE_CANNOT_UNDERSTAND)]}}


def _header_text(text: str, limit: int = 200) -> str:
    """A reason as Warning header text: printable ASCII, no double quote, bounded."""
    return re.sub(r'[^ -~]|"', "?", text)[:limit]


class MultipartRelatedParser(BaseParser):
    """Claims multipart/related without reading it: the view streams the parts itself.

    Without it, the CSRF check of a session-authenticated POST reads `request.POST`, DRF finds no parser for
    multipart/related and answers 415, so every browser upload fails.
    """

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


def _client_socket(meta: dict) -> socket.socket | None:
    """The client's connection, so an idle body read can time out, where the server lets us reach it.

    gunicorn hands it over as `gunicorn.socket`; Django's own server (runserver, the tests' live server) reads
    the body from the connection's buffered file, whose raw layer holds the socket. Elsewhere (ASGI servers
    read the whole body before the view runs) there is no read here to bound.
    """
    sock = meta.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        return sock
    reader = getattr(getattr(meta.get("wsgi.input"), "_read", None), "__self__", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _body_stream(request):
    """The request body: Django's stream for a stated length; the server's own for a chunked body it ends itself
    (`wsgi.input_terminated`, as gunicorn sets); under ASGI, the body the server has read. None when the body is
    chunked and the server gives no way to find its end."""
    meta = request.META
    if meta.get("CONTENT_LENGTH") or isinstance(request, ASGIRequest):
        return request
    if meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"]
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    return request


class _RecordsRefused(Exception):
    """A records part refused: the request is refused whatever files came before it."""

    def __init__(self, refusal: CTIMSError):
        super().__init__(str(refusal))
        self.refusal = refusal


@dataclass
class _Received:
    """What one STOW request brought: the upload items of its DICOM parts, the parts refused as they came."""

    items: list[UploadItem] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cut: MultipartError | None = None  # why the body ended early, if it did
    unread: bool = False  # parts past MAX_PARTS were left unread
    parts: dict[str, int] = field(default_factory=dict)  # a file's SHA-256: its part number
    # The browser's records of the files that follow them (checked, by SHA-256), saved with the files' rows.
    records: dict[str, BrowserDeidRecord] = field(default_factory=dict)
    unnamed: dict[str, int] = field(default_factory=dict)  # parts refused past MAX_PART_WARNINGS, by what they are

    def refuse(self, number: int, reason: int, text: str, kind: str) -> None:
        """A part refused as it came, before anything of it was stored: a failed instance (`reason`, PS3.18 Table
        I.2-2) without its UIDs, as every failure, and `text` in the Warning header, up to MAX_PART_WARNINGS parts
        (a header line per part would outgrow proxies); past them, the parts are counted by `kind` (what the count's
        line says of them)."""
        self.failures.append({"00081197": {"vr": "US", "Value": [reason]}})
        if len(self.failures) <= MAX_PART_WARNINGS:
            self.warnings.append(f"part {number} {text}")
        else:
            self.unnamed[kind] = self.unnamed.get(kind, 0) + 1

    def take(self, upload, files: list[bytes], numbers: list[int]) -> None:
        """Hand files to the upload and remember each one's part number, for the answer to name a file rejected
        by then (at once, or by a worker as the request committed)."""
        items = upload_receive(upload=upload, files=files, records=self.records)
        self.items.extend(items)
        # The upload answers one item per distinct file, in the files' order: without a file sent twice in the
        # batch, the two lists match (the sizes confirm it); otherwise the files are hashed again.
        if len(items) == len(files) and all(i.size == len(data) for i, data in zip(items, files, strict=True)):
            for item, number in zip(items, numbers, strict=True):
                self.parts.setdefault(item.sha256, number)
        else:
            for number, data in zip(numbers, files, strict=True):
                self.parts.setdefault(hashlib.sha256(data).hexdigest(), number)


def _take_records(upload, part, received: _Received) -> None:
    """Take the browser's de-identification records a part carries (kept with the files they describe, in the
    transaction that settles them); a malformed one refuses the request."""
    malformed = ValidationFailed(_("A de-identification record is malformed."))
    if part.size > MAX_RECORDS_BYTES:
        raise malformed
    try:
        body = json.loads(part.read())
    except ValueError:
        raise malformed from None
    rows = browser_records_checked(upload=upload, records=body.get("records") if isinstance(body, dict) else None)
    for row in rows:
        received.records.setdefault(row.sha256, row)  # a record sent twice is kept once, as the first


def _study_refusal(data: bytes, study: str) -> tuple[int, str, str] | None:
    """Why a part sent to a study's path is not of that study (failure reason, Warning text, kind), or None.

    Its Study Instance UID is read as ingest's checks read a file (bounded, deflated data sets included): a file
    that cannot be read so far, or has no Study Instance UID, is refused with the reason ingest would have given
    (it would have been rejected; here nothing of it is kept). Neither UID is ever put in the text.
    """
    try:
        found = study_instance_uid(data)
    except Refused as exc:
        reason = FAILURE_REASONS.get(exc.code, FAILURE_CANNOT_UNDERSTAND)
        return reason, f"was not stored: {exc.code}: {_header_text(exc.reason)}", "were not stored: not read"
    if found != study:
        return (
            FAILURE_OTHER_STUDY,
            "is of another study than the request's path names: not stored",
            "are of another study: not stored",
        )
    return None


def _receive(upload, stream, boundary: str, study: str | None = None) -> _Received:
    """Read the parts one at a time and hand the DICOM ones to the upload in processing batches.

    Whatever arrived whole before a damaged or stalled body is kept (the client resends the rest). A part of
    another media type is a failed instance (0xC000, its reason in the Warning header), never dropped silently,
    except the browser's de-identification records (RECORDS_MEDIA), kept before the files that follow them; a
    records part the upload cannot take (malformed, or an upload whose files the server de-identifies) refuses
    the request. With `study` (a study's path), a file of another study is a failed instance too (0xA900), refused
    before it is stored or acknowledged; the other parts go on.
    """
    received, pending, numbers, pending_bytes = _Received(), [], [], 0
    body = BoundedBody(stream, max_bytes=MAX_REQUEST_BYTES, deadline=time.monotonic() + REQUEST_SECONDS)
    try:
        for number, part in enumerate(MultipartReader(body, boundary, max_part=MAX_FILE_BYTES), start=1):
            if number > MAX_PARTS:
                part.close()
                received.unread = True
                received.warnings.append(
                    f"the request holds more than {MAX_PARTS} parts: those after them were not read; "
                    "send the files not acknowledged again"
                )
                break
            with contextlib.closing(part):
                if part.content_type == RECORDS_MEDIA:
                    try:
                        _take_records(upload, part, received)
                    except CTIMSError as exc:
                        raise _RecordsRefused(exc) from None
                    continue
                if part.content_type != "application/dicom":
                    media = re.sub(r"[^A-Za-z0-9!#$&^_.+/-]", "?", part.content_type[:60]) or "untyped"
                    text = f"is {media}, not application/dicom: not stored"
                    received.refuse(number, FAILURE_CANNOT_UNDERSTAND, text, "are not application/dicom: not stored")
                    continue
                data = part.read()
                refusal = _study_refusal(data, study) if study is not None else None
                if refusal is not None:
                    received.refuse(number, *refusal)
                    continue
                pending.append(data)
                numbers.append(number)
            pending_bytes += len(pending[-1])
            # Files go on in processing batches; a batch also decides whose images a new subject's are.
            if len(pending) >= BATCH_SIZE or pending_bytes >= FLUSH_BYTES:
                received.take(upload, pending, numbers)
                pending, numbers, pending_bytes = [], [], 0
    except _RecordsRefused as exc:
        raise exc.refusal from None
    except MultipartError as exc:
        received.cut = exc
        received.warnings.append(f"the body was cut short ({exc}); send the files not acknowledged again")
    except CTIMSError:
        if not received.items:
            raise
        # The upload refused a batch (closed meanwhile): what it acknowledged before stands.
        received.warnings.append(f"{len(pending)} file(s) not received: the upload no longer takes files")
        pending = []
    if pending:
        received.take(upload, pending, numbers)
    for kind, more in received.unnamed.items():
        received.warnings.append(f"{more} more part(s) {kind}")
    return received


class UploadStowApi(APIView):
    """POST /dicomweb/trials/<code>/uploads/<id>/studies: store instances into an open upload session; on
    .../studies/{study} (PS3.18 10.5.1.1), only those of that study.

    The study a client names is the study of the files it sends: on the server path (files sent as they are),
    the site's original Study Instance UID; on the browser path (files de-identified before they are sent), the
    pseudonymous one the browser wrote. Either way each file is checked against the UID it holds itself.
    """

    renderer_classes = [DicomJsonRenderer, DicomXmlRenderer]
    content_negotiation_class = DicomNegotiation
    parser_classes = [MultipartRelatedParser]
    schema = None  # a DICOMweb service (PS3.18), described by the standard rather than the OpenAPI schema

    def dispatch(self, request, *args, **kwargs):
        if "study" in kwargs:
            # On the server path the study's path names the site's original Study Instance UID, and Django logs
            # the path of a request answered 4xx or 5xx (log_response): the study is left out of what it logs.
            request.path = request.path.rsplit("/", 1)[0] + "/{study}"
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, code, upload_id, study: str | None = None):
        actor = Actor.from_request(request)
        trial = selectors.trial_get(actor=actor, code=code)
        upload = selectors.upload_get(actor=actor, trial=trial, pk=upload_id, write=True)
        if study is not None and (len(study) > 64 or not UID_PATTERN.fullmatch(study)):
            return Response({"error": _("The study in the path is not a Study Instance UID.")}, status=400)
        try:
            _media, boundary, part_type = parse_content_type(request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            return Response({"error": str(exc)}, status=415)
        if part_type and part_type != "application/dicom":
            return Response({"error": _("Only application/dicom parts are accepted.")}, status=415)
        stream = _body_stream(request)
        if stream is None:
            message = _("Send the request with a Content-Length, or through a server that accepts chunked bodies.")
            return Response({"error": message}, status=411)
        stated = request.META.get("CONTENT_LENGTH") or "0"
        if stated.isdecimal() and int(stated) > MAX_REQUEST_BYTES:
            message = _("The request is larger than %(mb)s MB; send fewer files per request.")
            return Response({"error": message % {"mb": MAX_REQUEST_BYTES >> 20}}, status=413)
        sock = _client_socket(request.META)
        idle = sock.gettimeout() if sock is not None else None
        if sock is not None:
            sock.settimeout(READ_TIMEOUT_SECONDS)
        try:
            received = _receive(upload, stream, boundary, study)
        finally:
            if sock is not None:
                sock.settimeout(idle)
        cut = received.cut
        if cut is not None and not received.items and not received.failures:
            # Nothing arrived whole: the request as such is refused.
            if isinstance(cut, BodyTimeout):
                return Response({"error": _("The request body stopped arriving.")}, status=408)
            if isinstance(cut, BodyTooLarge):
                return Response({"error": str(cut)}, status=413)
            raise ValidationFailed(
                _("The request body is not a valid multipart/related message: %(e)s.") % {"e": cut}
            ) from None
        response = self._response(request, trial, received)
        if received.warnings:
            # PS3.18 8.7.5: a Warning header (299) carries what the response attributes cannot say.
            response["Warning"] = ", ".join(f'299 ctims "{text}"' for text in received.warnings)
        return response

    @staticmethod
    def _rejections(received: _Received, items: list[UploadItem]) -> list[str]:
        """Which files of the request were rejected, by part number, and why (the reason names attributes, never
        their values), up to MAX_PART_WARNINGS; the upload status lists them all."""
        rejected = [(received.parts.get(i.sha256, 0), i) for i in items if i.state == UploadItem.State.REJECTED]
        rejected.sort(key=lambda pair: pair[0])
        lines = [f"part {n} was rejected: {i.code}: {_header_text(i.reason)}" for n, i in rejected]
        if len(lines) > MAX_PART_WARNINGS:
            more = len(lines) - MAX_PART_WARNINGS
            lines = [*lines[:MAX_PART_WARNINGS], f"{more} more file(s) were rejected: see the upload status"]
        return lines

    def _response(self, request, trial, received: _Received) -> Response:
        ids = [i.pk for i in received.items]
        # Only what the answer says: an instance's DICOM JSON, just written with it, is not read back.
        items = list(
            UploadItem.objects.filter(pk__in=ids)
            .select_related("instance__series__study")
            .only(
                "sha256",
                "state",
                "code",
                "reason",
                "instance__sop_class_uid",
                "instance__sop_instance_uid",
                "instance__series__series_instance_uid",
                "instance__series__study__study_instance_uid",
            )
        )
        referenced = [_item_json(i, request, trial.code) for i in items if i.instance_id is not None]
        failed = [_item_json(i, request, trial.code) for i in items if i.state == UploadItem.State.REJECTED]
        failed += received.failures
        received.warnings.extend(self._rejections(received, items))
        # Table I.1-1: where the study is available for a Studies Retrieve transaction; empty (Type 2) when the
        # files went into several studies or into none. (The upload's status is the client's own resource.)
        studies = {i.instance.series.study.study_instance_uid for i in items if i.instance_id is not None}
        study_url = {"vr": "UR"}
        if len(studies) == 1:
            path = reverse("dicomweb-trial-study", kwargs={"scope_code": trial.code, "study": studies.pop()})
            study_url["Value"] = [request.build_absolute_uri(path)]
        body = {"00081190": study_url}
        if referenced:
            body["00081199"] = {"vr": "SQ", "Value": referenced}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        # A file waiting for processing, or whose quarantined copy failed its check and must be sent again.
        waiting = any(i.state in WAITING_STATES for i in items)
        # PS3.18 10.5.3: 200 all stored, 409 none stored and none waiting, 202 anything in between (parts left
        # unread were not stored either).
        waiting = waiting or received.unread
        status = 200 if not failed and not waiting else (409 if failed and not referenced and not waiting else 202)
        return Response(body, status=status)
