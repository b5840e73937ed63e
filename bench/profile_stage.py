"""Profile one stage's batches in-process: where a batch's time goes, without Kafka in the way.

Builds BATCHES batches of 500 simulated leads.raw events, runs them through the scorer on a
fresh PostgreSQL database (the outbox dispatcher off, as with Kafka), then the lead.scored events
that produced through the outreach stage, mailing an SMTP server on loopback (bench/smtp_sink.py,
started here in its own process). Prints per batch the wall and CPU time of each phase of the
stage, or with --pyinstrument the call tree of the stage named. This is how the scorer's and the
outreach stage's costs were found (bench/README.md, "Profiling a stage").

    python bench/profile_stage.py                     # phases of both stages, 10 batches
    python bench/profile_stage.py --pyinstrument scorer --batches 4
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from servers import SERVICE_ENV  # noqa: E402  (after ROOT is importable)

ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_profile"
BATCH = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--pyinstrument", choices=["scorer", "outreach"], help="print this stage's call tree")
    args = parser.parse_args()
    from tests.stand_ins import free_port, wait_for_port

    port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "smtp_sink.py"), str(port)])
    try:
        wait_for_port(port)
        _setup_django(port)
        _profile(args.batches, args.pyinstrument)
    finally:
        sink.terminate()
        sink.wait(10)


def _setup_django(smtp_port: int) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    os.environ.update(SERVICE_ENV)  # debug off: debug keeps every query's text, not what production pays
    os.environ.update(
        DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}",
        DJANGO_SETTINGS_MODULE="pipeline_whisperer.settings",
        KAFKA_BOOTSTRAP_SERVERS="",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        OUTREACH_SEND_WINDOW="mon-sun 00:00-24:00",
        OUTREACH_DOMAIN_HOURLY_CAP="1000000",
        OUTREACH_DAILY_CAP="1000000",
    )
    for name in ("REDIS_URL", "OPENAI_API_KEY"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", leads=0, verbosity=0)


def _profile(batches: int, tree: str | None) -> None:
    from faker import Faker

    from leads.lightfield import fake_event
    from leads.models import OutboxEvent
    from leads.outbox import outbox_dispatcher_set
    from leads.pipeline.events import Event, encode, outbox_event
    from leads.pipeline.stages import OutreachStage, ScorerStage
    from leads.topics import LEADS_RAW, LEADS_SCORED

    outbox_dispatcher_set(None)  # as with Kafka: the stages here run only when called
    Faker.seed(1)
    fake, rng = Faker(), random.Random(1)  # noqa: S311  (fakes, not cryptography)
    raw = [
        [
            Event(topic=LEADS_RAW, key=lid, value=encode(fake_event(fake, rng, lid)), event_id=f"raw-{lid}")
            for lid in (f"lf-{number}-{index}" for index in range(BATCH))
        ]
        for number in range(batches)
    ]
    _run("scorer", ScorerStage(), raw, _SCORER_PHASES, tree == "scorer")
    scored = [outbox_event(row) for row in OutboxEvent.objects.pending().filter(topic=LEADS_SCORED)]
    chunks = [scored[start : start + BATCH] for start in range(0, len(scored), BATCH)]
    _run("outreach", OutreachStage(random.Random(1)), chunks, _OUTREACH_PHASES, tree == "outreach")  # noqa: S311


# Per stage: (module, function) pairs whose time is reported as a phase of the batch.
_SCORER_PHASES = [
    ("leads.pipeline.stages", "parse_event"),
    ("leads.pipeline.stages", "events_applied"),
    ("leads.pipeline.stages", "events_claim"),
    ("leads.services.ingest", "bulk_upsert"),
    ("leads.services.ingest", "outbox_emit_many"),
]
_OUTREACH_PHASES = [
    ("leads.services.outreach", "scheduling_lock"),
    ("leads.services.outreach", "slot_allocator_load"),
    ("leads.services.outreach", "_schedule"),
    ("leads.services.outreach", "_note_reasons"),
    ("leads.pipeline.stages", "events_claim"),
]


def _run(name: str, stage: Any, batches: list[list[Any]], phases: list[tuple[str, str]], tree: bool) -> None:
    spent: collections.Counter[str] = collections.Counter()
    for module, function in phases:
        _time_calls(module, function, spent)
    profiler = _pyinstrument() if tree else None
    walls, cpus = [], []
    for batch in batches:
        wall, cpu = time.perf_counter(), time.process_time()
        stage.process_batch(batch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{name}: {len(batches)} batches, median {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU a batch", end="")
    print(f" ({BATCH / wall:,.0f} events/s)")
    for phase, seconds in spent.most_common():
        print(f"  {phase:<44} {seconds / len(batches) * 1000:7.1f} ms a batch")


def _time_calls(module_name: str, function: str, spent: collections.Counter[str]) -> None:
    """Wrap `module.function` to add its wall and CPU time to `spent` (this process only)."""
    import importlib

    module = importlib.import_module(module_name)
    original: Callable[..., Any] = getattr(module, function)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[f"{function} (wall)"] += time.perf_counter() - wall
            spent[f"{function} (CPU)"] += time.process_time() - cpu

    setattr(module, function, timed)


def _pyinstrument() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    return profiler


if __name__ == "__main__":
    main()
