"""A campaign with real timing through the real services: are the posteriors honest, and when to stop?

Seeded simulation on PostgreSQL: each of WORKERS processes runs campaigns one after another on
its own database (`pw_bench_campaign_N`, dropped and created per run). For each true-rate set and
seed, one experiment of one variant per rate; SENDS leads arrive evenly over DAYS days, in ticks of
TICK_HOURS on a clock the bench controls. Each tick, in order:
  1. conversions due by then are applied, as one batch, with
     `leads.services.feedback.engagement_apply_batch` at their own times (the delay from the send
     is exponential, mean 3 days; one past the 14-day window never arrives);
  2. `outreach_expire_stale(now=tick)` closes the sends whose window ended (failure rewards);
  3. the tick's leads are created and go through `outreach_schedule_batch(now=tick)` (eligibility,
     Thompson sampling on the adjusted posteriors, rendering) and are marked sent at the tick with
     `leads.services.dispatch.dispatch_record` (what the dispatcher does after SMTP; no mail);
  4. once a simulated day, the stopping rule as staff see it (`selectors.experiment_posteriors`
     and `selectors.experiment_decision`), until it first names a winner; days on which it cannot
     decide are skipped by an exact test (a variant below its minimum of resolved sends) or a
     1,000-draw screen far from a decision (see `_far_from_decision`).
At the end (the last tick, sends still pending) each rule's posterior per variant: "adjusted" is
`selectors.variant_adjusted_arms` (what the outreach stage draws from); "stored counters" is the
variants' alpha/beta alone (failures counted only at window end), from the same campaign.

Common random numbers: per seed, the nth send's uniform and conversion delay are drawn in advance
(`lead_outcomes`); it converts iff its uniform is below its variant's true rate. The baseline,
Thompson sampling with instant rewards (`leads.bandit.choose` over Beta(1+s, 1+f), every outcome
known at once, no database), reads the same list with the same choice seed, so the regret ratio
(ratio of mean regrets, with a seeded paired-bootstrap 95% interval over seeds) is the delay's.

Stopping campaigns (--stop-rates NAME:SEEDS): the same, at STOP_DAILY sends a day in ticks of
STOP_TICK_HOURS, each until the rule names a winner or the fixed-horizon test's sends are reached
(among equal arms, where no test has a horizon, those of 4/5/6): accuracy and median sends to
decision against the fixed-horizon sends, where 3,000 sends cannot decide a close set.

The fixed-horizon A/B test of the same power: the per-arm sample size of a two-sided two-proportion
z-test of the best rate against the runner-up, alpha 0.05 Bonferroni-corrected over the k-1
comparisons with the best, power 0.95 (the stopping rule's accuracy target), times k arms:
n = (z_{1-a/2} sqrt(2 pbar (1-pbar)) + z_{power} sqrt(p1 (1-p1) + p2 (1-p2)))^2 / (p1 - p2)^2.

    make bench-campaign   # python bench/campaign.py --rates 2/5/10:40,4/5/6:40,5/5/5:14 \
                          #   --stop-rates 2/5/10:10,4/5/6:10 --workers 3
    python bench/campaign.py --from-json   # summarise bench/results/campaign.json again (or a run cut short)

Where a campaign's time goes: bench/profile_campaign.py (one campaign in-process, pyinstrument).
"""

from __future__ import annotations

import argparse
import functools
import heapq
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from servers import SERVICE_ENV  # noqa: E402  (after ROOT is importable)

ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = "pw_bench_campaign"
RESULTS = ROOT / "bench" / "results"
START = datetime(2026, 3, 2, tzinfo=UTC)
DAY = timedelta(days=1)
MEAN_DELAY_DAYS = 3.0
WINDOW_DAYS = 14
TAIL = 1_000
RATE_SETS = {"2/5/10": (0.02, 0.05, 0.10), "4/5/6": (0.04, 0.05, 0.06), "5/5/5": (0.05, 0.05, 0.05)}
ALPHA, POWER = 0.05, 0.95
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 10_000, 0
SCREEN_DRAWS, SCREEN_SEED = 1_000, 1
TARGETS = {"coverage": 0.95, "regret_ratio": 1.3, "stopping_accuracy": 0.95, "fewer_sends": 0.30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="campaigns per rate set, unless its NAME:SEEDS says")
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--tick-hours", type=float, default=3.0)
    parser.add_argument("--rates", default=",".join(RATE_SETS), help="NAME[:SEEDS],... of " + " ".join(RATE_SETS))
    parser.add_argument("--stop-rates", default="", help="stopping campaigns, NAME:SEEDS,... (default none)")
    parser.add_argument("--stop-daily", type=float, default=100.0, help="their sends per simulated day")
    parser.add_argument("--stop-tick-hours", type=float, default=24.0)
    parser.add_argument("--workers", type=int, default=2, help="campaigns run at once, each in its own database")
    parser.add_argument("--from-json", action="store_true", help="summarise bench/results/campaign.json again")
    args = parser.parse_args()
    if args.from_json:
        _write(json.loads((RESULTS / "campaign.json").read_text()))
        return
    main_seeds, stop_seeds = _seeds(args.rates, args.seeds), _seeds(args.stop_rates, 0)
    settings = {
        **{key: getattr(args, key) for key in ("sends", "days", "tick_hours", "stop_daily", "stop_tick_hours")},
        **{"seeds": main_seeds, "stop_seeds": stop_seeds, "workers": args.workers},
    }
    # Seed by seed, the stopping campaigns spread evenly among the others: a run cut short is
    # balanced, and the long campaigns do not all hold the workers at once.
    runs = [("main", name, seed) for seed in range(max(main_seeds.values(), default=0))
            for name, seeds in main_seeds.items() if seed < seeds]  # fmt: skip
    stops = [("stop", name, seed) for seed in range(max(stop_seeds.values(), default=0))
             for name, seeds in stop_seeds.items() if seed < seeds]  # fmt: skip
    jobs = _interleave(stops, runs)
    started = time.perf_counter()
    report: dict[str, Any] = {"settings": settings, "complete": False, "seconds": 0.0, "campaigns": []}
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_worker_setup, initargs=(context.Value("i", 0),)) as pool:
        for campaign in pool.imap_unordered(functools.partial(_job, args=args), jobs):
            report["campaigns"].append(campaign)
            report["seconds"] = round(time.perf_counter() - started, 1)
            # Kept as it goes: a run cut short is summarised with --from-json, labelled partial.
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "campaign.json").write_text(json.dumps(report, indent=2) + "\n")
            print(f"{report['seconds']:.0f} s: {campaign['kind']} {campaign['rates_name']} seed {campaign['seed']}: "
                  f"{json.dumps(_brief(campaign))}", flush=True)  # fmt: skip
    _write({**report, "complete": True})


def _interleave(first: list[Any], second: list[Any]) -> list[Any]:
    """Both lists in their order, merged in proportion, `first` leading: [a, b, b, a, b, b, ...]."""
    merged, i, j = [], 0, 0
    while i < len(first) or j < len(second):
        if i < len(first) and (j >= len(second) or i * len(second) <= j * len(first)):
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


def _seeds(spec: str, default: int) -> dict[str, int]:
    """{"2/5/10": 40, ...} from "2/5/10:40,4/5/6" (SEEDS left out: `default`)."""
    seeds = {}
    for item in filter(None, spec.split(",")):
        name, _, count = item.partition(":")
        if name not in RATE_SETS:
            raise SystemExit(f"campaign.py: unknown rate set {name!r}, not one of {' '.join(RATE_SETS)}")
        seeds[name] = int(count) if count else default
    return seeds


def stopping_cap(rates: tuple[float, ...]) -> int:
    """A stopping campaign's sends at most: the fixed-horizon test's; among equal arms, where no
    test has a horizon, that of the closest unequal set (4/5/6), so false winners get as long."""
    return fixed_horizon_sends(rates) or fixed_horizon_sends(RATE_SETS["4/5/6"]) or 0


def _job(job: tuple[str, str, int], *, args: argparse.Namespace) -> dict[str, Any]:
    kind, name, seed = job
    rates = RATE_SETS[name]
    if kind == "stop":
        sends = stopping_cap(rates)
        days = sends / args.stop_daily
        campaign = _campaign(rates, seed, sends=sends, days=days, tick_hours=args.stop_tick_hours, until_decided=True)
    else:
        campaign = _campaign(rates, seed, sends=args.sends, days=args.days, tick_hours=args.tick_hours)
        campaign["instant"] = _instant_thompson(rates, seed, sends=args.sends)
    return {**campaign, "kind": kind, "rates_name": name, "seed": seed}


def _write(report: dict[str, Any]) -> None:
    names = [name for name in RATE_SETS if any(c["rates_name"] == name for c in report["campaigns"])]
    report["campaigns"].sort(key=lambda c: (c["kind"], names.index(c["rates_name"]), c["seed"]))
    report = {**report, **_summarise(report["campaigns"], names, report["settings"])}
    report["campaigns"] = report.pop("campaigns")  # last in the file: the summary reads first
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "campaign.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "campaign.md").write_text(_markdown(report))
    print(_markdown(report))


def _worker_setup(counter: Any) -> None:
    """A worker process's own database, `pw_bench_campaign_N` (dropped and created), and Django on it."""
    with counter.get_lock():
        number, counter.value = counter.value, counter.value + 1
    _setup_django(f"{DATABASE}_{number}")


def _setup_django(database: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    os.environ.update(SERVICE_ENV)
    os.environ.update(
        DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{database}",
        DJANGO_SETTINGS_MODULE="pipeline_whisperer.settings",
        KAFKA_BOOTSTRAP_SERVERS="",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",  # nothing is sent: sends are recorded
        OUTREACH_SEND_WINDOW="mon-sun 00:00-24:00",
        OUTREACH_DOMAIN_HOURLY_CAP="1000000",
        OUTREACH_DAILY_CAP="1000000",
        OUTREACH_MIN_SCORE="0.5",
        ATTRIBUTION_WINDOW_DAYS=str(WINDOW_DAYS),
    )
    for name in ("REDIS_URL", "OPENAI_API_KEY"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from leads.outbox import outbox_dispatcher_set

    outbox_dispatcher_set(None)  # as with Kafka: outreach.sent stays in the outbox


def _campaign(
    rates: tuple[float, ...], seed: int, *, sends: int, days: float, tick_hours: float, until_decided: bool = False
) -> dict[str, Any]:
    """One seeded campaign (see the module docstring); with `until_decided`, it ends at the stopping
    rule's first winner instead of going on to all its sends."""
    from django.db import transaction

    from leads import bandit, selectors
    from leads.models import Experiment, Lead, Outreach, OutreachTemplate, Variant
    from leads.services.dispatch import dispatch_record
    from leads.services.feedback import engagement_apply_batch
    from leads.services.outreach import OutreachRequest, outreach_expire_stale, outreach_schedule_batch
    from leads.services.sending import Delivery

    Experiment.objects.filter(status=Experiment.Status.ACTIVE).update(status=Experiment.Status.PAUSED)
    tag = f"r{'-'.join(str(round(r * 100)) for r in rates)}s{seed}{'u' if until_decided else ''}"
    template = OutreachTemplate.objects.create(name=f"t-{tag}", subject="Hello", body="Hi {{ contact_name }}.")
    experiment = Experiment.objects.create(name=f"e-{tag}", target_persona="")
    variants = [
        Variant.objects.create(experiment=experiment, name=f"v{n}", template=template) for n in range(len(rates))
    ]
    true_rate = {variant.pk: rate for variant, rate in zip(variants, rates, strict=True)}
    best_rate = max(rates)
    choices = random.Random(seed)  # noqa: S311  (a seeded simulation)
    outcomes = lead_outcomes(seed, sends)
    tick = timedelta(hours=tick_hours)
    ticks = max(1, math.ceil(days * 24 / tick_hours))
    due: list[tuple[datetime, int, int]] = []  # (when, outreach id, sequence) of conversions to come
    chosen_rates: list[float] = []
    decision: dict[str, Any] | None = None
    next_check = START + DAY
    now = START
    sent = 0
    for index in range(ticks):
        now = START + index * tick
        conversions = []
        while due and due[0][0] <= now:
            at, outreach_id, number = heapq.heappop(due)
            conversions.append(
                {
                    "event_id": f"conv-{tag}-{number}",
                    "outreach_id": outreach_id,
                    "event_type": "converted",
                    "occurred_at": at.isoformat(),
                }
            )
        if conversions:  # one batch per tick, in time order, as the feedback stage applies them
            with transaction.atomic():
                engagement_apply_batch(events=conversions)
        outreach_expire_stale(now=now)
        upto = round((index + 1) * sends / ticks)
        with transaction.atomic():
            batch = Lead.objects.bulk_create(_lead(tag, n) for n in range(sent, upto))
            results = outreach_schedule_batch(
                requests=[OutreachRequest(lead_id=lead.pk) for lead in batch], rng=choices, now=now
            )
            scheduled = [result.outreach for result in results if result.outreach is not None]
            dispatch_record(deliveries=[Delivery(outreach) for outreach in scheduled], now=now)
        sent = upto
        for outreach in scheduled:
            rate = true_rate[cast(int, outreach.variant_id)]  # every lead of the bench is chosen a variant
            uniform, delay_days = outcomes[len(chosen_rates)]
            chosen_rates.append(rate)
            if uniform < rate and delay_days < WINDOW_DAYS:
                heapq.heappush(due, (now + timedelta(days=delay_days), outreach.pk, len(chosen_rates)))
        if decision is None and now >= next_check:
            next_check += DAY
            rows = list(Variant.objects.filter(experiment=experiment).order_by("pk"))
            experiment.refresh_from_db()
            if _far_from_decision(experiment, rows):
                continue
            verdict = selectors.experiment_decision(experiment, rows, selectors.experiment_posteriors(rows))
            if verdict.winner is not None:
                day = index * tick / DAY
                decision = {"winner_rate": true_rate[verdict.winner], "sends": len(chosen_rates), "day": day}
                if until_decided:
                    break
    rows = list(Variant.objects.filter(experiment=experiment).order_by("pk"))
    adjusted = selectors.variant_adjusted_arms(rows, now=now)
    rules = {
        "adjusted": [adjusted[v.pk].arm for v in rows],
        "stored counters": [bandit.Arm(v.pk, v.alpha, v.beta) for v in rows],
    }
    pending = Outreach.objects.filter(variant__experiment=experiment, reward="").count()
    return {
        "sends": len(chosen_rates),
        "pending_at_end": pending,
        "rules": {name: _posterior_figures(arms, true_rate) for name, arms in rules.items()},
        "best_share_tail": _tail_share(chosen_rates, best_rate),
        "regret": sum(best_rate - rate for rate in chosen_rates),
        "decision": decision,
    }


def _far_from_decision(experiment: Any, variants: list[Any]) -> bool:
    """Whether the daily stopping check can be skipped: some variant lacks its minimum of resolved
    sends (the rule cannot decide), or SCREEN_DRAWS draws on the posteriors the check would read
    put the least expected loss above 3x the threshold or its arm's chance of being best under
    0.8. On a day the full check would decide (a loss under the threshold, a chance of 0.95 or
    more), the screen's error (about 1e-4 in loss and 0.01 in chance at 1,000 draws) cannot skip
    it; the full check, as staff see it, is the one that decides. The screen costs a fifth of it."""
    from leads import bandit

    active = [v for v in variants if v.is_active]
    if any(v.successes + v.failures < experiment.min_resolved_per_variant for v in active):
        return True
    arms = [bandit.Arm(v.pk, v.posterior_alpha or v.alpha, v.posterior_beta or v.beta) for v in active]
    risks = bandit.arm_risks(arms, random.Random(SCREEN_SEED), SCREEN_DRAWS)  # noqa: S311  (a seeded estimate)
    least = min(risks, key=lambda risk: risk.expected_loss)
    return least.expected_loss > 3 * experiment.loss_threshold or least.probability_best < 0.8


def _lead(tag: str, n: int) -> Any:
    from leads.models import Lead

    return Lead(
        lightfield_id=f"lf-{tag}-{n:06d}",
        company_name=f"Company {n}",
        contact_email=f"c{n}@{tag}-{n}.example",
        status=Lead.Status.SCORED,
        score=0.9,
    )


def _posterior_figures(arms: list[Any], true_rate: dict[int, float]) -> dict[str, Any]:
    from leads.bandit import beta_quantile

    best = max(true_rate.values())
    variants = []
    for arm in arms:
        low, high = beta_quantile(0.025, arm.alpha, arm.beta), beta_quantile(0.975, arm.alpha, arm.beta)
        mean, truth = arm.alpha / (arm.alpha + arm.beta), true_rate[arm.key]
        variants.append({"true": truth, "mean": mean, "low": low, "high": high, "covers": low <= truth <= high})
    best_arm = max(variants, key=lambda v: (v["true"], v["mean"]))
    return {
        "variants": variants,
        "best_mean": best_arm["mean"],
        "best_relative_error": abs(best_arm["mean"] - best) / best,
        "mean_abs_error": statistics.fmean(abs(v["mean"] - v["true"]) for v in variants),
    }


def _tail_share(chosen_rates: list[float], best_rate: float) -> float:
    tail = chosen_rates[-TAIL:]
    return sum(rate == best_rate for rate in tail) / len(tail) if tail else 0.0


def lead_outcomes(seed: int, sends: int) -> list[tuple[float, float]]:
    """Per send, in order: a uniform and a conversion delay in days, drawn once per seed. The nth
    send converts iff its uniform is below the true rate of the variant chosen for it, after its
    delay: the campaign and the instant-reward baseline read the same list (common random numbers),
    so their paired regret difference is the bandits', not the luck of the outcomes."""
    world = random.Random(1_000_003 + seed)  # noqa: S311  (a seeded simulation)
    return [(world.random(), world.expovariate(1 / MEAN_DELAY_DAYS)) for _ in range(sends)]


def _instant_thompson(rates: tuple[float, ...], seed: int, *, sends: int) -> dict[str, float]:
    """Thompson sampling with every outcome known at once: `leads.bandit.choose`, no database."""
    from leads.bandit import Arm, choose

    choices = random.Random(seed)  # noqa: S311  (a seeded simulation)
    successes, failures = [0] * len(rates), [0] * len(rates)
    chosen_rates = []
    for uniform, _delay in lead_outcomes(seed, sends):
        arm = choose([Arm(i, 1 + successes[i], 1 + failures[i]) for i in range(len(rates))], choices).key
        if uniform < rates[arm]:
            successes[arm] += 1
        else:
            failures[arm] += 1
        chosen_rates.append(rates[arm])
    best = max(rates)
    return {"regret": sum(best - rate for rate in chosen_rates), "best_share_tail": _tail_share(chosen_rates, best)}


def fixed_horizon_sends(rates: tuple[float, ...], alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Total sends of a fixed-horizon test (see the module docstring); None when no arm is better."""
    ordered = sorted(rates, reverse=True)
    p1, p2 = ordered[0], ordered[1]
    if p1 == p2:
        return None
    z_alpha = NormalDist().inv_cdf(1 - alpha / (len(rates) - 1) / 2)
    z_power = NormalDist().inv_cdf(power)
    pbar = (p1 + p2) / 2
    root = z_alpha * math.sqrt(2 * pbar * (1 - pbar)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return len(rates) * math.ceil(root**2 / (p1 - p2) ** 2)


def _brief(campaign: dict[str, Any]) -> dict[str, Any]:
    return {
        "coverage": {rule: sum(v["covers"] for v in f["variants"]) for rule, f in campaign["rules"].items()},
        "tail": campaign["best_share_tail"],
        "regret": round(campaign["regret"], 1),
        "instant_regret": round(campaign["instant"]["regret"], 1) if "instant" in campaign else None,
        "decision": campaign["decision"],
    }


def _summarise(results: list[dict[str, Any]], names: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    per_set = {}
    for name in names:
        runs = [r for r in results if r["rates_name"] == name and r["kind"] == "main"]
        rates = RATE_SETS[name]
        rules = {}
        for rule in ("adjusted", "stored counters"):
            figures = [r["rules"][rule] for r in runs]
            rules[rule] = {
                "coverage": statistics.fmean(v["covers"] for f in figures for v in f["variants"]),
                "best_mean": statistics.fmean(f["best_mean"] for f in figures),
                "best_relative_error": statistics.fmean(f["best_relative_error"] for f in figures),
                "mean_abs_error": statistics.fmean(f["mean_abs_error"] for f in figures),
            }
        ratio = paired_ratio([(r["regret"], r["instant"]["regret"]) for r in runs])
        stops = [r for r in results if r["rates_name"] == name and r["kind"] == "stop"]
        per_set[name] = {
            "rates": rates,
            "campaigns": len(runs),
            "rules": rules,
            "best_share_tail": statistics.fmean(r["best_share_tail"] for r in runs),
            "instant_best_share_tail": statistics.fmean(r["instant"]["best_share_tail"] for r in runs),
            "regret": statistics.fmean(r["regret"] for r in runs),
            "instant_regret": statistics.fmean(r["instant"]["regret"] for r in runs),
            "regret_ratio": ratio[0],
            "regret_ratio_low": ratio[1],
            "regret_ratio_high": ratio[2],
            # The stopping rule within the campaigns above, and in the stopping campaigns (run until
            # it decides or the fixed-horizon sends are reached, at STOP_DAILY sends a day).
            "stopping_within_sends": _stopping(runs, rates, sends_per_day=settings["sends"] / settings["days"]),
            "stopping": _stopping(stops, rates, sends_per_day=settings["stop_daily"]) if stops else None,
        }
    return {"rate_sets": per_set, "targets": _targets(per_set)}


def _stopping(runs: list[dict[str, Any]], rates: tuple[float, ...], *, sends_per_day: float) -> dict[str, Any]:
    best = max(rates)
    decided = [r["decision"] for r in runs if r["decision"] is not None]
    has_best = rates.count(best) == 1
    fixed = fixed_horizon_sends(rates)
    return {
        "campaigns": len(runs),
        "decided": len(decided),
        # Where one arm is best: the share of campaigns whose first winner is it (no winner is a miss);
        # among equal arms: the share of campaigns that named any winner (should be small).
        "accuracy": sum(d["winner_rate"] == best for d in decided) / len(runs) if has_best else None,
        "false_winner_share": None if has_best else len(decided) / len(runs),
        # A campaign that named no winner counts with all its sends (a lower bound of its own).
        "median_sends": statistics.median(r["decision"]["sends"] if r["decision"] else r["sends"] for r in runs),
        "median_days": statistics.median(
            r["decision"]["day"] if r["decision"] else r["sends"] / sends_per_day for r in runs
        ),
        "fixed_horizon_sends": fixed,
        # A fixed-horizon test decides when its last send's outcome is known: sent at the same
        # pace as the campaign, then one attribution window.
        "fixed_horizon_days": fixed / sends_per_day + WINDOW_DAYS if fixed else None,
    }


def paired_ratio(pairs: list[tuple[float, float]], resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float | None, ...]:
    """The ratio of means sum(a) / sum(b) of the (a, b) pairs, with a 95% interval from a seeded
    paired bootstrap (seeds resampled with replacement, each keeping its pair); Nones when b is 0."""
    if not pairs or sum(b for _, b in pairs) <= 0:
        return None, None, None
    rng = random.Random(BOOTSTRAP_SEED)  # noqa: S311  (a seeded estimate)
    ratios = []
    for _ in range(resamples):
        sample = rng.choices(pairs, k=len(pairs))
        below = sum(b for _, b in sample)
        ratios.append(sum(a for a, _ in sample) / below if below > 0 else math.inf)
    ratios.sort()
    low, high = ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]
    return sum(a for a, _ in pairs) / sum(b for _, b in pairs), low, high


def _targets(per_set: dict[str, Any]) -> list[dict[str, Any]]:
    lines = []
    for name, row in per_set.items():
        coverage = row["rules"]["adjusted"]["coverage"]
        lines.append(_line(f"{name}: adjusted intervals cover the truth >= 95%", coverage >= TARGETS["coverage"],
                           f"{coverage:.0%}"))  # fmt: skip
        ratio = row["regret_ratio"]
        if ratio is not None:
            lines.append(_line(f"{name}: regret <= 1.3x instant-reward Thompson sampling (same outcomes per send)",
                               ratio <= TARGETS["regret_ratio"],
                               f"{ratio:.2f}x (95% paired bootstrap {row['regret_ratio_low']:.2f}-"
                               f"{row['regret_ratio_high']:.2f}x)"))  # fmt: skip
        stop = row["stopping"] or row["stopping_within_sends"]
        where = "stopping campaigns" if row["stopping"] else "campaigns above"
        if stop["accuracy"] is not None:
            accuracy, sends, fixed = stop["accuracy"], stop["median_sends"], stop["fixed_horizon_sends"]
            fewer = 1 - sends / fixed
            met = accuracy >= TARGETS["stopping_accuracy"] and fewer >= TARGETS["fewer_sends"]
            saved = f"{fewer:.0%} fewer"
            undecided = stop["campaigns"] - stop["decided"]
            if undecided:  # their sends are the cap, not a decision
                saved += f"; {undecided} of {stop['campaigns']} undecided, counted at all their sends"
            lines.append(_line(f"{name}: stopping names the best >= 95%, >= 30% fewer sends than fixed-horizon "
                               f"({where})", met,
                               f"{accuracy:.0%}, median {_and_days(sends, stop['median_days'])} sends (days) vs "
                               f"{_and_days(fixed, stop['fixed_horizon_days'])} ({saved})"))  # fmt: skip
        else:
            share = stop["false_winner_share"]
            lines.append(_line(f"{name}: no winner among equal arms in > 5% ({where}, up to {stop['median_sends']:g} "
                               "sends)", share <= 0.05, f"{share:.0%}"))  # fmt: skip
    return lines


def _line(target: str, met: bool, figure: str) -> dict[str, Any]:
    return {"target": target, "met": met, "figure": figure}


def _markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    out = [
        "# Campaign with real timing",
        "",
        f"`{_command(s)}` ({report['seconds']} s, {s['workers']} campaigns at once, on a machine shared with "
        f"other work). {_partial(report)}Conversion delay exponential, mean "
        f"{MEAN_DELAY_DAYS:g} days; {WINDOW_DAYS}-day window; posteriors read at the last tick (day {s['days']:g}, "
        "sends of the last 14 days still pending). See bench/campaign.py's docstring for how.",
        "",
        "## Targets",
        "",
    ]
    out += [f"- {'met' if t['met'] else 'MISSED'}: {t['target']}: {t['figure']}" for t in report["targets"]]
    out += [
        "",
        "## Posteriors at the end, per rule",
        "",
        "| rates | rule | 95% intervals covering the truth | best arm's mean (true) | its relative error "
        "| mean abs error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in report["rate_sets"].items():
        for rule, f in row["rules"].items():
            out.append(
                f"| {name} | {rule} | {f['coverage']:.0%} | {f['best_mean']:.4f} ({max(row['rates']):.2f}) "
                f"| {f['best_relative_error']:.0%} | {f['mean_abs_error']:.4f} |"
            )
    out += [
        "",
        "## Allocation (the campaigns draw from the adjusted posteriors)",
        "",
        "| rates | best-arm share, last 1,000 (instant TS) | regret (instant TS) | ratio (95% paired bootstrap) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in report["rate_sets"].items():
        ratio = (
            f"{row['regret_ratio']:.2f}x ({row['regret_ratio_low']:.2f}-{row['regret_ratio_high']:.2f})"
            if row["regret_ratio"] is not None
            else "-"
        )
        out.append(
            f"| {name} | {row['best_share_tail']:.0%} ({row['instant_best_share_tail']:.0%}) | "
            f"{row['regret']:.1f} ({row['instant_regret']:.1f}) | {ratio} |"
        )
    out += [
        "",
        "## Stopping rule",
        "",
        f"Within the campaigns above ({s['sends']} sends over {s['days']:g} days), and in the stopping campaigns: "
        f"{', '.join(f'{n}: {k} seeds' for n, k in s['stop_seeds'].items()) or 'none'}; "
        f"{s['stop_daily']:g} sends a day in ticks of {s['stop_tick_hours']:g} h, "
        "each until the rule names a winner or the fixed-horizon test's sends are reached (among equal arms: "
        "those of 4/5/6).",
        "",
        "| rates | campaigns | winners named / campaigns | right | median sends (days) to decision "
        "| fixed-horizon sends (days) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in report["rate_sets"].items():
        for label, stop in (("within sends", row["stopping_within_sends"]), ("stopping", row["stopping"])):
            if stop is None:
                continue
            right = f"{stop['accuracy']:.0%}" if stop["accuracy"] is not None else (
                f"false winners {stop['false_winner_share']:.0%}")  # fmt: skip
            out.append(
                f"| {name} | {label} | {stop['decided']} / {stop['campaigns']} | {right} "
                f"| {_and_days(stop['median_sends'], stop['median_days'])} "
                f"| {_and_days(stop['fixed_horizon_sends'], stop['fixed_horizon_days'])} |"
            )
    out += [
        "",
        "Reading: the campaigns run on the adjusted posteriors, so allocation figures exist for that rule only;",
        "the stored-counters rule is the same campaign's alpha/beta at the end. Regret is paired: the nth send",
        "of a seed's campaign and of its instant-reward baseline read the same uniform and delay, so the ratio",
        "of mean regrets measures the delay, not the outcomes' luck. The stopping rule is checked once a",
        "simulated day; a campaign that names no winner counts at all its sends. Its minimum of resolved sends",
        "per variant cannot be reached before the first windows close (failures resolve at window end). Among",
        "equal arms the best-arm share is 100% by definition.",
    ]
    return "\n".join(out) + "\n"


def _command(s: dict[str, Any]) -> str:
    def spec(seeds: dict[str, int]) -> str:
        return ",".join(f"{name}:{count}" for name, count in seeds.items())

    command = (
        f"python bench/campaign.py --rates {spec(s['seeds'])} --sends {s['sends']} --days {s['days']:g} "
        f"--tick-hours {s['tick_hours']:g} --workers {s['workers']}"
    )
    if s["stop_seeds"]:
        command += (
            f" --stop-rates {spec(s['stop_seeds'])} --stop-daily {s['stop_daily']:g} "
            f"--stop-tick-hours {s['stop_tick_hours']:g}"
        )
    return command


def _partial(report: dict[str, Any]) -> str:
    if report.get("complete", True):
        return ""
    planned = sum(report["settings"]["seeds"].values()) + sum(report["settings"]["stop_seeds"].values())
    return f"**Partial run: {len(report['campaigns'])} of {planned} campaigns finished, summarised as they are.** "


def _and_days(sends: float | None, days: float | None) -> str:
    return f"{sends:g} ({days:.0f})" if sends is not None and days is not None else "-"


if __name__ == "__main__":
    main()
