"""In-process API bench: CPU milliseconds per request, from a loop over the WSGI app.

No server, no sockets: each request is a prepared WSGI environ handed to the application that
gunicorn serves (pipeline_whisperer.wsgi), with the production settings (DEBUG off, PostgreSQL
with its pool, the Redis cache and rate-limit counters, limits raised out of the way so every
request is still counted). CPU time (time.process_time) is this process's only, so the figure
is what the web worker spends; PostgreSQL's and Redis's own CPU is not in it. That is steadier
than req/s on a shared machine, but the other engineers' load still shows: compare only figures
of one run.

Beside the endpoints, the framework floor: a plain Django view and a trivial DRF APIView (no
authentication, no permission, JSON renderer) through a handler with no middleware at all, and
the same APIView with our API-key authentication (the key looked up on every request, as with no
API-key generation to go by, and remembered, as the rate limits' round trip lets it be), so
what Django and DRF themselves need is a measured number.

The database `pw_bench_inprocess` is dropped, created, migrated and seeded by bench/api_seed.py
(LEADS leads, 20 variants, OUTREACH outreach) unless --reuse is given.

    python bench/api_inprocess.py [--leads 10000] [--requests 400] [--rounds 5] [--reuse]
    python bench/api_inprocess.py --reuse --profile "lead stats"   # pyinstrument call tree, SQL, cache reads
    python bench/api_inprocess.py --variants 9 --experiments 3 --profile experiments   # the load bench's 10k set
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.servers import SERVICE_ENV  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = os.environ.get("BENCH_INPROCESS_DATABASE", "pw_bench_inprocess")
ENV = {
    "DJANGO_SETTINGS_MODULE": "pipeline_whisperer.settings",
    "DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
    "CACHE_KEY_PREFIX": "pw-bench-inprocess",
    **SERVICE_ENV,
    "RATE_LIMIT_PER_MINUTE": "100000000",
    "RATE_LIMIT_PER_HOUR": "1000000000",
}
# Endpoint name, path and query, whether it takes the API key; the first is the fixed cost.
ENDPOINTS = [
    ("lead stats (cached)", "/api/v1/leads/stats", True),
    ("dashboard funnel (cached)", "/api/v1/dashboard/funnel", True),
    ("liveness", "/health/liveness", False),
    ("lead list (50 a page, status filter)", "/api/v1/leads?status=scored", True),
    ("experiments with posteriors", "/api/v1/experiments", True),
    ("dashboard activity", "/api/v1/dashboard/activity", True),
]
FLOOR = [
    ("floor: plain Django view", "/floor/django", False),
    ("floor: DRF APIView, no auth", "/floor/drf", False),
    # With no rate-limit middleware no API-key generation is read, so the key is looked up in
    # PostgreSQL on every request (the SHA-512 itself is microseconds): what a worker pays when
    # Redis cannot say whether keys changed.
    ("floor: DRF APIView + API-key auth, key looked up", "/floor/drf-api-key", True),
    # The generation given as the rate-limit middleware gives it: the key remembered, as served.
    ("floor: DRF APIView + API-key auth, key remembered", "/floor/drf-api-key-remembered", True),
]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# What the floor's remembered-key row says the API keys' generation is; any value works, as long
# as it stays the same.
API_KEY_GENERATION = 0


def prepare_database(*, leads: int, variants: int, experiments: int, outreach: int) -> str:
    """A fresh, migrated and seeded bench database; returns a new write API key."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    env = {**os.environ, **ENV}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    output = subprocess.run(
        [sys.executable, "bench/api_seed.py", *(str(n) for n in (leads, variants, outreach, experiments))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return str(json.loads(output.strip().splitlines()[-1])["api_key"])


def new_api_key() -> str:
    from pipeline_whisperer.models import ApiKey

    _, key = ApiKey.objects.create_key(name="bench in-process", scope=ApiKey.Scope.WRITE)
    return str(key)


def environ_for(path_and_query: str, api_key: str | None) -> dict[str, Any]:
    """What gunicorn hands the app for `GET path_and_query` from a loopback client."""
    path, _, query = path_and_query.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
    }
    if api_key:
        environ["HTTP_X_API_KEY"] = api_key
    return environ


def call(app: WsgiApp, environ: dict[str, Any]) -> str:
    """One request through `app`; returns the status line, the body read and closed as a server would."""
    status = ""

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        nonlocal status
        status = line

    body = app({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
    try:
        for _chunk in body:
            pass
    finally:
        getattr(body, "close", lambda: None)()
    return status


def cpu_ms_per_request(app: WsgiApp, environ: dict[str, Any], *, requests: int, rounds: int) -> dict[str, Any]:
    status = call(app, environ)
    if not status.startswith("200"):
        raise SystemExit(f"{environ['PATH_INFO']} answered {status}, not 200: the bench would measure an error")
    for _ in range(min(requests, 50)):  # warm: pools, caches, lazy imports
        call(app, environ)
    per_round = []
    wall = []
    for _ in range(rounds):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            call(app, environ)
        per_round.append((time.process_time() - started_cpu) * 1000 / requests)
        wall.append((time.perf_counter() - started_wall) * 1000 / requests)
    return {
        "cpu_ms": round(statistics.median(per_round), 3),
        "cpu_ms_rounds": [round(value, 3) for value in per_round],
        "wall_ms": round(statistics.median(wall), 3),
    }


def floor_handler() -> WsgiApp:
    """Django's WSGIHandler with no middleware, routing only the floor views (this module's urlpatterns)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpRequest, HttpResponseBase
    from django.test.utils import override_settings

    class FloorHandler(WSGIHandler):
        def get_response(self, request: HttpRequest) -> HttpResponseBase:
            request.urlconf = "bench.api_inprocess"  # as a middleware may set it: no settings change per request
            if request.path_info.endswith("-remembered"):
                request.api_key_generation = API_KEY_GENERATION  # type: ignore[attr-defined]
            return super().get_response(request)

    with override_settings(MIDDLEWARE=[]):
        return FloorHandler()  # reads MIDDLEWARE now


def _floor_urlpatterns() -> list[Any]:
    from django.http import JsonResponse
    from django.urls import path
    from rest_framework.renderers import JSONRenderer
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from pipeline_whisperer.auth import ApiKeyAuthentication, HasApiAccess

    class Bare(APIView):
        authentication_classes = ()
        permission_classes = ()
        renderer_classes = (JSONRenderer,)

        def get(self, request: Any) -> Response:
            return Response({"status": "ok"})

    class WithApiKey(Bare):
        authentication_classes = (ApiKeyAuthentication,)
        permission_classes = (HasApiAccess,)

    return [
        path("floor/django", lambda request: JsonResponse({"status": "ok"})),
        path("floor/drf", Bare.as_view()),
        path("floor/drf-api-key", WithApiKey.as_view()),
        path("floor/drf-api-key-remembered", WithApiKey.as_view()),
    ]


def __getattr__(name: str) -> Any:
    # Django reads `urlpatterns` when it resolves the floor's first request, after setup.
    if name == "urlpatterns":
        return _floor_urlpatterns()
    raise AttributeError(name)


def profile(app: WsgiApp, environ: dict[str, Any], *, name: str, requests: int) -> Path:
    from pyinstrument import Profiler

    for _ in range(50):
        call(app, environ)
    profiler = Profiler(interval=0.0002)
    with profiler:
        for _ in range(requests):
            call(app, environ)
    slug = "".join(char if char.isalnum() else "-" for char in name.lower()).strip("-")
    path = RESULTS / f"api_inprocess_profile_{slug}.txt"
    path.write_text(profiler.output_text(unicode=True, color=False, show_all=False) + reads_of_one(app, environ))
    return path


def reads_of_one(app: WsgiApp, environ: dict[str, Any]) -> str:
    """The SQL of one more request and the cache outcomes of the whole loop: a value recomputed
    on every request (a key that keeps changing) shows as misses, not hits."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from prometheus_client import REGISTRY

    with CaptureQueriesContext(connection) as queries:
        call(app, environ)
    lines = [f"\nSQL of one request ({len(queries.captured_queries)} statements):"]
    lines += [f"  {query['sql'][:160]}" for query in queries.captured_queries]
    lines.append("Cache reads of this run:")
    for metric in REGISTRY.collect():
        if metric.name == "pipeline_cache_requests":
            counts = [sample for sample in metric.samples if sample.name.endswith("_total")]
            lines += [f"  {c.labels['name']} {c.labels['result']}: {c.value:.0f}" for c in counts]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--outreach", type=int, default=5_000)
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--experiments", type=int, default=4, help="the load bench's 10k set is 9 variants in 3")
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the seeded database of the last run")
    parser.add_argument("--only", help="measure only endpoints whose name contains this")
    parser.add_argument("--profile", metavar="NAME", help="pyinstrument over the loop of the endpoint named so")
    args = parser.parse_args()
    os.environ.update(ENV)
    api_key = (
        None
        if args.reuse
        else prepare_database(
            leads=args.leads, variants=args.variants, experiments=args.experiments, outreach=args.outreach
        )
    )
    import django

    django.setup()
    from django.core.cache import caches

    from pipeline_whisperer.wsgi import application

    api_key = api_key or new_api_key()
    caches["ratelimit"].clear()  # this run's counters only (the bench's own key prefix)
    floor = floor_handler()
    selected = [(name, path, keyed, application) for name, path, keyed in ENDPOINTS]
    selected += [(name, path, keyed, floor) for name, path, keyed in FLOOR]
    if args.only or args.profile:
        wanted = args.profile or args.only
        selected = [row for row in selected if wanted in row[0]]
        if not selected:
            raise SystemExit(f"no endpoint is named like {wanted!r}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        name, path, keyed, app = selected[0]
        written = profile(app, environ_for(path, api_key if keyed else None), name=name, requests=args.requests)
        print(f"profile of {name!r} over {args.requests} requests: {written.relative_to(ROOT)}")
        return
    rows = []
    for name, path, keyed, app in selected:
        figures = cpu_ms_per_request(
            app, environ_for(path, api_key if keyed else None), requests=args.requests, rounds=args.rounds
        )
        rows.append({"endpoint": name, "path": path, **figures})
        print(json.dumps(rows[-1]), flush=True)
    write_results(args, rows)


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    names = ("leads", "variants", "experiments", "outreach", "requests", "rounds")
    settings = {key: getattr(args, key) for key in names}
    (RESULTS / "api_inprocess.json").write_text(json.dumps({"settings": settings, "endpoints": rows}, indent=2))
    lines = [
        f"# API in process ({args.leads} leads; median of {args.rounds} rounds of {args.requests} requests)",
        "",
        "A loop over the WSGI app in one process (bench/api_inprocess.py), production settings, PostgreSQL and",
        "Redis on loopback. CPU ms: time.process_time of this process per request (PostgreSQL's and Redis's",
        "own CPU not included); wall ms beside it. The floor rows go through a handler with no middleware.",
        "The machine is shared with other work: compare only rows of one run.",
        "",
        "| endpoint | CPU ms per request | wall ms per request | CPU ms per round |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in rows:
        rounds = ", ".join(str(value) for value in row["cpu_ms_rounds"])
        lines.append(f"| {row['endpoint']} | {row['cpu_ms']} | {row['wall_ms']} | {rounds} |")
    (RESULTS / "api_inprocess.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "api_inprocess.md").read_text())


if __name__ == "__main__":
    main()
