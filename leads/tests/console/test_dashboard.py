"""The console dashboard: what it shows matches the database, and its cost does not grow with it."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.template.defaultfilters import filesizeformat
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.models import DeadLetter, Experiment, Lead, OutboxEvent
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    VariantFactory,
)
from ops.backups import backup_create

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("console:dashboard")
PANELS = reverse("console:panels")


def _cell(html: str, attribute: str, name: str) -> str:
    match = re.search(rf'data-{attribute}="{re.escape(name)}"[^>]*>(.*?)</td>', html, re.S)
    assert match, f"no data-{attribute}={name} cell"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def _seed(*, leads: int, experiments: int) -> None:
    for index in range(experiments):
        experiment = ExperimentFactory()
        arms = [VariantFactory(experiment=experiment, sends=10, successes=index % 3, failures=2) for _ in range(2)]
        outreach = OutreachFactory(variant=arms[0], sent_at=timezone.now())
        EngagementEventFactory(outreach=outreach)
    LeadFactory.create_batch(leads, status=Lead.Status.SCORED, scored_at=timezone.now(), score=0.8)


def test_dashboard_funnel_counts_match_the_database(admin_client):
    LeadFactory.create_batch(3, status=Lead.Status.SCORED, scored_at=timezone.now(), score=0.8)
    LeadFactory.create_batch(2, status=Lead.Status.SNOOZED)
    LeadFactory(status=Lead.Status.CONTACTED, scored_at=timezone.now(), contacted_at=timezone.now())
    html = admin_client.get(DASHBOARD, {"period": "all"}).content.decode()
    assert _cell(html, "funnel", "raw-ingested") == str(Lead.objects.count())
    assert _cell(html, "funnel", "scored") == str(Lead.objects.filter(scored_at__isnull=False).count())
    assert _cell(html, "funnel", "contacted") == "1"
    assert _cell(html, "funnel", "snoozed") == "2"
    assert _cell(html, "rate", "contacted_of_scored") == "25.0%"


def test_dashboard_shows_each_active_variant_with_its_posterior_and_curve(admin_client):
    experiment = ExperimentFactory(name="Cold intro")
    counts = {"sends": 100, "experiment": experiment}
    winner = VariantFactory(name="Winner", alpha=31, beta=71, successes=30, failures=70, **counts)
    VariantFactory(name="Loser", alpha=6, beta=96, successes=5, failures=95, **counts)
    ExperimentFactory(name="Paused one", status=Experiment.Status.PAUSED)
    response = admin_client.get(DASHBOARD)
    html = response.content.decode()
    (panel,) = response.context["experiments"]
    assert panel.experiment == experiment
    assert html.count('class="curve series-') == 2
    assert "Paused one" not in html
    row = re.search(rf'data-variant="{winner.pk}".*?</tr>', html, re.S).group(0)
    assert _cell(row, "field", "sends") == "100"
    assert _cell(row, "field", "conversions") == "30"
    assert _cell(row, "field", "mean") == f"{31 / 102:.3f}"
    assert float(_cell(row, "field", "probability-best")) > 0.99


def test_dashboard_timeline_bars_count_todays_leads(admin_client):
    LeadFactory.create_batch(4)
    response = admin_client.get(DASHBOARD, {"period": "7d"})
    assert [p["leads"] for p in response.context["timeline"]][-1] == 4
    assert re.findall(r'class="bar leads" data-value="(\d+)"', response.content.decode())[-1] == "4"


def test_machine_health_counts_the_outbox_backlog_and_pending_dead_letters_by_topic(admin_client, settings, tmp_path):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.BACKUP_DIR = tmp_path
    for published in (None, None, timezone.now()):
        OutboxEvent.objects.create(
            event_id=uuid.uuid4(), topic="leads.raw", key="k", event_type="t", payload={}, published_at=published
        )
    for topic, status in (("leads.raw", "pending"), ("leads.raw", "pending"), ("leads.scored", "retried")):
        DeadLetter.objects.create(stage="scorer", topic=topic, value="{}", error="boom", status=status)
    html = admin_client.get(PANELS).content.decode()
    assert _cell(html, "health", "outbox-backlog") == "2"
    assert 'data-topic="leads.raw">2<' in html
    assert 'data-topic="leads.scored"' not in html
    assert _cell(html, "health", "consumer-lag") == "in-process bus: no lag"
    assert _cell(html, "health", "backup") == "no backup yet"


def test_machine_health_shows_the_latest_backup_with_its_size(admin_client, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    created = backup_create(directory=tmp_path)
    cell = _cell(admin_client.get(PANELS).content.decode(), "health", "backup")
    assert filesizeformat(created.info.size_bytes) in cell


def test_activity_feed_lists_the_newest_lead(admin_client):
    LeadFactory(company_name="Newest Co")
    assert "Newest Co arrived" in admin_client.get(PANELS).content.decode()


def test_panels_fragment_is_a_fragment_not_a_page(admin_client):
    html = admin_client.get(PANELS, {"period": "today"}).content.decode()
    assert 'id="panel-funnel"' in html
    assert "<html" not in html


def test_unknown_period_falls_back_to_seven_days(admin_client):
    assert admin_client.get(DASHBOARD, {"period": "forever"}).context["period"] == "7d"


def test_admin_index_links_to_the_dashboard(admin_client):
    assert DASHBOARD in admin_client.get(reverse("admin:index")).content.decode()


def test_dashboard_query_count_does_not_grow_with_leads_or_experiments(admin_client, django_assert_num_queries):
    _seed(leads=3, experiments=1)
    admin_client.get(DASHBOARD)  # warm the session and content types
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(DASHBOARD).status_code == 200
    _seed(leads=60, experiments=6)
    with django_assert_num_queries(len(few.captured_queries)):
        assert admin_client.get(DASHBOARD).status_code == 200
