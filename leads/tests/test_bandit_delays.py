"""Delayed rewards in the posterior: the delay distribution, the adjusted arms, and a seeded
campaign with real timing (sends over 30 days, conversions days later, failures at window end)
run on the real `leads.bandit` code with a simulated clock."""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from dataclasses import dataclass

import pytest

from leads.bandit import DAY, PRIOR_WEIGHT, Arm, DelayDistribution, adjust_arms, beta_quantile, choose

HOUR = 3_600.0
WINDOW = 14 * DAY


# --- The delay distribution -------------------------------------------------------------


def test_without_successes_the_delay_is_the_prior_cut_at_the_window():
    delays = DelayDistribution.learn([], window=WINDOW)
    expected = (1 - math.exp(-1 / 3)) / (1 - math.exp(-14 / 3))
    assert delays.cdf(DAY) == pytest.approx(expected)
    assert delays.median() == pytest.approx(3 * DAY * math.log(2), rel=0.02)
    assert not delays.learned


def test_the_delay_distribution_is_zero_before_the_send_and_one_from_the_window_on():
    delays = DelayDistribution.learn([HOUR, 2 * DAY], window=WINDOW)
    assert delays.cdf(0.0) == 0.0
    assert delays.cdf(WINDOW) == 1.0
    assert delays.cdf(20 * DAY) == 1.0


def test_delays_before_the_send_or_past_the_window_are_clipped_to_it():
    assert DelayDistribution.learn([20 * DAY, -5.0, HOUR], window=WINDOW).observed == (0.0, HOUR, WINDOW)


def test_the_cdf_at_many_ages_is_the_cdf_at_each():
    delays = DelayDistribution.learn([HOUR * k for k in range(50)], window=WINDOW)
    ages = [-HOUR, 0.0, 0.5 * HOUR, 7.5 * HOUR, 3 * DAY, WINDOW, 2 * WINDOW]
    assert delays.cdf_at(ages) == {age: delays.cdf(age) for age in ages}


def test_observed_delays_outweigh_the_prior_once_there_are_many():
    # Every success within an hour: the learned median moves from days to under an hour.
    delays = DelayDistribution.learn([HOUR / 2] * (PRIOR_WEIGHT * 30), window=WINDOW)
    assert delays.learned
    assert delays.successes_seen == PRIOR_WEIGHT * 30
    assert delays.median() < HOUR
    assert delays.cdf(HOUR) == pytest.approx((PRIOR_WEIGHT * DelayDistribution.learn([], window=WINDOW).cdf(HOUR)
                                               + PRIOR_WEIGHT * 30) / (PRIOR_WEIGHT * 31))  # fmt: skip


def test_an_adjusted_arm_adds_each_pending_send_weighted_by_its_age():
    delays = DelayDistribution.learn([], window=WINDOW)
    pending = {1: {DAY: 10, 20 * DAY: 3}}
    [adjusted, untouched] = adjust_arms([Arm(1, 5.0, 50.0), Arm(2, 2.0, 9.0)], pending, delays)
    assert adjusted.pending_weight == pytest.approx(10 * delays.cdf(DAY) + 3)
    assert adjusted.arm == Arm(1, 5.0, 50.0 + adjusted.pending_weight)
    assert untouched.arm == Arm(2, 2.0, 9.0)
    assert untouched.pending_weight == 0.0


# --- A campaign with real timing --------------------------------------------------------

SENDS = 3_000
CAMPAIGN = 30 * DAY
BATCH = 6 * HOUR  # the stage computes the adjusted arms once per batch
MEAN_DELAY = 3 * DAY
TRUE_RATES = (0.02, 0.05, 0.10)


@dataclass
class CampaignEnd:
    arms: list[Arm]

    def covered(self, rates: tuple[float, ...]) -> int:
        """How many arms' central 95% intervals hold their true rate."""
        return sum(self.covered_arm(index, rate) for index, rate in enumerate(rates))

    def covered_arm(self, index: int, rate: float) -> bool:
        arm = self.arms[index]
        return beta_quantile(0.025, arm.alpha, arm.beta) <= rate <= beta_quantile(0.975, arm.alpha, arm.beta)

    def mean(self, index: int) -> float:
        arm = self.arms[index]
        return arm.alpha / (arm.alpha + arm.beta)


def run_campaign(seed: int, *, rates: tuple[float, ...] = TRUE_RATES, adjusted: bool = True) -> CampaignEnd:
    """SENDS sends evenly over CAMPAIGN, Thompson sampling per batch; a success arrives after an
    exponential delay (lost if past the window), a failure at the window's end. The posterior is
    read at the end of the campaign, with sends still pending."""
    rng, world = random.Random(seed), random.Random(seed + 10_000)
    counters = [[1.0, 1.0] for _ in rates]
    pending: list[defaultdict[int, int]] = [defaultdict(int) for _ in rates]  # send hour -> count
    rewards: list[tuple[float, int, int, bool]] = []  # (when, arm, send hour, success), a heap
    delays: list[tuple[float, float]] = []  # (send time as the stage sees it, delay) per success
    send_gap = CAMPAIGN / SENDS
    sent, now = 0, 0.0
    while True:
        _reward_due(rewards, now, counters, pending, delays)
        arms = _arms(counters, pending, delays, now, adjusted)
        if now >= CAMPAIGN:
            return CampaignEnd(arms)
        while sent < SENDS and sent * send_gap < now + BATCH:
            at = sent * send_gap
            index = choose(arms, rng).key
            pending[index][int(at // HOUR)] += 1
            delay = world.expovariate(1 / MEAN_DELAY) if world.random() < rates[index] else math.inf
            success = delay <= WINDOW
            heapq.heappush(rewards, (at + (delay if success else WINDOW), index, int(at // HOUR), success))
            sent += 1
        now += BATCH


def _reward_due(rewards, now, counters, pending, delays) -> None:
    while rewards and rewards[0][0] <= now:
        at, index, hour, success = heapq.heappop(rewards)
        counters[index][0 if success else 1] += 1
        pending[index][hour] -= 1
        if success:
            delays.append((hour * HOUR, at - hour * HOUR))  # the send time as the stage sees it: its hour
    for histogram in pending:
        for hour in [h for h, n in histogram.items() if n == 0]:
            del histogram[hour]


def _arms(counters, pending, delays, now, adjusted) -> list[Arm]:
    arms = [Arm(index, alpha, beta) for index, (alpha, beta) in enumerate(counters)]
    if not adjusted:
        return arms
    histograms = {
        index: {now - (hour + 0.5) * HOUR: count for hour, count in histogram.items()}
        for index, histogram in enumerate(pending)
    }
    # As selectors.experiment_delays: only the successes of sends at least a window old.
    settled = [delay for sent_at, delay in delays if now - sent_at >= WINDOW]
    distribution = DelayDistribution.learn(settled[-1_000:], window=WINDOW)
    return [adjusted.arm for adjusted in adjust_arms(arms, histograms, distribution)]


SEEDS = range(40)


def _coverage(ends: list[CampaignEnd]) -> float:
    """The share of all intervals (every arm of every campaign) that hold their true rate."""
    return sum(end.covered(TRUE_RATES) for end in ends) / (len(ends) * len(TRUE_RATES))


def test_with_pending_sends_adjusted_the_intervals_cover_the_true_rates_and_the_best_mean_is_close():
    ends = [run_campaign(seed) for seed in SEEDS]
    # Every variant's interval holds its rate in at least 38 of the 40 seeds (39, 39, 39 here).
    covering = [sum(end.covered_arm(index, rate) for end in ends) for index, rate in enumerate(TRUE_RATES)]
    assert min(covering) >= 38, f"seeds covered per variant: {covering}"
    best_error = [abs(end.mean(2) - TRUE_RATES[2]) / TRUE_RATES[2] for end in ends]
    assert max(best_error) <= 0.20, f"the best arm's mean was {max(best_error):.0%} off"


def test_counting_failures_only_at_expiry_inflates_the_posterior():
    ends = [run_campaign(seed, adjusted=False) for seed in SEEDS]
    assert _coverage(ends) < 0.80
    assert sum(end.mean(2) for end in ends) / len(ends) > 1.5 * TRUE_RATES[2]
