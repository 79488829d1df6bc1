"""Whole numbers from a request's query string, checked before they reach a query.

A number that is not a plain decimal, or outside the range a query can use, is the client's error (400 with
the API's error shape), never a server error deep in the database driver.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from .exceptions import ValidationFailed

# Beyond this no list of ours has rows; PostgreSQL's OFFSET and LIMIT take 64-bit values, Python any size.
LARGEST = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")


def whole_number(params, name: str, *, default: int | None, minimum: int = 0, maximum: int = LARGEST) -> int | None:
    """The query parameter `name` as a whole number in [minimum, maximum], `default` if absent, else ValidationFailed."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        message = _("%(name)s must be a whole number from %(min)s to %(max)s.") % {
            "name": name,
            "min": minimum,
            "max": maximum,
        }
        raise ValidationFailed(message, fields={name: [message]})
    return int(raw)
