"""Adjusted posteriors in the database: the aggregates they are computed from, the outreach
stage drawing from them, and the API showing exactly the ones the last choice drew from."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from leads import bandit, selectors
from leads.models import Lead, Outreach, Variant
from leads.services.outreach import OutreachRequest, outreach_schedule_batch
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
HOUR = 3_600.0


@pytest.fixture(autouse=True)
def outreach_settings(settings: Any) -> Any:
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.ATTRIBUTION_WINDOW_DAYS = 14
    return settings


def _sent(variant: Variant, at: datetime | None, **fields: Any) -> Outreach:
    return OutreachFactory(variant=variant, status=fields.pop("status", Outreach.Status.SENT), sent_at=at, **fields)


def _success(variant: Variant, *, sent_at: datetime, after: timedelta) -> Outreach:
    at = sent_at + after
    return _sent(variant, sent_at, status=Outreach.Status.CONVERTED, converted_at=at, reward="success", rewarded_at=at)


# --- The aggregates ------------------------------------------------------------------------


def test_pending_sends_are_counted_by_hour_of_sending_without_the_resolved_ones():
    variant, other = VariantFactory(), VariantFactory()
    _sent(variant, datetime(2026, 6, 1, 9, 5, tzinfo=UTC))
    _sent(variant, datetime(2026, 6, 1, 9, 40, tzinfo=UTC), status=Outreach.Status.OPENED)
    _sent(variant, datetime(2026, 6, 1, 11, 15, tzinfo=UTC))
    _success(variant, sent_at=datetime(2026, 6, 1, 9, 10, tzinfo=UTC), after=timedelta(hours=1))
    _sent(variant, datetime(2026, 6, 1, 9, 20, tzinfo=UTC), status=Outreach.Status.BOUNCED, reward="failure",
          rewarded_at=NOW)  # fmt: skip
    _sent(variant, datetime(2026, 6, 1, 9, 30, tzinfo=UTC), status=Outreach.Status.FAILED)  # never a reward
    _sent(variant, None, status=Outreach.Status.SCHEDULED)  # not sent yet
    _sent(other, datetime(2026, 6, 1, 9, 5, tzinfo=UTC))
    histograms = selectors.pending_histograms(variant_ids=[variant.pk], now=NOW)
    # Ages at the middle of each hour: 09:30 and 11:30 are 3 hours and 1 hour before 12:30.
    assert histograms == {variant.pk: {3 * HOUR: 2, 1 * HOUR: 1}}


def test_the_delays_are_the_latest_settled_successes_of_each_experiment(monkeypatch):
    monkeypatch.setattr(selectors, "RECENT_SUCCESSES", 2)
    first, second = VariantFactory(), VariantFactory()
    sibling = VariantFactory(experiment=first.experiment)
    start = NOW - timedelta(days=20)
    # The latest success, but of a send younger than the window, whose longer delays are still unseen.
    _success(first, sent_at=NOW - timedelta(days=13), after=timedelta(minutes=30))
    _success(first, sent_at=start, after=timedelta(hours=1))  # the oldest success: left out
    _success(sibling, sent_at=start, after=timedelta(hours=5))
    _success(first, sent_at=start + timedelta(days=1), after=timedelta(hours=2))
    _success(second, sent_at=start, after=timedelta(days=2))
    silent = ExperimentFactory()
    delays = selectors.experiment_delays(experiment_ids=[first.experiment_id, second.experiment_id, silent.pk], now=NOW)
    assert delays[first.experiment_id].observed == (2 * HOUR, 5 * HOUR)
    assert delays[second.experiment_id].observed == (2 * 86_400.0,)
    assert delays[silent.pk].successes_seen == 0
    assert delays[silent.pk].window == 14 * 86_400.0


# --- The outreach stage draws from the adjusted arms ---------------------------------------


def _two_arms_one_with_old_pending_sends() -> tuple[Variant, Variant]:
    """Equal counters; `crowded` has 40 sends of 13 days without a success, nearly all failures."""
    experiment = ExperimentFactory()
    crowded = VariantFactory(experiment=experiment, name="crowded", alpha=2.0, beta=2.0, sends=42, successes=1)
    fresh = VariantFactory(experiment=experiment, name="fresh", alpha=2.0, beta=2.0, sends=2, successes=1)
    for _ in range(40):
        _sent(crowded, NOW - timedelta(days=13))
    return crowded, fresh


def _schedule(count: int, seed: int) -> list[Outreach]:
    leads = [LeadFactory(status=Lead.Status.SCORED, score=0.9) for _ in range(count)]
    requests = [OutreachRequest(lead_id=lead.pk) for lead in leads]
    results = outreach_schedule_batch(requests=requests, rng=random.Random(seed), now=NOW)
    return [result.outreach for result in results if result.outreach is not None]


def test_the_outreach_stage_counts_old_pending_sends_as_failures_and_records_what_it_drew_from():
    crowded, fresh = _two_arms_one_with_old_pending_sends()
    scheduled = _schedule(12, seed=3)
    assert len(scheduled) == 12
    assert {outreach.variant_id for outreach in scheduled} == {fresh.pk}  # 50/50 on the bare counters
    crowded.refresh_from_db()
    age = timedelta(days=13).total_seconds()  # sent at 12:30 thirteen days ago: the 12:00 hour's middle
    weight = 40 * bandit.DelayDistribution.learn([], window=14 * 86_400.0).cdf(age)
    assert crowded.pending_weight == pytest.approx(weight)
    assert (crowded.alpha, crowded.beta) == (2.0, 2.0)  # the stored counters do not move
    assert (crowded.posterior_alpha, crowded.posterior_beta, crowded.posterior_at) == (2.0, 2.0 + weight, NOW)


def test_a_batch_that_chooses_nothing_keeps_the_recorded_posteriors():
    crowded, _ = _two_arms_one_with_old_pending_sends()
    outreach_schedule_batch(
        requests=[OutreachRequest(lead_id=LeadFactory(score=0.1).pk)], rng=random.Random(1), now=NOW
    )
    crowded.refresh_from_db()
    assert crowded.posterior_at is None


# --- The API shows the posteriors of the last choice ---------------------------------------


def test_the_api_returns_the_posteriors_the_last_choice_drew_from(api_client):
    crowded, fresh = _two_arms_one_with_old_pending_sends()
    fresh_sends = [_sent(fresh, NOW - timedelta(hours=h)) for h in (2, 30, 80)]  # some pending weight on both
    scheduled = _schedule(20, seed=7)
    # A reward and a send after the choice: the counters move, the posterior of the last choice stays.
    Outreach.objects.filter(pk=fresh_sends[0].pk).update(
        status=Outreach.Status.CONVERTED, converted_at=NOW, reward="success", rewarded_at=NOW
    )
    Variant.objects.filter(pk=fresh.pk).update(alpha=3.0, successes=2)
    _sent(crowded, NOW)
    body = api_client.get(f"/api/v1/experiments/{fresh.experiment_id}").json()
    variants = {variant["id"]: variant for variant in body["variants"]}
    arms = [bandit.Arm(pk, variants[pk]["posterior_alpha"], variants[pk]["posterior_beta"]) for pk in sorted(variants)]
    # The same draws from the posteriors the API returns make the same choices as the batch did.
    replay = random.Random(7)
    assert [bandit.choose(arms, replay).key for _ in scheduled] == [outreach.variant_id for outreach in scheduled]
    for arm in arms:
        shown = variants[arm.key]
        assert shown["posterior_at"] == NOW.isoformat().replace("+00:00", "Z")
        assert shown["posterior_mean"] == round(arm.alpha / (arm.alpha + arm.beta), 6)
        assert shown["pending_weight"] == pytest.approx(arm.beta - 2.0, abs=1e-6)
    assert variants[fresh.pk]["alpha"] == 3.0  # the stored counter, as it is now
    assert 0 < variants[fresh.pk]["pending_weight"] < 3


def test_a_variant_never_chosen_with_shows_its_posterior_adjusted_now(api_client):
    variant = VariantFactory(alpha=1.0, beta=1.0)
    for _ in range(5):
        _sent(variant, timezone.now() - timedelta(days=20))  # past the window: each a whole failure
    [shown] = api_client.get(f"/api/v1/experiments/{variant.experiment_id}").json()["variants"]
    assert (shown["posterior_at"], shown["posterior_alpha"], shown["posterior_beta"]) == (None, 1.0, 6.0)
    assert shown["pending_weight"] == 5.0
