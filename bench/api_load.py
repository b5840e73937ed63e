"""API load bench: each endpoint under wrk, against ceilings measured in the same run.

Per data set (DATA_SETS: the bench's own 100,000 leads, and the 10,000 leads, 3 experiments and
5,000 outreach the original FastAPI app was compared on), a fresh PostgreSQL database is served
by gunicorn with the production configuration (deploy/gunicorn.conf.py, 2 workers), the Redis
cache (emptied per set), a tansu broker (so writes stop at the outbox, as in production) and
rate limits raised out of the way. wrk drives each endpoint with CONNECTIONS connections, RUNS
runs of DURATION seconds. The same gunicorn configuration then serves two bare WSGI callables
(bench/baselines.py): a fixed JSON body (the ceiling for liveness) and the lead list's own SQL on
psycopg (the ceiling for the list). Then a line per target of issue 16, met or missed; the
in-process targets are read from bench/results/api_inprocess.json when bench/api_inprocess.py
has written it. Results: bench/results/api.{md,json}.

    make bench-api                 # or: python bench/api_load.py --duration 20 --runs 3
    python bench/api_load.py --sets 10k --duration 5 --runs 1 --only lead   # a quick look
    python bench/api_load.py --sets 10k --duration 10 --profile "lead detail"   # under py-spy

With --profile NAME, the one endpoint named so is driven by wrk while py-spy samples gunicorn's
workers (bench/results/api_profile_<name>.txt: the functions holding most samples, on their own
and with what they call); no results are written and the figures under py-spy are not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.servers import SERVICE_ENV, Gunicorn  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_api"
DATABASE_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
WORKERS = 2
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")
INPROCESS = RESULTS / "api_inprocess.json"  # written by bench/api_inprocess.py, if it has run


@dataclass(frozen=True)
class DataSet:
    leads: int
    variants: int
    experiments: int
    outreach: int


DATA_SETS = {"100k": DataSet(100_000, 20, 4, 50_000), "10k": DataSet(10_000, 9, 3, 5_000)}
# Issue 16's targets, at 64 connections with 0 errors: twice the original app's 15-connection
# req/s on the 10,000-lead set, and ratios to the ceilings on the 100,000-lead set.
P99_MS = 200
MIN_REQUESTS_PER_S_10K = {
    "lead list (50 a page, status filter)": 350,
    "experiments with posteriors": 1500,
    "dashboard activity": 480,
    "lead stats": 800,
    "dashboard funnel": 800,
}
MIN_RATIO_100K = {"lead list (50 a page, status filter)": 0.7, "liveness": 0.8}
# In process (bench/api_inprocess.py's endpoint names): CPU ms per request at most.
MAX_CPU_MS = {"lead stats (cached)": 1.0, "lead list (50 a page, status filter)": 3.0}


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    script: str = "get.lua"
    items_per_request: int = 1
    ceiling: str = ""  # the baseline callable this endpoint is compared with
    authenticated: bool = True
    reads: bool = True  # a read endpoint: its p99 is held to the target


def endpoints(lead_id: int, lead_list_url: str) -> list[Endpoint]:
    return [
        Endpoint("liveness", "/health/liveness", ceiling="fixed_json", authenticated=False),
        Endpoint("readiness", "/health/readiness", authenticated=False),
        Endpoint("lead list (50 a page, status filter)", lead_list_url, ceiling="lead_list"),
        Endpoint("lead detail", f"/api/v1/leads/{lead_id}"),
        Endpoint("outreach list (50 a page)", "/api/v1/outreach"),
        Endpoint("lead stats", "/api/v1/leads/stats"),
        Endpoint("dashboard funnel", "/api/v1/dashboard/funnel"),
        Endpoint("dashboard activity", "/api/v1/dashboard/activity"),
        Endpoint("experiments with posteriors", "/api/v1/experiments"),
        Endpoint(
            "ingest (batches of 100)", "/api/v1/leads/ingest", script="ingest.lua", items_per_request=100, reads=False
        ),
        Endpoint("engagements", "/api/v1/engagements", script="engagements.lua", reads=False),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(DATA_SETS), help=f"data sets, of {', '.join(DATA_SETS)}")
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", help="run only endpoints whose name contains this")
    parser.add_argument("--profile", metavar="NAME", help="py-spy over gunicorn's workers while wrk drives NAME")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    names = [name.strip() for name in args.sets.split(",")]
    if unknown := [name for name in names if name not in DATA_SETS]:
        sys.exit(f"unknown data set {', '.join(unknown)}: choose from {', '.join(DATA_SETS)}")

    from tests.stand_ins import TansuBroker

    results = {}
    for name in names:
        data = DATA_SETS[name]
        prepare_database()
        seeded = seed(data)
        broker = TansuBroker().start()
        env = server_env(broker.bootstrap, seeded)
        try:
            if args.profile:
                profile_endpoint(env, seeded, args)
                continue
            # Ceilings first: the write endpoints measured last grow the leads table.
            ceilings = {ceiling: measure_ceiling(env, ceiling, args) for ceiling in ("fixed_json", "lead_list")}
            rows, memory = measure_service(env, seeded, args)
        finally:
            broker.stop()
        results[name] = {"data": vars(data), "endpoints": rows, "ceilings": ceilings, "memory": memory}
    if not args.profile:
        write_results(args, results)


def prepare_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    env = {**os.environ, **base_env()}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # the bench's own database: no figures cached by another set


def base_env() -> dict[str, str]:
    return {"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, **SERVICE_ENV}


def seed(data: DataSet) -> dict:
    env = {**os.environ, **base_env()}
    started = time.monotonic()
    counts = (data.leads, data.variants, data.outreach, data.experiments)
    output = subprocess.run(
        [sys.executable, "bench/api_seed.py", *(str(count) for count in counts)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(f"seeded {data} in {time.monotonic() - started:.0f} s", flush=True)
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
            summary = summarise(endpoint.name, runs, endpoint.items_per_request)
            rows.append({**summary, "ceiling": endpoint.ceiling, "reads": endpoint.reads})
            print(json.dumps({key: value for key, value in rows[-1].items() if key != "runs"}), flush=True)
        memory = {"before_kb": before, "after_kb": server.worker_rss_kb(), "requests": sum(r["requests"] for r in rows)}
    finally:
        server.stop()
    return rows, memory


def profile_endpoint(env: dict[str, str], seeded: dict, args: argparse.Namespace) -> None:
    from bench.pipeline_throughput import py_spy

    named = {e.name: e for e in endpoints(seeded["lead_id"], seeded["lead_list_url"])}
    if args.profile not in named:
        sys.exit(f"no endpoint named {args.profile!r}: choose from {', '.join(named)}")
    endpoint = named[args.profile]
    server = Gunicorn("pipeline_whisperer.wsgi:application", env)
    raw = Path(tempfile.mkdtemp(prefix="pw-profile-")) / "stacks.txt"
    try:
        wrk(server.url, endpoint, argparse.Namespace(**{**vars(args), "duration": 2}), env, seeded["api_key"], run=-1)
        command = [py_spy(), "record", "--pid", str(server.process.pid), "--subprocesses", "--gil", "--rate", "50"]
        command += ["--format", "raw", "--duration", str(args.duration + 1), "-o", str(raw)]
        sampling = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # py-spy attaches before the load starts
        figures = wrk(server.url, endpoint, args, env, seeded["api_key"], run=0)
        sampling.wait(60)
    finally:
        server.stop()
    report = RESULTS / f"api_profile_{endpoint.name.split(' (')[0].replace(' ', '-')}.txt"
    heading = f"{endpoint.name}: {figures['requests_per_s']:.0f} req/s under py-spy, {args.connections} connections"
    report.write_text(heading + "\n\n" + summarise_stacks(raw.read_text()))
    print(report.read_text())


def summarise_stacks(collapsed: str, top: int = 40) -> str:
    """py-spy's collapsed stacks (`frame;frame;... count`) as the functions holding most samples on
    their own, then with their callees, each as a share of the samples of the busy threads."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame.split(" (")[0] + " (" + frame.split("/")[-1] for frame in stack.split(";")[1:]]
        if not frames or any(idle in frames[-1] for idle in ("select (", "wait (", "poll (", "accept (")):
            continue  # a thread waiting for work: not the cost of a request
        count = int(count_text)
        samples += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    lines = [f"{samples} busy samples", "", "own share | function"]
    lines += [f"{count / samples:6.1%} | {frame}" for frame, count in sorted(own.items(), key=lambda i: -i[1])[:top]]
    lines += ["", "total share | function (with what it calls)"]
    lines += [f"{count / samples:6.1%} | {frame}" for frame, count in sorted(total.items(), key=lambda i: -i[1])[:top]]
    return "\n".join(lines) + "\n"


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


def write_results(args: argparse.Namespace, results: dict[str, dict]) -> None:
    for result in results.values():
        for row in result["endpoints"]:
            ceiling = result["ceilings"].get(row["ceiling"])
            row["ratio_to_ceiling"] = round(row["requests_per_s"] / ceiling["requests_per_s"], 2) if ceiling else None
        memory = result["memory"]
        growth = [after / before - 1 for before, after in zip(memory["before_kb"], memory["after_kb"], strict=False)]
        memory["growth"] = [round(value, 3) for value in growth]
    targets = _targets(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {key: getattr(args, key) for key in ("sets", "duration", "runs", "connections")}
    (RESULTS / "api.json").write_text(json.dumps({"settings": settings, "sets": results, "targets": targets}, indent=2))
    lines = [
        f"# API load (median of {args.runs} runs)",
        "",
        f"gunicorn with deploy/gunicorn.conf.py, {WORKERS} workers on this 2-core machine, PostgreSQL, Redis cache,",
        f"tansu broker; wrk -t2 -c{args.connections} -d{args.duration}s on the same machine (it shares the cores).",
        "Errors are socket errors and timeouts; non-2xx counts responses of 400 or more. Ratio: req/s over the",
        "ceiling's req/s, both measured in this run. `python bench/api_load.py --sets "
        f"{args.sets} --duration {args.duration} --runs {args.runs}`.",
    ]
    for name, result in results.items():
        lines += _table(name, result)
    lines += ["", "## Targets (issue 16)", ""]
    lines += [f"- {'met' if t['met'] else 'MISSED'}: {t['target']}: {t['figure']}" for t in targets]
    (RESULTS / "api.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "api.md").read_text())


def _table(name: str, result: dict) -> list[str]:
    data, memory = result["data"], result["memory"]
    lines = [
        "",
        f"## {name}: {data['leads']} leads, {data['experiments']} experiments of {data['variants']} variants in all, "
        f"{data['outreach']} outreach",
        "",
        "| endpoint | req/s | items/s | p50 ms | p95 ms | p99 ms | errors | non-2xx | ratio to ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in [*result["endpoints"], *result["ceilings"].values()]:
        lines.append(
            f"| {row['endpoint']} | {row['requests_per_s']} | {row['items_per_s']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} | {row['non_2xx']} | "
            f"{row.get('ratio_to_ceiling') or ''} |"
        )
    lines += [
        "",
        f"Worker RSS after a 2 s warm-up per endpoint: {memory['before_kb']} kB; after {memory['requests']} more"
        f" requests: {memory['after_kb']} kB (growth {memory['growth']}).",
    ]
    return lines


def _targets(results: dict[str, dict]) -> list[dict]:
    lines = []
    for name, result in results.items():
        for row in result["endpoints"]:
            if row["reads"]:
                clean = row["errors"] == 0 and row["non_2xx"] == 0
                figure = f"{row['p99_ms']} ms, {row['errors']} errors, {row['non_2xx']} non-2xx"
                met = row["p99_ms"] < P99_MS and clean
                lines.append(_line(f"{name}: {row['endpoint']} p99 < {P99_MS} ms, 0 errors", met, figure))
            floor = MIN_REQUESTS_PER_S_10K.get(row["endpoint"]) if name == "10k" else None
            if floor:
                lines.append(_line(f"10k: {row['endpoint']} >= {floor} req/s", row["requests_per_s"] >= floor,
                                   f"{row['requests_per_s']} req/s"))  # fmt: skip
            least = MIN_RATIO_100K.get(row["endpoint"]) if name == "100k" else None
            if least:
                ratio = row["ratio_to_ceiling"]
                lines.append(_line(f"100k: {row['endpoint']} >= {least} of its ceiling", ratio >= least,
                                   f"{ratio} ({row['requests_per_s']} req/s)"))  # fmt: skip
    return lines + _inprocess_targets()


def _inprocess_targets() -> list[dict]:
    """The CPU-per-request targets, from bench/api_inprocess.py's last results when there are any
    (it measures in process, steadier than req/s on a shared machine; run it before this)."""
    measured = {}
    if INPROCESS.exists():
        measured = {row["endpoint"]: row["cpu_ms"] for row in json.loads(INPROCESS.read_text())["endpoints"]}
    lines = []
    for endpoint, most in MAX_CPU_MS.items():
        cpu_ms = measured.get(endpoint)
        figure = f"{cpu_ms} ms ({INPROCESS.name})" if cpu_ms is not None else "not measured: run bench/api_inprocess.py"
        lines.append(_line(f"in process: {endpoint} <= {most} ms CPU a request", bool(cpu_ms and cpu_ms <= most),
                           figure))  # fmt: skip
    return lines


def _line(target: str, met: bool, figure: str) -> dict:
    return {"target": target, "met": met, "figure": figure}


if __name__ == "__main__":
    main()
