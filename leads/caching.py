"""What the API serves from the cache, and the calls writers make to keep it fresh.

Lead stats and the dashboard funnel and timeline aggregate the whole leads table, so they
are one family, `lead_metrics`: every service that changes a lead's status, score, persona or
milestone timestamps (or adds a lead) calls `lead_metrics_invalidate()` after its write.

The experiments API answers whole (experiments, variants, adjusted posteriors and decisions:
one cache read per request) from the family `experiments`: every writer of an experiment, a
variant (its settings, counters, sends, or the posterior the bandit last chose with) or a
template a variant shows calls `experiments_invalidate()` after its write: the services and the
admin's saves and deletes. A variant the bandit has not chosen with yet is adjusted at reading
time: its pending sends age within the TTL unseen, as do other changes to its unresolved
outreach (a failed send, an erased lead).

Posteriors alone (the variants' own endpoints, the admin and the console) need no invalidation:
their key is the variants' counters, is_active and the adjusted posterior the bandit last chose
with, just read from the database, so a reward, a new choice or a paused arm is a different key.
What is saved is the Monte Carlo estimate of the probability of being best. The activity feed is
not cached: it is one short indexed query, and its text names companies and variants that many
places may rename.

Lead metrics are cached as `present` shapes them: the API passes its serializer, so a hit is only
rendered, never serialized again. Every payload here is the same for every caller; the views
check permissions before reading.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.utils import timezone

from leads import selectors
from leads.models import Variant
from pipeline_whisperer.cache import cache_invalidate, cache_read

LEAD_METRICS = "lead_metrics"
EXPERIMENTS = "experiments"
# Part of the posteriors' key: a summary cached before a release that changed its fields
# (expected_loss came in version 2) is never read back after it.
POSTERIOR_SHAPE = 2
# Part of the experiment answers' key, likewise: bump it when the answer's fields change.
EXPERIMENT_ANSWER_SHAPE = 1

T = TypeVar("T")


def lead_metrics_invalidate() -> None:
    """After the current transaction commits, cached lead stats and dashboards are recomputed."""
    cache_invalidate(family=LEAD_METRICS)


def experiments_invalidate() -> None:
    """After the current transaction commits, cached experiment answers are recomputed."""
    cache_invalidate(family=EXPERIMENTS)


def experiments_answer_cached(*, parts: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
    """An experiments answer as `compute` shapes it (a page or one experiment), under `parts`
    (what the answer depends on besides the data: the URL asked for)."""
    return cache_read(
        name="experiments_answer", family=EXPERIMENTS, parts=(EXPERIMENT_ANSWER_SHAPE, *parts), compute=compute
    )


def lead_stats_cached(*, present: Callable[[dict[str, Any]], T]) -> T:
    return cache_read(
        name="lead_stats",
        family=LEAD_METRICS,
        parts=(_presenter(present),),
        compute=lambda: present(selectors.lead_stats()),
    )


def dashboard_funnel_cached(*, period: str, present: Callable[[dict[str, Any]], T]) -> T:
    # The day is part of the key so "today" moves on at midnight UTC without waiting for the TTL.
    return cache_read(
        name="dashboard_funnel",
        family=LEAD_METRICS,
        parts=(_presenter(present), period, timezone.now().date().isoformat()),
        compute=lambda: present(selectors.dashboard_funnel(since=selectors.period_start(period))),
    )


def dashboard_timeline_cached(*, days: int, present: Callable[[list[dict[str, Any]]], T]) -> T:
    today = timezone.now().date()
    return cache_read(
        name="dashboard_timeline",
        family=LEAD_METRICS,
        parts=(_presenter(present), days, today.isoformat()),
        compute=lambda: present(selectors.dashboard_timeline(days=days, today=today)),
    )


def _presenter(present: Callable[..., Any]) -> str:
    """Part of the key: each shape of the answer is cached apart (the API caches its serialized
    answer, so a hit costs no serializer; other callers may want the selector's own value)."""
    return f"{present.__module__}.{present.__qualname__}"


def experiment_posteriors_cached(variants: list[Variant]) -> dict[int, selectors.VariantPosterior]:
    """`selectors.experiment_posteriors`, keyed by the inputs it reads. A variant the bandit has
    not chosen with yet is adjusted at reading time: its pending sends age within the TTL unseen."""
    arms = tuple(
        (v.pk, v.alpha, v.beta, v.is_active, v.posterior_alpha, v.posterior_beta, v.pending_weight, v.posterior_at)
        for v in variants
    )
    return cache_read(
        name="experiment_posteriors",
        parts=(POSTERIOR_SHAPE, *arms),
        compute=lambda: selectors.experiment_posteriors(variants),
    )
