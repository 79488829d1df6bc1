"""The upload session's endpoints for de-identification in the site's browser: the subject key and the records."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ctims.api_schema import conflict

from .. import selectors
from ..access import Actor
from ..ingest.browser import browser_records_receive, upload_browser_key
from . import serializers as s


def _writable_upload(request, code: str, pk: int):
    actor = Actor.from_request(request)
    trial = selectors.trial_get(actor=actor, code=code, perm="view_trial")
    # A coordinator of the subject's site (else 403; an upload they may not see is 404).
    return selectors.upload_get(actor=actor, trial=trial, pk=pk, write=True)


class UploadSubjectKeyApi(APIView):
    """The key the browser de-identifies this upload's subject with, while the upload is open. Never cached."""

    @extend_schema(
        responses={
            200: s.UploadSubjectKeyOut,
            409: conflict("the upload is closed, or sends its files to be de-identified on the server."),
        }
    )
    def get(self, request, code, pk):
        upload = _writable_upload(request, code, pk)
        response = Response(s.UploadSubjectKeyOut(upload_browser_key(actor=request.user, upload=upload)).data)
        response["Cache-Control"] = "no-store"
        return response


class UploadBrowserRecordsApi(APIView):
    """The browser's record of each file it de-identified (keyed hashes and counts), sent before the files."""

    @extend_schema(
        request=s.BrowserRecordIn,
        responses={
            200: s.BrowserRecordsOut,
            409: conflict("the upload is closed, or sends its files to be de-identified on the server."),
        },
    )
    def post(self, request, code, pk):
        upload = _writable_upload(request, code, pk)
        serializer = s.BrowserRecordIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        kept = browser_records_receive(upload=upload, records=serializer.validated_data["records"])
        return Response(s.BrowserRecordsOut({"received": kept}).data)
