"""Soak run: mixed load for minutes while the parts around the service fail, then the books are checked.

The production shape on loopback: gunicorn (deploy/gunicorn.conf.py, 2 workers), the relay and
the four stages (scorer, outreach, dispatch, feedback) as `run_pipeline` processes, and of its
own a PostgreSQL cluster (initdb, a free port), a Redis, a tansu broker and an SMTP sink. Load
threads read (lead list, stats, experiments, dashboard), ingest batches of 5 new leads and post
engagement for sent outreach. During the run the scorer is killed (SIGKILL) and restarted, Redis
is restarted, PostgreSQL is restarted, the mail server is stopped for 60 s, a 2 MB message is
produced to leads.raw and a 1.5 MB event posted to ingest, and the broker is frozen for 30 s.

Afterwards: every accepted lead is in the database and past `raw`, no lead was contacted twice
(outreach rows and mails received), no 5xx but 503 (with Retry-After) inside a fault window, every
stage still running, the oversized message one dead letter and the oversized event refused on its
own, and each worker's memory grew by less than 10% from the end of warm-up. Exit status 1 when a
check fails.
Results: bench/results/soak.{md,json}.

    make soak                      # or: python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.servers import Gunicorn  # noqa: E402
from tests.stand_ins import RedisServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DATABASE = "pw_soak"
READS = ["/api/v1/leads?status=contacted", "/api/v1/leads/stats", "/api/v1/experiments", "/api/v1/dashboard/funnel"]


class Load:
    """Client threads and what they saw: accepted lead ids and (time, status) of every answer."""

    def __init__(self, base_url: str, key: str, threads: int) -> None:
        self.base_url, self.key, self.threads = base_url, key, threads
        self.stop = threading.Event()
        self.accepted: set[str] = set()
        self.answers: list[tuple[float, int]] = []
        self.client_errors: list[tuple[float, str]] = []
        self.unavailable_without_retry_after = 0
        self.message_ids: list[str] = []
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, args=(number,), daemon=True) for number in range(threads)]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def finish(self) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, number: int) -> None:
        rng = random.Random(number)  # noqa: S311 - load mix, not cryptography
        counter = 0
        while not self.stop.is_set():
            counter += 1
            roll = rng.random()
            if roll < 0.5:
                self._call("GET", rng.choice(READS))
            elif roll < 0.7:
                ids = [f"soak-{number}-{counter}-{index}" for index in range(5)]
                status, _ = self._call("POST", "/api/v1/leads/ingest", [_lead_event(lead_id) for lead_id in ids])
                if status == 202:
                    with self._lock:
                        self.accepted.update(ids)
            elif self.message_ids:
                event = {
                    "event_id": f"soak-{number}-{counter}",
                    "event_type": rng.choice(["opened", "clicked", "converted"]),
                    "message_id": rng.choice(self.message_ids),
                }
                self._call("POST", "/api/v1/engagements", event)
            # Paced so leads arrive at about half of what the stages can process (bench-pipeline):
            # a soak checks that nothing is lost or doubled over time, not how much fits.
            time.sleep(0.1)

    def _call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310 - loopback
        request.add_header("X-API-Key", self.key)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
            if status == 503 and not error.headers.get("Retry-After"):
                with self._lock:
                    self.unavailable_without_retry_after += 1
        except OSError as error:
            with self._lock:
                self.client_errors.append((time.monotonic(), repr(error)))
            return 0, b""
        with self._lock:
            self.answers.append((time.monotonic(), status))
        return status, payload


def _lead_event(lead_id: str) -> dict:
    return {
        "event_type": "lead.created",
        "lightfield_id": lead_id,
        "company": {"name": f"Soak {lead_id}", "size": "201-1000", "industry": "software"},
        "contact": {"name": "Sam Soak", "email": f"{lead_id}@example.com", "title": "VP Engineering"},
        "metadata": {"budget_range": "100k-500k", "timeline": "this quarter", "pain_points": ["slow pipeline"]},
    }


class Faults:
    """The fault schedule, and the windows in which a 503 is allowed."""

    def __init__(self, minutes: float) -> None:
        self.total = minutes * 60
        self.windows: list[tuple[str, float, float]] = []

    def run(self, load: Load, parts: dict, started: float) -> None:
        stages, redis, broker, postgres = parts["stages"], parts["redis"], parts["broker"], parts["postgres"]
        plan = [
            (0.15, "scorer killed and restarted", lambda: _restart_stage(stages, "scorer")),
            (0.3, "redis restarted", lambda: _restart_redis(redis)),
            (0.4, "postgresql restarted", postgres.restart),
            (0.5, "mail server stopped for 60 s", lambda: _stop_mail(parts["smtp"], 60)),
            (0.65, "oversized: 2 MB to leads.raw, 1.5 MB to ingest", lambda: _oversized(load, broker, parts)),
            (0.75, "broker stopped for 30 s", lambda: _freeze(broker, 30)),
        ]
        for fraction, name, action in plan:
            _sleep_until(started + fraction * self.total, load.stop)
            began = time.monotonic()
            print(f"[{began - started:6.0f} s] fault: {name}", flush=True)
            action()
            self.windows.append((name, began, time.monotonic()))

    def allows_503(self, at: float, grace: float = 15.0) -> bool:
        return any(began <= at <= ended + grace for _, began, ended in self.windows)


def _sleep_until(deadline: float, stop: threading.Event) -> None:
    stop.wait(max(0.0, deadline - time.monotonic()))


def _restart_stage(stages: dict, name: str) -> None:
    stages[name].kill()
    time.sleep(10)
    stages[name] = stages[name].__class__(name, stages[name].env, stages[name].log_path.parent).start()


def _restart_redis(redis: RedisServer) -> None:
    redis.stop()
    time.sleep(3)
    redis.start()


def _stop_mail(sinks: list, seconds: float) -> None:
    """Stop the mail server, then start another on its port; `sinks` keeps both for the books."""
    from tests.stand_ins import SmtpSink

    sinks[-1].stop()
    time.sleep(seconds)
    sinks.append(SmtpSink(sinks[-1].port).start())


def _oversized(load: Load, broker, parts: dict) -> None:
    """A 2 MB message from another system's producer on leads.raw, and a 1.5 MB event beside a
    valid one on ingest: one dead letter, one per-item refusal, nothing else held up."""
    from confluent_kafka import Producer

    huge = {**_lead_event("soak-huge-kafka"), "notes": "x" * 2_000_000}
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000})
    producer.produce("leads.raw", key=b"soak-huge-kafka", value=json.dumps(huge).encode())
    producer.flush(15)
    big = {**_lead_event("soak-huge-api"), "notes": "y" * 1_500_000}
    status, payload = load._call("POST", "/api/v1/leads/ingest", [big, _lead_event("soak-beside-huge")])
    body = json.loads(payload) if status == 202 else {}
    parts["oversized_ingest"] = (status, body.get("rejected"), body.get("accepted"))
    if status == 202:
        with load._lock:
            load.accepted.add("soak-beside-huge")


def _freeze(broker, seconds: float) -> None:
    broker.pause()
    time.sleep(seconds)
    broker.resume()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()
    report = soak(args.minutes, args.threads)
    write_results(report)
    sys.exit(0 if all(check["passed"] for check in report["checks"]) else 1)


def soak(minutes: float, threads: int) -> dict:
    import psycopg

    from tests.stand_ins import PipelineProcess, PostgresCluster, SmtpSink, TansuBroker

    postgres = PostgresCluster().start()  # of its own: the soak restarts it
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as db:
        db.execute(f"CREATE DATABASE {DATABASE}")
    logs = Path(os.environ.get("SOAK_LOG_DIR", ROOT / "var" / "soak"))
    logs.mkdir(parents=True, exist_ok=True)
    redis, broker, smtp = RedisServer().start(), TansuBroker().start(), SmtpSink().start()
    env = _environment(postgres.url(DATABASE), redis.url, broker.bootstrap, smtp.port)
    _manage(env, "migrate", "-v0")
    _manage(env, "seed_demo", "--leads", "0", "-v0")
    key = _manage(env, "apikey", "create", "soak", "--scope", "write").split()[-1]
    names = ("relay", "scorer", "outreach", "dispatch", "feedback")
    stages = {name: PipelineProcess(name, env, logs).start() for name in names}
    api = Gunicorn("pipeline_whisperer.wsgi:application", env, log_path=logs / "gunicorn.log")
    load, faults = Load(api.url, key, threads), Faults(minutes)
    parts = {"stages": stages, "redis": redis, "broker": broker, "postgres": postgres, "smtp": [smtp]}
    started = time.monotonic()
    try:
        load.start()
        _sleep_until(started + 0.1 * faults.total, load.stop)
        memory_before = api.worker_rss_kb()
        watcher = threading.Thread(target=_follow_messages, args=(load, env["DATABASE_URL"]), daemon=True)
        watcher.start()
        faults.run(load, parts, started)
        _sleep_until(started + 0.9 * faults.total, load.stop)
        memory_after = api.worker_rss_kb()
        load.finish()
        drained = _wait_until_processed(env["DATABASE_URL"], load.accepted, timeout=600)
        running = {name: stage.alive() for name, stage in stages.items()}
        return _report(
            load, faults, parts, env["DATABASE_URL"], (memory_before, memory_after), drained, running, minutes
        )
    finally:
        load.stop.set()
        api.stop()
        for stage in stages.values():
            if stage.alive():
                stage.terminate()
        parts["smtp"][-1].stop()
        broker.stop()
        redis.stop()
        postgres.stop()


def _environment(database_url: str, redis_url: str, bootstrap: str, smtp_port: int) -> dict[str, str]:
    from tests.stand_ins import loopback_env

    return loopback_env(
        database_url=database_url,
        bootstrap=bootstrap,
        smtp_port=smtp_port,
        REDIS_URL=redis_url,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="soak-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",  # noqa: S106 - a throwaway run
        DJANGO_SECURE_SSL_REDIRECT="0",
        RATE_LIMIT_PER_MINUTE="100000000",
        RATE_LIMIT_PER_HOUR="1000000000",
        WEB_CONCURRENCY="2",
        GUNICORN_MAX_REQUESTS="0",  # no worker recycling: memory growth must show
        LOG_LEVEL="WARNING",
        OUTREACH_DOMAIN_HOURLY_CAP="1000000",
        OUTREACH_DAILY_CAP="1000000",
    )


def _manage(env: dict[str, str], *arguments: str) -> str:
    import subprocess

    command = [sys.executable, "manage.py", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def _follow_messages(load: Load, database_url: str) -> None:
    """Keep the load's list of sent message ids fresh, for engagement events."""
    import psycopg

    while not load.stop.is_set():
        try:
            with psycopg.connect(database_url, autocommit=True) as db:
                rows = db.execute(
                    "SELECT message_id FROM leads_outreach WHERE message_id IS NOT NULL ORDER BY id DESC LIMIT 500"
                ).fetchall()
            load.message_ids = [row[0] for row in rows]
        except psycopg.OperationalError:  # the database is restarting (one of the faults): next time
            pass
        load.stop.wait(5)


def _wait_until_processed(database_url: str, accepted: set[str], timeout: float) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as db:
        while time.monotonic() < deadline:
            done = db.execute(
                "SELECT count(*) FROM leads_lead WHERE lightfield_id = ANY(%s) AND status <> 'raw'", [list(accepted)]
            ).fetchone()[0]
            pending = db.execute(
                "SELECT count(*) FROM leads_outboxevent WHERE published_at IS NULL AND failed_at IS NULL"
            ).fetchone()[0]
            if done == len(accepted) and pending == 0:
                return True
            time.sleep(2)
    return False


def _report(load, faults, parts, database_url, memory, drained, running, minutes) -> dict:
    import psycopg

    memory_before, memory_after = memory
    with psycopg.connect(database_url, autocommit=True) as db:
        stored = db.execute(
            "SELECT count(*) FROM leads_lead WHERE lightfield_id = ANY(%s)", [list(load.accepted)]
        ).fetchone()[0]
        twice = db.execute(
            "SELECT count(*) FROM (SELECT lead_id FROM leads_outreach GROUP BY lead_id HAVING count(*) > 1) AS twice"
        ).fetchone()[0]
        contacted = db.execute("SELECT count(*) FROM leads_lead WHERE contacted_at IS NOT NULL").fetchone()[0]
        dead = db.execute("SELECT key, count(*) FROM leads_deadletter GROUP BY key").fetchall()
    recipients = collections.Counter(message["To"] for sink in parts["smtp"] for message in sink.received())
    statuses = collections.Counter(status for _, status in load.answers)
    bad = [(at, status) for at, status in load.answers if status >= 500]
    outside = [(at, status) for at, status in bad if status != 503 or not faults.allows_503(at)]
    growth = [after / before - 1 for before, after in zip(memory_before, memory_after, strict=False)]
    checks = [
        _check("every accepted lead stored", stored == len(load.accepted), f"{stored} of {len(load.accepted)}"),
        _check("every accepted lead processed, outbox drained", drained, "within 600 s of the load's end"),
        _check("no lead contacted twice (outreach rows)", twice == 0, f"{twice} leads with more than one"),
        _check("no address mailed twice", max(recipients.values(), default=0) <= 1, f"{len(recipients)} mailed"),
        _check("no 5xx but 503 in a fault window", not outside, f"{len(bad)} 5xx, {len(outside)} outside"),
        _check(
            "every 503 carries Retry-After",
            load.unavailable_without_retry_after == 0,
            f"{load.unavailable_without_retry_after} without",
        ),
        _check("every stage still running", all(running.values()), str(running)),
        _check("the 2 MB message is one dead letter, nothing else is", dead == [("soak-huge-kafka", 1)], str(dead)),
        _check(
            "the 1.5 MB event refused on its own",
            parts.get("oversized_ingest") == (202, 1, 1),
            f"status, rejected, accepted: {parts.get('oversized_ingest')}",
        ),
        _check("no failed connections", not load.client_errors, f"{len(load.client_errors)} failed"),
        _check("worker memory grew < 10%", all(value < 0.10 for value in growth), f"growth {growth}"),
    ]
    return {
        "minutes": minutes,
        "requests": len(load.answers),
        "statuses": dict(statuses),
        "accepted_leads": len(load.accepted),
        "contacted_leads": contacted,
        "mails": sum(recipients.values()),
        "faults": [{"fault": name, "seconds": round(ended - began, 1)} for name, began, ended in faults.windows],
        "memory_kb": {"after_warmup": memory_before, "end": memory_after},
        "client_errors": load.client_errors[:20],
        "checks": checks,
    }


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"check": name, "passed": bool(passed), "detail": detail}


def write_results(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [
        f"# Soak ({report['minutes']} minutes)",
        "",
        f"{report['requests']} requests {report['statuses']}; {report['accepted_leads']} leads accepted, "
        f"{report['contacted_leads']} contacted, {report['mails']} mails.",
        "",
        "Faults: " + "; ".join(f"{fault['fault']} ({fault['seconds']} s)" for fault in report["faults"]) + ".",
        "",
        "| check | result | detail |",
        "| --- | --- | --- |",
        *(f"| {c['check']} | {'pass' if c['passed'] else 'FAIL'} | {c['detail']} |" for c in report["checks"]),
    ]
    (RESULTS / "soak.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "soak.md").read_text())


if __name__ == "__main__":
    main()
