"""deploy/gunicorn.conf.py, exercised by a real gunicorn on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.stand_ins import ROOT, free_port, wait_for_port

CONFIG = ROOT / "deploy" / "gunicorn.conf.py"


class Gunicorn:
    """`gunicorn -c deploy/gunicorn.conf.py` in a child process, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Gunicorn:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "gunicorn", "-c", str(CONFIG)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)
        return self

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def wait_until(predicate: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def access_lines(server: Gunicorn) -> list[dict]:
    """gunicorn's own access lines (the application's JSON lines share the output)."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "gunicorn.access"]


@pytest.fixture
def start_gunicorn(db: None, tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    """Start gunicorn against the test database; every server started is stopped at teardown."""
    database = connection.settings_dict
    address = f"{database['HOST']}:{database['PORT'] or 5432}"
    started: list[Gunicorn] = []

    def start(**extra: str) -> Gunicorn:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
        env.update(
            DATABASE_URL=f"postgres://{database['USER']}@{address}/{database['NAME']}",
            WEB_CONCURRENCY="1",
            GUNICORN_THREADS="2",
            **extra,
        )
        server = Gunicorn(env, tmp_path / f"gunicorn-{len(started)}.log").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_each_request_writes_one_json_access_line_with_its_request_id(start_gunicorn):
    server = start_gunicorn()
    assert server.get("/api/v1/leads") == 401
    wait_until(lambda: access_lines(server), what="an access line")
    [line] = access_lines(server)
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/leads"
    assert line["status"] == 401
    assert line["duration_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f-]{36}", line["request_id"])
    assert line["remote_addr"] == "127.0.0.1"
    assert {"time", "user_agent"} <= line.keys()


def test_sigterm_stops_gunicorn_gracefully_with_exit_status_zero(start_gunicorn):
    server = start_gunicorn()
    assert server.get("/api/v1/leads") == 401
    assert server.stop() == 0
    assert "Shutting down: Master" in server.log()


def test_start_empties_the_prometheus_multiprocess_directory(start_gunicorn, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_12345.db").write_bytes(b"stale")
    start_gunicorn(PROMETHEUS_MULTIPROC_DIR=str(directory))
    assert list(directory.glob("*.db")) == []


def test_an_exited_worker_is_marked_dead_for_prometheus(start_gunicorn, tmp_path):
    directory = tmp_path / "prometheus"
    # One request per worker: the first request makes the worker exit and a new one start.
    server = start_gunicorn(
        PROMETHEUS_MULTIPROC_DIR=str(directory), GUNICORN_MAX_REQUESTS="1", GUNICORN_MAX_REQUESTS_JITTER="0"
    )
    wait_until(lambda: "Booting worker with pid" in server.log(), what="the first worker")
    pid = re.search(r"Booting worker with pid: (\d+)", server.log()).group(1)
    live_gauge = directory / f"gauge_liveall_{pid}.db"
    live_gauge.write_bytes(b"")
    assert server.get("/api/v1/leads") == 401
    wait_until(lambda: not live_gauge.exists(), what="the exited worker's live gauge file to go")
