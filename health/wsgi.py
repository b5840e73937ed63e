"""Liveness answered at the WSGI level, ahead of Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

LIVENESS_PATH = "/health/liveness"
LIVE_BODY = b'{"status":"ok"}'
_LIVE_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(LIVE_BODY)))]


class LivenessFirst:
    """Answer `/health/liveness` before Django sees the request.

    Liveness says only that the process serves requests, so nothing else needs to run: no request
    object, no middleware, no signals (Django's close the database connections on every request).
    It costs what a bare WSGI callable does under load, and answers whatever Host header a kubelet
    or load balancer sends. The server drops the body of a HEAD.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LIVENESS_PATH:
            start_response("200 OK", list(_LIVE_HEADERS))
            return [LIVE_BODY]
        return self.application(environ, start_response)
