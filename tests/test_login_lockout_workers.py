"""The admin login lockout holds across gunicorn workers: a real gunicorn with two worker
processes, the test database and a Redis server of this test's own, spoken to over HTTP with a
new connection per request (so both workers answer), CSRF and all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from tests.stand_ins import ROOT, RedisServer
from tests.test_gunicorn_config import Gunicorn, wait_until

# The workers read the user from the database, so it must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "the-right-password-0"


@pytest.fixture
def server_env() -> Iterator[dict[str, str]]:
    """The production shape on loopback: the test database and a fresh Redis (no shared counters)."""
    redis = RedisServer().start()
    database = connection.settings_dict
    address = f"{database['HOST']}:{database['PORT'] or 5432}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=f"postgres://{database['USER']}@{address}/{database['NAME']}",
        REDIS_URL=redis.url,
        DJANGO_SECURE_SSL_REDIRECT="0",
        LOGIN_FAILURE_LIMIT="5",
        LOGIN_LOCKOUT_MINUTES="15",
    )
    yield env
    redis.stop()


@pytest.fixture
def two_workers(server_env: dict[str, str], tmp_path: Path) -> Iterator[Gunicorn]:
    server = Gunicorn({**server_env, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "1"}, tmp_path / "gunicorn.log")
    yield server.start()
    server.stop()


class LoginForm:
    """The admin's login form as a browser uses it: the CSRF cookie and token from a GET, then POSTs."""

    def __init__(self, port: int) -> None:
        self.port = port
        status, headers, body = self._request("GET", "/admin/login/", {})
        assert status == 200, body[:300]
        self.cookie = re.search(r"csrftoken=([^;]+)", headers["Set-Cookie"]).group(1)  # type: ignore[union-attr]
        self.token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]

    def _request(self, method: str, path: str, headers: dict[str, str], body: str = "") -> tuple[int, Any, bytes]:
        client = HTTPConnection("127.0.0.1", self.port, timeout=60)  # a new connection each time
        try:
            client.request(method, path, body=body or None, headers=headers)
            response = client.getresponse()
            return response.status, response.headers, response.read()
        finally:
            client.close()

    def post(self, password: str, username: str = "alice") -> tuple[int, Any, bytes]:
        form = {"csrfmiddlewaretoken": self.token, "username": username, "password": password, "next": "/admin/"}
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={self.cookie}"}
        return self._request("POST", "/admin/login/", headers, urlencode(form))


def _worker_pids(server: Gunicorn, request_ids: list[str]) -> set[int]:
    """Which worker answered each request, from gunicorn's access lines."""

    def answered() -> dict[str, int]:
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith('{"time"')]
        return {line["request_id"]: line["pid"] for line in lines if line.get("logger") == "gunicorn.access"}

    wait_until(lambda: set(request_ids) <= answered().keys(), what="an access line for every request")
    return {answered()[request_id] for request_id in request_ids}


def _unlock_login(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", "unlock_login", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_twenty_wrong_passwords_lock_the_user_out_across_two_workers_until_lifted(
    two_workers, server_env, django_user_model
):
    django_user_model.objects.create_superuser(username="alice", password=PASSWORD, email="alice@example.com")
    form = LoginForm(two_workers.port)

    wrong = [form.post(f"wrong-{number}") for number in range(20)]
    assert [status for status, _, _ in wrong] == [200] * 4 + [429] * 16
    assert len(_worker_pids(two_workers, [headers["X-Request-ID"] for _, headers, _ in wrong])) == 2

    # The right password, until each worker has refused it at least once.
    refused: list[tuple[int, Any, bytes]] = []
    while len(refused) < 30 and len(_worker_pids(two_workers, [h["X-Request-ID"] for _, h, _ in refused])) < 2:
        refused.append(form.post(PASSWORD))
    assert len(_worker_pids(two_workers, [headers["X-Request-ID"] for _, headers, _ in refused])) == 2
    for status, headers, body in refused:
        assert status == 429
        assert b"Account locked: too many failed logins." in body
        assert 1 <= int(headers["Retry-After"]) <= 900
        assert not [cookie for cookie in headers.get_all("Set-Cookie") or [] if cookie.startswith("sessionid=")]

    lifted = _unlock_login(server_env, "--username", "alice", "--ip", "127.0.0.1")
    assert lifted.returncode == 0, lifted.stderr
    assert lifted.stdout == "Lifted the lockout of 'alice' from 127.0.0.1.\n"

    status, headers, _ = form.post(PASSWORD)
    assert status == 302
    assert headers["Location"] == "/admin/"
    assert [cookie for cookie in headers.get_all("Set-Cookie") if cookie.startswith("sessionid=")]


def test_unlock_login_says_so_in_one_line_when_nothing_is_locked(server_env):
    result = _unlock_login(server_env, "--username", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "CommandError: no current login lockout for 'nobody'"
