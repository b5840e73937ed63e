"""Rate limits on /api/ (per client IP and per API key) and on the public /unsubscribe/ pages
(per client IP, counters of their own), counted in the shared rate-limit cache.

The middleware runs before DRF authenticates, so a request that fails authentication still
counts against its IP and keys cannot be guessed at speed. Counting is django-ratelimit's
`get_usage` on the `RATELIMIT_USE_CACHE` alias (Redis in production), so limits hold across
workers and hosts. Every limited answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset`
(seconds) for the limit closest to running out; request limit+1 gets 429 problem+json.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage
from django_redis.exceptions import ConnectionInterrupted
from prometheus_client import Counter
from redis.exceptions import RedisError

from pipeline_whisperer.exceptions import RateLimited, ServiceUnavailable, problem_response

logger = logging.getLogger(__name__)

RATELIMITED_REQUESTS = Counter(
    "pipeline_ratelimited_requests", "Requests answered 429 by the API rate limits.", ["scope"]
)
BACKEND_ERRORS = Counter(
    "pipeline_ratelimit_backend_errors", "Requests whose rate-limit counters could not be reached."
)
# What a Redis outage looks like through django-redis (without IGNORE_EXCEPTIONS).
BACKEND_FAILURES = (RedisError, ConnectionInterrupted)
API_PREFIX = "/api/"
# Limited paths and the name of their counters. The unsubscribe pages count apart from the API,
# so a busy API client cannot use up a recipient's unsubscribe (nor the reverse).
LIMITED_PREFIXES = {API_PREFIX: "api", "/unsubscribe/": "unsubscribe"}
_NOUNS = {"ip": "address", "key": "API key"}


class CounterUnavailable(Exception):
    """django-ratelimit could neither add nor increment a counter."""


@dataclass(frozen=True)
class Usage:
    """One counter after this request: `reset` is the number of seconds until its window ends."""

    scope: str
    window: str
    limit: int
    count: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit


def client_ip(request: HttpRequest) -> str:
    """The caller's address, trusting X-Forwarded-For only behind TRUSTED_PROXY_COUNT proxies.

    With n trusted proxies each appends the address it saw, so the n-th entry from the right is
    what the outermost trusted proxy saw; entries left of it are the caller's to forge.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops == 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < hops:
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-hops]))
    except ValueError:
        return remote


def ip_identity(address: str) -> str:
    """The unit an address is counted as (by the rate limits and the login lockouts): an IPv4
    address itself, an IPv6 address's /64."""
    # One IPv6 host usually owns a whole /64; counting per address would be trivial to dodge.
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False).network_address)
    return str(parsed)


def _api_key_identity(request: HttpRequest) -> str | None:
    """The key's prefix (the part before the dot): a non-secret id; the secret never reaches the cache."""
    prefix, dot, _ = request.META.get("HTTP_X_API_KEY", "").strip().partition(".")
    return prefix if dot and prefix else None


def rate_limit_count(*, request: HttpRequest, area: str = "api") -> list[Usage]:
    """Count the request against every limit of `area` (a LIMITED_PREFIXES name) that applies to
    it; raises BACKEND_FAILURES or CounterUnavailable when the counters cannot be reached."""
    identities = [("ip", ip_identity(client_ip(request)))]
    key_prefix = _api_key_identity(request) if area == "api" else None
    if key_prefix:
        identities.append(("key", key_prefix))
    rates = (("minute", f"{settings.RATE_LIMIT_PER_MINUTE}/m"), ("hour", f"{settings.RATE_LIMIT_PER_HOUR}/h"))
    usages = []
    for scope, identity in identities:
        for window, rate in rates:
            usage = get_usage(
                request, group=f"{area}-{scope}", key=lambda _group, _request, v=identity: v, rate=rate, increment=True
            )
            # django-ratelimit reports a counter it could not read as limit 0 (fail closed).
            if usage is None or usage["limit"] == 0:
                raise CounterUnavailable(f"no counter for {scope} at {rate}")
            usages.append(Usage(scope, window, usage["limit"], usage["count"], max(1, usage["time_left"])))
    return usages


def _set_headers(response: HttpResponse, usage: Usage) -> None:
    response["X-RateLimit-Limit"] = str(usage.limit)
    response["X-RateLimit-Remaining"] = str(usage.remaining)
    response["X-RateLimit-Reset"] = str(usage.reset)


class RateLimitMiddleware:
    """Apply the rate limits (see the module docstring); other paths pass untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        area = next((name for prefix, name in LIMITED_PREFIXES.items() if request.path_info.startswith(prefix)), "")
        if not settings.RATELIMIT_ENABLE or not area:
            return self.get_response(request)
        try:
            usages = rate_limit_count(request=request, area=area)
        except (*BACKEND_FAILURES, CounterUnavailable) as error:
            return self._without_counters(request, error)
        exceeded = [usage for usage in usages if usage.exceeded]
        if not exceeded:
            response = self.get_response(request)
            _set_headers(response, min(usages, key=lambda usage: usage.remaining))
            return response
        # The caller may retry once every exceeded window has ended.
        blocking = max(exceeded, key=lambda usage: usage.reset)
        RATELIMITED_REQUESTS.labels(scope=blocking.scope).inc()
        response = problem_response(
            status=RateLimited.status,
            code=RateLimited.code,
            title=RateLimited.title,
            detail=f"More than {blocking.limit} requests per {blocking.window} from this {_NOUNS[blocking.scope]}.",
            request=request,
        )
        response["Retry-After"] = str(blocking.reset)
        _set_headers(response, blocking)
        return response

    def _without_counters(self, request: HttpRequest, error: Exception) -> HttpResponse:
        """Redis is unreachable: let the request through (RATE_LIMIT_FAIL_OPEN) or answer 503."""
        BACKEND_ERRORS.inc()
        fail_open = settings.RATE_LIMIT_FAIL_OPEN
        logger.warning(
            "rate-limit counters unavailable (%s: %s); request %s",
            type(error).__name__,
            error,
            "let through unlimited" if fail_open else "refused",
        )
        if fail_open:
            return self.get_response(request)
        return problem_response(
            status=ServiceUnavailable.status,
            code=ServiceUnavailable.code,
            title=ServiceUnavailable.title,
            detail="Rate limiting is unavailable; try again shortly.",
            request=request,
        )
