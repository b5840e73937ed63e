"""Health probes (JSON, 200 or 503) and the Prometheus /metrics endpoint.

Liveness is a plain view that touches nothing, so a database or cache outage never restarts
pods; under gunicorn or runserver, pipeline_whisperer.middleware.LivenessFirst answers it before
Django. Readiness, startup and detailed run django-health-check checks; the library answers 500
on failure and renders several formats, so `ProbeView` always answers our JSON with 503.
Readiness and startup reuse a recent answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from health_check.base import HealthCheck, HealthCheckResult
from health_check.exceptions import ServiceWarning
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

from health.checks import KafkaBroker
from health.metrics import metrics_access_problem, metrics_registry
from health.probes import stage_lag, versions
from health.registry import Probe, registered_checks
from pipeline_whisperer.auth import API_KEY_HEADER, ApiKeyAuthentication, HasApiAccess
from pipeline_whisperer.exceptions import problem_response
from pipeline_whisperer.middleware import LIVE_BODY

# Per process: path -> (monotonic time, status, body) of the latest readiness/startup answer.
_recent_answers: dict[str, tuple[float, int, bytes]] = {}


def liveness(request: HttpRequest) -> HttpResponse:
    """The process answers requests; nothing else is consulted."""
    return HttpResponse(LIVE_BODY, content_type="application/json")


def reusing_recent_answer(view: Callable[..., Any]) -> Callable[..., HttpResponse]:
    """Wrap a probe view so each process reuses its answer for HEALTH_PROBE_CACHE_SECONDS.

    Kubelets and load balancers ask often; a one-second-old answer is as good to them, and a
    fresh one opens database and broker connections. Sync, so a reused answer skips the event
    loop the async probe view needs.
    """

    def probe(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        at, status, content = _recent_answers.get(request.path, (0.0, 0, b""))
        if time.monotonic() - at >= settings.HEALTH_PROBE_CACHE_SECONDS:
            answer = async_to_sync(view)(request, *args, **kwargs)
            at, status, content = time.monotonic(), answer.status_code, answer.content
            _recent_answers[request.path] = (at, status, content)
        response = HttpResponse(content, status=status, content_type="application/json")
        add_never_cache_headers(response)
        return response

    return probe


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format for the whole server; only with the token or from allowed networks."""
    problem = metrics_access_problem(request)
    if problem is not None:
        return problem
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def _name(check: HealthCheck) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(check).__name__).lower()
    alias = getattr(check, "alias", "default")
    return name if alias == "default" else f"{name}:{alias}"


def _outcome(result: HealthCheckResult) -> dict[str, Any]:
    error = result.error
    status = "ok" if error is None else "warning" if isinstance(error, ServiceWarning) else "unavailable"
    outcome: dict[str, Any] = {"status": status, "latency_ms": round(result.time_taken * 1000, 1)}
    if error is not None:
        outcome["error"] = error.message
    outcome.update(getattr(result.check, "details", {}))
    return outcome


class ProbeView(HealthCheckView):
    """Runs `checks` (health's own), then those apps registered for `probe` (health.registry,
    read per request), and KafkaBroker when `include_kafka` and Kafka is configured, all
    concurrently; 200 when none is unavailable (warnings pass), 503 otherwise."""

    probe: Probe | None = None
    include_kafka = False

    def get_checks(self) -> Iterator[HealthCheck]:
        yield from super().get_checks()
        if self.probe is not None:
            yield from (check() for check in registered_checks(self.probe))
        if self.include_kafka and settings.KAFKA_BOOTSTRAP_SERVERS:
            yield KafkaBroker()

    @contextmanager
    def get_executor(self) -> Iterator[Executor]:
        # Our own threads, not waited for: a check past its timeout (a pool wait, a frozen
        # broker) must not hold the answer back; it finishes and closes its connection later.
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health-check")
        try:
            yield executor
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        body = await self.run_checks()
        response = JsonResponse(body, status=200 if body["status"] == "ok" else 503)
        add_never_cache_headers(response)
        return response

    async def run_checks(self) -> dict[str, Any]:
        with self.get_executor() as executor:
            results, facts = await asyncio.gather(
                asyncio.gather(*(check.get_result(executor) for check in self.get_checks())),
                self.more_facts(executor),
            )
        checks = {_name(result.check): _outcome(result) for result in results}
        healthy = all(check["status"] != "unavailable" for check in checks.values())
        return {"status": "ok" if healthy else "unavailable", "checks": checks, **facts}

    async def more_facts(self, executor: Executor) -> dict[str, Any]:
        """More facts for the body, gathered alongside the checks."""
        return {}


class DetailedHealthView(ProbeView):
    """Every component with latency, versions, pool, outbox and consumer lag: staff or API key."""

    include_kafka = True

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = await sync_to_async(_staff_or_api_key_problem)(request)
        if problem is not None:
            return problem
        return await super().dispatch(request, *args, **kwargs)

    async def more_facts(self, executor: Executor) -> dict[str, Any]:
        lag = await asyncio.get_running_loop().run_in_executor(executor, stage_lag)
        return {"versions": versions(), "consumer_lag": lag}


def _staff_or_api_key_problem(request: HttpRequest) -> HttpResponse | None:
    """The API's rules (pipeline_whisperer.auth): 401 without credentials, 403 for non-staff."""
    api_request = Request(request, authenticators=[ApiKeyAuthentication(), SessionAuthentication()])
    try:
        if HasApiAccess().has_permission(api_request, view=None):
            return None
    except exceptions.APIException as error:
        response = problem_response(status=401, detail=str(error.detail), request=request)
        response["WWW-Authenticate"] = API_KEY_HEADER
        return response
    return problem_response(status=403, detail="Only staff or an API key may see detailed health.", request=request)
