"""REST API of read results: sponsors' and trial admins' machine clients read the locked results and their SRs,
and request, follow and download data transfers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from ctims.api_schema import conflict
from ctims.pagination import PagedApi
from trials.access import Actor

from . import results, selectors, transfers
from .transfer_views import transfer_response
from .views import request_api_token, sr_download


class ReadResultOut(serializers.Serializer):
    id = serializers.IntegerField(source="result.pk")
    subject = serializers.CharField()
    visit = serializers.CharField()
    overall_response = serializers.CharField(source="overall", allow_blank=True)
    target_response = serializers.CharField(source="target", allow_blank=True)
    non_target_response = serializers.CharField(source="non_target", allow_blank=True)
    new_lesions = serializers.CharField(
        allow_blank=True,
        help_text='At a follow-up, the reader\'s assessment of new lesions: "NONE", "EQUIVOCAL" or "UNEQUIVOCAL"; '
        "empty at baseline, where RECIST 1.1 assesses none (as the transfer's tables and SDTM RS leave it).",
    )
    sum_of_diameters_mm = serializers.CharField(
        source="sum_mm",
        allow_blank=True,
        help_text='The sum of the target lesions\' diameters in millimetres, as text with one decimal ("35.0"); '
        "empty where it cannot be computed (a target lesion not evaluable).",
    )
    source = serializers.CharField(
        help_text='How the result was locked: "single" (one reader), "agreement" (the readers agreed) or '
        '"adjudication" (the result follows an adjudicator\'s decision: the visit the adjudicator decided, and '
        "every other visit of the subject whose result then took the chosen reader's read, agreed or not). "
        "`adjudicated` says which of them the adjudicator decided."
    )
    adjudicated = serializers.BooleanField(
        help_text="True for a visit the adjudicator decided (the readers disagreed on it, so its first result was "
        "the adjudication's); false for a visit whose result only follows a decision about another visit."
    )
    reader = serializers.IntegerField(
        help_text="The evaluator number of the reader whose read stands: 1 or 2, or 3, 4, ... for a reader who took "
        'a case over from one retired from it (the transfer\'s --EVALID "RADIOLOGIST n").'
    )
    locked_at = serializers.DateTimeField(
        help_text="When this result was locked; for a result that follows an adjudication, when it was signed."
    )
    # The signatures the result stands on (21 CFR 11.50): the reader's, and the adjudicator's where one decided.
    signed_by = serializers.CharField(help_text="The printed name of the reader who signed the read.")
    signed_at = serializers.DateTimeField()
    signature_meaning = serializers.CharField()
    adjudicated_by = serializers.CharField(
        allow_blank=True,
        help_text="The printed name of the adjudicator whose signed decision the result follows (whenever `source` "
        'is "adjudication"); empty otherwise.',
    )
    adjudicated_at = serializers.DateTimeField(allow_null=True)
    adjudication_meaning = serializers.CharField(allow_blank=True)
    sr_sop_instance_uid = serializers.CharField(source="result.sr.sop_instance_uid")


class ReadResultListApi(PagedApi):
    @extend_schema(responses=ReadResultOut(many=True))
    def get(self, request, code):
        """The trial's locked read results (never a result that is not locked). Each request is audited (one
        event naming its page and the number of results it held)."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        response = self.paged(
            request,
            selectors.results_query(trial),
            lambda page: ReadResultOut(selectors.result_rows(trial, results=page), many=True).data,
        )
        # One event per request (a page), not per result: a script paging through the results leaves a line a page.
        pagination = self.pagination_class()
        results.results_download_record(
            actor=request.user,
            trial=trial,
            kind="results_api",
            token=request_api_token(request),
            offset=pagination.get_offset(request),
            limit=pagination.get_limit(request),
            rows=len(response.data["results"]),
            total=response.data["count"],
        )
        return response


class ReadResultSrApi(APIView):
    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    def get(self, request, code, pk):
        """The DICOM SR (Part 10) of one locked result (audited)."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        return sr_download(request, selectors.result_get(trial=trial, pk=pk), kind="sr_api")


class TransferIn(serializers.Serializer):
    cutoff = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="What is locked by this time is delivered. Default: now. Give the offset "
        "(2026-07-01T00:00:00+09:00, or Z for UTC): a time without one is read in the server's time zone.",
    )


class TransferOut(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.CharField()
    progress = serializers.IntegerField(help_text="Percent done.")
    step = serializers.SerializerMethodField()
    cutoff = serializers.DateTimeField()
    requested_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    supersedes = serializers.IntegerField(source="supersedes.number", allow_null=True, default=None)
    real_dates = serializers.BooleanField()
    sha256 = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField(allow_null=True)
    changes = serializers.JSONField(
        help_text="Per subject code, what changed since the transfer this one supersedes: status (new, changed, "
        "unchanged, removed), visits_added, visits_changed, visits_removed (visit codes) and endpoints_changed."
    )
    error = serializers.CharField(allow_blank=True)
    download_url = serializers.SerializerMethodField()

    def get_step(self, transfer) -> str:
        return transfers.step_label(transfer)

    def get_download_url(self, transfer) -> str | None:
        if transfer.state != transfer.State.READY:
            return None
        from django.urls import reverse

        return reverse("api-transfer-download", args=[transfer.trial.code, transfer.number])


class TransferListApi(PagedApi):
    @extend_schema(responses=TransferOut(many=True))
    def get(self, request, code):
        """The trial's data transfers, newest first."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        return self.paged(request, transfers.transfers_list(trial), lambda page: TransferOut(page, many=True).data)

    @extend_schema(request=TransferIn, responses={202: TransferOut})
    def post(self, request, code):
        """Request a transfer of what is locked by the cut-off; it builds in the background (poll its URL)."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        data = TransferIn(data=request.data)
        data.is_valid(raise_exception=True)
        transfer = transfers.transfer_request(actor=request.user, trial=trial, cutoff=data.validated_data.get("cutoff"))
        return Response(TransferOut(transfer).data, status=202)


class TransferDetailApi(APIView):
    @extend_schema(responses=TransferOut)
    def get(self, request, code, number):
        """One transfer: its state and progress while it builds; its SHA-256 and what changed once ready."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        return Response(TransferOut(transfers.transfer_get(trial=trial, number=number)).data)


class TransferDownloadApi(APIView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            409: conflict("the transfer is not ready (still building, or failed)."),
        }
    )
    def get(self, request, code, number):
        """The transfer's zip (audited); 409 while it is still building."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        transfer = transfers.transfer_get(trial=trial, number=number)
        return transfer_response(transfer, transfers.transfer_open(actor=request.user, transfer=transfer))
