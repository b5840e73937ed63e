"""DRF glue shared by every API view: pagination and ordering that refuse bad input.

DRF's defaults silently clamp a page size and ignore an unknown ordering field; a caller who
asked for something we cannot give should hear so (400), not get something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request


class BoundedPageNumberPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return settings.API_MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.API_PAGE_SIZE
        # isdigit() alone admits digits such as "²" that int() refuses.
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"Must be a whole number from 1 to {self.max_page_size}."]})
        return int(raw)


class StrictOrderingFilter(OrderingFilter):
    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        raw = request.query_params.get(self.ordering_param)
        if raw:
            allowed = {name for name, _ in self.get_valid_fields(queryset, view, {"request": request})}
            unknown = [term for term in (t.strip().lstrip("-") for t in raw.split(",")) if term not in allowed]
            if unknown:
                raise ValidationError(
                    {
                        self.ordering_param: [
                            f"Cannot order by {', '.join(unknown)}; choose from {', '.join(sorted(allowed))}."
                        ]
                    }
                )
        return super().get_ordering(request, queryset, view)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested too deeply for the decoder is a 400, not a 500."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


class ItemwiseJSONParser(BoundedJSONParser):
    """For a batch endpoint that judges each item on its own: NaN and Infinity decode as floats
    (DRF's strict parser refuses the whole body for one), so only the item holding one is refused."""

    strict = False
