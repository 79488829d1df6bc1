"""The API's one pagination: limit and offset, checked (400 with the error shape) instead of guessed."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

from .params import whole_number


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; a limit or offset that is not a whole number in range is refused, not ignored."""

    max_limit = 1000

    def get_limit(self, request) -> int | None:
        limit = whole_number(request.query_params, self.limit_query_param, default=None, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return whole_number(request.query_params, self.offset_query_param, default=0)
