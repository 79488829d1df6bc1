"""The API's one pagination: limit and offset, checked (400 with the error shape) instead of guessed; and the
pages' one: `page_of`, a page of a list named by its own query parameter, so that one page can page several lists."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.utils.translation import gettext as _
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.views import APIView

from .params import LARGEST, whole_number


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; a limit or offset that is not a whole number in range is refused, not ignored."""

    max_limit = 1000

    def get_limit(self, request) -> int | None:
        limit = whole_number(request.query_params, self.limit_query_param, default=None, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return whole_number(request.query_params, self.offset_query_param, default=0)

    def get_schema_operation_parameters(self, view):
        """`limit` and `offset` as they are read: whole numbers within bounds (another is refused, 400), and a limit
        above `max_limit` answering `max_limit` results; DRF's own say only "integer". Their descriptions stay
        DRF's, in the reader's language, with what a larger limit does."""
        parameters = {p["name"]: p for p in super().get_schema_operation_parameters(view)}
        limit, offset = parameters[self.limit_query_param], parameters[self.offset_query_param]
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": LARGEST, "default": self.default_limit}
        limit["description"] += " " + _("More than %(max)s return %(max)s.") % {"max": self.max_limit}
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": LARGEST, "default": 0}
        return list(parameters.values())


def page_of(request, items, size: int, *, param: str = "page") -> Page:
    """The page of `items` that `?<param>=` names (the first if it names none, the last if it is past the end).

    `page.param` is the parameter's name: includes/pagination.html links to the other pages with it, keeping
    the rest of the query string (filters, sorting, another list's page) as it is.
    """
    page = Paginator(items, size).get_page(request.GET.get(param))
    page.param = param
    return page


class PagedApi(APIView):
    """An API view that answers a list a page at a time (Pagination): the schema publishes its answers as pages."""

    pagination_class = Pagination

    def paged(self, request, items, serialize):
        """The page of `items` the query asks for, each serialized by `serialize` (a list of them)."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(serialize(page))
