"""API rate limits in one process: headers, 429 problem+json, scopes, client IP, Redis outages.

The counters are in the tests' own Redis database (emptied before each test). The test with two
server processes sharing Redis is tests/test_ratelimit_servers.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import RequestFactory
from prometheus_client import REGISTRY
from rest_framework.response import Response
from rest_framework.test import APIClient

from pipeline_whisperer.exceptions import problem_exception_handler
from pipeline_whisperer.models import ApiKey
from pipeline_whisperer.ratelimit import client_ip
from tests.ratelimit_windows import wait_for_fresh_minutes
from tests.stand_ins import RedisServer

pytestmark = pytest.mark.django_db
LEADS = "/api/v1/leads"


@pytest.fixture
def limit_of_three(settings) -> None:
    """Three requests a minute, and enough of the current minute left to send them all."""
    settings.RATE_LIMIT_PER_MINUTE = 3
    wait_for_fresh_minutes("127.0.0.1", needed=10)


def _key() -> tuple[ApiKey, str]:
    """A read key whose counters have enough of their minute left for the test."""
    api_key, key = ApiKey.objects.create_key(name="limited", scope=ApiKey.Scope.READ)
    assert isinstance(api_key, ApiKey)  # the library's manager is typed for its abstract model
    wait_for_fresh_minutes(api_key.prefix, needed=10)
    return api_key, key


def _client(key: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_X_API_KEY=key)
    return client


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_api_answer_carries_the_rate_limit_headers(read_client):
    response = read_client.get(LEADS)
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "60"
    assert response["X-RateLimit-Remaining"] == "59"
    assert 1 <= int(response["X-RateLimit-Reset"]) <= 60


def test_request_over_the_minute_limit_gets_429_problem_with_retry_after(limit_of_three, read_client):
    for _ in range(3):
        assert read_client.get(LEADS).status_code == 200
    response = read_client.get(LEADS)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/rate-limited")
    assert body["status"] == 429
    assert body["instance"] == LEADS
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Reset"] == response["Retry-After"]


def test_hour_limit_applies_beside_the_minute_limit(settings, read_client):
    settings.RATE_LIMIT_PER_HOUR = 2
    read_client.get(LEADS)
    assert read_client.get(LEADS)["X-RateLimit-Limit"] == "2"
    response = read_client.get(LEADS)
    assert response.status_code == 429
    assert "per hour" in response.json()["detail"]


def test_failed_authentications_count_against_the_ip(limit_of_three):
    for _ in range(3):
        assert _client("AbCdEfGh.guessed-secret-0123456789").get(LEADS).status_code == 401
    _, key = _key()
    response = _client(key).get(LEADS)
    assert response.status_code == 429
    assert "from this address" in response.json()["detail"]


def test_api_key_is_limited_across_client_addresses(limit_of_three):
    _, key = _key()
    for last_octet in range(1, 4):
        assert _client(key, f"10.0.0.{last_octet}").get(LEADS).status_code == 200
    response = _client(key, "10.0.0.4").get(LEADS)
    assert response.status_code == 429
    assert "from this API key" in response.json()["detail"]


def test_key_is_counted_by_its_prefix_not_its_secret(limit_of_three):
    api_key, key = _key()
    for last_octet in range(1, 4):
        assert _client(key, f"10.0.0.{last_octet}").get(LEADS).status_code == 200
    # Another secret under the same prefix lands on the same counter: the secret is not in the key.
    forged = _client(f"{api_key.prefix}.another-secret", "10.0.0.9").get(LEADS)
    assert forged.status_code == 429


def test_rate_limited_answers_are_counted_by_scope(limit_of_three, anonymous_client):
    # No key, so the IP counter is the only one that can block.
    before = _sample("pipeline_ratelimited_requests_total", scope="ip")
    for _ in range(4):
        anonymous_client.get(LEADS)
    assert _sample("pipeline_ratelimited_requests_total", scope="ip") == before + 1


def test_paths_outside_the_api_are_not_limited(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


def test_disabled_rate_limits_send_no_headers(settings, read_client):
    settings.RATELIMIT_ENABLE = False
    response = read_client.get(LEADS)
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


def test_ratelimited_raised_in_a_view_is_a_429_problem():
    from django_ratelimit.exceptions import Ratelimited

    response = problem_exception_handler(Ratelimited(), {"request": None})
    assert isinstance(response, Response) and response.status_code == 429
    assert response.data["type"].endswith("/rate-limited")


# --- the client's address ------------------------------------------------------------------


def _request(forwarded_for: str | None) -> HttpRequest:
    extra: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().get("/api/v1/leads", REMOTE_ADDR="10.9.9.9", **extra)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request("203.0.113.7")) == "10.9.9.9"


def test_one_trusted_proxy_means_the_rightmost_forwarded_address(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(_request("198.51.100.1, 203.0.113.7")) == "203.0.113.7"


def test_two_trusted_proxies_mean_the_second_address_from_the_right(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request("198.51.100.1, 203.0.113.7, 10.0.0.2")) == "203.0.113.7"


def test_fewer_forwarded_addresses_than_trusted_proxies_fall_back_to_the_peer(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(_request("203.0.113.7")) == "10.9.9.9"


def test_malformed_forwarded_address_falls_back_to_the_peer(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(_request("not-an-address")) == "10.9.9.9"


def test_clients_behind_a_trusted_proxy_have_their_own_counters(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.RATE_LIMIT_PER_MINUTE = 1
    wait_for_fresh_minutes("203.0.113.7", "203.0.113.8", needed=10)
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    assert proxy.get(LEADS, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 401
    assert proxy.get(LEADS, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 401
    assert proxy.get(LEADS, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429


# --- Redis down ------------------------------------------------------------------------------


@pytest.fixture
def throwaway_redis(settings) -> Iterator[RedisServer]:
    """The rate-limit cache pointed at a redis-server of the test's own, which the test may stop."""
    server = RedisServer().start()
    settings.CACHES = {**settings.CACHES, "ratelimit": {**settings.CACHES["ratelimit"], "LOCATION": server.url}}
    yield server
    server.stop()


def test_api_answers_without_limits_when_redis_is_down(throwaway_redis, read_client, caplog):
    assert "X-RateLimit-Limit" in read_client.get(LEADS)
    throwaway_redis.stop()
    before = _sample("pipeline_ratelimit_backend_errors_total")
    with caplog.at_level(logging.WARNING, logger="pipeline_whisperer.ratelimit"):
        response = read_client.get(LEADS)
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response
    assert _sample("pipeline_ratelimit_backend_errors_total") == before + 1
    assert any("rate-limit counters unavailable" in record.getMessage() for record in caplog.records)


def test_api_answers_503_when_redis_is_down_and_failing_closed(settings, throwaway_redis, read_client):
    settings.RATE_LIMIT_FAIL_OPEN = False
    throwaway_redis.stop()
    response = read_client.get(LEADS)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"


# --- one round trip ----------------------------------------------------------------------------


def _command_calls(server: RedisServer) -> dict[str, int]:
    import redis

    stats = redis.Redis.from_url(server.url).info("commandstats")
    return {name.removeprefix("cmdstat_"): figures["calls"] for name, figures in stats.items()}


def test_all_counters_of_a_request_move_in_one_redis_round_trip(throwaway_redis, read_client):
    read_client.get(LEADS)  # loads the script into this Redis and creates the counters
    before = _command_calls(throwaway_redis)
    response = read_client.get(LEADS)
    after = _command_calls(throwaway_redis)
    calls = {name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)}
    calls.pop("info", None)  # ours, reading these figures
    calls.pop("client|setinfo", None)  # and our connection's handshake
    calls.pop("hello", None)
    # One script call, and inside it the four counters' increments and the generation's read.
    assert calls == {"evalsha": 1, "incr": 4, "get": 1}
    assert response["X-RateLimit-Remaining"] == "58"


def test_counters_survive_a_script_flush(throwaway_redis, read_client):
    import redis

    read_client.get(LEADS)
    redis.Redis.from_url(throwaway_redis.url).script_flush()
    assert read_client.get(LEADS)["X-RateLimit-Remaining"] == "58"


def test_each_identity_has_its_own_offset_within_the_period():
    from pipeline_whisperer.ratelimit import window_end

    now = 1_800_000_000
    ends = {window_end(f"10.0.0.{number}", 60, now) for number in range(20)}
    assert all(now < end <= now + 60 for end in ends)
    assert len(ends) > 5  # not all the same second
    assert window_end("10.0.0.1", 60, now) == window_end("10.0.0.1", 60, now + 1)  # fixed within the window
    assert window_end("10.0.0.1", 3600, now) - now <= 3600
