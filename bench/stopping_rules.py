"""Candidate stopping rules on the campaign's timing, in pure Python: accuracy, sends to decision
and false winners, many seeds in minutes (bench/campaign.py needs an hour for ten per set).

The campaign of bench/campaign_delay_bound.py with its stopping campaigns' shape: DAILY sends a
day in ticks of 24 h, conversion delay exponential (mean 3 days, 14-day window, known), Thompson
sampling on our pending-weighted Beta. Once a day the rule is asked, with leads.bandit's own
`arm_risks` and `winner` on those posteriors (DRAWS draws); a campaign ends at its first winner
held for HOLD consecutive daily checks, or at CAP sends (the fixed-horizon test's, as in
bench/campaign.py: among equal arms, those of 4/5/6).

    python bench/stopping_rules.py --rates 4/5/6:40,2/5/10:40,5/5/5:40 --probability 0.95 --hold 1
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from campaign_delay_bound import MEAN_DELAY_DAYS, WINDOW_DAYS, Arm, in_window_share, resolve, weighted_sampler

from leads import bandit

HORIZON = {"2/5/10": 2508, "4/5/6": 47091, "5/5/5": 47091}  # bench/campaign.py's fixed-horizon sends


def stopping_campaign(
    rates: list[float], seed: int, rule: bandit.StoppingRule, *, hold: int, daily: int, cap: int, draws: int
) -> tuple[int | None, int]:
    """(index of the winner named, or None at the cap; sends made)."""
    world = random.Random(seed)  # noqa: S311  (a seeded simulation)
    choosing = random.Random(seed * 7919 + 1)  # noqa: S311  (a seeded simulation)
    estimating = random.Random(seed * 104_729 + 3)  # noqa: S311  (a seeded estimate)
    window = int(WINDOW_DAYS)
    arms = [Arm() for _ in rates]
    arrivals: dict[int, list[tuple[int, int]]] = {}
    sent, leader, held = 0, None, 0
    for day in range(math.ceil(cap / daily) + window + 1):
        resolve(arms, arrivals, day, window)
        adjusted = []
        for key, arm in enumerate(arms):
            weight = sum(count * in_window_share(day - sent_day) for sent_day, count in arm.pending.items())
            adjusted.append(bandit.Arm(key, 1 + arm.successes, 1 + arm.failures + weight))
        resolved = {key: arm.successes + arm.failures for key, arm in enumerate(arms)}
        named = bandit.winner(
            {risk.key: risk for risk in bandit.arm_risks(adjusted, estimating, draws)}, resolved, rule
        )
        leader, held = (named, held + 1) if named is not None and named == leader else (named, int(named is not None))
        if named is not None and held >= hold:
            return named, sent
        if sent >= cap:
            return None, sent
        samplers = [weighted_sampler(arm, day, 1.0, choosing) for arm in arms]
        for _ in range(min(daily, cap - sent)):
            index = max(range(len(arms)), key=lambda key: samplers[key]())
            sent += 1
            arms[index].pending[day] = arms[index].pending.get(day, 0) + 1
            if world.random() < rates[index]:
                delay = world.expovariate(1 / MEAN_DELAY_DAYS)
                if delay < WINDOW_DAYS:
                    arrivals.setdefault(day + max(1, math.ceil(delay)), []).append((index, day))
    return None, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="4/5/6:40,2/5/10:40,5/5/5:40", help="NAME:SEEDS, comma-separated")
    parser.add_argument("--probability", type=float, default=0.95, help="min_probability_best")
    parser.add_argument("--loss", type=float, default=0.001, help="loss_threshold")
    parser.add_argument("--min-resolved", type=int, default=50)
    parser.add_argument("--hold", type=int, default=1, help="consecutive daily checks naming the same winner")
    parser.add_argument("--daily", type=int, default=100)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--equal-cap", type=int, default=HORIZON["5/5/5"], help="sends of a campaign among equal arms")
    args = parser.parse_args()
    rule = bandit.StoppingRule(args.loss, args.min_resolved, args.probability)
    print(f"rule: loss < {args.loss}, P(best) >= {args.probability}, {args.min_resolved} resolved, hold {args.hold}")
    print("| rates | seeds | winners named | right | median sends to decision | fixed horizon |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for part in args.rates.split(","):
        name, seeds = part.split(":")
        rates = [float(value) / 100 for value in name.split("/")]
        best = rates.index(max(rates)) if len(set(rates)) > 1 else None
        cap = HORIZON[name] if best is not None else args.equal_cap
        outcomes = [
            stopping_campaign(rates, seed, rule, hold=args.hold, daily=args.daily, cap=cap, draws=args.draws)
            for seed in range(int(seeds))
        ]
        named = [index for index, _ in outcomes if index is not None]
        right = "-" if best is None else f"{sum(index == best for index in named) / max(1, len(outcomes)):.0%}"
        median = statistics.median(sends for _, sends in outcomes)
        print(f"| {name} | {seeds} | {len(named)} | {right} | {median:.0f} | {cap} |", flush=True)


if __name__ == "__main__":
    main()
