"""Experiments and their arms through leads.services.experiments."""

from __future__ import annotations

import pytest

from leads.models import Experiment, Variant
from leads.services.experiments import (
    VariantSpec,
    experiment_create,
    experiment_delete,
    experiment_set_status,
    experiment_update,
    variant_create,
    variant_delete,
    variant_update,
)
from leads.tests.factories import ExperimentFactory, OutreachFactory, OutreachTemplateFactory, VariantFactory
from pipeline_whisperer.exceptions import Conflict, InvalidInput

pytestmark = pytest.mark.django_db


def _specs(*names: str) -> list[VariantSpec]:
    return [VariantSpec(name=name, template=OutreachTemplateFactory()) for name in names]


def _experiment_with_variants(count: int) -> Experiment:
    experiment = ExperimentFactory()
    VariantFactory.create_batch(count, experiment=experiment)
    return experiment


def test_experiment_create_makes_the_experiment_and_its_variants_at_the_uniform_prior():
    experiment = experiment_create(name="Intro", variants=_specs("A", "B"), target_persona="smb")
    variants = list(experiment.variants.order_by("name"))
    assert [v.name for v in variants] == ["A", "B"]
    assert all((v.alpha, v.beta, v.sends, v.is_active) == (1.0, 1.0, 0, True) for v in variants)
    assert Experiment.objects.get(pk=experiment.pk).target_persona == "smb"


@pytest.mark.parametrize("names", [(), ("Only",)])
def test_experiment_create_needs_two_variants(names):
    with pytest.raises(InvalidInput, match="at least 2 variants") as caught:
        experiment_create(name="Too small", variants=_specs(*names))
    assert "variants" in caught.value.extra["errors"]
    assert not Experiment.objects.filter(name="Too small").exists()


def test_experiment_create_needs_distinct_variant_names():
    with pytest.raises(InvalidInput, match="must differ"):
        experiment_create(name="Twins", variants=_specs("A", "A"))
    assert not Experiment.objects.filter(name="Twins").exists()


def test_experiment_create_with_a_taken_name_is_a_conflict_and_adds_no_variant():
    ExperimentFactory(name="Taken")
    variants_before = Variant.objects.count()
    with pytest.raises(Conflict, match="'Taken' exists already"):
        experiment_create(name="Taken", variants=_specs("A", "B"))
    assert Variant.objects.count() == variants_before


def test_experiment_update_renaming_to_a_taken_name_is_a_conflict():
    ExperimentFactory(name="First")
    second = ExperimentFactory(name="Second")
    with pytest.raises(Conflict):
        experiment_update(experiment=second, name="First")
    assert Experiment.objects.get(pk=second.pk).name == "Second"


def test_experiment_set_status_pauses_and_resumes():
    experiment = ExperimentFactory()
    experiment_set_status(experiment=experiment, status=Experiment.Status.PAUSED)
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.PAUSED
    experiment_set_status(experiment=experiment, status=Experiment.Status.ACTIVE)
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.ACTIVE


def test_experiment_delete_without_outreach_removes_it_and_its_variants():
    experiment = _experiment_with_variants(2)
    experiment_delete(experiment=experiment)
    assert not Variant.objects.filter(experiment_id=experiment.pk).exists()


def test_experiment_delete_with_outreach_is_refused():
    outreach = OutreachFactory()
    experiment = outreach.variant.experiment
    with pytest.raises(Conflict, match="pause it instead"):
        experiment_delete(experiment=experiment)
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_variant_create_adds_an_arm():
    experiment = _experiment_with_variants(2)
    variant = variant_create(experiment=experiment, name="C", template=OutreachTemplateFactory(), is_active=False)
    assert (variant.alpha, variant.beta, variant.is_active) == (1.0, 1.0, False)
    assert experiment.variants.count() == 3


def test_variant_create_with_a_taken_name_is_a_conflict():
    variant = VariantFactory(name="A")
    with pytest.raises(Conflict, match="'A' already"):
        variant_create(experiment=variant.experiment, name="A", template=OutreachTemplateFactory())


def test_variant_update_keeps_the_posterior():
    variant = VariantFactory(alpha=4.0, beta=9.0, sends=11, successes=3, failures=8)
    variant_update(variant=variant, name="Renamed", is_active=False)
    variant.refresh_from_db()
    assert (variant.name, variant.is_active, variant.alpha, variant.beta) == ("Renamed", False, 4.0, 9.0)


def test_variant_update_to_a_taken_name_is_a_conflict():
    first = VariantFactory(name="A")
    second = VariantFactory(name="B", experiment=first.experiment)
    with pytest.raises(Conflict):
        variant_update(variant=second, name="A")


def test_variant_delete_removes_an_unused_arm_of_three():
    experiment = _experiment_with_variants(3)
    variant_delete(variant=experiment.variants.all()[0])
    assert experiment.variants.count() == 2


def test_variant_delete_is_refused_when_only_two_remain():
    experiment = _experiment_with_variants(2)
    with pytest.raises(Conflict, match="at least 2 variants"):
        variant_delete(variant=experiment.variants.all()[0])
    assert experiment.variants.count() == 2


def test_variant_delete_is_refused_when_it_has_sent_outreach():
    experiment = _experiment_with_variants(3)
    variant = experiment.variants.all()[0]
    OutreachFactory(variant=variant)
    with pytest.raises(Conflict, match="has sent outreach"):
        variant_delete(variant=variant)
    assert Variant.objects.filter(pk=variant.pk).exists()
