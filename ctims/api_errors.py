"""The API's one exception handler: every error has the same shape."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from .exceptions import CTIMSError, ValidationFailed

# Where every answer is JSON, errors included (the REST API and DICOMweb).
JSON_ROOTS = ("/api/", "/dicomweb/")


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape of every JSON answer: {"error": {"code", "message", "fields"?}}."""
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_messages(detail, where: str = "") -> list[str]:
    """Every message of a DRF error detail as readable text: a list field's or a list of objects' errors say which
    item ("item 2: ..."), a nested object's which field ("site: code: ...")."""
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in error_messages(value, where + _place(key))]
    if isinstance(detail, list):
        messages = []
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):  # one item's errors (an item without any is {})
                messages += error_messages(value, where + _place(index))
            else:
                messages.append(where + str(value))
        return messages
    return [where + str(detail)]


def _place(key) -> str:
    if key == api_settings.NON_FIELD_ERRORS_KEY:
        return ""
    return _("item %(number)s: ") % {"number": key + 1} if isinstance(key, int) else f"{key}: "


def api_exception_handler(exc, context):
    """Render every error in one shape."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationFailed.from_django(exc)
    if isinstance(exc, CTIMSError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {api_settings.NON_FIELD_ERRORS_KEY: exc.detail}
        fields = {k: error_messages(v) for k, v in detail.items()}
        message = " ".join(
            " ".join(v) if k == api_settings.NON_FIELD_ERRORS_KEY else f"{k}: {' '.join(v)}" for k, v in fields.items()
        )
        response.data = error_body("invalid", message, fields)
    else:
        code = getattr(exc, "default_code", "error")
        response.data = error_body(code, " ".join(error_messages(getattr(exc, "detail", str(exc)))))
    return response
