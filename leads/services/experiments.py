"""Experiments and their variants (the bandit's arms).

An experiment needs two arms to learn anything, so it is created with at least two variants.
Arms that have sent outreach keep their history: deleting them is refused; pause them instead.
Shipping a variant ends the experiment's learning: the other arms pause, and the experiment
records what was shipped, when and by whom.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from leads.caching import experiments_invalidate
from leads.models import Experiment, ExperimentStatus, Outreach, OutreachTemplate, Variant
from pipeline_whisperer.exceptions import Conflict, InvalidInput

logger = logging.getLogger(__name__)

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
    **decision_settings: float,
) -> Experiment:
    """`decision_settings`: loss_threshold, min_resolved_per_variant, burn_in_sends (model
    defaults when left out)."""
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
                name=name,
                description=description,
                target_persona=target_persona,
                success_event=success_event,
                **decision_settings,
            )
            Variant.objects.bulk_create(
                Variant(experiment=experiment, name=spec.name, template=spec.template, is_active=spec.is_active)
                for spec in variants
            )
            experiments_invalidate()
    except IntegrityError:
        raise Conflict(f"An experiment named {name!r} exists already.") from None
    return experiment


def experiment_update(*, experiment: Experiment, **changes: object) -> Experiment:
    for field, value in changes.items():
        setattr(experiment, field, value)
    try:
        with transaction.atomic():
            experiment.save(update_fields=[*changes, "updated_at"])
            experiments_invalidate()
    except IntegrityError:
        raise Conflict(f"An experiment named {experiment.name!r} exists already.") from None
    return experiment


def experiment_set_status(*, experiment: Experiment, status: ExperimentStatus) -> Experiment:
    experiment.status = status
    experiment.save(update_fields=["status", "updated_at"])
    experiments_invalidate()
    return experiment


def experiment_delete(*, experiment: Experiment) -> None:
    if Outreach.objects.filter(variant__experiment=experiment).exists():
        raise Conflict("This experiment has sent outreach; pause it instead of deleting it.")
    experiment.delete()
    experiments_invalidate()


def variant_create(*, experiment: Experiment, name: str, template: OutreachTemplate, is_active: bool = True) -> Variant:
    try:
        with transaction.atomic():
            variant = Variant.objects.create(experiment=experiment, name=name, template=template, is_active=is_active)
            experiments_invalidate()
            return variant
    except IntegrityError:
        raise Conflict(f"The experiment has a variant named {name!r} already.") from None


def variant_update(*, variant: Variant, **changes: object) -> Variant:
    """Rename, re-template or (de)activate an arm; its posterior is left as it is."""
    for field, value in changes.items():
        setattr(variant, field, value)
    try:
        with transaction.atomic():
            variant.save(update_fields=[*changes, "updated_at"])
            experiments_invalidate()
    except IntegrityError:
        raise Conflict(f"The experiment has a variant named {variant.name!r} already.") from None
    return variant


def variant_delete(*, variant: Variant) -> None:
    if variant.outreach.exists():
        raise Conflict("This variant has sent outreach; pause it instead of deleting it.")
    if variant.experiment.variants.count() <= MIN_VARIANTS:
        raise Conflict(f"An experiment keeps at least {MIN_VARIANTS} variants.")
    variant.delete()
    experiments_invalidate()


def experiment_ship(*, experiment: Experiment, variant: Variant, by: str) -> Experiment:
    """Ship `variant`: every other arm of the experiment is paused, so all its outreach gets the
    shipped one, and the experiment records the variant, the time and `by`. Conflict for a
    variant of another experiment, a paused one, or an experiment shipped already (shipping the
    same variant again changes nothing). Safe under concurrent calls (the experiment is locked)."""
    if variant.experiment_id != experiment.pk:
        raise Conflict(f"Variant {variant.pk} is not an arm of experiment {experiment.pk}.")
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.shipped_at is not None:
            if locked.shipped_variant_id == variant.pk:
                return locked
            raise Conflict(f"Experiment {experiment.pk} shipped variant {locked.shipped_variant_id} already.")
        if not Variant.objects.filter(pk=variant.pk, is_active=True).exists():
            raise Conflict(f"Variant {variant.pk} is paused: resume it before shipping it.")
        now = timezone.now()
        paused = locked.variants.exclude(pk=variant.pk).filter(is_active=True).update(is_active=False, updated_at=now)
        locked.shipped_variant, locked.shipped_at, locked.shipped_by = variant, now, by[:150]
        locked.save(update_fields=["shipped_variant", "shipped_at", "shipped_by", "updated_at"])
        experiments_invalidate()
    logger.warning(
        "experiment %s shipped variant %s by %s (%s other variants paused)",
        experiment.pk,
        variant.pk,
        by,
        paused,
        extra={"experiment_id": experiment.pk, "variant_id": variant.pk, "shipped_by": by},
    )
    return locked
