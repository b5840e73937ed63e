"""Gunicorn worker classes, workers and threads side by side: req/s and p99 under wrk for a cached
endpoint, the lead list and liveness.

Serves the database bench/api_inprocess.py seeded (run it first) with deploy/gunicorn.conf.py,
overriding only the worker class, workers and threads, in the same run, alternating
configurations RUNS times. Results: bench/results/gunicorn_workers.{md,json}.

    python bench/gunicorn_workers.py [--duration 10] [--runs 2] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.api_inprocess import ENV, RESULTS  # noqa: E402
from tests.stand_ins import free_port  # noqa: E402

CONFIGURATIONS = [
    ("sync", 2, 1),
    ("sync", 4, 1),
    ("gthread", 2, 1),
    ("gthread", 2, 2),
    ("gthread", 2, 4),
    ("gthread", 4, 2),
]
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")
ENDPOINTS = [
    ("lead stats (cached)", "/api/v1/leads/stats", True),
    ("lead list (50 a page, status filter)", "/api/v1/leads?status=scored", True),
    ("liveness", "/health/liveness", False),
]


def serve(worker_class: str, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    metrics_dir = tempfile.mkdtemp(prefix="pw-metrics-")
    env = {
        **os.environ,
        **ENV,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_MAX_REQUESTS": "0",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--worker-class", worker_class]
    command += ["--access-logfile", "/dev/null"]  # wrk's own lines would cost the server as in production
    process = subprocess.Popen([*command, "pipeline_whisperer.wsgi:application"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/health/liveness", timeout=2)  # noqa: S310 - loopback
            return process, url, metrics_dir
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wrk(url: str, api_key: str | None, args: argparse.Namespace) -> dict:
    command = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s"]
    command += ["-s", "bench/wrk/get.lua"] + (["-H", f"X-API-Key: {api_key}"] if api_key else [])
    output = subprocess.run([*command, url], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH_JSON "))
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    figures["requests_per_s"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    env = {**os.environ, **ENV}
    api_key = subprocess.run(
        [sys.executable, "manage.py", "apikey", "create", "bench workers", "--scope", "read"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    runs: dict[str, list[dict]] = {}
    for _ in range(args.runs):
        for worker_class, workers, threads in CONFIGURATIONS:
            process, url, metrics_dir = serve(worker_class, workers, threads)
            try:
                for name, path, keyed in ENDPOINTS:
                    wrk(url + path, api_key if keyed else None, argparse.Namespace(**{**vars(args), "duration": 2}))
                    figures = wrk(url + path, api_key if keyed else None, args)
                    runs.setdefault(f"{worker_class} | {workers} x {threads} | {name}", []).append(figures)
                    print(
                        worker_class,
                        workers,
                        threads,
                        name,
                        round(figures["requests_per_s"]),
                        figures["p99_us"],
                        flush=True,
                    )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
                shutil.rmtree(metrics_dir, ignore_errors=True)
    lines = [
        f"# gunicorn worker classes (wrk -c{args.connections} -d{args.duration}s, median of {args.runs})",
        "",
        "The machine is shared with other work and wrk runs on the same two cores: compare rows of one run.",
        "",
        "| worker class | workers x threads | endpoint | req/s | p99 ms | socket errors | non-2xx |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for label, figures in runs.items():
        rate = statistics.median(run["requests_per_s"] for run in figures)
        p99 = statistics.median(run["p99_us"] for run in figures) / 1000
        errors = sum(run[key] for run in figures for key in SOCKET_ERRORS)
        non_2xx = sum(run["non_2xx_3xx"] for run in figures)
        lines.append(f"| {label} | {rate:.0f} | {p99:.1f} | {errors} | {non_2xx} |")
    (RESULTS / "gunicorn_workers.json").write_text(json.dumps(runs, indent=2))
    (RESULTS / "gunicorn_workers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
