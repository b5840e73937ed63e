"""Backup and restore of LEADS leads on PostgreSQL: ours against plain pg_dump -Fc / pg_restore,
and with an off-site copy in a loopback S3 server.

One database (`pw_bench_backup`, created, migrated, filled with generate_series, dropped at the
end). Each of RUNS rounds times, in turn: `manage.py backup` (pg_dump -Fc -Z6 from an exported
snapshot, row counts, pg_restore --list, sha256, fsync, manifest), the same with BACKUP_REMOTE_URL
set ("backup plus upload": the above, then the multipart upload with SHA-256 checksums, the
HeadObject check and remote retention), plain `pg_dump -Fc`, `manage.py restore --yes` (checksum,
then the script through one psql transaction that first drops every table, then row counts),
`manage.py restore --yes s3://...` ("download plus restore": the file and manifest downloaded into
BACKUP_DIR, then the same restore) and plain `pg_restore --clean --if-exists --single-transaction
--no-owner --no-acl` into the same database. The S3 server is `moto_server` (moto[server]) on a
free loopback port, its own process, so its CPU is not counted in ours. Wall-clock medians of
RUNS, and CPU seconds (user + system of each command and its children: pg_dump, pg_restore,
psql), which the other processes on a shared machine disturb less. Results go to
bench/results/backup.{json,md}.

    make bench-backup            # or: python bench/backup_restore.py --leads 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_backup"
TARGET_RATIO = 1.2  # ours / plain, backup and restore (issue 17)
BUCKET = "pw-bench-backup"
# The S3 server takes any key; these keep boto3 away from the machine's profile and instance metadata.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1", "LOG_LEVEL": "WARNING"}
    try:
        database_fill(url, leads=args.leads, env=env)
        with tempfile.TemporaryDirectory(prefix="pw-bench-backup-") as directory, s3_server() as endpoint:
            env |= {**S3_ENV, "BACKUP_REMOTE_ENDPOINT_URL": endpoint}
            runs = [run_once(env, url, Path(directory), number) for number in range(1, args.runs + 1)]
    finally:
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    summary = {key: statistics.median(run[key] for run in runs) for key in runs[0] if key != "run"}
    summary["backup_ratio"] = round(summary["ours_backup_seconds"] / summary["plain_backup_seconds"], 2)
    summary["restore_ratio"] = round(summary["ours_restore_seconds"] / summary["plain_restore_seconds"], 2)
    summary["upload_ratio"] = round(summary["ours_backup_upload_seconds"] / summary["plain_backup_seconds"], 2)
    summary["download_ratio"] = round(summary["ours_download_restore_seconds"] / summary["plain_restore_seconds"], 2)
    summary["size_ratio"] = round(summary["ours_mb"] / summary["plain_mb"], 3)
    summary["load_average"] = [round(load, 2) for load in os.getloadavg()]
    write_results(args.leads, runs, summary)


def run_once(env: dict[str, str], url: str, directory: Path, number: int) -> dict[str, float]:
    backups = directory / f"run{number}"
    run_env = {**env, "BACKUP_DIR": str(backups), "BACKUP_RETENTION_DAYS": "0"}
    upload_env = {**run_env, "BACKUP_DIR": str(directory / f"run{number}-upload")}
    upload_env["BACKUP_REMOTE_URL"] = f"s3://{BUCKET}/run{number}"
    manage = [sys.executable, "manage.py"]
    ours_backup = timed([*manage, "backup"], env=run_env)
    ours_file = next(backups.glob("pw-backup-*.pgdump"))
    ours_backup_upload = timed([*manage, "backup"], env=upload_env)
    remote_name = next((directory / f"run{number}-upload").glob("pw-backup-*.pgdump")).name
    plain_file = directory / f"plain{number}.dump"
    plain_backup = timed(["pg_dump", "-Fc", "-f", str(plain_file), f"--dbname={url}"], env=env)
    ours_restore = timed([*manage, "restore", "--yes", "-v0", str(ours_file)], env=run_env)
    remote_url = f"{upload_env['BACKUP_REMOTE_URL']}/{remote_name}"
    ours_download_restore = timed([*manage, "restore", "--yes", "-v0", remote_url], env=upload_env)
    restore = ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--no-owner", "--no-acl"]
    plain_restore = timed([*restore, f"--dbname={url}", str(plain_file)], env=env)
    result: dict[str, float] = {"run": number}
    for phase, (seconds, cpu) in {
        "ours_backup": ours_backup,
        "ours_backup_upload": ours_backup_upload,
        "plain_backup": plain_backup,
        "ours_restore": ours_restore,
        "ours_download_restore": ours_download_restore,
        "plain_restore": plain_restore,
    }.items():
        result |= {f"{phase}_seconds": seconds, f"{phase}_cpu_seconds": cpu}
    result |= {
        "ours_mb": round(ours_file.stat().st_size / 1e6, 1),
        "plain_mb": round(plain_file.stat().st_size / 1e6, 1),
    }
    plain_file.unlink()
    # The restore left the rows without hint bits: the next round's first dump would set them all
    # (its reads turn into writes). Every round starts as the first does, from a vacuumed table.
    psql(url, "VACUUM ANALYZE")
    print(json.dumps(result), flush=True)
    return result


def timed(command: list[str], *, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and the children it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(wall, 2), round(cpu, 2)


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with the bench's bucket; its endpoint URL."""
    import boto3

    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto_server = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen(  # the tool from requirements-dev.txt
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"moto_server did not start on port {port}: pip install -r requirements-dev.txt"
                    ) from None
                time.sleep(0.1)
        credentials = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}
        boto3.session.Session().client("s3", endpoint_url=endpoint, **credentials).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def database_fill(url: str, *, leads: int, env: dict[str, str]) -> None:
    """Create the database of `url` afresh, migrate it and fill it with `leads` leads."""
    database = url.rsplit("/", 1)[1]
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {database}")
    migrate = [sys.executable, "manage.py", "migrate", "-v0"]
    subprocess.run(migrate, cwd=ROOT, env={**env, "DATABASE_URL": url}, check=True)
    from ops.tests.bulk import LEADS_INSERT_SQL

    psql(url, LEADS_INSERT_SQL.replace("%s", str(int(leads))))
    psql(url, "VACUUM ANALYZE")


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
        f"| backup plus upload (s) | {summary['ours_backup_upload_seconds']} | {summary['plain_backup_seconds']} "
        f"| {summary['upload_ratio']} |",
        f"| restore (s) | {summary['ours_restore_seconds']} | {summary['plain_restore_seconds']} "
        f"| {summary['restore_ratio']} |",
        f"| download plus restore (s) | {summary['ours_download_restore_seconds']} "
        f"| {summary['plain_restore_seconds']} | {summary['download_ratio']} |",
        f"| file (MB) | {summary['ours_mb']} | {summary['plain_mb']} | {summary['size_ratio']} |",
        "",
        "CPU seconds (user + system, the command and its children; the S3 server not included):",
        "",
        "| | ours | plain |",
        "| --- | --- | --- |",
        f"| backup | {summary['ours_backup_cpu_seconds']} | {summary['plain_backup_cpu_seconds']} |",
        f"| backup plus upload | {summary['ours_backup_upload_cpu_seconds']} | |",
        f"| restore | {summary['ours_restore_cpu_seconds']} | {summary['plain_restore_cpu_seconds']} |",
        f"| download plus restore | {summary['ours_download_restore_cpu_seconds']} | |",
        "",
        "Ours includes what plain tools skip: Django start-up, row counts in the dump's snapshot, a",
        "read-back check, sha256, fsync and the manifest (backup); the checksum check, dropping every",
        "table first in the same transaction, and row counts afterwards (restore).",
        "The upload and download go to a loopback S3 server (moto): no network, so these are floors.",
        "",
        "Targets (within 1.2x of the plain tools):",
        *(
            f"- {'met' if summary[key] <= TARGET_RATIO else 'MISSED'}: {what} {summary[key]}x"
            for key, what in (("backup_ratio", "backup"), ("restore_ratio", "restore"))
        ),
        "",
        f"Load average when the runs ended: {summary['load_average']} (`os.getloadavg()`, 1/5/15 minutes).",
        "",
        "For docs/OPERATIONS.md (RPO and RTO, hourly schedule): RPO 1 hour plus "
        f"{summary['ours_backup_upload_seconds']} s (backup plus upload); RTO from "
        f"{summary['ours_download_restore_seconds']} s (download plus restore), plus migrate and start-up.",
        "",
    ]
    (RESULTS / "backup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
