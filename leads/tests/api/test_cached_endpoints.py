"""Cached API reads: fewer queries on a hit, no Redis round trip of its own on a remembered hit,
a value per query parameter, no caller served what it may not read, fresh numbers after a write,
and HTTP 200 from the database with Redis stopped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from drf_orjson_renderer.renderers import ORJSONRenderer
from prometheus_client import REGISTRY

from leads import selectors
from leads.api import serializers as s
from leads.models import Lead, Outreach, Variant
from leads.services.feedback import engagement_apply
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory
from pipeline_whisperer.cache import MEMO_MAX_AGE, cache_guard_reset
from tests.stand_ins import RedisServer

pytestmark = pytest.mark.django_db

STATS = "/api/v1/leads/stats"
FUNNEL = "/api/v1/dashboard/funnel"
TIMELINE = "/api/v1/dashboard/timeline"
EXPERIMENTS = "/api/v1/experiments"
# What a request with a key already verified and touched this minute costs before the view:
# nothing, the worker remembers the key (pipeline_whisperer.auth).
AUTH_QUERIES = 0
CACHE_NAMES = {STATS: "lead_stats", FUNNEL + "?period=all": "dashboard_funnel", TIMELINE: "dashboard_timeline"}


@pytest.fixture(autouse=True)
def _fresh_guard() -> Iterator[None]:
    cache_guard_reset()
    yield
    cache_guard_reset()


def requests(name: str, result: str) -> float:
    return REGISTRY.get_sample_value("pipeline_cache_requests_total", {"name": name, "result": result}) or 0.0


# What each cached endpoint answered before its answer was cached: its serializer over the selector
# (the funnel over all time, whose start does not move between the two computations).
SERIALIZED = {
    STATS: lambda: s.LeadStatsSerializer(selectors.lead_stats()).data,
    FUNNEL + "?period=all": lambda: s.FunnelSerializer(selectors.dashboard_funnel(since=None)).data,
    TIMELINE: lambda: (
        s.TimelinePointSerializer(selectors.dashboard_timeline(days=30, today=timezone.now().date()), many=True).data
    ),
}


@pytest.mark.parametrize("url", SERIALIZED)
def test_a_cache_hit_answers_the_bytes_the_serializer_renders(url, api_client):
    LeadFactory.create_batch(3, status=Lead.Status.SCORED, score=0.42, scored_at=timezone.now())
    LeadFactory(status=Lead.Status.CONVERTED, score=0.9, contacted_at=timezone.now(), converted_at=timezone.now())
    hits = requests(CACHE_NAMES[url], "hit")
    api_client.get(url)
    response = api_client.get(url)
    assert requests(CACHE_NAMES[url], "hit") - hits == 1
    assert response.content == ORJSONRenderer().render(SERIALIZED[url]())


@pytest.mark.parametrize("url", [STATS, FUNNEL, TIMELINE])
def test_a_cache_hit_runs_no_query_beyond_authentication(url, api_client, django_assert_num_queries):
    LeadFactory.create_batch(3)
    api_client.get(url)
    with django_assert_num_queries(AUTH_QUERIES):
        assert api_client.get(url).status_code == 200


def test_a_second_stats_request_counts_a_hit(api_client):
    hits = requests("lead_stats", "hit")
    api_client.get(STATS)
    api_client.get(STATS)
    assert requests("lead_stats", "hit") - hits == 1


def test_funnel_periods_are_cached_apart(api_client):
    lead = LeadFactory()
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(days=10))
    assert api_client.get(FUNNEL, {"period": "30d"}).json()["counts"]["ingested"] == 1
    assert api_client.get(FUNNEL, {"period": "7d"}).json()["counts"]["ingested"] == 0


def test_timeline_lengths_are_cached_apart(api_client):
    api_client.get(TIMELINE, {"days": 7})
    assert len(api_client.get(TIMELINE, {"days": 3}).json()) == 3


def test_cached_stats_are_not_served_to_a_caller_without_a_key(api_client, anonymous_client):
    api_client.get(STATS)
    assert anonymous_client.get(STATS).status_code == 401


def test_cached_stats_are_served_to_a_read_only_key(api_client, read_client):
    LeadFactory()
    api_client.get(STATS)
    assert read_client.get(STATS).json()["total"] == 1


def test_stats_show_a_lead_created_through_the_api_at_once(api_client, django_capture_on_commit_callbacks):
    api_client.get(STATS)
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/leads", {"lightfield_id": "lf-1", "company_name": "Acme"})
    assert api_client.get(STATS).json()["total"] == 1


def test_experiment_posteriors_follow_a_reward(api_client, django_capture_on_commit_callbacks):
    experiment = ExperimentFactory()
    first, _ = VariantFactory(experiment=experiment, name="A"), VariantFactory(experiment=experiment, name="B")
    Variant.objects.filter(pk=first.pk).update(alpha=19.0, sends=20, successes=18)
    rewarded = OutreachFactory(variant=first, status=Outreach.Status.SENT, sent_at=timezone.now() - timedelta(days=1))
    api_client.get(f"{EXPERIMENTS}/{experiment.pk}")  # cached before the reward
    with django_capture_on_commit_callbacks(execute=True):
        engagement_apply(event={"event_id": "e-1", "event_type": "converted", "outreach_id": rewarded.pk})
    variants = {v["name"]: v for v in api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]}
    assert (variants["A"]["alpha"], variants["A"]["successes"]) == (20.0, 19)
    assert variants["A"]["probability_best"] > 0.9


def test_a_second_experiments_request_is_one_cache_read(api_client, django_assert_num_queries):
    VariantFactory.create_batch(2, experiment=ExperimentFactory())
    first = api_client.get(EXPERIMENTS)
    with django_assert_num_queries(AUTH_QUERIES):
        assert api_client.get(EXPERIMENTS).content == first.content


def test_an_unchanged_experiment_reads_its_posteriors_from_the_cache(api_client):
    experiment = ExperimentFactory()
    VariantFactory.create_batch(2, experiment=experiment)
    hits = requests("experiment_posteriors", "hit")
    api_client.get(f"{EXPERIMENTS}/{experiment.pk}/variants")
    api_client.get(f"{EXPERIMENTS}/{experiment.pk}/variants")
    assert requests("experiment_posteriors", "hit") - hits == 1


@pytest.mark.parametrize("url", [STATS, FUNNEL, TIMELINE, EXPERIMENTS])
def test_with_redis_stopped_cached_endpoints_answer_from_the_database(url, api_client, throwaway_redis):
    VariantFactory.create_batch(2, experiment=ExperimentFactory())
    api_client.get(url)
    throwaway_redis.stop()
    assert api_client.get(url).status_code == 200


def test_with_redis_stopped_stats_are_current_and_the_error_is_counted(api_client, throwaway_redis):
    api_client.get(STATS)
    throwaway_redis.stop()
    LeadFactory()
    errors = requests("lead_stats", "error")
    assert api_client.get(STATS).json()["total"] == 1
    assert requests("lead_stats", "error") - errors == 1


@pytest.fixture
def one_redis(settings) -> Iterator[RedisServer]:
    """The cache and the rate-limit counters on one Redis server of the test's own, as deployed."""
    server = RedisServer().start()
    aliases = settings.CACHES
    settings.CACHES = {
        **aliases,
        "default": {**aliases["default"], "LOCATION": server.url},
        "ratelimit": {**aliases["ratelimit"], "LOCATION": server.url},
    }
    cache_guard_reset()
    yield server
    server.stop()


def _command_calls(server: RedisServer) -> dict[str, int]:
    import redis

    stats = redis.Redis.from_url(server.url).info("commandstats")
    return {name.removeprefix("cmdstat_"): figures["calls"] for name, figures in stats.items()}


def test_a_remembered_hit_takes_no_redis_round_trip_beside_the_counters(api_client, one_redis):
    api_client.get(STATS)  # a miss: computed and stored
    api_client.get(STATS)  # a hit on Redis, which this process remembers
    before = _command_calls(one_redis)
    hits = requests("lead_stats", "hit")
    assert api_client.get(STATS).status_code == 200
    after = _command_calls(one_redis)
    moved = {name: total - before.get(name, 0) for name, total in after.items() if total != before.get(name, 0)}
    for ours in ("info", "client|setinfo", "hello"):  # reading these figures
        moved.pop(ours, None)
    # The rate-limit script alone: four counters, the API keys' generation and the lead metrics'.
    assert moved == {"evalsha": 1, "incr": 4, "get": 2}
    assert requests("lead_stats", "hit") - hits == 1


def test_a_remembered_hit_gives_way_to_a_write_at_once(api_client, one_redis, django_capture_on_commit_callbacks):
    api_client.get(STATS)
    assert api_client.get(STATS).json()["total"] == 0  # remembered from here on
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/leads", {"lightfield_id": "lf-1", "company_name": "Acme"})
    assert api_client.get(STATS).json()["total"] == 1


def test_a_remembered_hit_is_read_from_redis_again_after_its_max_age(api_client, one_redis, monkeypatch):
    import time

    api_client.get(STATS)
    api_client.get(STATS)
    started = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: started + MEMO_MAX_AGE)
    before = _command_calls(one_redis)
    api_client.get(STATS)
    assert _command_calls(one_redis)["evalsha"] - before["evalsha"] == 2  # the counters, then the value
