"""Backup and restore of LEADS leads on PostgreSQL: ours against plain pg_dump -Fc / pg_restore.

One database (`pw_bench_backup`, created, migrated, filled with generate_series, dropped at the
end). Each of RUNS rounds times, in turn: `manage.py backup` (pg_dump -Fc -Z6 from an exported
snapshot, row counts, pg_restore --list, sha256, fsync, manifest), plain `pg_dump -Fc`,
`manage.py restore --yes` (checksum, then the script through one psql transaction that first
drops every table, then row counts) and plain `pg_restore --clean --if-exists
--single-transaction --no-owner --no-acl` into the same database. Medians of RUNS; results go to
bench/results/backup.{json,md}.

    make bench-backup            # or: python bench/backup_restore.py --leads 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_backup"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1", "LOG_LEVEL": "WARNING"}
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(ADMIN_URL, f"CREATE DATABASE {DATABASE}")
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        from ops.tests.bulk import LEADS_INSERT_SQL

        psql(url, LEADS_INSERT_SQL.replace("%s", str(int(args.leads))))
        psql(url, "VACUUM ANALYZE")
        with tempfile.TemporaryDirectory(prefix="pw-bench-backup-") as directory:
            runs = [run_once(env, url, Path(directory), number) for number in range(1, args.runs + 1)]
    finally:
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "run"}
    summary["backup_ratio"] = round(summary["ours_backup_seconds"] / summary["plain_backup_seconds"], 2)
    summary["restore_ratio"] = round(summary["ours_restore_seconds"] / summary["plain_restore_seconds"], 2)
    summary["size_ratio"] = round(summary["ours_mb"] / summary["plain_mb"], 3)
    write_results(args.leads, runs, summary)


def run_once(env: dict[str, str], url: str, directory: Path, number: int) -> dict[str, float]:
    backups = directory / f"run{number}"
    run_env = {**env, "BACKUP_DIR": str(backups), "BACKUP_RETENTION_DAYS": "0"}
    manage = [sys.executable, "manage.py"]
    ours_backup = timed([*manage, "backup"], env=run_env)
    ours_file = next(backups.glob("pw-backup-*.pgdump"))
    plain_file = directory / f"plain{number}.dump"
    plain_backup = timed(["pg_dump", "-Fc", "-f", str(plain_file), f"--dbname={url}"], env=env)
    ours_restore = timed([*manage, "restore", "--yes", "-v0", str(ours_file)], env=run_env)
    restore = ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--no-owner", "--no-acl"]
    plain_restore = timed([*restore, f"--dbname={url}", str(plain_file)], env=env)
    result = {
        "run": number,
        "ours_backup_seconds": ours_backup,
        "plain_backup_seconds": plain_backup,
        "ours_restore_seconds": ours_restore,
        "plain_restore_seconds": plain_restore,
        "ours_mb": round(ours_file.stat().st_size / 1e6, 1),
        "plain_mb": round(plain_file.stat().st_size / 1e6, 1),
    }
    plain_file.unlink()
    print(json.dumps(result), flush=True)
    return result


def timed(command: list[str], *, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return round(time.monotonic() - started, 2)


def psql(url: str, statement: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", statement, url], check=True)


def write_results(leads: int, runs: list[dict[str, float]], summary: dict[str, float]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"leads": leads, "runs": runs, "median": summary}
    (RESULTS / "backup.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        f"# Backup and restore: {leads:,} leads on PostgreSQL, median of {len(runs)}",
        "",
        "| | ours | plain pg_dump -Fc / pg_restore | ours / plain |",
        "| --- | --- | --- | --- |",
        f"| backup (s) | {summary['ours_backup_seconds']} | {summary['plain_backup_seconds']} "
        f"| {summary['backup_ratio']} |",
        f"| restore (s) | {summary['ours_restore_seconds']} | {summary['plain_restore_seconds']} "
        f"| {summary['restore_ratio']} |",
        f"| file (MB) | {summary['ours_mb']} | {summary['plain_mb']} | {summary['size_ratio']} |",
        "",
        "Ours includes what plain tools skip: Django start-up, row counts in the dump's snapshot, a",
        "read-back check, sha256, fsync and the manifest (backup); the checksum check, dropping every",
        "table first in the same transaction, and row counts afterwards (restore). Target: within 1.2x.",
        "",
    ]
    (RESULTS / "backup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
