"""A simulated campaign through the real services: Thompson sampling finds the best variant.

Every lead's variant is picked by `variant_choose` over the experiment's variants in the
database, one Outreach row records it, and its outcome is drawn at once from the variant's true
conversion rate and applied with `outreach_reward`, so the posterior the next choice reads is
the one the services wrote. Both random streams are seeded, so the run is the same every time.
"""

from __future__ import annotations

import random

import pytest
from django.db.models import F
from django.utils import timezone

from leads.bandit import beta_quantile
from leads.models import Lead, Outreach, Variant
from leads.services.feedback import outreach_reward
from leads.services.outreach import variant_choose
from leads.tests.factories import ExperimentFactory, VariantFactory

pytestmark = pytest.mark.django_db

TRUE_RATES = {"two-percent": 0.02, "five-percent": 0.05, "ten-percent": 0.10}
LEADS = 2_500
TAIL = 500


def _run_campaign(*, choice_seed: int, outcome_seed: int) -> list[str]:
    """Send one outreach per lead and reward it at once; returns the variant name per lead, in order."""
    experiment = ExperimentFactory(target_persona="")
    for name in TRUE_RATES:
        VariantFactory(experiment=experiment, name=name)
    leads = Lead.objects.bulk_create(
        Lead(lightfield_id=f"lf-campaign-{n:05d}", company_name=f"Company {n}", contact_email=f"c{n}@example.com")
        for n in range(LEADS)
    )
    choices, outcomes = random.Random(choice_seed), random.Random(outcome_seed)
    chosen: list[str] = []
    for lead in leads:
        variant = variant_choose(lead=lead, rng=choices)
        now = timezone.now()
        converted = outcomes.random() < TRUE_RATES[variant.name]
        outreach = Outreach.objects.create(
            lead=lead,
            variant=variant,
            status=Outreach.Status.CONVERTED if converted else Outreach.Status.SENT,
            to_email=lead.contact_email,
            subject="Hello",
            body="Hi.",
            sent_at=now,
            converted_at=now if converted else None,
        )
        Variant.objects.filter(pk=variant.pk).update(sends=F("sends") + 1)
        assert outreach_reward(
            outreach=outreach, reward=Outreach.Reward.SUCCESS if converted else Outreach.Reward.FAILURE, at=now
        )
        chosen.append(variant.name)
    return chosen


def test_thompson_sampling_sends_most_late_leads_to_the_best_variant_and_brackets_every_true_rate():
    chosen = _run_campaign(choice_seed=20250301, outcome_seed=7)

    tail = chosen[-TAIL:]
    assert tail.count("ten-percent") > TAIL / 2

    for variant in Variant.objects.all():
        low, high = beta_quantile(0.025, variant.alpha, variant.beta), beta_quantile(0.975, variant.alpha, variant.beta)
        assert low <= TRUE_RATES[variant.name] <= high, (variant.name, variant.alpha, variant.beta, low, high)
