"""Pipeline throughput on PostgreSQL and tansu, beside two ceilings measured in the same run.

Each run: a fresh database (migrated, `seed_demo --leads 0`) and a fresh tansu broker; LEADS
seeded events produced to leads.raw up front (`simulate_leads --to kafka`). Then, one after the
other, on the same broker and leads and with the same batch size:
  ceiling (a)  a bare confluent-kafka consumer reads leads.raw in batches and commits offsets
               synchronously after each (bench/pipeline_ceiling.py kafka), its own group;
  ceiling (b)  the same plus one COPY per batch into a copy of leads_lead (insert);
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
from servers import SERVICE_ENV  # noqa: E402  (after ROOT is importable)

RESULTS = ROOT / "bench" / "results"
LOGS = ROOT / "var" / "bench-pipeline"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_pipeline"
DATABASE_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
MANAGE = [sys.executable, "manage.py"]
ENV = {  # every process of the run: the production configuration, the rule scorer, SMTP mail
    **SERVICE_ENV,
    "DATABASE_URL": DATABASE_URL,
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "EMAIL_HOST": "127.0.0.1",
    # Throughput, not pacing: the window open, the caps out of the way; a sender identity as production needs.
    "OUTREACH_SEND_WINDOW": "mon-sun 00:00-24:00",
    "OUTREACH_DOMAIN_HOURLY_CAP": "1000000",
    "OUTREACH_DAILY_CAP": "1000000",
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
        alone = scorer_alone(env, args, number)
        result = measure_stages(env, stages, args, number, broker_pid=broker.process.pid)
    finally:
        broker.stop()
    result["scorer_to_ceiling"] = {
        f"{measure}_{name}": ratio(result["stages"]["scorer"][measure], ceilings[name][measure])
        for measure in ("leads_per_s", "steady_per_s")
        for name in CEILINGS
    }
    result["scorer_alone_to_ceiling"] = {
        f"{measure}_{name}": ratio(alone[measure], ceilings[name][measure])
        for measure in ("leads_per_s", "steady_per_s")
        for name in CEILINGS
    }
    result = {"run": number, **result, "scorer_alone": alone, "ceilings": ceilings}
    print(json.dumps(result), flush=True)
    return result


def scorer_alone(env: dict[str, str], args: argparse.Namespace, number: int) -> dict[str, Any]:
    """The scorer by itself, as the ceilings run: the same broker and leads, a database and a
    consumer group of its own, nothing else running; timed like the stages."""
    import psycopg

    database = f"{DATABASE}_alone"
    with psycopg.connect(ADMIN_URL, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {database}")
    url = DATABASE_URL.rsplit("/", 1)[0] + f"/{database}"
    env = {**env, "DATABASE_URL": url, "KAFKA_CONSUMER_GROUP_PREFIX": f"bench-alone-{number}"}
    manage(env, "migrate", "-v0")
    started = time.time()
    process = start_stage("scorer", env, args, number, log_name="scorer-alone")
    try:
        with psycopg.connect(url, autocommit=True) as db:
            deadline = time.monotonic() + args.timeout
            while db.execute("SELECT count(*) FROM leads_lead WHERE scored_at IS NOT NULL").fetchone()[0] < args.leads:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the scorer alone did not finish; see {LOGS}/run{number}-scorer-alone.log")
                time.sleep(0.2)
            pid = python_pid(process)
            rss, cpu = peak_rss_mb(pid), cpu_seconds(pid)
            os.kill(pid, signal.SIGTERM)
            process.wait(60)
            done = completions(db, "scorer")
    finally:
        if process.poll() is None:
            process.kill()
    return {**timing(started, done, args.leads), "peak_rss_mb": rss, "cpu_seconds": cpu}


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


def measure_stages(
    env: dict[str, str], stages: list[str], args: argparse.Namespace, number: int, *, broker_pid: int
) -> dict[str, Any]:
    import psycopg

    from tests.stand_ins import free_port, wait_for_port

    port = free_port()
    sink = subprocess.Popen([sys.executable, "bench/smtp_sink.py", str(port)], cwd=ROOT, stdout=subprocess.PIPE)
    wait_for_port(port)
    env = {**env, "EMAIL_PORT": str(port)}
    LOGS.mkdir(parents=True, exist_ok=True)
    shared = {
        "smtp sink": lambda: cpu_seconds(sink.pid),
        "broker": lambda: cpu_seconds(broker_pid),
        "postgres": postgres_cpu,
    }
    cpu_before = {name: read() for name, read in shared.items()}
    started = time.time()
    processes = {stage: start_stage(stage, env, args, number) for stage in stages}
    try:
        wait_until_done(processes, args.leads, args.timeout, number)
        pids = {stage: python_pid(process) for stage, process in processes.items()}
        peak_rss = {stage: peak_rss_mb(pid) for stage, pid in pids.items()}
        cpu = {stage: cpu_seconds(pid) for stage, pid in pids.items()}
        cpu |= {name: round(read() - cpu_before[name], 2) for name, read in shared.items()}
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
        "cpu_seconds": {**cpu, "total": round(sum(cpu.values()), 2)},
        "checks": {"statuses": statuses, "mails_received": mails, "dead_letters": dead_letters},
    }


def start_stage(
    stage: str, env: dict[str, str], args: argparse.Namespace, number: int, *, log_name: str = ""
) -> subprocess.Popen:
    command = [*MANAGE, "run_pipeline", stage, "--batch-size", str(args.batch_size)]
    if stage == args.profile:
        suffix = "svg" if args.profile_format == "flamegraph" else "speedscope.json"
        output = RESULTS / f"profile-{stage}.{suffix}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        command = [py_spy(), "record", "--idle", "--threads", "--nonblocking", "--subprocesses"]
        command += ["--format", args.profile_format]
        command += ["-o", str(output), "--", *MANAGE, "run_pipeline", stage, "--batch-size", str(args.batch_size)]
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"run{number}-{log_name or stage}.log").open("wb") as log:
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far, with its waited-for children's (the postmaster's
    include the backends that exited)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round(sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK"), 2)


def postgres_cpu() -> float:
    """CPU of every postgres process on the machine (the server is shared: other users count too)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" ", 2)[1] == "(postgres)":
                total += cpu_seconds(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


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
    stages, ceilings = m["stages"], m["ceilings"]
    rows = [("scorer alone", m["scorer_alone"], None), *[(stage, stages[stage], None) for stage in report["stages"]]]
    ceiling_rows = [
        ("ceiling (a): consume + commit", ceilings["a"], "a"),
        ("ceiling (b): (a) + one COPY per batch", ceilings["b"], "b"),
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
    lines += ["| | seconds | leads/s | scorer / this |", "| --- | ---: | ---: | --- |"]
    for name, figures, key in [*rows, ("end to end", m["end_to_end"], None), *ceiling_rows]:
        part = scorer_share(m, key, "leads_per_s")
        lines.append(f"| {name} | {num(figures.get('done_s'), 2)} | {num(figures.get('leads_per_s'))} | {part} |")
    lines += ["", "## Start-up: seconds to the first completion (Django start and the consumer group join)", ""]
    lines += ["| | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {num(figures.get('first_s'), 2)} |" for name, figures, _ in [*rows, *ceiling_rows]]
    lines += ["", "## Steady state: completions after the first / seconds from the first to the last", ""]
    lines += ["| | per second | a completion is | scorer / this |", "| --- | ---: | --- | --- |"]
    for name, figures, key in [*rows, *ceiling_rows]:
        unit = "a leads.raw message committed" if key in CEILINGS else COMPLETIONS.get(name.split()[0], ("",))[0]
        part = scorer_share(m, key, "steady_per_s")
        lines.append(f"| {name} | {num(figures.get('steady_per_s'))} | {unit} | {part} |")
    lines += ["", "## Peak RSS of each stage process (VmHWM just before it is stopped)", ""]
    lines += ["| stage | MB |", "| --- | ---: |"]
    lines += [f"| {stage} | {num(stages[stage]['peak_rss_mb'])} |" for stage in report["stages"]]
    lines += [f"| scorer alone | {num(m['scorer_alone']['peak_rss_mb'])} |"]
    cpu, leads = m["cpu_seconds"], report["leads"]
    lines += ["", "## CPU seconds while the stages ran (the machine has 2 cores)", ""]
    lines += ["| process | CPU s | ms a lead |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {num(seconds, 2)} | {num(seconds * 1000 / leads, 3)} |" for name, seconds in cpu.items()]
    lines += ["", "## Targets", "", *targets(report), "", checks(report), ""]
    return "\n".join(lines)


def scorer_share(m: dict[str, Any], key: str | None, measure: str) -> str:
    """On a ceiling's row: the scorer alone's and the scorer in the pipeline's share of it."""
    if key not in CEILINGS:
        return ""
    alone, together = m["scorer_alone_to_ceiling"][f"{measure}_{key}"], m["scorer_to_ceiling"][f"{measure}_{key}"]
    return f"{share(alone)} alone, {share(together)} in the pipeline"


def targets(report: dict[str, Any]) -> list[str]:
    """Each target, met or missed. The scorer's are judged as the ceilings run: alone, in steady
    state (start-up, the same for both, is shown above); every other figure of it stands beside."""
    m = report["median"]
    alone, together, end = m["scorer_alone"], m["stages"]["scorer"], m["end_to_end"]["leads_per_s"]
    to_b, together_to_b = m["scorer_alone_to_ceiling"]["steady_per_s_b"], m["scorer_to_ceiling"]["steady_per_s_b"]
    largest = max(report["stages"], key=lambda stage: m["stages"][stage]["peak_rss_mb"])
    rss = max(m["stages"][largest]["peak_rss_mb"], alone["peak_rss_mb"])
    found = [
        (
            "scorer ≥ 4,000 leads/s",
            (alone["steady_per_s"] or 0) >= 4000,
            f"alone {num(alone['steady_per_s'])}/s steady ({num(alone['leads_per_s'])}/s with start-up); "
            f"in the pipeline {num(together['steady_per_s'])}/s steady ({num(together['leads_per_s'])}/s)",
        ),
        (
            "scorer ≥ 0.5 of ceiling (b)",
            (to_b or 0) >= 0.5,
            f"alone {share(to_b)} of (b) steady; in the pipeline {share(together_to_b)}",
        ),
        ("end to end ≥ 1,000 leads/s", end >= 1000, f"{num(end)} leads/s (start-up included)"),
        ("peak RSS of each stage < 200 MB", rss < 200, f"largest: {num(rss)} MB"),
    ]
    return [f"- {name}: **{'met' if met else 'missed'}**, {figure}" for name, met, figure in found]


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
