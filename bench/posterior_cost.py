"""The cost of the adjusted posterior per outreach choice, for 10 variants, in pure Python.

What the outreach stage computes per choice, on the real `leads.bandit` code, with inputs of a
busy experiment: 10 variants, each with unresolved sends in every hour of the 14-day window
(336 buckets each, as `selectors.pending_histograms` returns them) and the experiment's latest
1,000 success delays. Four figures, each the median of RUNS timings of REPEAT calls:

- adjust: learn the delay distribution and adjust the 10 arms (what a batch computes once);
- choose: one Thompson draw over the 10 adjusted arms (what each choice of a batch costs);
- adjusted choice, unamortized: adjust + choose, as if the stage adjusted for every choice;
- ceiling: one Thompson draw over the 10 stored arms, as before (10 bare Beta draws).

The target is under 1 ms per choice for 10 variants, unamortized. The database queries the
adjustment needs (two per batch) are not included: they are the pipeline bench's to measure.
Results: bench/results/posterior_cost.{md,json}.

    python bench/posterior_cost.py [--runs 51] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from leads.bandit import DAY, Arm, DelayDistribution, adjust_arms, choose  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VARIANTS = 10
WINDOW = 14 * DAY
HOURS = int(WINDOW // 3_600)
SUCCESSES = 1_000
TARGET_MS = 1.0


def _inputs(seed: int) -> tuple[list[Arm], dict[int, dict[float, int]], list[float]]:
    rng = random.Random(seed)  # noqa: S311  # seeded bench inputs
    arms = [Arm(key, 1.0 + rng.randint(0, 200), 1.0 + rng.randint(1_000, 4_000)) for key in range(VARIANTS)]
    pending = {arm.key: {(hour + 0.5) * 3_600: rng.randint(1, 20) for hour in range(HOURS)} for arm in arms}
    delays = [min(rng.expovariate(1 / (3 * DAY)), WINDOW) for _ in range(SUCCESSES)]
    return arms, pending, delays


def _median_seconds(call: Callable[[], object], runs: int, repeat: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        timings.append((time.perf_counter() - start) / repeat)
    return statistics.median(timings)


def measure(runs: int, repeat: int) -> dict[str, float]:
    arms, pending, delays = _inputs(seed=1)
    rng = random.Random(2)  # noqa: S311  # seeded Thompson draws

    def adjust() -> list[Arm]:
        return [a.arm for a in adjust_arms(arms, pending, DelayDistribution.learn(delays, window=WINDOW))]

    adjusted = adjust()
    figures = {
        "adjust_ms": _median_seconds(adjust, runs, repeat),
        "choose_ms": _median_seconds(lambda: choose(adjusted, rng), runs, repeat),
        "adjusted_choice_unamortized_ms": _median_seconds(lambda: choose(adjust(), rng), runs, repeat),
        "ceiling_bare_choice_ms": _median_seconds(lambda: choose(arms, rng), runs, repeat),
    }
    return {name: seconds * 1_000 for name, seconds in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=51)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    figures = measure(args.runs, args.repeat)
    met = figures["adjusted_choice_unamortized_ms"] < TARGET_MS
    lines = [
        f"# Adjusted posterior per choice: {VARIANTS} variants, {HOURS} pending buckets each, {SUCCESSES} delays",
        "",
        f"Median of {args.runs} runs of {args.repeat} calls, Python {sys.version.split()[0]}.",
        "",
        "| what | ms |",
        "| --- | ---: |",
        *(f"| {name.removesuffix('_ms').replace('_', ' ')} | {value:.4f} |" for name, value in figures.items()),
        "",
        f"Target: adjusted choice, unamortized, under {TARGET_MS:g} ms: {'met' if met else 'NOT met'}.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "posterior_cost.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "posterior_cost.json").write_text(json.dumps({**figures, "target_met": met}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
