"""Small presentation helpers for CTIMS pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.utils.formats import localize
from django.utils.translation import gettext as _

register = template.Library()


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(localize(value))


@register.filter
def summary_items(summary: Any) -> list[tuple[str, str]]:
    """An audit event's JSON summary as (key, readable value) pairs; a change list becomes 'field: before → after'."""
    if not isinstance(summary, dict):
        return [("", _text(summary))]
    items: list[tuple[str, str]] = []
    for key, value in summary.items():
        if key == "changes" and isinstance(value, dict):
            for name, change in value.items():
                if isinstance(change, list) and len(change) == 2:
                    items.append((name, f"{_text(change[0])} → {_text(change[1])}"))
                else:
                    items.append((name, _text(change)))
        else:
            items.append((key, _text(value)))
    return items


@register.filter
def minutes(value: Any) -> int | str:
    """A timedelta as whole minutes (rounded up), for messages such as 'try again in 15 minutes'."""
    if isinstance(value, timedelta):
        return max(1, -(-int(value.total_seconds()) // 60))
    return value


@register.filter
def trim_decimal(value: Any) -> str:
    """A decimal without trailing zeros, localized: 2.50 → '2.5', 5.00 → '5'."""
    if isinstance(value, Decimal):
        value = value.normalize()
        if value == value.to_integral():
            value = value.quantize(Decimal(1))
    return str(localize(value))
