"""The read side: posterior summaries, lead stats and the dashboard aggregates, with real numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from leads import selectors
from leads.models import Lead
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


def _age(lead: Lead, **fields: datetime) -> Lead:
    """Set auto_now_add and history timestamps, which a plain save() would not allow."""
    Lead.objects.filter(pk=lead.pk).update(**fields)
    lead.refresh_from_db()
    return lead


# --- Posteriors -------------------------------------------------------------------------


def test_experiment_posteriors_report_mean_and_credible_interval():
    variant = VariantFactory(alpha=11, beta=91, sends=100, successes=10, failures=90)
    VariantFactory(experiment=variant.experiment)
    posterior = selectors.experiment_posteriors(list(variant.experiment.variants.all()))[variant.pk]
    assert posterior.mean == pytest.approx(11 / 102)
    assert (posterior.ci_low, posterior.ci_high) == pytest.approx((0.0556, 0.1746), abs=5e-5)


def test_experiment_posteriors_give_the_clearly_better_arm_nearly_all_the_probability():
    experiment = ExperimentFactory()
    better = VariantFactory(experiment=experiment, alpha=41, beta=61)
    worse = VariantFactory(experiment=experiment, alpha=11, beta=91)
    summaries = selectors.experiment_posteriors([better, worse])
    assert summaries[better.pk].probability_best > 0.99
    assert summaries[better.pk].probability_best + summaries[worse.pk].probability_best == pytest.approx(1.0)


def test_experiment_posteriors_give_a_paused_arm_no_chance_of_being_best():
    experiment = ExperimentFactory()
    paused = VariantFactory(experiment=experiment, alpha=50, beta=2, is_active=False)
    active = [VariantFactory(experiment=experiment), VariantFactory(experiment=experiment)]
    summaries = selectors.experiment_posteriors([paused, *active])
    assert summaries[paused.pk].probability_best == 0.0
    assert summaries[paused.pk].mean == pytest.approx(50 / 52)
    assert sum(summaries[v.pk].probability_best for v in active) == pytest.approx(1.0)


def test_experiment_posteriors_read_the_same_for_the_same_counts():
    experiment = ExperimentFactory()
    variants = [VariantFactory(experiment=experiment, alpha=3, beta=4), VariantFactory(experiment=experiment)]
    assert selectors.experiment_posteriors(variants) == selectors.experiment_posteriors(variants)


def test_experiment_posteriors_of_only_paused_arms_are_all_zero():
    variant = VariantFactory(is_active=False)
    assert selectors.experiment_posteriors([variant])[variant.pk].probability_best == 0.0


def test_experiment_list_prefetches_variants(django_assert_num_queries):
    for _ in range(3):
        experiment = ExperimentFactory()
        VariantFactory.create_batch(2, experiment=experiment)
    with django_assert_num_queries(2):
        names = [[v.template.name for v in e.variants.all()] for e in selectors.experiment_list()]
    assert [len(n) for n in names] == [2, 2, 2]


# --- Lead stats -------------------------------------------------------------------------


def test_lead_stats_count_by_status_and_persona_and_rate_conversion():
    now = timezone.now()
    LeadFactory(status=Lead.Status.SCORED, persona="smb", score=0.6)
    LeadFactory(status=Lead.Status.CONTACTED, persona="smb", score=0.8, contacted_at=now)
    LeadFactory(status=Lead.Status.CONVERTED, persona="enterprise", score=1.0, contacted_at=now, converted_at=now)
    LeadFactory(status=Lead.Status.RAW)
    stats = selectors.lead_stats()
    assert stats["total"] == 4
    assert stats["by_status"]["scored"] == stats["by_status"]["contacted"] == stats["by_status"]["raw"] == 1
    assert stats["by_status"]["snoozed"] == 0
    assert (stats["by_persona"]["smb"], stats["by_persona"]["enterprise"], stats["by_persona"]["unknown"]) == (2, 1, 1)
    assert stats["average_score"] == 0.8
    assert (stats["contacted"], stats["converted"], stats["conversion_rate"]) == (2, 1, 0.5)


def test_lead_stats_of_no_leads_have_no_average_or_rate():
    stats = selectors.lead_stats()
    assert (stats["total"], stats["average_score"], stats["conversion_rate"]) == (0, None, None)


# --- Dashboard --------------------------------------------------------------------------


def test_period_start_of_today_is_midnight_utc():
    now = datetime(2026, 5, 4, 15, 30, tzinfo=UTC)
    assert selectors.period_start("today", now) == datetime(2026, 5, 4, tzinfo=UTC)


def test_period_start_of_a_span_and_of_all_time():
    now = datetime(2026, 5, 4, 15, 30, tzinfo=UTC)
    assert selectors.period_start("7d", now) == now - timedelta(days=7)
    assert selectors.period_start("all", now) is None


def test_dashboard_funnel_counts_each_stage_and_rates_between_them():
    now = timezone.now()
    for _ in range(4):
        LeadFactory(status=Lead.Status.RAW)
    for _ in range(2):
        LeadFactory(status=Lead.Status.DISQUALIFIED, scored_at=now)
    LeadFactory(status=Lead.Status.SNOOZED, scored_at=now)
    LeadFactory(status=Lead.Status.CONTACTED, scored_at=now, contacted_at=now)
    LeadFactory(status=Lead.Status.RESPONDED, scored_at=now, contacted_at=now, responded_at=now)
    LeadFactory(status=Lead.Status.CONVERTED, scored_at=now, contacted_at=now, responded_at=now, converted_at=now)
    funnel = selectors.dashboard_funnel(since=None)
    assert funnel["counts"] == {
        "ingested": 10,
        "scored": 6,
        "contacted": 3,
        "responded": 2,
        "converted": 1,
        "disqualified": 2,
        "snoozed": 1,
        "failed": 0,
    }
    assert funnel["rates"] == {
        "scored_of_ingested": 0.6,
        "contacted_of_scored": 0.5,
        "responded_of_contacted": 0.6667,
        "converted_of_responded": 0.5,
        "converted_of_contacted": 0.3333,
    }


def test_dashboard_funnel_counts_only_leads_created_since_the_period_start():
    now = timezone.now()
    _age(LeadFactory(), created_at=now - timedelta(days=10))
    LeadFactory()
    assert selectors.dashboard_funnel(since=now - timedelta(days=7))["counts"]["ingested"] == 1
    assert selectors.dashboard_funnel(since=None)["counts"]["ingested"] == 2


def test_dashboard_funnel_of_no_leads_has_no_rates():
    assert set(selectors.dashboard_funnel(since=None)["rates"].values()) == {None}


def test_dashboard_timeline_counts_per_utc_day_including_empty_days():
    today = date(2026, 5, 4)
    noon = datetime(2026, 5, 4, 12, tzinfo=UTC)
    _age(LeadFactory(), created_at=noon, contacted_at=noon, converted_at=noon)
    _age(LeadFactory(), created_at=noon - timedelta(days=2))
    _age(LeadFactory(), created_at=noon - timedelta(days=2), contacted_at=noon)
    _age(LeadFactory(), created_at=noon - timedelta(days=9))  # before the window
    timeline = selectors.dashboard_timeline(days=3, today=today)
    assert timeline == [
        {"date": date(2026, 5, 2), "leads": 2, "contacted": 0, "converted": 0},
        {"date": date(2026, 5, 3), "leads": 0, "contacted": 0, "converted": 0},
        {"date": date(2026, 5, 4), "leads": 1, "contacted": 2, "converted": 1},
    ]


def test_dashboard_activity_lists_the_latest_happenings_newest_first():
    now = timezone.now()
    lead = _age(LeadFactory(company_name="Acme"), created_at=now - timedelta(hours=3))
    outreach = OutreachFactory(lead=lead, variant__name="Short", sent_at=now - timedelta(hours=2))
    EngagementEventFactory(outreach=outreach, event_type="clicked", occurred_at=now - timedelta(hours=1))
    OutreachFactory(lead=lead, sent_at=None)  # never sent: not activity
    activity = selectors.dashboard_activity(limit=10)
    assert [(item["kind"], item["summary"], item["lead_id"]) for item in activity] == [
        ("engagement.clicked", "Acme clicked", lead.pk),
        ("outreach.sent", "Sent Short to Acme", lead.pk),
        ("lead.created", "Acme arrived (raw)", lead.pk),
    ]


def test_dashboard_activity_is_cut_to_the_limit():
    LeadFactory.create_batch(5)
    assert len(selectors.dashboard_activity(limit=3)) == 3
