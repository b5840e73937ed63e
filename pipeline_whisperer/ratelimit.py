"""Rate limits on /api/ (per client IP and per API key) and on the public /unsubscribe/ pages
(per client IP, counters of their own), counted in the shared rate-limit cache.

The middleware runs before DRF authenticates, so a request that fails authentication still
counts against its IP and keys cannot be guessed at speed. The counters live in the
`RATELIMIT_USE_CACHE` alias (Redis in production), so limits hold across workers and hosts.
Every limited answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) for the
limit closest to running out; request limit+1 gets 429 problem+json.

Windows are fixed, as django-ratelimit's are, and each identity's starts at its own offset within
the period (so a crowd of clients does not all reset at once). All the request's counters (two
windows for its address, two for its key) move in ONE Redis round trip: a Lua script increments
them and reads the API-key generation (`pipeline_whisperer.auth`) and the cached values'
generations (`pipeline_whisperer.cache.generation_keys`) beside them. django-ratelimit's
`get_usage` took two or three round trips per counter (about ten per request, the largest part of
the API's fixed cost); its `Ratelimited` exception and system checks are still used.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.http import HttpRequest, HttpResponse
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from prometheus_client import Counter
from redis.exceptions import NoScriptError, RedisError

from pipeline_whisperer.auth import API_KEY_GENERATION_KEY
from pipeline_whisperer.cache import generation_keys, generations_known
from pipeline_whisperer.exceptions import RateLimited, ServiceUnavailable, problem_response

logger = logging.getLogger(__name__)

RATELIMITED_REQUESTS = Counter(
    "pipeline_ratelimited_requests", "Requests answered 429 by the API rate limits.", ["scope"]
)
BACKEND_ERRORS = Counter(
    "pipeline_ratelimit_backend_errors", "Requests whose rate-limit counters could not be reached."
)
# What a Redis outage looks like, through django-redis (without IGNORE_EXCEPTIONS) or its client.
BACKEND_FAILURES = (RedisError, ConnectionInterrupted)
WINDOWS = (("minute", 60), ("hour", 3600))
# KEYS: the counters, the API keys' generation, then the cached families' generations; ARGV: each
# counter's time to live in seconds. Returns each counter after its increment, the API keys'
# generation (0 before the first change), then each family's generation (nil where it has none).
_COUNT_SCRIPT = """
local result = {}
for i = 1, #ARGV do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i]) end
  result[i] = count
end
result[#ARGV + 1] = tonumber(redis.call('GET', KEYS[#ARGV + 1]) or '0')
for i = #ARGV + 2, #KEYS do
  result[i] = redis.call('GET', KEYS[i])
end
return result
"""
# Redis names scripts by their SHA-1.
_COUNT_SCRIPT_SHA = hashlib.sha1(_COUNT_SCRIPT.encode(), usedforsecurity=False).hexdigest()
API_PREFIX = "/api/"
# Limited paths and the name of their counters. The unsubscribe pages count apart from the API,
# so a busy API client cannot use up a recipient's unsubscribe (nor the reverse).
LIMITED_PREFIXES = {API_PREFIX: "api", "/unsubscribe/": "unsubscribe"}
_NOUNS = {"ip": "address", "key": "API key"}


class CounterUnavailable(Exception):
    """A counter could be neither added nor incremented."""


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


@lru_cache(maxsize=4096)  # parsing is most of the counting's own CPU, and clients come back
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


def window_end(identity: str, period: int, now: int) -> int:
    """The end (Unix seconds) of `identity`'s fixed window of `period` seconds that holds `now`.

    Windows are offset per identity by a hash of it (django-ratelimit's scheme), so not every
    client's minute ends at the same second.
    """
    end = now - now % period + zlib.crc32(identity.encode()) % period
    return end if end > now else end + period


@dataclass(frozen=True)
class Counted:
    """The request's counters after it, and the generations read in the same round trip: the API
    keys' (None where the counters' cache cannot say: then no verified key may be reused) and
    the cached families' that have one (empty where the counters' Redis is not the cache's)."""

    usages: list[Usage]
    api_key_generation: int | None
    cache_generations: dict[str, str]


def rate_limit_count(*, request: HttpRequest, area: str = "api") -> Counted:
    """Count the request against every limit of `area` (a LIMITED_PREFIXES name) that applies to
    it; raises BACKEND_FAILURES or CounterUnavailable when the counters cannot be reached."""
    identities = [("ip", ip_identity(client_ip(request)))]
    key_prefix = _api_key_identity(request) if area == "api" else None
    if key_prefix:
        identities.append(("key", key_prefix))
    limits = {"minute": settings.RATE_LIMIT_PER_MINUTE, "hour": settings.RATE_LIMIT_PER_HOUR}
    now = int(time.time())
    windows = [
        (scope, window, window_end(identity, period, now), f"ratelimit:{area}-{scope}:{window}:{identity}")
        for scope, identity in identities
        for window, period in WINDOWS
    ]
    names = [f"{name}:{end}" for _, _, end, name in windows]
    lifetimes = [end - now + 1 for _, _, end, _ in windows]
    families = _cache_generation_keys()
    counts, generations = _count(caches[settings.RATELIMIT_USE_CACHE], names, lifetimes, list(families.values()))
    api_key_generation, *family_generations = generations
    cache_generations = {
        family: found.decode() for family, found in zip(families, family_generations, strict=True) if found is not None
    }
    usages = [
        Usage(scope, window, limits[window], count, max(1, end - now))
        for (scope, window, end, _), count in zip(windows, counts, strict=True)
    ]
    return Counted(usages, api_key_generation, cache_generations)


def _cache_generation_keys() -> dict[str, str]:
    """The cached families' generation keys, when the counters share the `default` cache's Redis."""
    aliases = settings.CACHES
    if aliases[settings.RATELIMIT_USE_CACHE].get("LOCATION") != aliases["default"].get("LOCATION"):
        return {}
    return generation_keys()


def _count(
    cache: BaseCache, names: list[str], lifetimes: list[int], family_keys: list[str]
) -> tuple[list[int], list[Any]]:
    """Increment each counter (made to expire after its lifetime) and read the generations (the
    API keys', then each of `family_keys`, which are made already): one script call on Redis;
    cache calls elsewhere (the embedded shape's local memory, where no family is read)."""
    if isinstance(cache, RedisCache):
        keys = [*(cache.make_key(name) for name in [*names, API_KEY_GENERATION_KEY]), *family_keys]
        client = cache.client.get_client(write=True)
        try:
            found = list(client.evalsha(_COUNT_SCRIPT_SHA, len(keys), *keys, *lifetimes))
        except NoScriptError:  # first use on this Redis, or after a restart or SCRIPT FLUSH
            found = list(client.eval(_COUNT_SCRIPT, len(keys), *keys, *lifetimes))
        return found[: len(names)], found[len(names) :]
    counts = []
    for name, lifetime in zip(names, lifetimes, strict=True):
        cache.add(name, 0, timeout=lifetime)
        try:
            counts.append(cache.incr(name))
        except ValueError as error:  # gone between add and incr: the cache is evicting
            raise CounterUnavailable(str(error)) from error
    return counts, [int(cache.get(API_KEY_GENERATION_KEY, 0))]


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
            counted = rate_limit_count(request=request, area=area)
        except (*BACKEND_FAILURES, CounterUnavailable) as error:
            return self._without_counters(request, error)
        # Read by the API-key authentication: whether a key verified earlier is still good.
        request.api_key_generation = counted.api_key_generation  # type: ignore[attr-defined]
        usages = counted.usages
        exceeded = [usage for usage in usages if usage.exceeded]
        if not exceeded:
            with generations_known(counted.cache_generations):
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
