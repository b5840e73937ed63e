"""How much regret the delay itself costs: Thompson sampling on the exact posterior under delayed
conversions, against instant rewards and against our pending-weighted Beta, in pure Python.

bench/campaign.py measures the real services; this asks what any posterior could do on the same
timing. Per seed, SENDS sends spread evenly over DAYS days in ticks of TICK_HOURS; the nth send
converts iff its uniform is below its arm's true rate, after an exponential delay (mean 3 days);
one past the 14-day window never counts. Every rule sees the same uniforms and delays (common
random numbers) and draws with the same sampling seed; the posteriors are refreshed once a tick,
every send of a tick draws afresh. The delay distribution is known exactly (an oracle: the real
bandit learns it), so what remains is the cost of the information not having arrived yet:

- instant: Beta(1 + s, 1 + f), every outcome known at the next tick (bench/campaign.py's baseline);
- weighted: ours (leads.bandit): Beta(1 + s, 1 + f + sum of F(age) over the pending sends), F the
  share of in-window successes that arrive by an age;
- exact: the exact posterior on a grid of 200 rates: a uniform prior times p^s (1 - p)^f times
  prod over pending sends of (1 - p F(age)), sampled by its inverse CDF.

    python bench/campaign_delay_bound.py --rates 2/5/10,4/5/6 --seeds 40
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import statistics
from collections.abc import Callable, Sequence

DAY_HOURS = 24.0
MEAN_DELAY_DAYS = 3.0
WINDOW_DAYS = 14.0
GRID = [(index + 0.5) / 200 for index in range(200)]


def in_window_share(age_days: float) -> float:
    """F: of the successes that arrive within the window, the share that has arrived by `age_days`."""
    if age_days >= WINDOW_DAYS:
        return 1.0
    return math.expm1(-age_days / MEAN_DELAY_DAYS) / math.expm1(-WINDOW_DAYS / MEAN_DELAY_DAYS)


class Arm:
    """What a rule knows of one arm at a tick: successes arrived, failures resolved, pending sends
    by the tick they were sent at."""

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0
        self.pending: dict[int, int] = {}


def weighted_sampler(arm: Arm, tick: int, tick_days: float, rng: random.Random) -> Callable[[], float]:
    pending_weight = sum(count * in_window_share((tick - sent) * tick_days) for sent, count in arm.pending.items())
    alpha, beta = 1 + arm.successes, 1 + arm.failures + pending_weight
    return lambda: rng.betavariate(alpha, beta)


def exact_sampler(arm: Arm, tick: int, tick_days: float, rng: random.Random) -> Callable[[], float]:
    shares = [(count, in_window_share((tick - sent) * tick_days)) for sent, count in arm.pending.items()]
    logs = []
    for p in GRID:
        log = arm.successes * math.log(p) + arm.failures * math.log1p(-p)
        log += sum(count * math.log1p(-p * share) for count, share in shares)
        logs.append(log)
    top = max(logs)
    cumulative, total = [], 0.0
    for log in logs:
        total += math.exp(log - top)
        cumulative.append(total)
    width = GRID[1] - GRID[0]

    def draw() -> float:
        cell = bisect.bisect_left(cumulative, rng.random() * total)
        return GRID[min(cell, len(GRID) - 1)] + (rng.random() - 0.5) * width

    return draw


def resolve(arms: list[Arm], arrivals: dict[int, list[tuple[int, int]]], tick: int, window_ticks: int) -> None:
    """What `tick` settles: the successes due then, and the windows that closed as failures."""
    for index, sent_at in arrivals.pop(tick, []):
        arms[index].successes += 1
        arms[index].pending[sent_at] -= 1
    for arm in arms:
        arm.failures += arm.pending.pop(tick - window_ticks, 0)


def campaign(rates: Sequence[float], seed: int, rule: str, *, sends: int, days: int, tick_hours: float) -> float:
    """The regret (sum over sends of the best rate minus the chosen one's) of one seeded campaign."""
    outcomes = random.Random(seed)  # noqa: S311  (a seeded simulation)
    draws = [(outcomes.random(), outcomes.expovariate(1 / MEAN_DELAY_DAYS)) for _ in range(sends)]
    choosing = random.Random(seed * 7919 + 1)  # noqa: S311  (a seeded simulation)
    ticks = int(days * DAY_HOURS / tick_hours)
    tick_days = tick_hours / DAY_HOURS
    window_ticks = int(WINDOW_DAYS / tick_days)
    arms = [Arm() for _ in rates]
    arrivals: dict[int, list[tuple[int, int]]] = {}  # tick -> (arm, sent tick) of successes due then
    instant = rule == "instant"
    sampler = exact_sampler if rule == "exact" else weighted_sampler
    best, regret, sent = max(rates), 0.0, 0
    for tick in range(ticks):
        resolve(arms, arrivals, tick, window_ticks)
        samplers = [sampler(arm, tick, tick_days, choosing) for arm in arms]
        due = round((tick + 1) * sends / ticks) - sent
        for _ in range(due):
            index = max(range(len(arms)), key=lambda key: samplers[key]())
            uniform, delay = draws[sent]
            sent += 1
            regret += best - rates[index]
            converts = uniform < rates[index] and delay < WINDOW_DAYS
            if instant:  # known at the next tick, as a success or a failure
                if converts:
                    arms[index].successes += 1
                else:
                    arms[index].failures += 1
                continue
            arms[index].pending[tick] = arms[index].pending.get(tick, 0) + 1
            if converts:
                arrivals.setdefault(tick + max(1, math.ceil(delay / tick_days)), []).append((index, tick))
    return regret


def paired_ratio(numerators: list[float], denominators: list[float], seed: int = 1) -> tuple[float, float, float]:
    """Ratio of mean regrets and a paired-bootstrap 95% interval over seeds."""
    rng, pairs = random.Random(seed), list(zip(numerators, denominators, strict=True))  # noqa: S311  (a seeded bootstrap)
    ratios = []
    for _ in range(2000):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        ratios.append(sum(n for n, _ in sample) / max(1e-9, sum(d for _, d in sample)))
    ratios.sort()
    return sum(numerators) / sum(denominators), ratios[49], ratios[1949]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2/5/10,4/5/6", help="comma-separated sets of percentages")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tick-hours", type=float, default=3.0)
    args = parser.parse_args()
    shape = {"sends": args.sends, "days": args.days, "tick_hours": args.tick_hours}
    print(f"{args.seeds} seeds, {args.sends} sends over {args.days} days, ticks of {args.tick_hours} h")
    print("| rates | instant regret | weighted regret (x instant) | exact regret (x instant) |")
    print("| --- | ---: | ---: | ---: |")
    for name in args.rates.split(","):
        rates = [float(part) / 100 for part in name.split("/")]
        regrets = {
            rule: [campaign(rates, seed, rule, **shape) for seed in range(1, args.seeds + 1)]
            for rule in ("instant", "weighted", "exact")
        }
        cells = []
        for rule in ("weighted", "exact"):
            ratio, low, high = paired_ratio(regrets[rule], regrets["instant"])
            cells.append(f"{statistics.mean(regrets[rule]):.1f} ({ratio:.2f}x, {low:.2f}-{high:.2f})")
        print(f"| {name} | {statistics.mean(regrets['instant']):.1f} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
