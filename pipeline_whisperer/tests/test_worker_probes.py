"""A worker process's own probes: what its loops last said, served over real HTTP on loopback."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline_whisperer.worker_probes import WorkerHealth, probe_server_start


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe(clock: Clock) -> Iterator[tuple[WorkerHealth, int]]:
    health = WorkerHealth(clock=clock)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = probe_server_start(port, stall_seconds=60, health=health)
    yield health, port
    server.shutdown()


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_loop_making_progress_is_live_and_ready(probe):
    health, port = probe
    health.beat("scorer")
    assert _get(port, "/health/liveness")[0] == 200
    status, body = _get(port, "/health/readiness")
    assert (status, body["status"], body["loops"]["scorer"]["waiting_for"]) == (200, "ok", "")


def test_a_loop_waiting_out_an_outage_is_live_but_not_ready_and_says_why(probe, clock):
    health, port = probe
    health.beat("scorer")
    health.outage("scorer", "OperationalError: the database system is shutting down")
    clock.now += 300  # the outage lasts: the loop is still alive, waiting as it should
    health.outage("scorer", "OperationalError: the database system is shutting down")
    assert _get(port, "/health/liveness")[0] == 200
    status, body = _get(port, "/health/readiness")
    assert (status, body["loops"]["scorer"]["waiting_for"]) == (
        503,
        "OperationalError: the database system is shutting down",
    )
    health.outage("scorer", None)
    assert _get(port, "/health/readiness")[0] == 200


def test_a_loop_stuck_past_the_stall_time_fails_liveness(probe, clock):
    health, port = probe
    health.beat("relay")
    health.beat("scorer")
    clock.now += 61
    health.beat("relay")
    status, body = _get(port, "/health/liveness")
    assert (status, body["status"], body["loops"]["scorer"]["seconds_since_progress"]) == (503, "unavailable", 61.0)


def test_a_process_whose_loops_never_started_is_not_live(probe):
    assert _get(probe[1], "/health/liveness")[0] == 503


def test_any_other_path_is_a_404(probe):
    assert _get(probe[1], "/admin/")[0] == 404


def test_metrics_export_each_loops_progress_and_outage_with_the_process_metrics(probe, clock):
    health, port = probe
    health.beat("relay")
    health.outage("scorer", "OperationalError: connection refused")
    clock.now += 5
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
    waiting = {
        sample.labels["loop"]: sample.value for sample in families["pipeline_loop_waiting_for_dependency"].samples
    }
    idle = {sample.labels["loop"]: sample.value for sample in families["pipeline_loop_seconds_since_progress"].samples}
    assert waiting == {"relay": 0.0, "scorer": 1.0}
    assert idle == {"relay": 5.0, "scorer": 5.0}
    assert "process_cpu_seconds" in families  # the process's own, from prometheus_client
