"""The OpenAPI schema's generator: every operation publishes the error answers it can give, in the one shape."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

# What any operation may answer besides its own success (ctims.api_errors renders each in the one error shape):
# a malformed input or query (pagination included), no or a bad credential, a permission or role it lacks, a trial
# or object it cannot see.
ERROR_ANSWERS = {
    "400": "The input or the query is not valid.",
    "401": "No credentials, or a token that is not valid.",
    "403": "Not permitted for this person, role or token.",
    "404": "No such object, or not one the caller can see.",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ErrorSerializer(serializers.Serializer):
    """{"error": {"code", "message", "fields"?}}: ctims.api_errors.error_body."""

    error = ErrorDetailSerializer()


def conflict(when: str) -> OpenApiResponse:
    """The 409 of an operation whose service can refuse it for an object's state (ctims.exceptions.InvalidState),
    saying when: `extend_schema(responses={..., 409: conflict("...")})`. Only those operations publish one."""
    return OpenApiResponse(response=ErrorSerializer, description=f"The object's state does not allow it now: {when}")


class AutoSchema(openapi.AutoSchema):
    def _map_basic_serializer(self, serializer, direction):
        """A serializer whose Meta says `closed` admits no other property (so that oneOf of it and a larger shape
        picks one)."""
        schema = super()._map_basic_serializer(serializer, direction)
        if getattr(getattr(serializer, "Meta", None), "closed", False):
            schema["additionalProperties"] = False
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in ERROR_ANSWERS.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                responses[code]["description"] = description
        return responses
