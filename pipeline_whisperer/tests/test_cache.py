"""pipeline_whisperer.cache: cached reads, generation invalidation, and life without Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import count

import pytest
from prometheus_client import REGISTRY

from pipeline_whisperer.cache import cache_guard_reset, cache_invalidate, cache_read
from tests.stand_ins import free_port

FAMILY = "test_family"


@pytest.fixture(autouse=True)
def _fresh_guard() -> Iterator[None]:
    cache_guard_reset()
    yield
    cache_guard_reset()


class Source:
    """Stands for the database: each compute returns the current version and is counted."""

    def __init__(self) -> None:
        self.version = 1
        self.computed = 0

    def compute(self) -> dict[str, int]:
        self.computed += 1
        return {"version": self.version}


_names = count()


@pytest.fixture
def name() -> str:
    """A fresh cache name per test, so counters and keys start from nothing."""
    return f"test_read_{next(_names)}"


def requests(name: str, result: str) -> float:
    return REGISTRY.get_sample_value("pipeline_cache_requests_total", {"name": name, "result": result}) or 0.0


def backend_errors(operation: str) -> float:
    return REGISTRY.get_sample_value("pipeline_cache_backend_errors_total", {"operation": operation}) or 0.0


def read(name: str, source: Source, *parts: object) -> dict[str, int]:
    return cache_read(name=name, family=FAMILY, parts=parts, compute=source.compute)


def test_second_read_is_served_from_the_cache(name):
    source = Source()
    read(name, source)
    source.version = 2  # changed without an invalidation: the cache does not know
    assert (read(name, source), source.computed) == ({"version": 1}, 1)


def test_a_miss_then_a_hit_are_counted(name):
    read(name, Source())
    read(name, Source())
    assert (requests(name, "miss"), requests(name, "hit")) == (1, 1)


def test_values_are_cached_apart_for_different_parts(name):
    source = Source()
    read(name, source, "7d")
    source.version = 2
    assert read(name, source, "30d") == {"version": 2}


def test_invalidation_outside_a_transaction_makes_the_next_read_compute_again(name, transactional_db):
    source = Source()
    read(name, source)
    source.version = 2
    cache_invalidate(family=FAMILY)
    assert read(name, source) == {"version": 2}


def test_invalidation_takes_effect_when_the_transaction_commits(name, db, django_capture_on_commit_callbacks):
    source = Source()
    read(name, source)
    with django_capture_on_commit_callbacks(execute=True):
        source.version = 2
        cache_invalidate(family=FAMILY)
        assert read(name, source) == {"version": 1}  # not committed yet: other readers see the old rows
    assert read(name, source) == {"version": 2}


def test_a_transaction_schedules_one_invalidation_per_family(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(3):
            cache_invalidate(family=FAMILY)
        cache_invalidate(family="other_family")
    assert len(callbacks) == 2


def test_a_reader_that_computed_before_a_commit_does_not_cache_over_the_new_generation(
    name, db, django_capture_on_commit_callbacks
):
    source = Source()

    def compute_then_a_writer_commits() -> dict[str, int]:
        stale = source.compute()  # read the rows before the writer's commit
        with django_capture_on_commit_callbacks(execute=True):
            source.version = 2
            cache_invalidate(family=FAMILY)
        return stale

    assert cache_read(name=name, family=FAMILY, compute=compute_then_a_writer_commits) == {"version": 1}
    assert read(name, source) == {"version": 2}


def test_zero_ttl_computes_every_read(name, settings):
    settings.CACHE_TTL_SECONDS = 0
    source = Source()
    read(name, source)
    read(name, source)
    assert (source.computed, requests(name, "bypass")) == (2, 2)


def test_with_redis_stopped_the_value_is_computed_and_the_error_counted(name, throwaway_redis):
    source = Source()
    read(name, source)
    throwaway_redis.stop()
    errors_before = backend_errors("read")
    source.version = 2
    assert read(name, source) == {"version": 2}
    assert (requests(name, "error"), backend_errors("read") - errors_before) == (1, 1)


def test_a_failure_burst_logs_one_warning(name, throwaway_redis, caplog):
    throwaway_redis.stop()
    with caplog.at_level(logging.WARNING, logger="pipeline_whisperer.cache"):
        read(name, Source())
        read(name, Source())
    assert [record.levelname for record in caplog.records] == ["WARNING"]


def test_after_enough_failures_the_breaker_leaves_redis_alone(name, throwaway_redis, settings):
    settings.CACHE_BREAKER_FAILURES = 2
    cache_guard_reset()
    throwaway_redis.stop()
    for _ in range(4):
        read(name, Source())
    assert (requests(name, "error"), requests(name, "bypass")) == (2, 2)


def test_an_invalidation_that_failed_is_published_before_the_next_read(
    name, throwaway_redis, settings, db, django_capture_on_commit_callbacks
):
    source = Source()
    read(name, source)
    working = settings.CACHES
    settings.CACHES = {"default": {**working["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    source.version = 2
    with django_capture_on_commit_callbacks(execute=True):
        cache_invalidate(family=FAMILY)  # Redis unreachable: the new generation cannot be stored
    settings.CACHES = working  # reachable again, still holding version 1 under the old generation
    assert read(name, source) == {"version": 2}


def test_a_hit_on_redis_is_one_round_trip(name, throwaway_redis):
    import redis

    def calls() -> dict[str, int]:
        stats = redis.Redis.from_url(throwaway_redis.url).info("commandstats")
        return {key.removeprefix("cmdstat_"): figures["calls"] for key, figures in stats.items()}

    source = Source()
    read(name, source)  # a miss: the generation made, the value stored
    before = calls()
    assert read(name, source) == {"version": 1}
    after = calls()
    moved = {key: total - before.get(key, 0) for key, total in after.items() if total != before.get(key, 0)}
    for ours in ("info", "client|setinfo", "hello"):  # reading these figures
        moved.pop(ours, None)
    # One script call, and inside it the generation's read and the value's.
    assert moved == {"evalsha": 1, "get": 2}
    assert (source.computed, requests(name, "hit")) == (1, 1)


def test_an_invalidation_on_redis_is_seen_by_the_next_read(name, throwaway_redis, transactional_db):
    source = Source()
    read(name, source)
    source.version = 2
    cache_invalidate(family=FAMILY)  # outside a transaction: at once
    assert read(name, source) == {"version": 2}
