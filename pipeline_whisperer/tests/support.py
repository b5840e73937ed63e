"""Helpers for the core's tests, and for any app's: the real log handler's output, parsed, and
the assertion that an answer is an RFC 9457 problem."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.urls import URLPattern, URLResolver


class CapturedLines:
    """What the configured root handler would have written, one entry per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def text(self) -> str:
        return self.stream.getvalue()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def from_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.json() if line["logger"] == name]


@contextmanager
def captured_log_lines(level: int = logging.DEBUG) -> Iterator[CapturedLines]:
    """A handler with the formatter and filters of the configured `console` handler (the real
    LOGGING setting), on the root logger, writing to memory for the duration of the block."""
    root = logging.getLogger()
    configured = next(handler for handler in root.handlers if handler.name == "console")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield CapturedLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, errors: Iterable[str] = ()) -> dict[str, Any]:
    """The response is an RFC 9457 problem of `status`; `errors` names fields it must report."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["status"] == status
    assert body["detail"]
    assert body["instance"] == response.request["PATH_INFO"]
    expected = list(errors)
    if expected:
        assert sorted(expected) == sorted(body["errors"]), body
    return body


def concrete_routes(resolver: URLResolver, prefix: str = "") -> list[tuple[str, URLPattern]]:
    """Every route of the URLconf as a concrete path (path arguments filled with 1), with its pattern."""
    routes = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$").replace("\\Z", "")
        if isinstance(pattern, URLResolver):
            routes += concrete_routes(pattern, route)
        elif isinstance(pattern, URLPattern):
            routes.append((_concrete(route), pattern))
    return routes


def _concrete(route: str) -> str:
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)  # regex routes (the DRF router's)
    route = re.sub(r"<(?:\w+:)?\w+>", "1", route)  # path converters
    return "/" + route.replace("\\.", ".").replace("\\", "")
