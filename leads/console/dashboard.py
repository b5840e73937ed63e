"""The read side of the console's dashboard: funnel, experiments, machine health, activity.

Builds on `leads.selectors` (funnel, timeline, activity, posteriors) and adds what only the
console needs. Every function runs a fixed number of queries whatever the number of leads or
experiments, aggregating in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Prefetch, Q
from django.utils import timezone

from health.probes import stage_lag
from leads import bandit, selectors
from leads.console.charts import SERIES_COLOURS, PosteriorChart, posterior_chart, timeline_chart
from leads.models import DeadLetter, Experiment, OutboxEvent, Variant
from ops.backups import backup_latest

# Days of history the leads-over-time chart shows for each dashboard period.
TIMELINE_DAYS = {"today": 7, "7d": 7, "30d": 30, "all": 90}
ACTIVITY_LIMIT = 15
# The funnel rows, in order, with the counts key of `selectors.dashboard_funnel` each reads.
FUNNEL_ROWS = (
    ("raw (ingested)", "ingested"),
    ("scored", "scored"),
    ("contacted", "contacted"),
    ("responded", "responded"),
    ("converted", "converted"),
    ("disqualified", "disqualified"),
    ("snoozed", "snoozed"),
)
RATE_LABELS = {
    "scored_of_ingested": "scored / ingested",
    "contacted_of_scored": "contacted / scored",
    "responded_of_contacted": "responded / contacted",
    "converted_of_responded": "converted / responded",
    "converted_of_contacted": "converted / contacted",
}


@dataclass(frozen=True)
class VariantRow:
    variant: Variant
    posterior: selectors.VariantPosterior
    series: int  # the colour shared by its table row and its curve

    @property
    def expected_loss_points(self) -> str:
        """The expected loss in percentage points, as the table shows it ("-" when paused)."""
        loss = self.posterior.expected_loss
        return "-" if loss is None else f"{loss * 100:.3f} pp"


@dataclass(frozen=True)
class ExperimentPanel:
    experiment: Experiment
    rows: list[VariantRow]
    chart: PosteriorChart
    decision: selectors.ExperimentDecision
    winner: Variant | None  # the winning or shipped variant
    delays: bandit.DelayDistribution  # what the pending sends are weighted by

    @property
    def median_delay_hours(self) -> float:
        return self.delays.median() / 3_600


@dataclass(frozen=True)
class MachineHealth:
    outbox_backlog: int
    outbox_failing: int
    outbox_oldest_at: datetime | None
    dead_letters_by_topic: dict[str, int]
    # Stage (consumer group) -> messages behind; None: the bus has no lag or it is unknown.
    consumer_lag: dict[str, int | None] | None
    lag_note: str
    backup: Any | None  # ops.backups' latest backup: has created_at and size_bytes


def console_dashboard(*, period: str) -> dict[str, Any]:
    """Everything the dashboard's panels show for a period (a key of `selectors.PERIODS`)."""
    funnel = selectors.dashboard_funnel(since=selectors.period_start(period))
    timeline = selectors.dashboard_timeline(days=TIMELINE_DAYS[period])
    return {
        "period": period,
        "funnel": funnel,
        "funnel_rows": [(label, funnel["counts"][key]) for label, key in FUNNEL_ROWS],
        "rate_rows": [
            (label, key, "-" if funnel["rates"][key] is None else f"{funnel['rates'][key]:.1%}")
            for key, label in RATE_LABELS.items()
        ],
        "timeline": timeline,
        "timeline_chart": timeline_chart(timeline),
        "experiments": console_experiments(),
        "health": console_machine_health(),
        "activity": selectors.dashboard_activity(limit=ACTIVITY_LIMIT),
    }


def console_experiments() -> list[ExperimentPanel]:
    """Each active experiment with its variants' adjusted posteriors, their curves, its delay
    distribution and where its stopping rule stands (a fixed number of queries, however many
    experiments)."""
    variants = Variant.objects.order_by("name")
    experiments = list(
        Experiment.objects.filter(status=Experiment.Status.ACTIVE)
        .prefetch_related(Prefetch("variants", queryset=variants))
        .order_by("name")
    )
    posteriors = selectors.experiment_posteriors([arm for e in experiments for arm in e.variants.all()])
    delays = selectors.experiment_delays(experiment_ids=[e.pk for e in experiments], now=timezone.now())
    panels = []
    for experiment in experiments:
        rows = [
            VariantRow(variant=arm, posterior=posteriors[arm.pk], series=index % SERIES_COLOURS)
            for index, arm in enumerate(experiment.variants.all())
        ]
        arms = list(experiment.variants.all())
        decision = selectors.experiment_decision(experiment, arms, posteriors)
        panels.append(
            ExperimentPanel(
                experiment=experiment,
                rows=rows,
                chart=posterior_chart(rows),
                decision=decision,
                winner=next((arm for arm in arms if arm.pk == decision.winner), None),
                delays=delays[experiment.pk],
            )
        )
    return panels


def console_machine_health() -> MachineHealth:
    """Outbox backlog, dead letters by topic, consumer lag per stage and the latest backup."""
    outbox = (
        OutboxEvent.objects.pending()
        .order_by()
        .aggregate(backlog=Count("id"), failing=Count("id", filter=~Q(last_error="")), oldest=Min("created_at"))
    )
    dead = DeadLetter.objects.filter(status=DeadLetter.Status.PENDING).order_by("topic").values_list("topic")
    consumer_lag = stage_lag() or None
    backup = backup_latest()
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        lag_note = "in-process bus: no lag"
    else:
        lag_note = "" if consumer_lag else "unknown (the broker did not answer)"
    return MachineHealth(
        outbox_backlog=outbox["backlog"],
        outbox_failing=outbox["failing"],
        outbox_oldest_at=outbox["oldest"],
        dead_letters_by_topic=dict(dead.annotate(n=Count("id"))),
        consumer_lag=consumer_lag,
        lag_note=lag_note,
        backup=backup,
    )


def console_period(value: str | None) -> str:
    """The dashboard period asked for, or 7 days when the value is missing or unknown."""
    return value if value in selectors.PERIODS else "7d"
