"""With PostgreSQL unreachable the service answers 503 problem+json with Retry-After, not 500.

A real server process (gunicorn) whose DATABASE_URL names a loopback port where nothing listens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.stand_ins import ROOT, free_port, wait_for_port

UNKNOWN_KEY = "AbCdEfGh.0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(scope="module")
def server_without_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, nowhere = free_port(), free_port()
    empty_config = tmp_path_factory.mktemp("gunicorn") / "gunicorn.conf.py"
    empty_config.write_text("")  # this test's own settings only, whatever config the repo ships
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:{nowhere}/pipeline", DB_POOL_TIMEOUT_SECONDS="2")
    command = [sys.executable, "-m", "gunicorn", "-c", str(empty_config), "-b", f"127.0.0.1:{port}", "-w", "1"]
    with (empty_config.parent / "server.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own app under gunicorn
            [*command, "pipeline_whisperer.wsgi:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(30)


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], dict]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback http only
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_an_api_request_gets_503_problem_with_retry_after(server_without_database):
    status, headers, body = _get(
        f"{server_without_database}/api/v1/leads", **{"X-API-Key": UNKNOWN_KEY, "X-Request-ID": "req-db-down"}
    )
    assert status == 503
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Retry-After"]) > 0
    assert body["type"].endswith("/service-unavailable")
    assert (body["status"], body["instance"], body["correlation_id"]) == (503, "/api/v1/leads", "req-db-down")


def test_a_request_outside_the_api_gets_503_problem_too(server_without_database):
    # A session cookie makes the admin load the session from the database.
    session = "sessionid=" + "a" * 32
    status, headers, body = _get(f"{server_without_database}/admin/", Accept="text/html", Cookie=session)
    assert status == 503
    assert headers["Content-Type"] == "application/problem+json"
    assert body["detail"] == "The database is unavailable; try again shortly."
