"""Pipeline throughput on PostgreSQL and tansu, beside two ceilings measured in the same run.

Each run: a fresh database (migrated, `seed_demo --leads 0`) and a fresh tansu broker; LEADS
seeded events produced to leads.raw up front (`simulate_leads --to kafka`). Then, one after the
other, on the same broker and leads and with the same batch size:
  ceiling (a)  a bare confluent-kafka consumer reads leads.raw in batches and commits offsets
               synchronously after each (bench/pipeline_ceiling.py kafka), its own group;
  ceiling (b)  the same plus one multi-row INSERT per batch into a copy of leads_lead (insert);
  the stages   every stage `run_pipeline` offers but `all`, each its own
               `manage.py run_pipeline STAGE --batch-size B` process: rule scorer, mail over SMTP
               to bench/smtp_sink.py (aiosmtpd, its own process, counts only).
Each clock starts when its processes start. A stage is done when it did its part for every lead
(scorer: every lead scored; outreach: every lead contacted or disqualified; feedback: outreach.sent
applied for every contacted lead; relay: every outbox event published); end to end is when all
are. leads/s = leads / seconds to done. Start-up = seconds to the first completion (the consumer
group join is in it). Steady state = completions after the first / seconds from the first to the
last. A stage's completions are the database's timestamps of its work (ProcessedEvent rows of the
stage; the relay's published_at), a ceiling's the time of each batch's commit. Peak RSS is
VmHWM of each stage's python process just before it is stopped. Figures are medians of RUNS runs,
ratios taken within a run; results in bench/results/pipeline.{json,md}.

    make bench-pipeline                                   # --leads 20000 --runs 3 --batch-size 500
    python bench/pipeline_throughput.py --leads 2000 --runs 1
    python bench/pipeline_throughput.py --leads 2000 --runs 1 --profile scorer   # under py-spy
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
LOGS = ROOT / "var" / "bench-pipeline"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_pipeline"
DATABASE_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
MANAGE = [sys.executable, "manage.py"]
ENV = {  # every process of the run: the production configuration, the rule scorer, SMTP mail
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "LOG_LEVEL": "WARNING",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "EMAIL_HOST": "127.0.0.1",
}
UNSET = ("OPENAI_API_KEY", "REDIS_URL", "SENTRY_DSN", "PIPELINE_BATCH_SIZE", "DJANGO_SETTINGS_MODULE")
# What one completion of a stage is, and the query giving the time of each.
APPLIED = "SELECT processed_at FROM leads_processedevent WHERE stage = %(stage)s"
COMPLETIONS = {
    "relay": ("outbox events published", "SELECT published_at FROM leads_outboxevent WHERE published_at IS NOT NULL"),
    "dispatch": ("mails sent", "SELECT sent_at FROM leads_outreach WHERE sent_at IS NOT NULL"),
    "scorer": ("leads.raw events applied (one per lead)", APPLIED),
    "outreach": ("lead.scored events applied (one per lead)", APPLIED),
    "feedback": ("outreach.sent events applied (one per contacted lead)", APPLIED),
}
PROGRESS = """SELECT count(*) FILTER (WHERE scored_at IS NOT NULL),
    count(*) FILTER (WHERE status IN ('contacted', 'disqualified')),
    count(*) FILTER (WHERE status = 'contacted'),
    (SELECT count(*) FROM leads_processedevent WHERE stage = 'feedback'),
    (SELECT count(*) FROM leads_outboxevent WHERE published_at IS NULL)
FROM leads_lead"""
CEILINGS = {"a": "kafka", "b": "insert"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500, help="run_pipeline --batch-size, and the ceilings'")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a run's stages may take")
    parser.add_argument("--profile", metavar="STAGE", help="run STAGE under py-spy (results are then not written)")
    parser.add_argument("--profile-format", choices=["flamegraph", "speedscope"], default="flamegraph")
    args = parser.parse_args()
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(ENV)
    stages = stage_names()
    if args.profile and args.profile not in stages:
        parser.error(f"--profile: one of {', '.join(stages)}")
    runs = [run_once(args, stages, number) for number in range(1, args.runs + 1)]
    report = {
        "leads": args.leads,
        "batch_size": args.batch_size,
        "stages": stages,
        "profiled": args.profile,
        "runs": runs,
        "median": median([{key: value for key, value in run.items() if key not in ("run", "checks")} for run in runs]),
    }
    markdown = render(report)
    if not args.profile:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "pipeline.md").write_text(markdown)
    print(markdown)


def stage_names() -> list[str]:
    """The stages `run_pipeline` offers but `all`, read from its argument parser."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "pipeline_whisperer.settings"
    import django
    from django.core.management import load_command_class

    django.setup()
    parser = load_command_class("leads", "run_pipeline").create_parser("manage.py", "run_pipeline")
    choices = next(action.choices for action in parser._actions if action.dest == "stage")
    return [name for name in choices if name != "all"]


def run_once(args: argparse.Namespace, stages: list[str], number: int) -> dict[str, Any]:
    import psycopg

    from tests.stand_ins import TansuBroker

    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DATABASE}")
    broker = TansuBroker().start()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    try:
        manage(env, "migrate", "-v0")
        manage(env, "seed_demo", "--leads", "0", "-v0")
        with psycopg.connect(DATABASE_URL, autocommit=True) as db:
            db.execute("CREATE TABLE bench_ceiling_lead (LIKE leads_lead INCLUDING ALL)")
        seed = ["--count", str(args.leads), "--to", "kafka", "--seed", str(number), "--batch", "1000", "-v0"]
        manage(env, "simulate_leads", *seed)
        ceilings = {name: ceiling(name, broker.bootstrap, args, number) for name in CEILINGS}
        result = measure_stages(env, stages, args, number)
    finally:
        broker.stop()
    scorer = result["stages"]["scorer"]
    result["scorer_to_ceiling"] = {
        f"{measure}_{name}": ratio(scorer[measure], ceilings[name][measure])
        for measure in ("leads_per_s", "steady_per_s")
        for name in CEILINGS
    }
    result = {"run": number, **result, "ceilings": ceilings}
    print(json.dumps(result), flush=True)
    return result


def manage(env: dict[str, str], *command: str) -> None:
    subprocess.run([*MANAGE, *command], cwd=ROOT, env=env, check=True)


def ceiling(name: str, bootstrap: str, args: argparse.Namespace, number: int) -> dict[str, Any]:
    command = [sys.executable, "bench/pipeline_ceiling.py", CEILINGS[name], "--bootstrap", bootstrap]
    command += ["--group", f"bench-ceiling-{name}-{number}", "--leads", str(args.leads)]
    command += ["--batch-size", str(args.batch_size), "--database-url", DATABASE_URL]
    started = time.time()
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=args.timeout)
    batches = json.loads(output.stdout.splitlines()[-1])["batches"]
    return timing(started, [(moment, count) for moment, count in batches], args.leads)


def measure_stages(env: dict[str, str], stages: list[str], args: argparse.Namespace, number: int) -> dict[str, Any]:
    import psycopg

    from tests.stand_ins import free_port, wait_for_port

    port = free_port()
    sink = subprocess.Popen([sys.executable, "bench/smtp_sink.py", str(port)], cwd=ROOT, stdout=subprocess.PIPE)
    wait_for_port(port)
    env = {**env, "EMAIL_PORT": str(port)}
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    processes = {stage: start_stage(stage, env, args, number) for stage in stages}
    try:
        wait_until_done(processes, args.leads, args.timeout, number)
        pids = {stage: python_pid(process) for stage, process in processes.items()}
        peak_rss = {stage: peak_rss_mb(pid) for stage, pid in pids.items()}
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)  # the batch in hand commits, then the stage exits 0
        for process in processes.values():
            process.wait(60)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        sink.terminate()
        mails = json.loads(sink.communicate(timeout=30)[0])["messages"]
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        done = {stage: completions(db, stage) for stage in stages}
        statuses = dict(db.execute("SELECT status, count(*) FROM leads_lead GROUP BY status").fetchall())
        dead_letters = db.execute("SELECT count(*) FROM leads_deadletter").fetchone()[0]
    results = {stage: {**timing(started, done[stage], args.leads), "peak_rss_mb": peak_rss[stage]} for stage in stages}
    end = max(result["done_s"] for result in results.values() if "done_s" in result)
    return {
        "stages": results,
        "end_to_end": {"done_s": end, "leads_per_s": round(args.leads / end, 1)},
        "checks": {"statuses": statuses, "mails_received": mails, "dead_letters": dead_letters},
    }


def start_stage(stage: str, env: dict[str, str], args: argparse.Namespace, number: int) -> subprocess.Popen:
    command = [*MANAGE, "run_pipeline", stage, "--batch-size", str(args.batch_size)]
    if stage == args.profile:
        suffix = "svg" if args.profile_format == "flamegraph" else "speedscope.json"
        output = RESULTS / f"profile-{stage}.{suffix}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        command = [py_spy(), "record", "--idle", "--threads", "--nonblocking", "--subprocesses"]
        command += ["--format", args.profile_format]
        command += ["-o", str(output), "--", *MANAGE, "run_pipeline", stage, "--batch-size", str(args.batch_size)]
    with (LOGS / f"run{number}-{stage}.log").open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def py_spy() -> str:
    found = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        sys.exit("py-spy not found: pip install -r requirements-dev.txt")
    return found


def wait_until_done(processes: dict[str, subprocess.Popen], leads: int, timeout: float, number: int) -> None:
    """Until every lead is scored and contacted or disqualified, every outreach.sent is applied and
    the outbox is empty; a stage that exits meanwhile stops the benchmark."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(DATABASE_URL, autocommit=True) as db:
        while True:
            for stage, process in processes.items():
                if process.poll() is not None:
                    sys.exit(f"{stage} exited ({process.returncode}); see {LOGS}/run{number}-{stage}.log")
            scored, settled, contacted, fed, unpublished = db.execute(PROGRESS).fetchone()  # type: ignore[misc]
            if scored == leads and settled == leads and fed >= contacted and unpublished == 0:
                return
            if time.monotonic() > deadline:
                sys.exit(f"not done after {timeout} s: {scored} scored, {settled} settled, {fed} fed back")
            time.sleep(0.5)


def python_pid(process: subprocess.Popen) -> int:
    """The stage's python process: the one started, or under py-spy its child."""
    pending = [process.pid]
    while pending:
        pid = pending.pop(0)
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if Path(command[0].decode()).name.startswith("python") and b"run_pipeline" in command:
            return pid
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            pending += [int(child) for child in children.read_text().split()]
    raise RuntimeError(f"no run_pipeline python process under pid {process.pid}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for pid {pid}")


def completions(db: Any, stage: str) -> list[tuple[float, int]]:
    """(time, how many completions at that time) of a stage's work, from the database."""
    query = COMPLETIONS.get(stage, ("", ""))[1]
    if not query:
        return []
    moments = collections.Counter(row[0].timestamp() for row in db.execute(query, {"stage": stage}))
    return sorted(moments.items())


def timing(started: float, done: list[tuple[float, int]], leads: int) -> dict[str, Any]:
    """Start-up, done, leads/s and the steady-state rate of (time, count) completions."""
    if not done:
        return {}
    first, last = min(moment for moment, _ in done), max(moment for moment, _ in done)
    after_first = sum(count for moment, count in done if moment > first)
    return {
        "first_s": round(first - started, 2),
        "done_s": round(last - started, 2),
        "leads_per_s": round(leads / (last - started), 1),
        "steady_per_s": round(after_first / (last - first), 1) if last > first else None,
        "completions": sum(count for _, count in done),
    }


def ratio(part: float | None, whole: float | None) -> float | None:
    return float(f"{part / whole:.3g}") if part and whole else None


def median(values: list[Any]) -> Any:
    """The median of every number in a list of equally shaped dicts (None where none was measured)."""
    if isinstance(values[0], dict):
        return {key: median([value.get(key) for value in values]) for key in values[0]}
    numbers = [value for value in values if isinstance(value, int | float)]
    return float(f"{statistics.median(numbers):.6g}") if numbers else None


def render(report: dict[str, Any]) -> str:
    m, runs = report["median"], len(report["runs"])
    stages, ceilings, ratios = m["stages"], m["ceilings"], m["scorer_to_ceiling"]
    rows = [(stage, stages[stage], None) for stage in report["stages"]]
    ceiling_rows = [
        ("ceiling (a): consume + commit", ceilings["a"], "a"),
        ("ceiling (b): (a) + one INSERT per batch", ceilings["b"], "b"),
    ]
    lines = [
        f"# Pipeline throughput ({report['leads']:,} leads, batch size {report['batch_size']}, "
        f"median of {runs} run{'s' * (runs > 1)})",
        "",
        "PostgreSQL and tansu on this machine's 2 cores; rule scorer; mail over SMTP to an aiosmtpd sink on "
        "loopback (its own process); every stage its own `run_pipeline` process; each run on a fresh database "
        "and broker. Ceilings in the same run on the same broker, leads and batch size. Ratios are taken "
        "within a run, then the median.",
    ]
    if report["profiled"]:
        lines += ["", f"**{report['profiled']} ran under py-spy: these figures are not comparable.**"]
    lines += ["", "## Leads/s, wall clock (leads / seconds from process start: start-up included)", ""]
    lines += ["| | seconds | leads/s | scorer / this |", "| --- | ---: | ---: | ---: |"]
    for name, figures, key in [*rows, ("end to end", m["end_to_end"], None), *ceiling_rows]:
        part = ratios[f"leads_per_s_{key}"] if key else None
        lines.append(
            f"| {name} | {num(figures.get('done_s'), 2)} | {num(figures.get('leads_per_s'))} | {share(part)} |"
        )
    lines += ["", "## Start-up: seconds to the first completion (Django start and the consumer group join)", ""]
    lines += ["| | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {num(figures.get('first_s'), 2)} |" for name, figures, _ in [*rows, *ceiling_rows]]
    lines += ["", "## Steady state: completions after the first / seconds from the first to the last", ""]
    lines += ["| | per second | a completion is | scorer / this |", "| --- | ---: | --- | ---: |"]
    for name, figures, key in [*rows, *ceiling_rows]:
        unit = "a leads.raw message committed" if key else COMPLETIONS.get(name, ("not measured",))[0]
        part = ratios[f"steady_per_s_{key}"] if key else None
        lines.append(f"| {name} | {num(figures.get('steady_per_s'))} | {unit} | {share(part)} |")
    lines += ["", "## Peak RSS of each stage process (VmHWM just before it is stopped)", ""]
    lines += ["| stage | MB |", "| --- | ---: |"]
    lines += [f"| {stage} | {num(stages[stage]['peak_rss_mb'])} |" for stage in report["stages"]]
    lines += ["", "## Targets", "", *targets(report), "", checks(report), ""]
    return "\n".join(lines)


def targets(report: dict[str, Any]) -> list[str]:
    m = report["median"]
    scorer, ratios, end = m["stages"]["scorer"], m["scorer_to_ceiling"], m["end_to_end"]["leads_per_s"]
    largest = max(report["stages"], key=lambda stage: m["stages"][stage]["peak_rss_mb"])
    rss = m["stages"][largest]["peak_rss_mb"]
    found = [
        ("scorer ≥ 4,000 leads/s", scorer["leads_per_s"] >= 4000, f"{num(scorer['leads_per_s'])} leads/s"),
        ("scorer ≥ 0.5 of ceiling (b)", (ratios["leads_per_s_b"] or 0) >= 0.5, share(ratios["leads_per_s_b"])),
        ("end to end ≥ 1,000 leads/s", end >= 1000, f"{num(end)} leads/s"),
        ("peak RSS of each stage < 200 MB", rss < 200, f"largest: {largest} {num(rss)} MB"),
    ]
    steady = f" (steady state: scorer {num(scorer['steady_per_s'])}/s, {share(ratios['steady_per_s_b'])} of (b))"
    lines = [f"- {name}: **{'met' if met else 'missed'}**, {figure}" for name, met, figure in found]
    lines[1] += steady
    return lines


def checks(report: dict[str, Any]) -> str:
    per_run = [
        f"run {run['run']}: leads by status {run['checks']['statuses']}, {run['checks']['mails_received']} mails "
        f"received by the sink, {run['checks']['dead_letters']} dead letters"
        for run in report["runs"]
    ]
    return "Checks: " + "; ".join(per_run) + "."


def num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def share(value: float | None) -> str:
    """A ratio to three significant digits."""
    return "" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    main()
