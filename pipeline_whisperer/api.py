"""DRF glue shared by every API view: pagination (pages, or cursors for large tables) and
ordering that refuse bad input, content negotiation that answers the usual JSON client
without parsing anything, and plain-data answers rendered without DRF's response round.

DRF's defaults silently clamp a page size and ignore an unknown ordering field; a caller who
asked for something we cannot give should hear so (400), not get something else.
"""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Q, QuerySet
from django.http import HttpResponse, HttpResponseBase
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class BoundedPageNumberPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return settings.API_MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return requested_page_size(request)


def requested_page_size(request: Request) -> int:
    """`page_size` from the query, API_PAGE_SIZE without one; out of range is a 400."""
    raw, most = request.query_params.get("page_size"), settings.API_MAX_PAGE_SIZE
    if raw is None:
        return settings.API_PAGE_SIZE
    # isdigit() alone admits digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise ValidationError({"page_size": [f"Must be a whole number from 1 to {most}."]})
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


_INVALID_CURSOR = "Invalid cursor: follow a next or previous link."


class KeysetPagination(BasePagination):
    """Pages by cursor over the view's ordering, with the row id as the last tie-break, so a page
    is one indexed range read and never counts the table; rows inserted while a client pages
    are neither seen twice nor make it skip any. The answer is `{next, previous, results}`; the
    links carry an opaque `cursor`. The list hands in `.values()` rows (dicts) holding `id` and
    the ordering fields. A field that may be NULL sorts its NULLs last in either direction."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    # A keyset needs a queryset to filter, where DRF's base also takes any sequence.
    def paginate_queryset(  # type: ignore[override]
        self, queryset: QuerySet[Any, Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.base_url = request.build_absolute_uri()
        size = requested_page_size(request)
        ordering = StrictOrderingFilter().get_ordering(request, queryset, view) or ["-id"]
        self.model = queryset.model
        self.terms = [
            _Term(term.lstrip("-"), term.startswith("-"), self.model._meta.get_field(term.lstrip("-")).null)
            for term in ordering
            if term.lstrip("-") != "id"
        ]
        self.terms.append(_Term("id", self.terms[0].descending if self.terms else True, False))
        cursor = self._decode(request)
        backward = bool(cursor and cursor[1])
        if cursor is not None:
            queryset = queryset.filter(self._beyond(cursor[0], backward=backward))
        rows = list(queryset.order_by(*(term.order(backward=backward) for term in self.terms))[: size + 1])
        page, more = rows[:size], len(rows) > size
        if backward:
            page.reverse()
        # Going forward there is a previous page when we came from one; going back, a next one.
        self.has_next, self.has_previous = (True, more) if backward else (more, cursor is not None)
        self.page = page
        return page

    def _beyond(self, values: list[Any], *, backward: bool) -> Q:
        """Rows after `values` in the page order (before them, going back): lexicographic over
        the terms, the first term also bounded inclusively so an index on it serves a range."""
        beyond, equal = Q(pk__in=[]), Q()
        for term, value in zip(self.terms, values, strict=True):
            beyond |= equal & term.strictly_beyond(value, backward=backward)
            equal &= Q(**{f"{term.field}__isnull": True}) if value is None else Q(**{term.field: value})
        first, value = self.terms[0], values[0]
        if value is not None and not first.nullable:
            beyond &= Q(**{f"{first.field}__{first.op(backward=backward)}e": value})
        return beyond

    def _decode(self, request: Request) -> tuple[list[Any], bool] | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            fields, values, backward = json.loads(urlsafe_b64decode(raw.encode("ascii")))
            if fields != [term.field for term in self.terms] or len(values) != len(fields):
                raise ValueError(fields)
            model = self.model._meta
            # A value its field cannot hold is refused here, not by the database.
            typed = [
                None if v is None else model.get_field(f).to_python(v) for f, v in zip(fields, values, strict=True)
            ]
            return typed, bool(backward)
        except (ValueError, TypeError, UnicodeError, DjangoValidationError):
            raise ValidationError({self.cursor_query_param: [_INVALID_CURSOR]}) from None

    def _link(self, row: dict[str, Any], *, backward: bool) -> str:
        values = [row[term.field] for term in self.terms]
        token = [[term.field for term in self.terms], [_json_value(value) for value in values], backward]
        cursor = urlsafe_b64encode(json.dumps(token).encode()).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, cursor)

    def get_paginated_response(self, data: Any) -> Response:
        next_link = self._link(self.page[-1], backward=False) if self.has_next and self.page else None
        previous_link = self._link(self.page[0], backward=True) if self.has_previous and self.page else None
        if self.has_previous and not self.page:  # a page emptied since its link was made: start over
            previous_link = remove_query_param(self.base_url, self.cursor_query_param)
        return Response({"next": next_link, "previous": previous_link, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the cursor of a next or previous link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "Rows per page.",
                "schema": {"type": "integer"},
            },
        ]


@dataclass(frozen=True)
class _Term:
    """One term of a keyset ordering."""

    field: str
    descending: bool
    nullable: bool

    def op(self, *, backward: bool) -> str:
        return "lt" if self.descending != backward else "gt"

    def order(self, *, backward: bool) -> Any:
        descending = self.descending != backward
        if not self.nullable:  # a plain term, so an index on (field, id) serves the order as it is
            return f"-{self.field}" if descending else self.field
        # NULLs last going forward, hence first going back (Django takes True or None here).
        nulls = {"nulls_first": True} if backward else {"nulls_last": True}
        return F(self.field).desc(**nulls) if descending else F(self.field).asc(**nulls)

    def strictly_beyond(self, value: Any, *, backward: bool) -> Q:
        if value is None:  # NULLs come last: nothing beyond them going forward, every value going back
            return Q(**{f"{self.field}__isnull": False}) if backward else Q(pk__in=[])
        beyond = Q(**{f"{self.field}__{self.op(backward=backward)}": value})
        return beyond | Q(**{f"{self.field}__isnull": True}) if self.nullable and not backward else beyond


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# What API clients send; a browser's Accept (text/html first) goes through DRF's negotiation.
_JSON_ACCEPTS = frozenset({"*/*", "application/json"})


class JsonFirstContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the common answer given at once: a request accepting JSON or
    anything, with no format override, gets a view's first renderer when that renders JSON, as
    DRF's own loop would decide after parsing the Accept header and the query (about 3% of a
    cached API request)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        first = renderers[0] if renderers else None
        if (
            first is not None
            and first.media_type == "application/json"
            and format_suffix is None
            and request.META.get("HTTP_ACCEPT", "*/*") in _JSON_ACCEPTS
            and f"{self.settings.URL_FORMAT_OVERRIDE}=" not in request.META.get("QUERY_STRING", "")
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


def plain_data_response(request: Request, data: Any) -> HttpResponseBase:
    """`Response(data)` for an answer already in plain data (a cached one), rendered here when
    the client negotiated plain JSON: the same bytes and content type, without DRF's template
    response and its rendering round (about 2% of a cached request). Any other negotiation (the
    browsable API, JSON with parameters) gets a Response as usual."""
    renderer = request.accepted_renderer
    if request.accepted_media_type != "application/json" or renderer.media_type != "application/json":
        return Response(data)
    return HttpResponse(renderer.render(data, "application/json"), content_type="application/json")
