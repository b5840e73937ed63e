"""Pipeline throughput, leads.raw to contacted, on PostgreSQL and a real broker (tansu).

Each run: a fresh database and broker; LEADS events produced straight to leads.raw; then the
relay, scorer, outreach and feedback stages start as separate `run_pipeline` processes (rule
scorer, locmem mail). The clock starts when the stages start. Per stage we record when it had
done its part for every lead; end to end is when every lead was contacted or disqualified.
Figures are the median of RUNS runs; results go to bench/results/pipeline.{json,md}.

    make bench-pipeline            # or: python bench/pipeline_throughput.py --leads 20000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_pipeline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [run_once(args.leads, number) for number in range(1, args.runs + 1)]
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "run"}
    write_results(args.leads, runs, summary)


def run_once(leads: int, number: int) -> dict[str, float]:
    from tests.stand_ins import TansuBroker

    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    broker = TansuBroker().start()
    env = {
        **os.environ,
        "DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}",
        "DJANGO_DEBUG": "1",
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, "manage.py"]
    try:
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "seed_demo", "--leads", "0", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [
                *manage,
                "simulate_leads",
                "--count",
                str(leads),
                "--to",
                "kafka",
                "--seed",
                str(number),
                "--batch",
                "1000",
                "-v0",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        stages = [
            subprocess.Popen([*manage, "run_pipeline", stage], cwd=ROOT, env=env)
            for stage in ("relay", "scorer", "outreach", "feedback")
        ]
        started = time.monotonic()
        finished = watch(env, leads, started)
        for stage in stages:
            stage.terminate()
        for stage in stages:
            stage.wait(60)
    finally:
        broker.stop()
    result = {
        "run": number,
        **{f"{name}_leads_per_s": round(leads / seconds, 1) for name, seconds in finished.items()},
        "end_to_end_seconds": round(finished["end_to_end"], 2),
    }
    print(json.dumps(result))
    return result


def watch(env: dict[str, str], leads: int, started: float) -> dict[str, float]:
    """Poll the database until every lead is done; when each stage finished its part."""
    import psycopg

    finished: dict[str, float] = {}
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as db:
        while "end_to_end" not in finished:
            time.sleep(0.2)
            scored, settled, sent_events = db.execute(
                "SELECT count(*) FILTER (WHERE scored_at IS NOT NULL),"
                " count(*) FILTER (WHERE status IN ('contacted', 'disqualified')),"
                " (SELECT count(*) FROM leads_processedevent WHERE stage = 'feedback')"
                " FROM leads_lead"
            ).fetchone()
            contacted = db.execute("SELECT count(*) FROM leads_lead WHERE status = 'contacted'").fetchone()[0]
            now = time.monotonic() - started
            if scored == leads:
                finished.setdefault("scorer", now)
            if settled == leads:
                finished.setdefault("outreach", now)
                if sent_events >= contacted:
                    finished.setdefault("feedback", now)
                    finished["end_to_end"] = now
            if now > 1800:
                raise TimeoutError(f"not done after 30 minutes: {scored} scored, {settled} settled")
    return finished


def psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(sql)


def write_results(leads: int, runs: list[dict], summary: dict[str, float]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps({"leads": leads, "runs": runs, "median": summary}, indent=2))
    rows = "\n".join(f"| {key} | {value} |" for key, value in summary.items())
    (RESULTS / "pipeline.md").write_text(
        f"# Pipeline throughput ({leads} leads, median of {len(runs)} runs)\n\n"
        f"leads.raw to contacted; PostgreSQL, tansu, rule scorer, locmem mail; every stage one process.\n"
        f"A stage's figure is leads divided by the seconds until it had done its part for every lead.\n\n"
        f"| measure | median |\n| --- | --- |\n{rows}\n"
    )
    print((RESULTS / "pipeline.md").read_text())


if __name__ == "__main__":
    main()
