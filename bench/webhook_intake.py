"""Tracking webhook intake bench: provider events accepted durably, against a ceiling in the same run.

The API bench's fresh database (bench/api_seed.py: LEADS leads, OUTREACH outreach rows, each
given a provider message id `bench-pm-<n>`) is served by gunicorn with the production
configuration (deploy/gunicorn.conf.py, 2 workers, ANYMAIL_WEBHOOK_SECRET set, a tansu broker so
the events stop at the outbox as in production). wrk posts with CONNECTIONS connections, RUNS
runs of DURATION seconds each:

- SendGrid's event webhook, a JSON array of events a request, at each of BATCHES sizes
  (SendGrid batches up to 1,000; a mix of delivered, open and click for random seeded
  outreach, unique event ids);
- Postmark's, one event a request.

At 64 connections a p99 under 500 ms needs at least 128 posts/s whatever a post carries
(Little's law: connections / latency), so the target holds only where a post's events are few
enough for the server to answer that many: the table shows each size against it.

An event is accepted when the request that carried it was answered 200: by then it is
committed to the outbox (or, unmatched, to the unmatched table). The ceiling is the same
gunicorn serving a bare WSGI callable answering fixed JSON (bench/baselines.py `fixed_json`)
to the same SendGrid posts. After the runs the outbox is counted, so a 200 that stored nothing
would show. Results: bench/results/webhooks.{md,json}.

    make bench-webhooks            # or: python bench/webhook_intake.py --batch 100
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.api_load import DATABASE_URL, SOCKET_ERRORS, prepare_database, seed, server_env  # noqa: E402
from bench.servers import Gunicorn  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECRET = "bench:webhook-secret-0123456789"  # noqa: S105  # nosec B105  # the bench's own throwaway server
TARGET_EVENTS_PER_S, TARGET_P99_MS = 2_000, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--outreach", type=int, default=50_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batches", default="10,100,1000", help="events per SendGrid post, comma-separated")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from tests.stand_ins import TansuBroker

    prepare_database()
    seeded = seed(args.leads, args.outreach)
    seeded["outreach"] = _name_provider_messages()
    broker = TansuBroker().start()
    env = {**server_env(broker.bootstrap, seeded), "ANYMAIL_WEBHOOK_SECRET": SECRET}
    try:
        ceiling_name = "ceiling: fixed JSON to SendGrid posts of 100"
        ceiling = measure(ceiling_name, "bench.baselines:fixed_json", env, args, batch=100)
        app = "pipeline_whisperer.wsgi:application"
        rows = [
            measure(f"SendGrid, {batch} events a post", app, env, args, batch=batch)
            for batch in map(int, args.batches.split(","))
        ]
        rows.append(measure("Postmark, 1 event a post", app, env, args, "postmark"))
    finally:
        broker.stop()
    stored = _outbox_rows()
    write_results(args, rows, ceiling, stored)


def _name_provider_messages() -> int:
    """Give each seeded outreach (message_id bench-<n>@bench) the provider id the posts name;
    how many there are."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        return db.execute(
            "UPDATE leads_outreach SET provider_message_id = 'bench-pm-'"
            " || substring(message_id from 'bench-([0-9]+)@') WHERE message_id LIKE 'bench-%%@bench'"
        ).rowcount


def _outbox_rows() -> int:
    """Events stored: engagement rows in the outbox plus unmatched events."""
    import psycopg

    with psycopg.connect(DATABASE_URL) as db:
        row = db.execute(
            "SELECT (SELECT count(*) FROM leads_outboxevent WHERE event_type LIKE 'engagement.%%')"
            " + (SELECT count(*) FROM leads_unmatchedproviderevent)"
        ).fetchone()
    return int(row[0]) if row else 0


def measure(
    name: str, app: str, env: dict[str, str], args: argparse.Namespace, provider: str = "sendgrid", batch: int = 1
) -> dict:
    (ROOT / "var").mkdir(exist_ok=True)
    server = Gunicorn(app, env, log_path=ROOT / "var" / "bench-webhooks.log")
    try:
        wrk(server.url, provider, batch, env, argparse.Namespace(**{**vars(args), "duration": 2}), run=-1)
        runs = [wrk(server.url, provider, batch, env, args, run) for run in range(args.runs)]
    finally:
        server.stop()
    median = {key: statistics.median(run[key] for run in runs) for key in ("requests_per_s", "p50_us", "p99_us")}
    row = {
        "name": name,
        "events_per_request": batch,
        "requests_per_s": round(median["requests_per_s"], 1),
        "events_per_s": round(median["requests_per_s"] * batch, 1),
        "p50_ms": round(median["p50_us"] / 1000, 1),
        "p99_ms": round(median["p99_us"] / 1000, 1),
        "errors": sum(run[key] for run in runs for key in SOCKET_ERRORS),
        "non_2xx": sum(run["non_2xx_3xx"] for run in runs),
        "accepted_events": sum(run["requests"] for run in runs) * batch,
        "runs": runs,
    }
    print(json.dumps({key: value for key, value in row.items() if key != "runs"}), flush=True)
    return row


def wrk(url: str, provider: str, batch: int, env: dict[str, str], args: argparse.Namespace, run: int) -> dict:
    credentials = base64.b64encode(SECRET.encode()).decode()
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s"]
    command += ["-s", "bench/wrk/webhooks.lua", "-H", f"Authorization: Basic {credentials}", url + "/"]
    wrk_env = {
        **env,
        "BENCH_RUN_TAG": f"{int(time.time())}-{run}",
        "BENCH_PROVIDER": provider,
        "BENCH_BATCH": str(batch),
    }
    output = subprocess.run(command, cwd=ROOT, env=wrk_env, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH_JSON "))
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    figures["requests_per_s"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def _verdict(row: dict) -> str:
    if "target_met" not in row:
        return ""
    return "met" if row["target_met"] else "missed"


def write_results(args: argparse.Namespace, rows: list[dict], ceiling: dict, stored: int) -> None:
    for row in rows:
        row["ratio_to_ceiling"] = round(row["requests_per_s"] / ceiling["requests_per_s"], 2)
    for row in rows:
        row["target_met"] = (
            row["events_per_s"] >= TARGET_EVENTS_PER_S
            and row["p99_ms"] < TARGET_P99_MS
            and row["errors"] == row["non_2xx"] == 0
        )
    settings = {key: getattr(args, key) for key in ("leads", "outreach", "duration", "runs", "connections", "batches")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "webhooks.json").write_text(
        json.dumps({"settings": settings, "rows": rows, "ceiling": ceiling, "outbox_rows": stored}, indent=2)
    )
    lines = [
        f"# Tracking webhook intake (median of {args.runs} runs of {args.duration} s)",
        "",
        "gunicorn with deploy/gunicorn.conf.py (2 workers), PostgreSQL, a tansu broker, ANYMAIL_WEBHOOK_SECRET;",
        f"wrk -t2 -c{args.connections} on the same 2-core machine. Ratio: posts/s over the ceiling's posts/s",
        "(fixed JSON to SendGrid posts of 100), both in this run. Errors: socket errors and timeouts.",
        f"Target: >= {TARGET_EVENTS_PER_S:,} events/s, p99 < {TARGET_P99_MS} ms, 0 errors.",
        "",
        "| posts | events/post | posts/s | events/s | p50 ms | p99 ms | errors | non-2xx | ratio to ceiling | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in [*rows, ceiling]:
        lines.append(
            f"| {row['name']} | {row['events_per_request']} | {row['requests_per_s']} | {row['events_per_s']} | "
            f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} | {row['non_2xx']} | "
            f"{row.get('ratio_to_ceiling', '')} | {_verdict(row)} |"
        )
    accepted = sum(row["accepted_events"] for row in rows)
    lines += [
        "",
        f"Events stored after the runs (engagement rows in the outbox and unmatched events): {stored:,};"
        f" events answered 200 in the measured runs: {accepted:,} (warm-ups and repeated Postmark"
        " events, which carry no id and are stored once, make the two differ).",
    ]
    (RESULTS / "webhooks.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "webhooks.md").read_text())


if __name__ == "__main__":
    main()
