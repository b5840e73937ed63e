"""Tracking webhook intake bench: SendGrid batches posted by wrk, beside the fixed-JSON ceiling.

The API bench's database and server (bench/api_load.py: PostgreSQL, Redis, a tansu broker so
writes stop at the outbox, gunicorn with deploy/gunicorn.conf.py and 2 workers) take
`/webhooks/sendgrid/tracking/` posts of BATCH events each (SendGrid posts up to about 1,000 a
request): a mix of delivered, open and click for seeded outreach, matched by the provider's
message id. An event is accepted durably when its answer is 200: its outbox row is committed.
Target: at least 2,000 events/s at 64 connections, p99 under 500 ms, no errors. Results:
bench/results/webhooks.{md,json}.

    make bench-webhooks            # or: python bench/webhook_intake.py --duration 20 --runs 3
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import api_load  # noqa: E402
from bench.servers import Gunicorn  # noqa: E402

SECRET = "bench:webhook-secret"  # noqa: S105 - the bench server's own
PATH = "/webhooks/sendgrid/tracking/"
TARGET_EVENTS_PER_S, TARGET_P99_MS = 2_000, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outreach", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000, help="events a request")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from tests.stand_ins import TansuBroker

    api_load.prepare_database()
    seeded = api_load.seed(args.outreach, args.outreach)
    _name_provider_ids()
    body = Path(tempfile.mkdtemp(prefix="pw-webhook-")) / "sendgrid.json"
    body.write_text(json.dumps(sendgrid_batch(args.batch, seeded["outreach"])))
    broker = TansuBroker().start()
    env = {
        **api_load.server_env(broker.bootstrap, seeded),
        "ANYMAIL_WEBHOOK_SECRET": SECRET,
        "BENCH_WEBHOOK_BODY": str(body),
        "BENCH_WEBHOOK_AUTH": base64.b64encode(SECRET.encode()).decode(),
    }
    try:
        ceiling = api_load.measure_ceiling(env, "fixed_json", args)
        row = measure_intake(env, args)
    finally:
        broker.stop()
    write_results(args, row, ceiling, body.stat().st_size)


def _name_provider_ids() -> None:
    """The seeded outreach as a provider would name it: its provider message id."""
    import psycopg

    with psycopg.connect(api_load.DATABASE_URL, autocommit=True) as db:
        db.execute("UPDATE leads_outreach SET provider_message_id = message_id")


def sendgrid_batch(size: int, outreach: int) -> list[dict]:
    """SendGrid's documented event shape; `anymail_id` names the seeded outreach's provider id."""
    rng = random.Random(20261201)  # noqa: S311 - bench data
    kinds = ["delivered", "open", "click"]
    return [
        {
            "email": f"contact{number}@example.com",
            "timestamp": 1764590400 + number,
            "event": kinds[number % 3],
            "sg_event_id": f"bench-{number}",
            "sg_message_id": f"sg-{number}.filter0001",
            "anymail_id": f"bench-{rng.randrange(outreach)}@bench",
            "category": ["outreach"],
            **({"url": "https://whisperer.example/pricing", "useragent": "Mozilla/5.0"} if number % 3 == 2 else {}),
        }
        for number in range(size)
    ]


def measure_intake(env: dict[str, str], args: argparse.Namespace) -> dict:
    server = Gunicorn("pipeline_whisperer.wsgi:application", env)
    name = f"sendgrid tracking ({args.batch} events a request)"
    endpoint = api_load.Endpoint(name, PATH, "webhook.lua", args.batch, "fixed_json", authenticated=False)
    try:
        api_load.wrk(server.url, endpoint, argparse.Namespace(**{**vars(args), "duration": 2}), env, "", run=-1)
        runs = [api_load.wrk(server.url, endpoint, args, env, "", run) for run in range(args.runs)]
    finally:
        server.stop()
    row = api_load.summarise(endpoint.name, runs, args.batch)
    print(json.dumps({key: value for key, value in row.items() if key != "runs"}), flush=True)
    return row


def write_results(args: argparse.Namespace, row: dict, ceiling: dict, body_bytes: int) -> None:
    row["ratio_to_ceiling"] = round(row["requests_per_s"] / ceiling["requests_per_s"], 3)
    met = (
        row["items_per_s"] >= TARGET_EVENTS_PER_S
        and row["p99_ms"] < TARGET_P99_MS
        and not row["errors"]
        and not row["non_2xx"]
    )
    settings = {key: getattr(args, key) for key in ("outreach", "batch", "duration", "runs", "connections")}
    api_load.RESULTS.mkdir(parents=True, exist_ok=True)
    (api_load.RESULTS / "webhooks.json").write_text(
        json.dumps({"settings": settings, "body_bytes": body_bytes, "intake": row, "ceiling": ceiling}, indent=2)
    )
    lines = [
        f"# Tracking webhook intake (SendGrid, {args.batch} events a request; median of {args.runs} runs)",
        "",
        f"gunicorn with deploy/gunicorn.conf.py, {api_load.WORKERS} workers on this 2-core machine, PostgreSQL,",
        f"Redis, tansu broker; wrk -t2 -c{args.connections} -d{args.duration}s on the same machine. Body"
        f" {body_bytes} bytes. An event is accepted when its request answered 200 (its outbox row committed).",
        "",
        "| server | req/s | events/s | p50 ms | p95 ms | p99 ms | errors | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for each in (row, ceiling):
        lines.append(
            f"| {each['endpoint']} | {each['requests_per_s']} | {each['items_per_s'] if each is row else ''} | "
            f"{each['p50_ms']} | {each['p95_ms']} | {each['p99_ms']} | {each['errors']} | {each['non_2xx']} |"
        )
    lines += [
        "",
        f"Target: at least {TARGET_EVENTS_PER_S} events/s, p99 under {TARGET_P99_MS} ms, no errors:"
        f" {'met' if met else 'missed'} ({row['items_per_s']} events/s, p99 {row['p99_ms']} ms,"
        f" {row['errors']} errors, {row['non_2xx']} non-2xx).",
        "",
        f"Latency at a fixed number of connections is queueing (Little's law): {args.connections} connections"
        f" at {row['requests_per_s']} req/s wait about {args.connections / max(row['requests_per_s'], 1e-9):.1f} s"
        " a request, so p99 under 500 ms with 1,000-event posts would need 128 req/s (128,000 events/s).",
    ]
    (api_load.RESULTS / "webhooks.md").write_text("\n".join(lines) + "\n")
    print((api_load.RESULTS / "webhooks.md").read_text())


if __name__ == "__main__":
    main()
