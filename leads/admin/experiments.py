"""Experiments and their arms in the admin: edit them, pause or resume either, and ship an
experiment's winner.

Pausing, resuming and shipping go through `leads.services.experiments`, as in the API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from leads import caching, selectors
from leads.admin.domain import ExperimentsCacheAdmin, ReadOnlyAdmin, apply_to_each
from leads.models import Experiment, ExperimentStatus, Variant
from leads.services import experiments as experiment_services
from pipeline_whisperer.exceptions import Conflict


def _set_status(status: ExperimentStatus) -> Callable[[Experiment], Experiment]:
    return lambda experiment: experiment_services.experiment_set_status(experiment=experiment, status=status)


def _set_active(is_active: bool) -> Callable[[Variant], Variant]:
    return lambda variant: experiment_services.variant_update(variant=variant, is_active=is_active)


_DECIDED = "_decided"  # the attribute a changelist row carries its decision in


def _decision(experiment: Experiment) -> selectors.ExperimentDecision:
    decided = getattr(experiment, _DECIDED, None)  # set for a changelist's page at once
    if decided is not None:
        return decided
    variants = list(experiment.variants.all())
    return selectors.experiment_decision(experiment, variants, caching.experiment_posteriors_cached(variants))


def _decide_page(experiments: Sequence[Experiment]) -> None:
    """Each experiment's decision, from one computation of all their posteriors: a variant the
    bandit has not chosen with yet is adjusted with queries, which must not repeat per row."""
    variants = [variant for experiment in experiments for variant in experiment.variants.all()]
    posteriors = caching.experiment_posteriors_cached(variants)
    for experiment in experiments:
        decided = selectors.experiment_decision(experiment, list(experiment.variants.all()), posteriors)
        setattr(experiment, _DECIDED, decided)


def _ship_winner(by: str) -> Callable[[Experiment], Experiment]:
    """Ship the experiment's winner under its stopping rule; Conflict while it has none."""

    def ship(experiment: Experiment) -> Experiment:
        decision = _decision(experiment)
        if decision.status != selectors.DecisionStatus.WINNER_FOUND:
            raise Conflict(f"no winner to ship ({decision.status.replace('_', ' ')})")
        variant = next(v for v in experiment.variants.all() if v.pk == decision.winner)
        return experiment_services.experiment_ship(experiment=experiment, variant=variant, by=by)

    return ship


class VariantInline(admin.TabularInline):
    model = Variant
    fields = ("name", "template", "is_active", "alpha", "beta", "sends", "successes", "failures")
    readonly_fields = ("alpha", "beta", "sends", "successes", "failures")
    extra = 0
    min_num = 2

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # InlineModelAdmin has no validate_min attribute; only the formset factory takes it.
        return super().get_formset(request, obj, validate_min=True, **kwargs)


@admin.register(Experiment)
class ExperimentAdmin(ExperimentsCacheAdmin):
    list_display = ("name", "target_persona", "status", "success_event", "variant_count", "decision", "created_at")
    list_filter = ("status", "target_persona", "success_event")
    search_fields = ("name", "description")
    readonly_fields = ("decision", "shipped_variant", "shipped_at", "shipped_by")
    inlines = (VariantInline,)
    actions = ("pause_experiments", "resume_experiments", "ship_winners")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Experiment]:
        return super().get_queryset(request).prefetch_related("variants")

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        _decide_page(list(changelist.result_list))
        return changelist

    @admin.action(description="Pause selected experiments", permissions=["change"])
    def pause_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        apply_to_each(self, request, queryset, _set_status(Experiment.Status.PAUSED), "Paused")

    @admin.action(description="Resume selected experiments", permissions=["change"])
    def resume_experiments(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        apply_to_each(self, request, queryset, _set_status(Experiment.Status.ACTIVE), "Resumed")

    @admin.action(
        description="Ship the winner of selected experiments (pauses the other variants)", permissions=["change"]
    )
    def ship_winners(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        apply_to_each(
            self, request, queryset, _ship_winner(f"staff:{request.user.get_username()}"), "Shipped the winner"
        )

    @admin.display(description="Decision")
    def decision(self, experiment: Experiment) -> str:
        if experiment.pk is None:
            return "-"
        decision = _decision(experiment)
        status = decision.status.replace("_", " ")
        winner = next((v.name for v in experiment.variants.all() if v.pk == decision.winner), None)
        return f"{status}: {winner}" if winner else status

    @admin.display(description="Variants")
    def variant_count(self, experiment: Experiment) -> int:
        return len(experiment.variants.all())


@admin.register(Variant)
class VariantAdmin(ReadOnlyAdmin):
    """The arms across experiments, to pause or resume them; they are edited in their experiment."""

    list_display = ("name", "experiment", "is_active", "sends", "successes", "failures", "alpha", "beta")
    list_filter = ("is_active", "experiment")
    list_select_related = ("experiment",)
    search_fields = ("name", "experiment__name")
    actions = ("pause_variants", "resume_variants")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Actions need the change permission; the change form itself stays read-only.
        return obj is None and request.user.has_perm("leads.change_variant")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Asked when an experiment is deleted with its arms; arms alone are deleted from their
        # experiment's page, under its rules, so delete_view and the bulk delete are withheld.
        return request.user.has_perm("leads.delete_variant")

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        raise PermissionDenied

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Pause selected variants", permissions=["change"])
    def pause_variants(self, request: HttpRequest, queryset: QuerySet[Variant]) -> None:
        apply_to_each(self, request, queryset, _set_active(False), "Paused")

    @admin.action(description="Resume selected variants", permissions=["change"])
    def resume_variants(self, request: HttpRequest, queryset: QuerySet[Variant]) -> None:
        apply_to_each(self, request, queryset, _set_active(True), "Resumed")
