"""API load bench: each endpoint under wrk, against ceilings measured in the same run.

A fresh PostgreSQL database (LEADS leads, 20 variants, OUTREACH outreach rows) is served by
gunicorn with the production configuration (deploy/gunicorn.conf.py, 2 workers), the Redis
cache, a tansu broker (so writes stop at the outbox, as in production) and rate limits raised
out of the way. wrk drives each endpoint with CONNECTIONS connections, RUNS runs of DURATION
seconds. The same gunicorn configuration then serves two bare WSGI callables (bench/baselines.py):
a fixed JSON body (the ceiling for liveness) and the lead list's own SQL on psycopg (the ceiling
for the list). Results: bench/results/api.{md,json}.

    make bench                     # or: python bench/api_load.py --duration 20 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.servers import Gunicorn  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_api"
DATABASE_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
WORKERS = 2
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    script: str = "get.lua"
    items_per_request: int = 1
    ceiling: str = ""  # the baseline callable this endpoint is compared with
    authenticated: bool = True


def endpoints(lead_id: int, lead_list_url: str) -> list[Endpoint]:
    return [
        Endpoint("liveness", "/health/liveness", ceiling="fixed_json", authenticated=False),
        Endpoint("readiness", "/health/readiness", authenticated=False),
        Endpoint("lead list (50 a page, status filter)", lead_list_url, ceiling="lead_list"),
        Endpoint("lead detail", f"/api/v1/leads/{lead_id}"),
        Endpoint("lead stats", "/api/v1/leads/stats"),
        Endpoint("dashboard funnel", "/api/v1/dashboard/funnel"),
        Endpoint("experiments with posteriors", "/api/v1/experiments"),
        Endpoint("ingest (batches of 100)", "/api/v1/leads/ingest", script="ingest.lua", items_per_request=100),
        Endpoint("engagements", "/api/v1/engagements", script="engagements.lua"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--outreach", type=int, default=50_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", help="run only endpoints whose name contains this")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from tests.stand_ins import TansuBroker

    prepare_database()
    seeded = seed(args.leads, args.outreach)
    broker = TansuBroker().start()
    env = server_env(broker.bootstrap, seeded)
    try:
        # Ceilings first: the write endpoints measured last grow the leads table.
        ceilings = {name: measure_ceiling(env, name, args) for name in ("fixed_json", "lead_list")}
        rows, memory = measure_service(env, seeded, args)
    finally:
        broker.stop()
    write_results(args, rows, ceilings, memory)


def prepare_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    env = {**os.environ, **base_env()}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def base_env() -> dict[str, str]:
    return {
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "OUTREACH_SENDER_NAME": "Bench Sender",
        "OUTREACH_POSTAL_ADDRESS": "1 Bench Street, Benchville",
        "PUBLIC_BASE_URL": "https://pipeline.bench.example",
    }


def seed(leads: int, outreach: int) -> dict:
    env = {**os.environ, **base_env()}
    started = time.monotonic()
    output = subprocess.run(
        [sys.executable, "bench/api_seed.py", str(leads), "20", str(outreach)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(f"seeded {leads} leads and {outreach} outreach in {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(output.strip().splitlines()[-1])


def server_env(bootstrap: str, seeded: dict) -> dict[str, str]:
    return {
        **os.environ,
        **base_env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "RATE_LIMIT_PER_HOUR": "1000000000",
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_MAX_REQUESTS": "0",  # no worker recycling: memory growth must show
        "BENCH_DSN": DATABASE_URL,
        "BENCH_LEAD_LIST_SQL": json.dumps(seeded["lead_list_sql"]),
        "BENCH_OUTREACH": str(seeded["outreach"]),
    }


def wrk(url: str, endpoint: Endpoint, args: argparse.Namespace, env: dict[str, str], key: str, run: int) -> dict:
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s"]
    command += ["-s", f"bench/wrk/{endpoint.script}"]
    if endpoint.authenticated:
        command += ["-H", f"X-API-Key: {key}"]
    wrk_env = {**env, "BENCH_RUN_TAG": f"{int(time.time())}-{run}"}
    output = subprocess.run(
        [*command, url + endpoint.path], cwd=ROOT, env=wrk_env, check=True, capture_output=True, text=True
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH_JSON "))
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    figures["requests_per_s"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def summarise(name: str, runs: list[dict], items_per_request: int) -> dict:
    median = {key: statistics.median(run[key] for run in runs) for key in ("requests_per_s", "p50_us", "p95_us")}
    return {
        "endpoint": name,
        "requests_per_s": round(median["requests_per_s"], 1),
        "items_per_s": round(median["requests_per_s"] * items_per_request, 1),
        "p50_ms": round(median["p50_us"] / 1000, 1),
        "p95_ms": round(median["p95_us"] / 1000, 1),
        "p99_ms": round(statistics.median(run["p99_us"] for run in runs) / 1000, 1),
        "errors": sum(run[key] for run in runs for key in SOCKET_ERRORS),
        "non_2xx": sum(run["non_2xx_3xx"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
        "runs": runs,
    }


def measure_service(env: dict[str, str], seeded: dict, args: argparse.Namespace) -> tuple[list[dict], dict]:
    server = Gunicorn("pipeline_whisperer.wsgi:application", env)
    selected = [
        endpoint
        for endpoint in endpoints(seeded["lead_id"], seeded["lead_list_url"])
        if not args.only or args.only in endpoint.name
    ]
    try:
        # Warm up (imports, pools, caches) so that memory growth measures the steady state.
        warm_up = argparse.Namespace(**{**vars(args), "duration": 2})
        for endpoint in selected:
            wrk(server.url, endpoint, warm_up, env, seeded["api_key"], run=-1)
        before = server.worker_rss_kb()
        rows = []
        for endpoint in selected:
            runs = [wrk(server.url, endpoint, args, env, seeded["api_key"], run) for run in range(args.runs)]
            rows.append({**summarise(endpoint.name, runs, endpoint.items_per_request), "ceiling": endpoint.ceiling})
            print(json.dumps({key: value for key, value in rows[-1].items() if key != "runs"}), flush=True)
        memory = {"before_kb": before, "after_kb": server.worker_rss_kb(), "requests": sum(r["requests"] for r in rows)}
    finally:
        server.stop()
    return rows, memory


def measure_ceiling(env: dict[str, str], name: str, args: argparse.Namespace) -> dict:
    server = Gunicorn(f"bench.baselines:{name}", env)
    endpoint = Endpoint(f"ceiling: {name}", "/health/liveness", authenticated=False)
    try:
        runs = [wrk(server.url, endpoint, args, env, "", run) for run in range(args.runs)]
    finally:
        server.stop()
    summary = summarise(endpoint.name, runs, 1)
    print(json.dumps({key: value for key, value in summary.items() if key != "runs"}), flush=True)
    return summary


def write_results(args: argparse.Namespace, rows: list[dict], ceilings: dict[str, dict], memory: dict) -> None:
    for row in rows:
        ceiling = ceilings.get(row["ceiling"])
        row["ratio_to_ceiling"] = round(row["requests_per_s"] / ceiling["requests_per_s"], 2) if ceiling else None
    growth = [after / before - 1 for before, after in zip(memory["before_kb"], memory["after_kb"], strict=False)]
    memory["growth"] = [round(value, 3) for value in growth]
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {key: getattr(args, key) for key in ("leads", "outreach", "duration", "runs", "connections")}
    (RESULTS / "api.json").write_text(
        json.dumps({"settings": settings, "endpoints": rows, "ceilings": ceilings, "memory": memory}, indent=2)
    )
    lines = [
        f"# API load ({args.leads} leads, {args.outreach} outreach, 20 variants; median of {args.runs} runs)",
        "",
        f"gunicorn with deploy/gunicorn.conf.py, {WORKERS} workers on this 2-core machine, PostgreSQL, Redis cache,",
        f"tansu broker; wrk -t2 -c{args.connections} -d{args.duration}s on the same machine (it shares the cores).",
        "Errors are socket errors and timeouts; non-2xx counts responses of 400 or more. Ratio: req/s over the",
        "ceiling's req/s, both measured in this run.",
        "",
        "| endpoint | req/s | items/s | p50 ms | p95 ms | p99 ms | errors | non-2xx | ratio to ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in [*rows, *ceilings.values()]:
        lines.append(
            f"| {row['endpoint']} | {row['requests_per_s']} | {row['items_per_s']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} | {row['non_2xx']} | "
            f"{row.get('ratio_to_ceiling') or ''} |"
        )
    lines += [
        "",
        f"Worker RSS after a 2 s warm-up per endpoint: {memory['before_kb']} kB; after {memory['requests']} more"
        f" requests: {memory['after_kb']} kB"
        f" (growth {memory['growth']}).",
    ]
    (RESULTS / "api.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "api.md").read_text())


if __name__ == "__main__":
    main()
