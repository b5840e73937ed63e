"""What /metrics exports and who may read it.

Request counts and latencies come from django-prometheus's middleware; other code may add
prometheus_client metrics to the default registry. With PROMETHEUS_MULTIPROC_DIR set (gunicorn
with several workers), every worker writes its samples there and the scrape merges them, so the
numbers are the whole server's whichever worker answers. Apps register collectors of their own
(`health.registry`), read at scrape time, so gauges they read from the database are whole-server
numbers too; health adds the answering worker's pool and the registered consumer groups' lag.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from hmac import compare_digest

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from health.pool import connection_pool
from health.probes import stage_lag
from health.registry import registered_collectors
from pipeline_whisperer.exceptions import problem_response

_POOL_STATS = ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting")


def metrics_registry() -> CollectorRegistry:
    """The registry one scrape reads: this process's metrics (or, in multiprocess mode, every
    worker's, merged), the apps' registered collectors, then the pool and the consumer lag."""
    # No source needs describing up front; each is read only when scraped.
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    for collector in registered_collectors():
        registry.register(collector)
    registry.register(PoolAndLagCollector())
    return registry


def metrics_access_problem(request: HttpRequest) -> HttpResponse | None:
    """None when the caller sends `Authorization: Bearer <METRICS_TOKEN>` or its address
    (REMOTE_ADDR) is in METRICS_ALLOWED_NETWORKS; otherwise the problem+json answer (401 when a
    token would help, 403 when none is configured)."""
    token = settings.METRICS_TOKEN
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if token and authorization:
        if compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            return None
        return _unauthorized(request, "The metrics token is wrong.")
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    if token:
        return _unauthorized(request, "Send the metrics token as Authorization: Bearer <token>.")
    return problem_response(status=403, detail="Metrics are served to the configured networks only.", request=request)


def _unauthorized(request: HttpRequest, detail: str) -> HttpResponse:
    response = problem_response(status=401, detail=detail, request=request)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _address_allowed(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


class PoolAndLagCollector:
    """The answering worker's connection pool and the registered consumer groups' lag, per
    scrape (a class: prometheus_client's custom-collector interface)."""

    def collect(self) -> Iterator[Metric]:
        yield from _pool()
        yield from _lag()


def _pool() -> Iterator[Metric]:
    """The pool of the worker answering the scrape (each worker has its own, alike in size)."""
    pool = connection_pool()
    if pool is None:
        return
    stats = pool.get_stats()
    for name in _POOL_STATS:
        yield GaugeMetricFamily(
            f"pipeline_db_{name}", f"psycopg pool {name} of the answering worker.", stats.get(name, 0)
        )


def _lag() -> Iterator[Metric]:
    lags = {stage: lag for stage, lag in stage_lag().items() if lag is not None}
    if lags:
        family = GaugeMetricFamily("pipeline_consumer_lag", "Messages a stage has still to consume.", labels=["stage"])
        for stage, lag in lags.items():
            family.add_metric([stage], lag)
        yield family
