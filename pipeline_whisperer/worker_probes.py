"""Liveness, readiness and metrics of a worker process (a pipeline stage), on a small HTTP port
of its own.

Kubernetes' httpGet probes and compose's healthchecks read it. `/health/liveness` answers 200
while every loop of the process makes progress (or waits out an outage) and 503 once one has been
stuck for PIPELINE_PROBE_STALL_SECONDS; `/health/readiness` answers 200 while no loop is waiting
for a dependency that is down. The JSON body says which loop and why. `/metrics` exports the same
per loop for Prometheus, beside the process's own metrics. Off unless PIPELINE_PROBE_PORT is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric


class WorkerHealth:
    """What the loops of this process last said (a class: loops write it, the probe server reads
    it, from different threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._progress: dict[str, float] = {}
        self._outages: dict[str, str] = {}

    def beat(self, loop: str) -> None:
        """`loop` is making progress (or waiting, as it should, for work or a dependency)."""
        with self._lock:
            self._progress[loop] = self._clock()

    def outage(self, loop: str, reason: str | None) -> None:
        """`loop` waits for a dependency that is down (`reason`), or no longer does (None)."""
        with self._lock:
            if reason is None:
                self._outages.pop(loop, None)
            else:
                self._outages[loop] = reason
            self._progress[loop] = self._clock()

    def report(self, *, stall_seconds: float) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            idle = {loop: now - at for loop, at in self._progress.items()}
            waiting = dict(self._outages)
        live = bool(idle) and all(seconds <= stall_seconds for seconds in idle.values())
        loops = {
            loop: {"seconds_since_progress": round(seconds, 1), "waiting_for": waiting.get(loop, "")}
            for loop, seconds in idle.items()
        }
        return {"live": live, "ready": live and not waiting, "loops": loops}


WORKER_HEALTH = WorkerHealth()


class _LoopCollector:
    """Per loop: seconds since its last progress, and 1 while it waits for a dependency (a class:
    prometheus_client's custom-collector interface)."""

    def __init__(self, health: WorkerHealth, stall_seconds: float) -> None:
        self.health, self.stall_seconds = health, stall_seconds

    def collect(self) -> Iterator[Metric]:
        loops = self.health.report(stall_seconds=self.stall_seconds)["loops"]
        idle = GaugeMetricFamily(
            "pipeline_loop_seconds_since_progress", "Seconds since the loop last made progress.", labels=["loop"]
        )
        waiting = GaugeMetricFamily(
            "pipeline_loop_waiting_for_dependency",
            "1 while the loop waits for a dependency that is down.",
            labels=["loop"],
        )
        for loop, state in loops.items():
            idle.add_metric([loop], state["seconds_since_progress"])
            waiting.add_metric([loop], 1.0 if state["waiting_for"] else 0.0)
        yield idle
        yield waiting


def probe_server_start(port: int, *, stall_seconds: float, health: WorkerHealth = WORKER_HEALTH) -> ThreadingHTTPServer:
    """Serve the probes on 0.0.0.0:`port` (a probe comes from the kubelet, not from loopback)
    in a daemon thread; returns the server (its `server_address` names the port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._metrics()
                return
            report = health.report(stall_seconds=stall_seconds)
            verdict = {"/health/liveness": report["live"], "/health/readiness": report["ready"]}.get(self.path)
            if verdict is None:
                self._answer(404, {"detail": "Probes: /health/liveness and /health/readiness."})
            else:
                self._answer(200 if verdict else 503, {"status": "ok" if verdict else "unavailable", **report})

        def _metrics(self) -> None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(REGISTRY)  # the process's own: CPU, memory, and whatever the code counts
            registry.register(_LoopCollector(health, stall_seconds))
            payload = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds would drown the stage's own log lines."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104  # nosec B104  (the kubelet probes the pod's address)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
