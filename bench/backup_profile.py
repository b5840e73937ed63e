"""Where the time of `manage.py backup` / `restore` goes, step by step, beside plain pg_dump / pg_restore.

Fills its own database (`pw_bench_backup_profile`, dropped at the end) with LEADS leads, then
times each step of our backup and restore on its own, RUNS times: wall seconds, CPU seconds of
this process and the tools it waited for (getrusage), and CPU seconds of the PostgreSQL backends
serving them (every session runs with PGAPPNAME=pw-bench-profile; a thread reads their
/proc/PID/stat every 20 ms, so sessions shorter than that are missed). Prints a table of medians;
the machine may be loaded by others, so the load average is printed beside it: prefer the CPU
columns.

    python bench/backup_profile.py --leads 200000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backup_restore import ADMIN_URL, ROOT, database_fill, psql

DATABASE = "pw_bench_backup_profile"
APPLICATION = "pw-bench-profile"
TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    os.environ.update(DATABASE_URL=url, DJANGO_DEBUG="1", LOG_LEVEL="WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "pipeline_whisperer.settings"
    try:
        database_fill(url, leads=args.leads, env=dict(os.environ))
        with tempfile.TemporaryDirectory(prefix="pw-bench-profile-") as directory:
            os.environ["BACKUP_DIR"] = directory
            os.environ["BACKUP_RETENTION_DAYS"] = "0"
            os.environ["PGAPPNAME"] = APPLICATION
            rows = profile(url, Path(directory), runs=args.runs)
            del os.environ["PGAPPNAME"]
    finally:
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    print(f"\n{args.leads:,} leads, median of {args.runs}; load average {os.getloadavg()[0]:.2f} at the end")
    print("| step | wall s | client CPU s | server CPU s |\n| --- | --- | --- | --- |")
    for name, (wall, cpu, server) in rows.items():
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {server:.3f} |")


def profile(url: str, directory: Path, *, runs: int) -> dict[str, tuple[float, float, float]]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from ops import backups, engines, restore

    engine = engines.PostgresEngine()
    manage = [sys.executable, "manage.py"]
    plain = directory / "plain.dump"
    ours = directory / "ours.pgdump"
    steps: dict[str, Callable[[], Any]] = {
        "plain pg_dump -Fc": lambda: tool(["pg_dump", "-Fc", "-f", str(plain), f"--dbname={url}"]),
        "python start-up + django.setup()": lambda: tool([sys.executable, "-c", "import django; django.setup()"]),
        "  the same + system checks (manage.py check)": lambda: tool([*manage, "check"]),
        "engine.dump (pg_dump from the snapshot + row counts)": lambda: engine.dump(target=ours),
        "  row counts alone, in a snapshot": lambda: counts_in_snapshot(engine),
        "engine.check_readable": lambda: engine.check_readable(path=ours),
        "fsync of the dump": lambda: backups._fsync(ours),
        "sha256 of the dump (re-read)": lambda: backups.file_sha256(ours),
        "backup_create, in process (all the above but start-up)": backups.backup_create,
        "manage.py backup": lambda: tool([*manage, "backup"]),
        "plain pg_restore --clean --if-exists --single-transaction": lambda: tool(
            ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--no-owner", "--no-acl", str(plain)],
            f"--dbname={url}",
        ),
        "migrations known to the code (MigrationLoader)": restore._code_migrations,
        "backup_check (size, sha256, migrations)": lambda: restore.backup_check(path=latest(backups)),
        "engine.restore (drop + load in one psql transaction + counts)": lambda: engine.restore(path=latest(backups)),
        "  row counts alone, after": lambda: engine_counts(engine),
        "  pg_restore -f - | psql, a shell pipe (no relay, no drop)": lambda: tool(
            [
                "sh",
                "-c",
                f"pg_restore --no-owner --no-acl --clean --if-exists -f - {latest(backups)} "
                f"| psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f - '{url}' >/dev/null",
            ]
        ),
        "manage.py restore --yes": lambda: tool([*manage, "restore", "--yes", "-v0", str(latest(backups))]),
    }
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            samples[name].append(measure(step, url))
        for path in directory.glob("pw-backup-*"):
            path.unlink()
    medians = {
        name: [statistics.median(column) for column in zip(*values, strict=True)] for name, values in samples.items()
    }
    return {name: (wall, cpu, server) for name, (wall, cpu, server) in medians.items()}


def measure(step: Callable[[], Any], url: str) -> tuple[float, float, float]:
    server = BackendCpu(url)
    server.start()
    before, wall = cpu_seconds(), time.monotonic()
    try:
        step()
    finally:
        elapsed, cpu = time.monotonic() - wall, cpu_seconds() - before
        server.stop.set()
        server.join()
    return elapsed, cpu, server.seconds()


class BackendCpu(threading.Thread):
    """CPU seconds of the server processes serving sessions named APPLICATION, sampled every 20 ms;
    what sessions open before the step (the in-process Django connection) had used is not counted."""

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.watcher = psycopg.connect(url, autocommit=True, application_name="pw-bench-sampler")
        self.baseline = self.sample()
        self.ticks = dict(self.baseline)

    def sample(self) -> dict[int, int]:
        ticks = {}
        rows = self.watcher.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APPLICATION])
        for (pid,) in rows.fetchall():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks

    def run(self) -> None:
        with self.watcher:
            while not self.stop.wait(0.02):
                for pid, ticks in self.sample().items():
                    self.ticks[pid] = max(self.ticks.get(pid, 0), ticks)

    def seconds(self) -> float:
        return sum(ticks - self.baseline.get(pid, 0) for pid, ticks in self.ticks.items()) / TICK


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tool(command: list[str], *more: str) -> None:
    subprocess.run([*command, *more], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def latest(backups: Any) -> Path:
    return backups.backup_list()[0].path


def counts_in_snapshot(engine: Any) -> None:
    from ops.engines import _pg_row_counts

    with engine._connect() as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _pg_row_counts(connection)
        connection.execute("COMMIT")


def engine_counts(engine: Any) -> None:
    from ops.engines import _pg_row_counts

    with engine._connect() as connection:
        _pg_row_counts(connection)


if __name__ == "__main__":
    main()
