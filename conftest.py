"""Test-wide set-up: fail at once, with how to fix it, when PostgreSQL or Redis is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from health.views import _recent_answers as recent_probe_answers
from pipeline_whisperer.cache import cache_guard_reset
from pipeline_whisperer.models import ApiKey
from tests.llm_server import FakeLlmServer
from tests.stand_ins import RedisServer

_HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
}


def _require(service: str, detail: str) -> None:
    pytest.exit(
        f"{service} is needed by the tests but {detail}. Start it with: {_HOW_TO_START[service]} "
        "(or run `make test`, which points the tests at 127.0.0.1).",
        returncode=3,
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        _require("PostgreSQL", "DATABASE_URL does not name a PostgreSQL database")
    import psycopg
    import redis

    try:
        psycopg.connect(
            host=database["HOST"],
            port=database["PORT"] or 5432,
            user=database["USER"],
            dbname="postgres",
            password=database["PASSWORD"],
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as error:
        _require("PostgreSQL", f"{database['HOST']}:{database['PORT']} did not answer ({error})")
    if not settings.REDIS_URL:
        _require("Redis", "REDIS_URL is not set")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        _require("Redis", f"{settings.REDIS_URL} did not answer ({error})")


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with an empty cache (the tests' own Redis database) and no remembered
    probe answers."""
    cache.clear()
    recent_probe_answers.clear()


@pytest.fixture(autouse=True)
def _send_window_open(settings: object) -> None:
    """Scheduled mail is due at once, whatever day and hour the tests run (production's business
    hours would hold it); tests of the send window set their own, as stage processes do
    (`tests.stand_ins.loopback_env`)."""
    settings.OUTREACH_SEND_WINDOW = "mon-sun 00:00-24:00"  # type: ignore[attr-defined]


@pytest.fixture
def throwaway_redis(settings: object) -> Iterator[RedisServer]:
    """The default cache on a Redis server of this test's own, which the test may stop."""
    server = RedisServer().start()
    caches = settings.CACHES  # type: ignore[attr-defined]
    settings.CACHES = {**caches, "default": {**caches["default"], "LOCATION": server.url}}  # type: ignore[attr-defined]
    cache_guard_reset()
    yield server
    server.stop()
    cache_guard_reset()


def _client_with_key(scope: str) -> APIClient:
    _, key = ApiKey.objects.create_key(name=f"test {scope}", scope=scope)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


@pytest.fixture
def read_client(db: None) -> APIClient:
    """An API client holding a read-only key."""
    return _client_with_key(ApiKey.Scope.READ)


@pytest.fixture
def api_client(db: None) -> APIClient:
    """An API client holding a read-write key."""
    return _client_with_key(ApiKey.Scope.WRITE)


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client(admin_user: object) -> APIClient:
    client = APIClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def user_client(django_user_model: type) -> APIClient:
    user = django_user_model.objects.create_user(username="plain", password="not-staff-0")  # noqa: S106
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def llm_server() -> Iterator[FakeLlmServer]:
    """A real OpenAI-compatible server on 127.0.0.1 (a free port), scripted per request."""
    with FakeLlmServer() as server:
        yield server
