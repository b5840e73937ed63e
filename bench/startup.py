"""Django start-up cost of a management command: `manage.py list_backups` (no database work
beyond its own) run RUNS times, beside a bare `python -c pass` measured in the same run.

Wall seconds and CPU seconds (user+sys of the child, from getrusage) per run, medians; the
machine may be loaded by others, so the load average is printed beside them: prefer CPU.
`--importtime` also prints the slowest cumulative imports of one run (`python -X importtime`).

    python bench/startup.py --runs 10 --importtime 25 --compare /work/main
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from servers import SERVICE_ENV  # noqa: E402  (after ROOT is importable)

ENV = {
    **SERVICE_ENV,
    "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pipeline_whisperer"),
}


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and child CPU (user+sys) seconds of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def importtime_top(env: dict[str, str], count: int) -> list[tuple[int, str]]:
    """The `count` largest cumulative import times (µs, module) of one `list_backups`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "list_backups"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _self, cumulative, module = line.removeprefix("import time:").split("|")
            rows.append((int(cumulative), module.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="print the N slowest imports")
    parser.add_argument(
        "--compare", type=Path, action="append", default=[], metavar="CHECKOUT", help="another checkout, timed alike"
    )
    args = parser.parse_args()
    env = {**os.environ, **ENV}
    cases = {"python -c pass (floor)": ([sys.executable, "-c", "pass"], ROOT)}
    for checkout in [ROOT, *args.compare]:
        cases[f"manage.py list_backups ({checkout})"] = ([sys.executable, "manage.py", "list_backups"], checkout)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for argv, cwd in cases.values():
        timed(argv, env, cwd)  # warm the page cache and the bytecode
    # Interleaved, so a change in the machine's load falls on every case alike.
    samples = {name: [timed(argv, env, cwd) for _ in range(1)] for name, (argv, cwd) in cases.items()}
    for _ in range(args.runs - 1):
        for name, (argv, cwd) in cases.items():
            samples[name].append(timed(argv, env, cwd))
    for name, runs in samples.items():
        walls, cpus = zip(*runs, strict=True)
        print(
            f"{name}: wall median {statistics.median(walls):.3f} s, CPU median {statistics.median(cpus):.3f} s"
            f" ({args.runs} runs)"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for cumulative, module in importtime_top(env, args.importtime):
        print(f"{cumulative / 1e6:7.3f} s  {module}")


if __name__ == "__main__":
    main()
