"""django-prometheus's request metrics, with the per-request bookkeeping they cost cut down.

PrometheusAfterMiddleware asks prometheus_client for a labelled child of a metric about seven
times per request (each call checks the label names and takes the metric's lock) and works out
the request's transport twice: about a quarter of its cost, which is about a twentieth of
a cached API request. The metrics, their names and their labels stay django-prometheus's own
(docs/OBSERVABILITY.md lists them); only the lookups are remembered.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_prometheus.middleware import PrometheusAfterMiddleware


class RequestMetricsAfterMiddleware(PrometheusAfterMiddleware):
    """PrometheusAfterMiddleware remembering each labelled child it was given (a metric's
    children live as long as the metric, and the labels are a few views, methods and statuses)
    and each request's transport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple[Any, ...], Any] = {}

    def label_metric(self, metric: Any, request: HttpRequest, response: Any = None, **labels: str) -> Any:
        if not labels:
            return metric
        key = (metric, *labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels)
        return child

    def _transport(self, request: HttpRequest) -> str:
        transport = getattr(request, "_metrics_transport", None)
        if transport is None:
            transport = super()._transport(request)
            request._metrics_transport = transport  # type: ignore[attr-defined]
        return str(transport)
