"""STOW-RS (PS3.18 10.5) into an upload session: every part goes to quarantine, then through the pipeline."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ctims.exceptions import CTIMSError, ValidationFailed

from .. import selectors
from ..access import Actor
from ..ingest.services import BATCH_SIZE, upload_receive
from ..models import UploadItem
from .multipart import MultipartError, iter_parts, parse_content_type

MAX_FILE_BYTES = 2 * 1024**3  # an enhanced multi-frame object can be large
FLUSH_BYTES = 64 * 1024**2  # parts held before they go to quarantine
DICOM_JSON = "application/dicom+json"

# PS3.18 Table I.2-1 / PS3.4 C.4.2.1.4: 0xC000 "cannot understand", 0xA700 "out of resources" family;
# a rejected instance is reported with 0xC000 plus the reason the upload status shows.
FAILURE_CANNOT_UNDERSTAND = 0xC000
WARNING_COERCION = 0xB000


class DicomJsonRenderer:
    media_type = DICOM_JSON
    format = "dicomjson"
    charset = None
    render_style = "text"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import json

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
    return {"00081197": {"vr": "US", "Value": [FAILURE_CANNOT_UNDERSTAND]}}


class MultipartRelatedParser(BaseParser):
    """Claims multipart/related without reading it: the view streams the parts itself.

    Without it, the CSRF check of a session-authenticated POST reads `request.POST`, DRF finds no parser for
    multipart/related and answers 415, so every browser upload fails.
    """

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class UploadStowApi(APIView):
    """POST /dicomweb/trials/<code>/uploads/<id>/studies: store instances into an open upload session."""

    renderer_classes = [DicomJsonRenderer]
    parser_classes = [MultipartRelatedParser]
    schema = None  # a DICOMweb service (PS3.18), described by the standard rather than the OpenAPI schema

    def post(self, request, code, upload_id):
        actor = Actor.from_request(request)
        trial = selectors.trial_get(actor=actor, code=code)
        upload = selectors.upload_get(actor=actor, trial=trial, pk=upload_id, write=True)
        try:
            _media, boundary, part_type = parse_content_type(request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            return Response({"error": str(exc)}, status=415)
        if part_type and part_type != "application/dicom":
            return Response({"error": _("Only application/dicom parts are accepted.")}, status=415)
        items, pending, pending_bytes = [], [], 0
        try:
            for headers, body in iter_parts(request._request, boundary, max_part=MAX_FILE_BYTES):
                content_type = headers.get("content-type", "application/dicom").split(";")[0].strip().lower()
                if content_type != "application/dicom":
                    raise ValidationFailed(_("Only application/dicom parts are accepted."))
                pending.append(body)
                pending_bytes += len(body)
                # Files go on in processing batches; a batch also decides whose images a new subject's are.
                if len(pending) >= BATCH_SIZE or pending_bytes >= FLUSH_BYTES:
                    items.extend(upload_receive(upload=upload, files=pending))
                    pending, pending_bytes = [], 0
        except MultipartError as exc:
            # Whatever arrived whole before the damage is kept; the client resends the rest.
            if not items and not pending:
                raise ValidationFailed(
                    _("The request body is not a valid multipart/related message: %(e)s.") % {"e": exc}
                ) from None
        except CTIMSError:
            if not items and not pending:
                raise
        if pending:
            items.extend(upload_receive(upload=upload, files=pending))
        items = list(UploadItem.objects.filter(pk__in=[i.pk for i in items]).select_related("instance__series__study"))
        referenced = [_item_json(i, request, trial.code) for i in items if i.instance_id is not None]
        failed = [_item_json(i, request, trial.code) for i in items if i.state == UploadItem.State.REJECTED]
        body = {
            "00081190": {
                "vr": "UR",
                "Value": [request.build_absolute_uri(f"/api/trials/{trial.code}/uploads/{upload.pk}/")],
            }
        }
        if referenced:
            body["00081199"] = {"vr": "SQ", "Value": referenced}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        pending = any(i.state == UploadItem.State.QUARANTINED for i in items)
        status = 200 if not failed and not pending else (409 if failed and not referenced and not pending else 202)
        return Response(body, status=status)
