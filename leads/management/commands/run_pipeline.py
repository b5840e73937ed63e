"""Run pipeline stages: `run_pipeline relay|scorer|outreach|dispatch|feedback|all`.

With Kafka each stage is a consumer-group member (run several processes of a stage to share its
partitions; `dispatch`, which polls the outreach queue, shares it by SKIP LOCKED claims); `all`
runs every stage in one process, in threads. Without Kafka the stages run in-process after each
commit, and `all` delivers whatever a stopped process left in the outbox and dispatches the mail
that falls due.
SIGTERM or SIGINT: the current batch finishes and commits, then the command exits 0. A database,
broker or mail server that is down is waited for (backoff, the same batch again); a loop that
dies anyway, or an outage past PIPELINE_OUTAGE_GIVE_UP_SECONDS, ends the command with exit 1.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from leads.pipeline.dispatch import Dispatcher, dispatch_loop_ticks
from leads.pipeline.inprocess import drain
from leads.pipeline.kafka import OutboxRelay, StageConsumer
from leads.pipeline.stages import STAGES
from pipeline_whisperer.worker_probes import WORKER_HEALTH, probe_server_start

logger = logging.getLogger(__name__)
LOOPS = ("relay", "dispatch")  # loops that are not topic consumers


class Command(BaseCommand):
    help = "Run one pipeline stage (relay, scorer, outreach, dispatch, feedback) or all of them until SIGTERM."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("stage", choices=[*STAGES, *LOOPS, "all"])
        parser.add_argument("--batch-size", type=int, default=None, help="Messages per batch (PIPELINE_BATCH_SIZE).")

    def handle(self, *args: Any, stage: str, batch_size: int | None, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if settings.PIPELINE_PROBE_PORT:
            probe_server_start(settings.PIPELINE_PROBE_PORT, stall_seconds=settings.PIPELINE_PROBE_STALL_SECONDS)
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            if stage != "all":
                raise CommandError("without KAFKA_BOOTSTRAP_SERVERS the stages run in-process; use 'run_pipeline all'")
            self._drain_in_process(stop)
            return
        runners = [self._runner(name, stop, batch_size) for name in ([*STAGES, *LOOPS] if stage == "all" else [stage])]
        failures: list[str] = []
        threads = [
            threading.Thread(target=_run_or_stop_all, args=(name, runner, stop, failures), name=name, daemon=True)
            for name, runner in runners
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)
        if failures:  # a non-zero exit, so the supervisor (compose, Kubernetes, systemd) restarts us
            raise CommandError("; ".join(failures))
        if options["verbosity"] >= 1:
            self.stdout.write(f"{stage} stopped cleanly")

    def _runner(self, name: str, stop: threading.Event, batch_size: int | None) -> tuple[str, Any]:
        if name == "relay":
            return name, OutboxRelay(stop)
        if name == "dispatch":
            return name, Dispatcher(stop, batch_size=batch_size)
        return name, StageConsumer(STAGES[name](), stop, batch_size=batch_size)

    def _drain_in_process(self, stop: threading.Event) -> None:
        stages = [stage() for stage in STAGES.values()]
        dispatch_loop_ticks()
        dispatcher, next_dispatch = Dispatcher(stop), 0.0
        while not stop.is_set():
            WORKER_HEALTH.beat("in-process")
            for stage in stages:
                stage.tick()
            if time.monotonic() >= next_dispatch:
                dispatcher.drain()
                next_dispatch = time.monotonic() + settings.OUTREACH_DISPATCH_INTERVAL_SECONDS
            if not drain():
                stop.wait(1.0)


def _run_or_stop_all(name: str, runner: Any, stop: threading.Event, failures: list[str]) -> None:
    """Run one loop; if it dies, log why and stop the others (they finish their batch), so the
    process exits non-zero instead of living on without it."""
    try:
        runner.run()
    except Exception as error:
        logger.exception("%s stopped on an error", name)
        failures.append(f"{name} stopped: {type(error).__name__}: {error}")
        stop.set()
