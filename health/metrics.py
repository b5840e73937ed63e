"""What /metrics exports and who may read it.

Request counts and latencies come from django-prometheus's middleware; other code may add
prometheus_client metrics to the default registry. With PROMETHEUS_MULTIPROC_DIR set (gunicorn
with several workers), every worker writes its samples there and the scrape merges them, so the
numbers are the whole server's whichever worker answers. The pipeline's gauges are read from the
database at scrape time by `PipelineCollector`, so they are whole-server numbers too.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterator
from hmac import compare_digest

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from health.pool import connection_pool
from health.probes import stage_lag
from leads.models import DeadLetter, Lead, LeadStatus, OutboxEvent, Variant
from pipeline_whisperer.exceptions import problem_response

logger = logging.getLogger(__name__)

_POOL_STATS = ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting")


def metrics_registry() -> CollectorRegistry:
    """The registry one scrape reads: this process's metrics (or, in multiprocess mode, every
    worker's, merged) and the pipeline's gauges."""
    # Neither source needs describing up front; both are read only when scraped.
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(PipelineCollector())
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


class PipelineCollector:
    """Gauges computed per scrape with a few aggregate queries (a class: prometheus_client's
    custom-collector interface). Without the database only `pipeline_database_up 0` remains."""

    def collect(self) -> Iterator[Metric]:
        try:
            families = [_leads(), *_outbox(), _dead_letters(), *_posteriors()]
        except DatabaseError as error:
            logger.warning("pipeline metrics unavailable: %s", error)
            families = []
        yield GaugeMetricFamily(
            "pipeline_database_up", "1 when the scrape could read the database.", 1.0 if families else 0.0
        )
        yield from families
        yield from _pool()
        yield from _lag()


def _leads() -> Metric:
    counts = dict.fromkeys(LeadStatus.values, 0) | dict(
        Lead.objects.order_by().values_list("status").annotate(count=Count("id"))
    )
    family = GaugeMetricFamily("pipeline_leads", "Leads by status.", labels=["status"])
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def _outbox() -> list[Metric]:
    backlog = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    age = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
    return [
        GaugeMetricFamily("pipeline_outbox_pending", "Outbox events not yet published.", backlog["count"]),
        GaugeMetricFamily("pipeline_outbox_oldest_pending_seconds", "Age of the oldest unpublished event.", age),
    ]


def _dead_letters() -> Metric:
    family = GaugeMetricFamily("pipeline_dead_letters", "Dead letters by topic and status.", labels=["topic", "status"])
    rows = DeadLetter.objects.order_by().values_list("topic", "status").annotate(count=Count("id"))
    for topic, status, count in rows:
        family.add_metric([topic, status], count)
    return family


def _posteriors() -> list[Metric]:
    labels = ["experiment", "variant"]
    alpha = GaugeMetricFamily("pipeline_variant_posterior_alpha", "Beta posterior alpha per variant.", labels=labels)
    beta = GaugeMetricFamily("pipeline_variant_posterior_beta", "Beta posterior beta per variant.", labels=labels)
    mean = GaugeMetricFamily("pipeline_variant_posterior_mean", "Posterior mean conversion rate.", labels=labels)
    for experiment, variant, a, b in Variant.objects.values_list("experiment__name", "name", "alpha", "beta"):
        alpha.add_metric([experiment, variant], a)
        beta.add_metric([experiment, variant], b)
        mean.add_metric([experiment, variant], a / (a + b))
    return [alpha, beta, mean]


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
