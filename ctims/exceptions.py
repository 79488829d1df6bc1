"""The one family of errors CTIMS raises, and how the API shows them.

Services raise these; views turn them into a message (pages) or, through ctims.api_errors, the API
error shape ``{"error": {"code": "...", "message": "...", "fields": {...}}}``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError


class CTIMSError(Exception):
    """A request that cannot be carried out, with a message a user can act on."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = str(message)
        if code:
            self.code = code
        self.fields = fields or {}


class ValidationFailed(CTIMSError):
    """Input that breaks a rule: nothing was changed."""

    status = 400
    code = "invalid"

    @classmethod
    def from_django(cls, exc: DjangoValidationError) -> ValidationFailed:
        if hasattr(exc, "error_dict"):
            fields = {name: [str(m) for e in errors for m in e.messages] for name, errors in exc.error_dict.items()}
            message = " ".join(m for ms in fields.values() for m in ms)
            return cls(message, fields=fields)
        return cls(" ".join(exc.messages))


class InvalidState(CTIMSError):
    """The object is not in a state that allows this change."""

    status = 409
    code = "invalid_state"


class NotPermitted(CTIMSError):
    """The person may see the object but not do this to it."""

    status = 403
    code = "forbidden"


class NotFound(CTIMSError):
    """Out of scope or absent: the two are answered alike so nothing's existence leaks."""

    status = 404
    code = "not_found"
