"""REST API of read results: sponsors' and trial admins' machine clients read the locked results and their SRs."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from ctims.pagination import Pagination
from trials.access import Actor

from . import selectors
from .views import sr_download


class ReadResultOut(serializers.Serializer):
    id = serializers.IntegerField(source="result.pk")
    subject = serializers.CharField()
    visit = serializers.CharField()
    overall_response = serializers.CharField(source="overall", allow_blank=True)
    target_response = serializers.CharField(source="target", allow_blank=True)
    non_target_response = serializers.CharField(source="non_target", allow_blank=True)
    new_lesions = serializers.CharField(allow_blank=True)
    sum_of_diameters_mm = serializers.CharField(source="sum_mm", allow_blank=True)
    source = serializers.CharField()
    reader = serializers.IntegerField()
    locked_at = serializers.DateTimeField()
    sr_sop_instance_uid = serializers.CharField(source="result.sr.sop_instance_uid")


class ReadResultListApi(APIView):
    @extend_schema(responses=ReadResultOut(many=True))
    def get(self, request, code):
        """The trial's locked read results (never a result that is not locked)."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.result_rows(trial), request, view=self)
        return paginator.get_paginated_response(ReadResultOut(page, many=True).data)


class ReadResultSrApi(APIView):
    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    def get(self, request, code, pk):
        """The DICOM SR (Part 10) of one locked result."""
        trial = selectors.results_trial(actor=Actor.from_request(request), code=code)
        return sr_download(selectors.result_get(trial=trial, pk=pk))
