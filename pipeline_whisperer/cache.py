"""Cached reads that never fail because the cache did, and invalidation that is safe to race.

`cache_read` serves a value from the `default` cache or computes it (from the database) and
stores it for CACHE_TTL_SECONDS. Any error from the cache backend is caught here, counted and
logged once per burst, and the value is computed instead: a dead Redis costs one short socket
timeout per request until the circuit breaker opens, then nothing until it lets a trial through.
The `default` alias itself keeps raising, so readiness checks still see a dead Redis.

Invalidation is by generation: each family of cached values (say, everything computed from the
leads table) has a generation token in the cache, and every value key contains the token read
before the value was computed. `cache_invalidate` gives the family a new token after the
writer's transaction commits, so a reader that computed from the old rows stores them under the
old token, where no later reader looks. Values under old tokens simply expire.

A request under the rate limits learns the current generations without a round trip of its own:
the rate-limit script reads them beside its counters (`generation_keys`, `generations_known`).
A value found on Redis under a generation read so is remembered by the process for
MEMO_MAX_AGE, and served from that memory while the request's generation is the same: an
invalidation is still seen by every worker's next request, and a value lives at most
MEMO_MAX_AGE past its TTL.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django_redis.cache import RedisCache
from prometheus_client import Counter
from redis.exceptions import NoScriptError

from pipeline_whisperer.resilience import CircuitBreaker

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Part of every key: bump it when the shape of cached values changes, so a deploy never reads
# values pickled by the previous release. 2: generations stored as plain strings (not pickled),
# so the lookup script can build the value's key from one.
KEY_FORMAT = 2
# On Redis, the family's generation (made if missing, from ARGV[1]) and the value stored under it,
# in one round trip instead of two. KEYS[1]: the generation; the value's key is ARGV[2] ..
# generation .. ARGV[3] (built inside, so not declared: fine on one Redis, not on a cluster).
_LOOKUP_SCRIPT = """
local generation = redis.call('GET', KEYS[1])
if not generation then
  generation = ARGV[1]
  redis.call('SET', KEYS[1], generation)
end
return {generation, redis.call('GET', ARGV[2] .. generation .. ARGV[3])}
"""
# Redis names scripts by their SHA-1.
_LOOKUP_SCRIPT_SHA = hashlib.sha1(_LOOKUP_SCRIPT.encode(), usedforsecurity=False).hexdigest()

CACHE_REQUESTS = Counter(
    "pipeline_cache_requests_total",
    "Cached reads by outcome: hit, miss, error (cache failed, served from the database) or "
    "bypass (cache not asked: circuit open or caching disabled).",
    ["name", "result"],
)
CACHE_BACKEND_ERRORS = Counter(
    "pipeline_cache_backend_errors_total",
    "Calls to the cache backend that failed, by operation (read, write, invalidate).",
    ["operation"],
)
CACHE_INVALIDATIONS = Counter(
    "pipeline_cache_invalidations_total",
    "New generations given to a family of cached values after a committed write.",
    ["family"],
)

MEMO_MAX_AGE = 1.0  # seconds a value read from Redis is served from this process's memory
_MEMO_MAX_ENTRIES = 256  # past that the memory starts afresh

# The families this process has looked up on Redis: the generations worth reading beside the
# rate-limit counters.
_families_looked_up: set[str] = set()
# The generations read for the request in hand (family to token), when the counters' round trip read them.
_generations_known: ContextVar[Mapping[str, str] | None] = ContextVar("cache_generations_known", default=None)
# A value's key to its raw bytes as Redis held them and when they were read (time.monotonic());
# raw, so every hit unpickles its own copy as a read from Redis does.
_memo: dict[str, tuple[bytes, float]] = {}

_MISSING = object()  # not in the cache
_BYPASSED = object()  # the breaker is open: the cache was not asked
_FAILED = object()  # the cache was asked and failed


class _CacheGuard:
    """Per-process state between cache calls, hence a class: the circuit breaker, whether we
    are inside a failure burst (to log once), and the families whose invalidation failed and
    must be published as soon as the cache answers again. Safe to share between threads."""

    def __init__(self) -> None:
        self.breaker = CircuitBreaker(
            failure_threshold=settings.CACHE_BREAKER_FAILURES, reset_timeout=settings.CACHE_BREAKER_RESET_SECONDS
        )
        self._lock = threading.Lock()
        self._failing = False
        self._unpublished: set[str] = set()

    def call(self, operation: str, fn: Callable[[], T]) -> T | object:
        """`fn()`'s result, `_BYPASSED` while the breaker is open, or `_FAILED`."""
        if not self.breaker.allow():
            return _BYPASSED
        try:
            self._publish_deferred()  # before `fn`, so a read after an outage never sees a stale generation
            result = fn()
        except Exception as error:  # any backend failure (connection, timeout, unpickling): fail soft
            self._failed(operation, error)
            return _FAILED
        self.breaker.record_success()
        self._recovered()
        return result

    def defer_invalidation(self, *families: str) -> None:
        with self._lock:
            self._unpublished.update(families)

    def _publish_deferred(self) -> None:
        with self._lock:
            families, self._unpublished = self._unpublished, set()
        try:
            for family in families:
                _set_generation(family)
        except Exception:
            self.defer_invalidation(*families)  # publishing one twice costs only a miss
            raise

    def _failed(self, operation: str, error: Exception) -> None:
        self.breaker.record_failure()
        CACHE_BACKEND_ERRORS.labels(operation=operation).inc()
        with self._lock:
            first, self._failing = not self._failing, True
        if first:
            logger.warning("cache unavailable, serving from the database: %s: %s", type(error).__name__, error)

    def _recovered(self) -> None:
        with self._lock:
            was_failing, self._failing = self._failing, False
        if was_failing:
            logger.info("cache available again")


@cache
def _guard() -> _CacheGuard:
    return _CacheGuard()


def cache_read(*, name: str, compute: Callable[[], T], parts: Sequence[Hashable] = (), family: str | None = None) -> T:
    """The value `compute()` returns, served from the cache when it holds it.

    `name` says what is cached (and labels the metrics); `parts` are everything the value
    depends on besides the family's data (query parameters, the day); `family` names the data
    whose writers call `cache_invalidate`, or is None when `parts` identify the inputs exactly.
    Never raises because of the cache; exceptions from `compute` propagate.
    """
    if settings.CACHE_TTL_SECONDS == 0:
        return _count(name, "bypass", compute())
    guard = _guard()
    found = guard.call("read", lambda: _lookup(name, parts, family))
    if found is _BYPASSED or found is _FAILED:
        return _count(name, "bypass" if found is _BYPASSED else "error", compute())
    key, cached = cast(tuple[str, Any], found)
    if cached is not _MISSING:
        return _count(name, "hit", cast(T, cached))
    value = _count(name, "miss", compute())
    guard.call("write", lambda: caches["default"].set(key, value, settings.CACHE_TTL_SECONDS))
    return value


def _count(name: str, result: str, value: T) -> T:
    CACHE_REQUESTS.labels(name=name, result=result).inc()
    return value


def _lookup(name: str, parts: Sequence[Hashable], family: str | None) -> tuple[str, Any]:
    """The value's key (under the family's current generation) and what the cache holds there."""
    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=16).hexdigest()
    cache = caches["default"]
    if family and isinstance(cache, RedisCache):
        return _lookup_on_redis(cache, name, digest, family)
    generation = _generation(family) if family else "-"
    key = f"cached:{KEY_FORMAT}:{name}:{generation}:{digest}"
    return key, cache.get(key, _MISSING)


def _lookup_on_redis(cache: RedisCache, name: str, digest: str, family: str) -> tuple[str, Any]:
    _families_looked_up.add(family)
    generation = (_generations_known.get() or {}).get(family)
    if generation is not None:
        key = f"cached:{KEY_FORMAT}:{name}:{generation}:{digest}"
        remembered = _memo.get(key)
        if remembered is not None and time.monotonic() - remembered[1] < MEMO_MAX_AGE:
            return key, cache.client.decode(remembered[0])
    client = cache.client.get_client(write=True)
    keys_and_args = [
        cache.make_key(_generation_key(family)),
        uuid.uuid4().hex,
        cache.make_key(f"cached:{KEY_FORMAT}:{name}:"),
        f":{digest}",
    ]
    try:
        generation, raw = client.evalsha(_LOOKUP_SCRIPT_SHA, 1, *keys_and_args)
    except NoScriptError:  # first use on this Redis, or after a restart or SCRIPT FLUSH
        generation, raw = client.eval(_LOOKUP_SCRIPT, 1, *keys_and_args)
    key = f"cached:{KEY_FORMAT}:{name}:{generation.decode()}:{digest}"
    if raw is None:
        return key, _MISSING
    if len(_memo) >= _MEMO_MAX_ENTRIES:
        _memo.clear()
    _memo[key] = (raw, time.monotonic())
    return key, cache.client.decode(raw)


def generation_keys() -> dict[str, str]:
    """The Redis keys (family to key) of the generations a request's other round trip may read
    for `generations_known`: those of the families this process has looked up. Empty unless the
    `default` cache is Redis."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return {}
    families = tuple(_families_looked_up)  # copied at once: another thread may add to it
    return {family: cache.make_key(_generation_key(family)) for family in families}


@contextmanager
def generations_known(generations: Mapping[str, str]) -> Iterator[None]:
    """Cached reads inside the block take `generations` (family to token, just read from the
    `default` Redis) as current, so a value this process remembers needs no round trip."""
    token = _generations_known.set(generations)
    try:
        yield
    finally:
        _generations_known.reset(token)


def _generation(family: str) -> str:
    # A random token, not a counter: a generation key that was evicted or lost with a Redis
    # restart starts again at a value no old entry was stored under.
    return str(caches["default"].get_or_set(_generation_key(family), lambda: uuid.uuid4().hex, timeout=None))


def _generation_key(family: str) -> str:
    return f"cached:{KEY_FORMAT}:generation:{family}"


@dataclass(frozen=True)
class _NewGeneration:
    """The after-commit callback; equal for one family, so a transaction schedules it once."""

    family: str

    def __call__(self) -> None:
        _publish_generation(self.family)


def cache_invalidate(*, family: str) -> None:
    """Make every cached value of `family` stale once the current transaction commits (at once
    outside a transaction); call it after the write. Scheduled once per family per transaction;
    never raises because of the cache."""
    callback = _NewGeneration(family)
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(func == callback for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(callback, robust=True)


def _publish_generation(family: str) -> None:
    guard = _guard()
    published = guard.call("invalidate", lambda: _set_generation(family))
    if published is _BYPASSED or published is _FAILED:
        # Published before this process's next successful cache call.
        guard.defer_invalidation(family)


def _set_generation(family: str) -> None:
    cache = caches["default"]
    if isinstance(cache, RedisCache):  # a plain string, as the lookup script reads it
        cache.client.get_client(write=True).set(cache.make_key(_generation_key(family)), uuid.uuid4().hex)
    else:
        cache.set(_generation_key(family), uuid.uuid4().hex, timeout=None)
    CACHE_INVALIDATIONS.labels(family=family).inc()


def cache_guard_reset() -> None:
    """Forget the breaker and burst state and the values remembered (tests, and settings changes
    in a running process)."""
    _guard.cache_clear()
    _memo.clear()
    _families_looked_up.clear()
