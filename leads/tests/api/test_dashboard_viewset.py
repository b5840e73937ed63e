"""/api/v1/dashboard: the funnel, the daily timeline and the activity feed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_orjson_renderer.renderers import ORJSONRenderer

from leads import selectors
from leads.api import serializers as s
from leads.models import EngagementEvent, Lead
from leads.tests.factories import EngagementEventFactory, LeadFactory, OutreachFactory, VariantFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

DASHBOARD = "/api/v1/dashboard"


def _lead(ago: timedelta = timedelta(0), **fields) -> Lead:
    lead = LeadFactory(**fields)
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - ago)
    return lead


# --- Funnel -----------------------------------------------------------------------------


def test_funnel_counts_each_stage_and_the_rates_between_them(api_client):
    now = timezone.now()
    _lead(status=Lead.Status.RAW)
    _lead(status=Lead.Status.DISQUALIFIED, scored_at=now)
    _lead(status=Lead.Status.SCORED, scored_at=now)
    _lead(status=Lead.Status.SNOOZED, scored_at=now)
    _lead(status=Lead.Status.CONTACTED, scored_at=now, contacted_at=now)
    _lead(status=Lead.Status.CONTACTED, scored_at=now, contacted_at=now)
    _lead(status=Lead.Status.RESPONDED, scored_at=now, contacted_at=now, responded_at=now)
    _lead(status=Lead.Status.CONVERTED, scored_at=now, contacted_at=now, responded_at=now, converted_at=now)
    _lead(status=Lead.Status.FAILED, failure_reason="boom")
    body = api_client.get(f"{DASHBOARD}/funnel").json()
    assert body["counts"] == {
        "ingested": 9,
        "scored": 7,
        "contacted": 4,
        "responded": 2,
        "converted": 1,
        "disqualified": 1,
        "snoozed": 1,
        "failed": 1,
    }
    assert body["rates"] == {
        "scored_of_ingested": pytest.approx(7 / 9, abs=1e-4),
        "contacted_of_scored": pytest.approx(4 / 7, abs=1e-4),
        "responded_of_contacted": 0.5,
        "converted_of_responded": 0.5,
        "converted_of_contacted": 0.25,
    }


def test_funnel_of_no_leads_has_zero_counts_and_no_rates(api_client):
    body = api_client.get(f"{DASHBOARD}/funnel").json()
    assert set(body["counts"].values()) == {0}
    assert set(body["rates"].values()) == {None}


def test_funnel_covers_the_last_30_days_by_default(api_client):
    _lead(timedelta(days=1))
    _lead(timedelta(days=29))
    _lead(timedelta(days=31))
    body = api_client.get(f"{DASHBOARD}/funnel").json()
    assert body["counts"]["ingested"] == 2
    since = datetime.fromisoformat(body["since"])
    assert timedelta(days=30) <= timezone.now() - since < timedelta(days=30, minutes=1)


@pytest.mark.parametrize(("period", "ingested"), [("today", 1), ("7d", 2), ("30d", 3), ("all", 4)])
def test_funnel_period_limits_the_leads_counted(period, ingested, api_client):
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    for lead_day in (today, today - timedelta(days=3), today - timedelta(days=20), today - timedelta(days=100)):
        lead = LeadFactory()
        Lead.objects.filter(pk=lead.pk).update(created_at=min(lead_day, timezone.now()))
    body = api_client.get(f"{DASHBOARD}/funnel", {"period": period}).json()
    assert body["counts"]["ingested"] == ingested


def test_funnel_for_all_time_has_no_start(api_client):
    assert api_client.get(f"{DASHBOARD}/funnel", {"period": "all"}).json()["since"] is None


def test_funnel_for_today_starts_at_midnight_utc(api_client):
    since = parse_datetime(api_client.get(f"{DASHBOARD}/funnel", {"period": "today"}).json()["since"])
    assert since == timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("period", ["week", "1d", "ALL"])
def test_funnel_refuses_an_unknown_period(period, api_client):
    assert_problem(api_client.get(f"{DASHBOARD}/funnel", {"period": period}), 400, ["period"])


# --- Timeline ---------------------------------------------------------------------------


def test_timeline_has_one_row_per_day_ending_today(api_client):
    rows = api_client.get(f"{DASHBOARD}/timeline", {"days": 7}).json()
    today = timezone.now().date()
    assert [row["date"] for row in rows] == [(today - timedelta(days=6 - n)).isoformat() for n in range(7)]
    assert all(row["leads"] == row["contacted"] == row["converted"] == 0 for row in rows)


def test_timeline_covers_30_days_by_default(api_client):
    assert len(api_client.get(f"{DASHBOARD}/timeline").json()) == 30


def test_timeline_counts_leads_contacts_and_conversions_on_their_own_days(api_client):
    now = timezone.now()
    today = now.date()
    _lead(timedelta(days=2), contacted_at=now - timedelta(days=1), converted_at=now)
    _lead(timedelta(days=2))
    _lead(timedelta(0), contacted_at=now)
    _lead(timedelta(days=40), contacted_at=now - timedelta(days=1))
    rows = {row["date"]: row for row in api_client.get(f"{DASHBOARD}/timeline", {"days": 3}).json()}
    day = {offset: (today - timedelta(days=offset)).isoformat() for offset in range(3)}
    assert rows[day[2]] == {"date": day[2], "leads": 2, "contacted": 0, "converted": 0}
    assert rows[day[1]] == {"date": day[1], "leads": 0, "contacted": 2, "converted": 0}
    assert rows[day[0]] == {"date": day[0], "leads": 1, "contacted": 1, "converted": 1}


@pytest.mark.parametrize("days", ["0", "366", "abc", "-1"])
def test_timeline_refuses_a_bad_number_of_days(days, api_client):
    assert_problem(api_client.get(f"{DASHBOARD}/timeline", {"days": days}), 400, ["days"])


def test_timeline_accepts_a_full_year(api_client):
    assert len(api_client.get(f"{DASHBOARD}/timeline", {"days": 365}).json()) == 365


# --- Activity ---------------------------------------------------------------------------


def test_activity_lists_arrivals_sends_and_engagement_newest_first(api_client):
    now = timezone.now()
    lead = _lead(timedelta(hours=5), company_name="Acme", status=Lead.Status.CONTACTED)
    outreach = OutreachFactory(lead=lead, variant=VariantFactory(name="Short"), sent_at=now - timedelta(hours=3))
    EngagementEventFactory(
        outreach=outreach, event_type=EngagementEvent.Type.OPENED, occurred_at=now - timedelta(hours=1)
    )
    OutreachFactory(lead=lead, sent_at=None)  # not sent: not activity
    rows = api_client.get(f"{DASHBOARD}/activity").json()
    assert [(row["kind"], row["lead_id"]) for row in rows] == [
        ("engagement.opened", lead.pk),
        ("outreach.sent", lead.pk),
        ("lead.created", lead.pk),
    ]
    assert [row["summary"] for row in rows] == ["Acme opened", "Sent Short to Acme", "Acme arrived (contacted)"]


def test_activity_is_sorted_newest_first_across_kinds(api_client):
    now = timezone.now()
    leads = [_lead(timedelta(hours=hours)) for hours in (1, 4, 7)]
    for lead, hours in zip(leads, (2, 5, 8), strict=True):
        outreach = OutreachFactory(lead=lead, sent_at=now - timedelta(hours=hours))
        EngagementEventFactory(outreach=outreach, occurred_at=now - timedelta(hours=hours - 0.5))
    times = [datetime.fromisoformat(row["at"]) for row in api_client.get(f"{DASHBOARD}/activity").json()]
    assert len(times) == 9
    assert times == sorted(times, reverse=True)


def test_activity_returns_at_most_limit_items_keeping_the_newest(api_client):
    now = timezone.now()
    for hours in range(6):
        _lead(timedelta(hours=hours), company_name=f"Co {hours}")
    OutreachFactory(lead=_lead(timedelta(days=3)), sent_at=now - timedelta(days=2))
    rows = api_client.get(f"{DASHBOARD}/activity", {"limit": 3}).json()
    assert [row["summary"].split(" arrived")[0] for row in rows] == ["Co 0", "Co 1", "Co 2"]


def test_activity_of_an_outreach_without_a_variant_says_so(api_client):
    OutreachFactory(variant=None, sent_at=timezone.now(), lead=_lead(timedelta(hours=1), company_name="Acme"))
    assert api_client.get(f"{DASHBOARD}/activity").json()[0]["summary"] == "Sent no variant to Acme"


@pytest.mark.parametrize("limit", ["0", "201", "many"])
def test_activity_refuses_a_bad_limit(limit, api_client):
    assert_problem(api_client.get(f"{DASHBOARD}/activity", {"limit": limit}), 400, ["limit"])


@pytest.mark.parametrize("name", ["funnel", "timeline", "activity"])
def test_dashboard_is_read_only(name, api_client):
    assert_problem(api_client.post(f"{DASHBOARD}/{name}", {}, format="json"), 405)


def test_dashboard_has_no_index(api_client):
    assert_problem(api_client.get(DASHBOARD), 404)


def test_activity_answers_the_bytes_its_serializer_renders(api_client):
    lead = LeadFactory(company_name="Acme")
    EngagementEventFactory(outreach=OutreachFactory(lead=lead, sent_at=timezone.now()), event_type="opened")
    response = api_client.get(f"{DASHBOARD}/activity")
    serialized = s.ActivitySerializer(selectors.dashboard_activity(limit=50), many=True).data
    assert len(response.json()) == 3
    assert response.content == ORJSONRenderer().render(serialized)


@pytest.mark.parametrize(("path", "query"), [("funnel", {"period": "1y"}), ("timeline", {"days": "0"})])
def test_a_refused_query_is_refused_each_time_it_is_asked(path, query, api_client):
    # The answers to queries seen before are remembered (serializers.validated_query); refusals are not.
    for _ in range(2):
        assert api_client.get(f"{DASHBOARD}/{path}", query).status_code == 400
    assert api_client.get(f"{DASHBOARD}/{path}").status_code == 200
