"""Small presentation helpers for CTIMS pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.utils.formats import localize

register = template.Library()


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


@register.simple_tag(takes_context=True)
def page_url(context, page, number) -> str:
    """The query string of page `number` of `page` (its `param`, else "page"), the rest of the query kept."""
    query = context["request"].GET.copy()
    query[getattr(page, "param", "page")] = str(number)
    return "?" + query.urlencode()
