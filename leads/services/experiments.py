"""Experiments and their variants (the bandit's arms).

An experiment needs two arms to learn anything, so it is created with at least two variants.
Arms that have sent outreach keep their history: deleting them is refused; pause them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from leads.models import Experiment, ExperimentStatus, Outreach, OutreachTemplate, Variant
from pipeline_whisperer.exceptions import Conflict, InvalidInput

MIN_VARIANTS = 2


@dataclass(frozen=True)
class VariantSpec:
    name: str
    template: OutreachTemplate
    is_active: bool = True


def experiment_create(
    *,
    name: str,
    variants: Sequence[VariantSpec],
    description: str = "",
    target_persona: str = "",
    success_event: str = Experiment.SuccessEvent.CONVERTED,
) -> Experiment:
    if len(variants) < MIN_VARIANTS:
        raise InvalidInput(
            f"An experiment needs at least {MIN_VARIANTS} variants.",
            errors={"variants": [f"Give at least {MIN_VARIANTS} variants."]},
        )
    names = [spec.name for spec in variants]
    if len(set(names)) != len(names):
        raise InvalidInput("Variant names must differ.", errors={"variants": ["Variant names must differ."]})
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                name=name, description=description, target_persona=target_persona, success_event=success_event
            )
            Variant.objects.bulk_create(
                Variant(experiment=experiment, name=spec.name, template=spec.template, is_active=spec.is_active)
                for spec in variants
            )
    except IntegrityError:
        raise Conflict(f"An experiment named {name!r} exists already.") from None
    return experiment


def experiment_update(*, experiment: Experiment, **changes: str) -> Experiment:
    for field, value in changes.items():
        setattr(experiment, field, value)
    try:
        with transaction.atomic():
            experiment.save(update_fields=[*changes, "updated_at"])
    except IntegrityError:
        raise Conflict(f"An experiment named {experiment.name!r} exists already.") from None
    return experiment


def experiment_set_status(*, experiment: Experiment, status: ExperimentStatus) -> Experiment:
    experiment.status = status
    experiment.save(update_fields=["status", "updated_at"])
    return experiment


def experiment_delete(*, experiment: Experiment) -> None:
    if Outreach.objects.filter(variant__experiment=experiment).exists():
        raise Conflict("This experiment has sent outreach; pause it instead of deleting it.")
    experiment.delete()


def variant_create(*, experiment: Experiment, name: str, template: OutreachTemplate, is_active: bool = True) -> Variant:
    try:
        with transaction.atomic():
            return Variant.objects.create(experiment=experiment, name=name, template=template, is_active=is_active)
    except IntegrityError:
        raise Conflict(f"The experiment has a variant named {name!r} already.") from None


def variant_update(*, variant: Variant, **changes: object) -> Variant:
    """Rename, re-template or (de)activate an arm; its posterior is left as it is."""
    for field, value in changes.items():
        setattr(variant, field, value)
    try:
        with transaction.atomic():
            variant.save(update_fields=[*changes, "updated_at"])
    except IntegrityError:
        raise Conflict(f"The experiment has a variant named {variant.name!r} already.") from None
    return variant


def variant_delete(*, variant: Variant) -> None:
    if variant.outreach.exists():
        raise Conflict("This variant has sent outreach; pause it instead of deleting it.")
    if variant.experiment.variants.count() <= MIN_VARIANTS:
        raise Conflict(f"An experiment keeps at least {MIN_VARIANTS} variants.")
    variant.delete()
