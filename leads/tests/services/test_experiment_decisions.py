"""Burn-in allocation and shipping a variant, through the services."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest
from django.db.models import F

from leads.models import Experiment, Lead, Variant
from leads.services.experiments import experiment_ship
from leads.services.outreach import variant_choose
from leads.tests.factories import ExperimentFactory, LeadFactory, VariantFactory
from pipeline_whisperer.exceptions import Conflict

pytestmark = pytest.mark.django_db

BURN_IN = 60


def _lead() -> Lead:
    return LeadFactory(status=Lead.Status.SCORED, score=0.9, persona="smb", contact_email="a@b.example")


def _choose_and_send(lead: Lead, rng: random.Random) -> int:
    """The outreach stage's choice, then its send counted as the dispatcher counts it."""
    variant = variant_choose(lead=lead, rng=rng)
    assert variant is not None
    Variant.objects.filter(pk=variant.pk).update(sends=F("sends") + 1)
    return variant.pk


def test_burn_in_allocates_uniformly_for_the_first_sends_then_thompson_sampling_takes_over():
    experiment = ExperimentFactory(burn_in_sends=BURN_IN)
    strong = VariantFactory(experiment=experiment, alpha=90.0, beta=10.0)
    weak = VariantFactory(experiment=experiment, alpha=10.0, beta=90.0)
    lead, rng = _lead(), random.Random(8)
    during = Counter(_choose_and_send(lead, rng) for _ in range(BURN_IN))
    after = Counter(_choose_and_send(lead, rng) for _ in range(BURN_IN))
    assert 20 <= during[weak.pk] <= 40  # uniform: 30 expected, a binomial sd of 3.9
    assert after == {strong.pk: BURN_IN}


def test_sends_of_a_paused_variant_count_towards_the_burn_in():
    experiment = ExperimentFactory(burn_in_sends=BURN_IN)
    strong = VariantFactory(experiment=experiment, alpha=90.0, beta=10.0)
    VariantFactory(experiment=experiment, alpha=10.0, beta=90.0)
    VariantFactory(experiment=experiment, is_active=False, sends=BURN_IN)
    lead, rng = _lead(), random.Random(8)
    assert {_choose_and_send(lead, rng) for _ in range(30)} == {strong.pk}


def _experiment() -> tuple[Experiment, Variant, Variant, Variant]:
    experiment = ExperimentFactory()
    return experiment, *(VariantFactory(experiment=experiment) for _ in range(3))  # type: ignore[return-value]


def test_shipping_pauses_the_other_variants_and_records_what_when_and_who(caplog):
    experiment, kept, other, third = _experiment()
    with caplog.at_level(logging.WARNING, logger="leads.services.experiments"):
        shipped = experiment_ship(experiment=experiment, variant=kept, by="staff:ada")
    active = dict(Variant.objects.values_list("pk", "is_active"))
    assert active == {kept.pk: True, other.pk: False, third.pk: False}
    assert (shipped.shipped_variant_id, shipped.shipped_by) == (kept.pk, "staff:ada")
    assert shipped.shipped_at is not None
    (record,) = [r for r in caplog.records if r.name == "leads.services.experiments"]
    assert (record.experiment_id, record.variant_id, record.shipped_by) == (experiment.pk, kept.pk, "staff:ada")


def test_shipping_a_variant_of_another_experiment_is_a_conflict():
    experiment, *_ = _experiment()
    with pytest.raises(Conflict, match="not an arm"):
        experiment_ship(experiment=experiment, variant=VariantFactory(), by="staff:ada")
    assert Variant.objects.filter(is_active=False).count() == 0


def test_shipping_a_paused_variant_is_a_conflict():
    experiment, kept, *_ = _experiment()
    Variant.objects.filter(pk=kept.pk).update(is_active=False)
    with pytest.raises(Conflict, match="paused"):
        experiment_ship(experiment=experiment, variant=kept, by="staff:ada")
    assert Experiment.objects.get().shipped_at is None


def test_shipping_again_changes_nothing_and_shipping_another_is_a_conflict():
    experiment, kept, other, _ = _experiment()
    first = experiment_ship(experiment=experiment, variant=kept, by="staff:ada")
    again = experiment_ship(experiment=experiment, variant=kept, by="staff:bob")
    assert (again.shipped_at, again.shipped_by) == (first.shipped_at, "staff:ada")
    Variant.objects.filter(pk=other.pk).update(is_active=True)
    with pytest.raises(Conflict, match="shipped variant"):
        experiment_ship(experiment=experiment, variant=other, by="staff:bob")
