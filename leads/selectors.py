"""The read side of the domain: querysets and aggregates for the API, admin and dashboard.

Each function runs a fixed number of queries whatever the number of rows, and aggregates in
the database, never by walking rows in Python.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Prefetch, Q, QuerySet
from django.db.models.functions import Trunc, TruncDate
from django.utils import timezone

from leads import bandit
from leads.models import EngagementEvent, Experiment, Lead, Outreach, Persona, Variant

# Posterior summaries are estimated with a fixed seed so the same counts always read the same.
POSTERIOR_SEED = 0


def lead_list() -> QuerySet[Lead]:
    """Every lead; the API's list reads only the columns it answers with (`.values()`)."""
    return Lead.objects.all()


def lead_stats() -> dict[str, Any]:
    by_status = dict(Lead.objects.order_by().values_list("status").annotate(n=Count("id")))
    by_persona = dict(Lead.objects.order_by().values_list("persona").annotate(n=Count("id")))
    totals = Lead.objects.aggregate(
        total=Count("id"),
        average_score=Avg("score"),
        contacted=Count("id", filter=Q(contacted_at__isnull=False)),
        converted=Count("id", filter=Q(converted_at__isnull=False)),
    )
    return {
        "total": totals["total"],
        "by_status": {status: by_status.get(status, 0) for status in Lead.Status.values},
        "by_persona": {persona: by_persona.get(persona, 0) for persona in Persona.values},
        "average_score": round(totals["average_score"], 4) if totals["average_score"] is not None else None,
        "contacted": totals["contacted"],
        "converted": totals["converted"],
        "conversion_rate": _rate(totals["converted"], totals["contacted"]),
    }


def experiment_list() -> QuerySet[Experiment]:
    variants = Variant.objects.select_related("template").order_by("name")
    return Experiment.objects.prefetch_related(Prefetch("variants", queryset=variants))


def variant_list(*, experiment: Experiment) -> QuerySet[Variant]:
    return experiment.variants.select_related("template").order_by("name")


@dataclass(frozen=True)
class VariantPosterior:
    """A variant's adjusted posterior Beta(alpha, beta) (pending sends counted in beta) as the
    bandit last used it (`at`), or as it is now when the bandit has not chosen with it yet (`at`
    None), with its summaries."""

    variant_id: int
    alpha: float
    beta: float
    pending_weight: float
    at: datetime | None
    mean: float
    ci_low: float
    ci_high: float
    probability_best: float
    # E[max_j p_j - p_i] among the active variants, in conversion-rate units; None when paused.
    expected_loss: float | None = None


def experiment_posteriors(variants: list[Variant]) -> dict[int, VariantPosterior]:
    """Per variant: the adjusted posterior the outreach stage last chose with (see `Variant`), its
    mean, 95% credible interval, and the probability of being the best among the active variants
    of its experiment (0 for a paused variant, which the bandit never picks) with the expected
    loss of choosing it, both from the same posterior draws. Variants never chosen with are
    adjusted now (two queries, however many experiments)."""
    fresh = [v for v in variants if v.posterior_at is None]
    adjusted = variant_adjusted_arms(fresh, now=timezone.now()) if fresh else {}
    for variant in variants:
        if variant.posterior_at is not None:  # then both are set and positive (a constraint)
            arm = bandit.Arm(
                variant.pk, variant.posterior_alpha or variant.alpha, variant.posterior_beta or variant.beta
            )
            adjusted[variant.pk] = bandit.AdjustedArm(arm, pending_weight=variant.pending_weight)
    risks: dict[int, bandit.ArmRisk] = {}
    for experiment_id in sorted({v.experiment_id for v in variants}):
        active = [adjusted[v.pk].arm for v in variants if v.is_active and v.experiment_id == experiment_id]
        if active:
            risks.update((r.key, r) for r in bandit.arm_risks(active, random.Random(POSTERIOR_SEED)))
    return {variant.pk: _posterior(variant, adjusted[variant.pk], risks.get(variant.pk)) for variant in variants}


def _posterior(variant: Variant, adjusted: bandit.AdjustedArm, risk: bandit.ArmRisk | None) -> VariantPosterior:
    arm = adjusted.arm
    return VariantPosterior(
        variant_id=variant.pk,
        alpha=arm.alpha,
        beta=arm.beta,
        pending_weight=adjusted.pending_weight,
        at=variant.posterior_at,
        mean=arm.alpha / (arm.alpha + arm.beta),
        ci_low=bandit.beta_quantile(0.025, arm.alpha, arm.beta),
        ci_high=bandit.beta_quantile(0.975, arm.alpha, arm.beta),
        probability_best=risk.probability_best if risk else 0.0,
        expected_loss=risk.expected_loss if risk else None,
    )


# --- Delayed rewards: what the adjusted posteriors are computed from -----------------------

# The success delays an experiment's delay distribution learns from: its most recent ones.
RECENT_SUCCESSES = 1_000
_HALF_HOUR = 1_800.0


def variant_adjusted_arms(variants: Sequence[Variant], *, now: datetime) -> dict[int, bandit.AdjustedArm]:
    """Each variant's arm as the bandit draws from it at `now`: its stored counters, with its
    unresolved sends counted as failures weighted by its experiment's delay distribution. One
    query for the pending sends, one for the delays."""
    pending = pending_histograms(variant_ids=[v.pk for v in variants], now=now)
    delays = experiment_delays(experiment_ids={v.experiment_id for v in variants}, now=now)
    adjusted: dict[int, bandit.AdjustedArm] = {}
    for experiment_id, distribution in delays.items():
        arms = [bandit.Arm(v.pk, v.alpha, v.beta) for v in variants if v.experiment_id == experiment_id]
        adjusted.update((a.arm.key, a) for a in bandit.adjust_arms(arms, pending, distribution))
    return adjusted


def pending_histograms(*, variant_ids: Iterable[int], now: datetime) -> dict[int, dict[float, int]]:
    """Per variant, its unresolved sends (sent, no reward yet, not failed: each will have one) by
    hour of sending, as age in seconds at `now` (the hour's middle) -> count. One GROUP BY,
    served by the partial index outreach_unresolved_idx."""
    rows = (
        Outreach.objects.filter(variant_id__in=list(variant_ids), reward="", sent_at__isnull=False)
        .exclude(status=Outreach.Status.FAILED)
        .order_by()
        .annotate(hour=Trunc("sent_at", "hour"))
        .values_list("variant_id", "hour")
        .annotate(n=Count("pk"))
    )
    histograms: defaultdict[int, dict[float, int]] = defaultdict(dict)
    for variant_id, hour, count in rows:
        histograms[variant_id][(now - hour).total_seconds() - _HALF_HOUR] = count
    return dict(histograms)


def experiment_delays(*, experiment_ids: Iterable[int], now: datetime) -> dict[int, bandit.DelayDistribution]:
    """Per experiment, the delay distribution of its latest settled successes (seconds from send to
    the reward, which is the experiment's success event), sent at least one attribution window
    before `now`: up to RECENT_SUCCESSES each, from the latest RECENT_SUCCESSES per experiment asked
    for, all experiments together. Only settled sends, because a recent send can have shown only a
    short delay so far: counting those would bias the distribution toward short delays, the pending
    weights up and the variant with the most recent sends (the best) down. One query whatever the
    history: a backward scan of the partial index outreach_success_idx that stops at its limit,
    skipping only the successes of the last window. (An experiment that succeeds far less often than
    the others asked for with it gets fewer delays, its most recent, rather than a scan back through
    everyone's history.)"""
    window = settings.ATTRIBUTION_WINDOW_DAYS * bandit.DAY
    ids = sorted(set(experiment_ids))
    rows = (
        Outreach.objects.filter(
            variant__experiment_id__in=ids,
            reward=Outreach.Reward.SUCCESS,
            sent_at__lte=now - timedelta(seconds=window),
        )
        .annotate(delay=ExpressionWrapper(F("rewarded_at") - F("sent_at"), DurationField()))
        .order_by("-rewarded_at")
        .values_list("variant__experiment_id", "delay")[: RECENT_SUCCESSES * len(ids)]
    )
    seconds: defaultdict[int, list[float]] = defaultdict(list)
    for experiment_id, delay in rows:
        if len(seconds[experiment_id]) < RECENT_SUCCESSES:
            seconds[experiment_id].append(delay.total_seconds())
    return {i: bandit.DelayDistribution.learn(seconds[i], window=window) for i in ids}


class DecisionStatus:
    RUNNING = "running"
    WINNER_FOUND = "winner_found"
    SHIPPED = "shipped"
    CHOICES = (RUNNING, WINNER_FOUND, SHIPPED)


@dataclass(frozen=True)
class ExperimentDecision:
    status: str  # a DecisionStatus value
    winner: int | None  # the winning (or shipped) variant's id


def experiment_decision(
    experiment: Experiment, variants: list[Variant], posteriors: dict[int, VariantPosterior]
) -> ExperimentDecision:
    """Where the experiment stands under its stopping rule (no query: the variants and their
    `experiment_posteriors` are passed in). Shipped is final; otherwise a winner is found when
    the active variant of least expected loss has it below the experiment's threshold, is the best
    with 95% probability, and every active variant has its minimum of resolved sends."""
    if experiment.shipped_at is not None:
        return ExperimentDecision(status=DecisionStatus.SHIPPED, winner=experiment.shipped_variant_id)
    active = [v for v in variants if v.is_active]
    risks = {
        v.pk: bandit.ArmRisk(v.pk, posteriors[v.pk].probability_best, posteriors[v.pk].expected_loss or 0.0, 0.0)
        for v in active
    }
    rule = bandit.StoppingRule(
        loss_threshold=experiment.loss_threshold, min_resolved=experiment.min_resolved_per_variant
    )
    winner = bandit.winner(risks, {v.pk: v.successes + v.failures for v in active}, rule)
    return ExperimentDecision(status=DecisionStatus.WINNER_FOUND if winner else DecisionStatus.RUNNING, winner=winner)


def engagement_list() -> QuerySet[EngagementEvent]:
    return EngagementEvent.objects.all()


def outreach_list() -> QuerySet[Outreach]:
    return Outreach.objects.select_related("lead", "variant", "variant__experiment")


# --- Dashboard --------------------------------------------------------------------------

PERIODS = {"today": None, "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}


def period_start(period: str, now: datetime | None = None) -> datetime | None:
    """When a dashboard period begins: midnight UTC for today, None for all time."""
    now = now or timezone.now()
    if period == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    span = PERIODS[period]
    return now - span if span else None


def dashboard_funnel(*, since: datetime | None) -> dict[str, Any]:
    """How many leads created since `since` reached each stage, and the stage-to-stage rates."""
    leads = Lead.objects.filter(created_at__gte=since) if since else Lead.objects.all()
    counts = leads.aggregate(
        ingested=Count("id"),
        scored=Count("id", filter=Q(scored_at__isnull=False)),
        contacted=Count("id", filter=Q(contacted_at__isnull=False)),
        responded=Count("id", filter=Q(responded_at__isnull=False)),
        converted=Count("id", filter=Q(converted_at__isnull=False)),
        disqualified=Count("id", filter=Q(status=Lead.Status.DISQUALIFIED)),
        snoozed=Count("id", filter=Q(status=Lead.Status.SNOOZED)),
        failed=Count("id", filter=Q(status=Lead.Status.FAILED)),
    )
    rates = {
        "scored_of_ingested": _rate(counts["scored"], counts["ingested"]),
        "contacted_of_scored": _rate(counts["contacted"], counts["scored"]),
        "responded_of_contacted": _rate(counts["responded"], counts["contacted"]),
        "converted_of_responded": _rate(counts["converted"], counts["responded"]),
        "converted_of_contacted": _rate(counts["converted"], counts["contacted"]),
    }
    return {"since": since, "counts": counts, "rates": rates}


def dashboard_timeline(*, days: int, today: date | None = None) -> list[dict[str, Any]]:
    """Leads created, contacted and converted per day (UTC) over the last `days` days."""
    today = today or timezone.now().date()
    first_day = today - timedelta(days=days - 1)
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    series: dict[str, dict[date, int]] = {}
    for name, field in (("leads", "created_at"), ("contacted", "contacted_at"), ("converted", "converted_at")):
        rows = (
            Lead.objects.filter(**{f"{field}__gte": start})
            .order_by()
            .annotate(day=TruncDate(field))
            .values_list("day")
            .annotate(n=Count("id"))
        )
        series[name] = dict(rows)
    return [
        {"date": day, **{name: series[name].get(day, 0) for name in series}}
        for day in (first_day + timedelta(days=offset) for offset in range(days))
    ]


def _latest(table: str, columns: str, joins: str, where: str, at: str) -> str:
    # Each branch stays a subquery so it keeps its own ORDER BY and LIMIT (SQLite refuses them on
    # a bare member of a UNION): a short backward scan of the index on its time column.
    # Only table and column names are spliced in (from the models); the limits are parameters.
    latest = f"SELECT {at} AS at, {columns} FROM {table} {joins} {where} ORDER BY {at} DESC LIMIT %s"  # noqa: S608  # nosec B608  # names only
    return f"SELECT * FROM ({latest}) AS {table}_latest"  # noqa: S608  # nosec B608  # names only


def _activity_sql() -> str:
    lead, outreach = Lead._meta.db_table, Outreach._meta.db_table
    variant, event = Variant._meta.db_table, EngagementEvent._meta.db_table
    of_lead = f"JOIN {lead} ON {lead}.id = {outreach}.lead_id"
    branches = [
        _latest(lead, f"'lead' AS kind, {lead}.id AS lead_id, company_name, status", "", "", f"{lead}.created_at"),
        _latest(
            outreach,
            f"'sent', {outreach}.lead_id, company_name, {variant}.name",
            f"{of_lead} LEFT JOIN {variant} ON {variant}.id = {outreach}.variant_id",
            f"WHERE {outreach}.sent_at IS NOT NULL",
            f"{outreach}.sent_at",
        ),
        _latest(
            event,
            f"'engagement', {outreach}.lead_id, company_name, event_type",
            f"JOIN {outreach} ON {outreach}.id = {event}.outreach_id {of_lead}",
            "",
            f"{event}.occurred_at",
        ),
    ]
    return " UNION ALL ".join(branches) + " ORDER BY at DESC LIMIT %s"


def _aware(at: datetime | str) -> datetime:
    # SQLite hands a UNION's timestamps back as text (UTC, as Django stores them).
    return at if isinstance(at, datetime) else datetime.fromisoformat(at).replace(tzinfo=UTC)


def dashboard_activity(*, limit: int) -> list[dict[str, Any]]:
    """The latest happenings, newest first: leads arriving, outreach sent, engagement. One query:
    the latest `limit` of each kind, each read backward from the index on its time column
    (lead_created_idx, outreach_sent_idx, engagement_occurred_idx), merged in the database."""
    with connection.cursor() as cursor:
        cursor.execute(_activity_sql(), [limit, limit, limit, limit])
        rows = cursor.fetchall()
    summaries = {
        "lead": lambda company, detail: ("lead.created", f"{company} arrived ({detail})"),
        "sent": lambda company, detail: ("outreach.sent", f"Sent {detail or 'no variant'} to {company}"),
        "engagement": lambda company, detail: (f"engagement.{detail}", f"{company} {detail}"),
    }
    items = []
    for at, kind, lead_id, company, detail in rows:
        name, summary = summaries[kind](company, detail)
        items.append({"at": _aware(at), "kind": name, "lead_id": lead_id, "summary": summary})
    return items


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None
