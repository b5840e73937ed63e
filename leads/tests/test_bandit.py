"""Thompson sampling and the Beta distribution maths behind the posterior summaries."""

from __future__ import annotations

import random

import pytest

from leads.bandit import Arm, beta_quantile, choose, regularized_incomplete_beta, summarise


@pytest.mark.parametrize(
    ("p", "a", "b", "expected"),
    [
        (0.025, 1, 1, 0.025),
        (0.975, 1, 1, 0.975),
        (0.025, 2, 2, 0.0943),
        (0.975, 2, 2, 0.9057),
        (0.025, 11, 91, 0.0556),
        (0.975, 11, 91, 0.1746),
    ],
)
def test_beta_quantile_matches_known_values(p, a, b, expected):
    assert beta_quantile(p, a, b) == pytest.approx(expected, abs=5e-5)


def test_beta_quantile_of_a_symmetric_posterior_is_symmetric():
    assert beta_quantile(0.025, 7, 7) == pytest.approx(1 - beta_quantile(0.975, 7, 7), abs=1e-12)


def test_regularized_incomplete_beta_matches_the_binomial_identity():
    # I_0.3(2, 5) = P(Binomial(6, 0.3) >= 2) = 1 - 0.7**6 - 6 * 0.3 * 0.7**5
    assert regularized_incomplete_beta(0.3, 2, 5) == pytest.approx(0.579825, abs=1e-9)


@pytest.mark.parametrize(("x", "expected"), [(0.0, 0.0), (-1.0, 0.0), (1.0, 1.0), (2.0, 1.0)])
def test_regularized_incomplete_beta_is_clamped_outside_the_unit_interval(x, expected):
    assert regularized_incomplete_beta(x, 3, 4) == expected


def test_regularized_incomplete_beta_above_the_mean_uses_the_symmetry_correctly():
    # I_x(a, b) = 1 - I_{1-x}(b, a)
    assert regularized_incomplete_beta(0.9, 2, 5) == pytest.approx(1 - regularized_incomplete_beta(0.1, 5, 2))


def test_choose_is_reproducible_under_a_seed():
    arms = [Arm(key=1, alpha=3, beta=5), Arm(key=2, alpha=4, beta=4), Arm(key=3, alpha=2, beta=2)]
    first, second = random.Random(42), random.Random(42)
    assert [choose(arms, first).key for _ in range(50)] == [choose(arms, second).key for _ in range(50)]


def test_choose_prefers_the_clearly_better_arm():
    better, worse = Arm(key=1, alpha=90, beta=10), Arm(key=2, alpha=10, beta=90)
    rng = random.Random(7)
    assert {choose([worse, better], rng).key for _ in range(200)} == {1}


def test_choose_explores_arms_with_equal_posteriors():
    arms = [Arm(key=1, alpha=1, beta=1), Arm(key=2, alpha=1, beta=1)]
    rng = random.Random(3)
    picks = [choose(arms, rng).key for _ in range(400)]
    assert 150 < picks.count(1) < 250


def test_choose_without_arms_is_refused():
    with pytest.raises(ValueError, match="at least one arm"):
        choose([], random.Random(0))


def test_summarise_probabilities_of_being_best_sum_to_one():
    arms = [Arm(key=1, alpha=11, beta=91), Arm(key=2, alpha=5, beta=5), Arm(key=3, alpha=1, beta=1)]
    posteriors = summarise(arms, random.Random(0))
    assert sum(p.probability_best for p in posteriors) == pytest.approx(1.0)


def test_summarise_reports_mean_and_credible_interval_per_arm():
    (posterior,) = summarise([Arm(key=9, alpha=11, beta=91)], random.Random(0))
    assert posterior.key == 9
    assert posterior.mean == pytest.approx(11 / 102)
    assert (posterior.ci_low, posterior.ci_high) == pytest.approx((0.0556, 0.1746), abs=5e-5)


def test_summarise_gives_a_single_arm_certainty_of_being_best():
    (posterior,) = summarise([Arm(key=1, alpha=2, beta=8)], random.Random(0))
    assert posterior.probability_best == 1.0


def test_summarise_is_reproducible_under_a_seed():
    arms = [Arm(key=1, alpha=4, beta=6), Arm(key=2, alpha=5, beta=5)]
    assert summarise(arms, random.Random(11)) == summarise(arms, random.Random(11))
