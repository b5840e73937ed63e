"""Across server processes: two real servers share their rate-limit counters in Redis, and a
revoked API key that both remember is refused by both within a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPResponse
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from pipeline_whisperer.models import ApiKey
from tests.ratelimit_windows import wait_for_fresh_minutes
from tests.stand_ins import ROOT, free_port, wait_for_port

# The servers read the key from the database, so it must be committed, not inside a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def _server_env() -> dict[str, str]:
    database = settings.DATABASES["default"]
    host = f"{database['HOST']}:{database['PORT'] or 5432}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        {
            "DATABASE_URL": f"postgres://{database['USER']}@{host}/{database['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "RATELIMIT_ENABLE": "1",
            "RATE_LIMIT_PER_MINUTE": "60",
            "RATE_LIMIT_PER_HOUR": "1000",
        }
    )
    return env


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[int]]:
    """Two `manage.py runserver` processes on free ports with the test database and Redis."""
    ports = [free_port(), free_port()]
    processes = []
    try:
        for port in ports:
            log = (tmp_path / f"server-{port}.log").open("wb")
            processes.append(
                subprocess.Popen(  # noqa: S603 - our own manage.py with fixed arguments
                    [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                    cwd=ROOT,
                    env=_server_env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port in ports:
            wait_for_port(port, timeout=60)
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)


def _get(port: int, key: str) -> tuple[HTTPResponse, bytes]:
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/api/v1/leads", headers={"X-API-Key": key})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_request_61_within_a_minute_gets_429_across_two_server_processes(two_servers):
    api_key, key = ApiKey.objects.create_key(name="two servers", scope=ApiKey.Scope.READ)
    wait_for_fresh_minutes("127.0.0.1", api_key.prefix, needed=30)
    remaining = []
    for number in range(60):  # 30 to each server, alternately
        response, _ = _get(two_servers[number % 2], key)
        assert response.status == 200, number
        remaining.append(int(response.getheader("X-RateLimit-Remaining")))
    # One count across both processes: each answer sees the other server's requests.
    assert remaining == list(range(59, -1, -1))

    response, body = _get(two_servers[0], key)
    assert response.status == 429
    assert response.getheader("Content-Type") == "application/problem+json"
    assert b'"status":429' in body.replace(b" ", b"")
    retry_after = int(response.getheader("Retry-After"))
    assert 1 <= retry_after <= 60
    assert response.getheader("X-RateLimit-Limit") == "60"
    assert response.getheader("X-RateLimit-Remaining") == "0"
    assert response.getheader("X-RateLimit-Reset") == str(retry_after)


def test_a_revoked_key_is_refused_by_every_server_within_a_second(two_servers):
    api_key, key = ApiKey.objects.create_key(name="revoked while remembered", scope=ApiKey.Scope.READ)
    for port in two_servers:  # each server verifies and remembers the key
        for _ in range(2):
            assert _get(port, key)[0].status == 200
    revoked_at = time.monotonic()
    call_command("apikey", "revoke", api_key.prefix, verbosity=0)
    statuses = [_get(port, key)[0].status for port in two_servers]
    assert statuses == [401, 401]
    assert time.monotonic() - revoked_at < 1.0
