"""The OpenAPI schema's generator: every operation publishes the error answers it can give, in the one shape."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.plumbing import force_instance, is_basic_serializer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

# What every operation may answer besides its own success (ctims.api_errors renders each in the one error shape):
# each needs a credential (401), and refuses a person, role or token it does not serve, a session without its
# second factor included (403, ctims.middleware.TwoFactorMiddleware).
ALWAYS = {
    "401": "No credentials, or a token that is not valid.",
    "403": "Not permitted for this person, role or token.",
}
# What an operation answers only if it takes input a client can get wrong (400) or names objects in its path (404),
# as AutoSchema derives from what it declares; an exception declares its own (`not_found`).
INVALID = "The input is not valid"
NOT_FOUND = "No such object, or not one the caller can see"
# A query or header parameter's schema with nothing else than these admits any text: it cannot be invalid.
FREE_TEXT_KEYS = frozenset({"type", "description", "title", "default", "example", "nullable"})


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ErrorSerializer(serializers.Serializer):
    """{"error": {"code", "message", "fields"?}}: ctims.api_errors.error_body."""

    error = ErrorDetailSerializer()


def not_found(when: str) -> OpenApiResponse:
    """The 404 of an operation that looks up an object its path does not name (a query parameter naming a
    trial), saying when: `extend_schema(responses={..., 404: not_found("...")})`."""
    return OpenApiResponse(response=ErrorSerializer, description=f"{NOT_FOUND}: {when}")


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

    def _process_override_parameters(self, direction="request"):
        """Query parameters from a serializer (`extend_schema(parameters=[SomeIn])`), as the query string is read:
        an optional text field's empty value counts as absent (DRF reads `?action=` so), so it is not refused and
        its schema gets no `minLength: 1` (which said the empty value was an error: it is not)."""
        result = super()._process_override_parameters(direction)
        for parameter in self.get_override_parameters():
            if not is_basic_serializer(parameter):
                continue
            for name, field in force_instance(parameter).fields.items():
                mapped = result.get((name, OpenApiParameter.QUERY))
                if (
                    mapped is not None
                    and isinstance(field, serializers.CharField)
                    and not field.required
                    and field.min_length is None
                    and mapped["schema"].get("minLength") == 1
                ):
                    del mapped["schema"]["minLength"]
        return result

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        """The operation, with the error answers it can give besides those it declares (which stand as declared)."""
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, description in derived_errors(operation).items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
                responses[code]["description"] = description
        operation["responses"] = dict(sorted(responses.items()))
        return operation


def derived_errors(operation: dict) -> dict[str, str]:
    """The error answers an operation gives by what it takes, each with its description.

    400: a request body, or a query or header parameter that is more than free text (a number, a date, a choice,
    a non-empty string); a path parameter never, since a value its route does not match is not routed here (404).
    404: a parameter in its path, which names an object: a trial by its code, an upload by its id.
    """
    parameters = operation.get("parameters", [])
    checked = [f"`{p['name']}`" for p in parameters if p["in"] != "path" and _can_be_invalid(p.get("schema", {}))]
    named = [f"`{p['name']}`" for p in parameters if p["in"] == "path"]
    errors = dict(ALWAYS)
    if "requestBody" in operation or checked:
        inputs = (["the request body"] if "requestBody" in operation else []) + checked
        errors["400"] = f"{INVALID}: {', '.join(inputs)}."
    if named:
        errors["404"] = f"{NOT_FOUND}: {', '.join(named)}."
    return errors


def _can_be_invalid(schema: dict) -> bool:
    return not (schema.get("type") == "string" and set(schema) <= FREE_TEXT_KEYS)
