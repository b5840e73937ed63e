"""Pacing end to end, on a clock the test controls: 500 leads at one domain ingested at once go
through the scorer and the outreach stage, and two dispatcher processes send them, each once, only
inside the recipient's send window and at most the per-domain cap an hour. Real PostgreSQL, a
real SMTP server on loopback."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from leads.models import Lead, OutboxEvent, Outreach
from leads.pacing import hour_of
from leads.pipeline.events import Event, encode, outbox_event
from leads.pipeline.stages import OutreachStage, ScorerStage
from leads.tests.factories import VariantFactory
from leads.topics import LEADS_RAW, LEADS_SCORED
from tests.stand_ins import SmtpSink, pipeline_env
from tests.test_dispatch import Driver

pytestmark = pytest.mark.django_db(transaction=True)

# Friday 15:30 in New York, years ahead of the wall clock: only the test's clock makes mail due.
FRIDAY = datetime(2030, 1, 4, 20, 30, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
CAP = 20


def _lead_created(n: int) -> Event:
    payload = {
        "event_type": "lead.created",
        "timestamp": "2029-12-31T10:00:00Z",
        "lightfield_id": f"lf-paced-{n:04d}",
        "company": {"name": f"Company {n}", "size": "201-1000", "industry": "Software"},
        "contact": {"name": "Pat Example", "email": f"pat{n}@gmail.com", "title": "CTO"},
        "metadata": {"budget_range": "100k-500k", "pain_points": ["low reply rates"], "timeline": "immediate"},
    }
    return Event(topic=LEADS_RAW, key=payload["lightfield_id"], value=encode(payload), event_id=f"raw-{n}")


@pytest.fixture
def paced(settings, smtp_sink: SmtpSink) -> SmtpSink:
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # the outbox stays put: the test runs the stages
    settings.OPENAI_API_KEY = ""
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.OUTREACH_SEND_WINDOW = "mon-fri 09:00-17:00"
    settings.OUTREACH_DEFAULT_TIME_ZONE = "America/New_York"
    settings.OUTREACH_DOMAIN_HOURLY_CAP = CAP
    settings.OUTREACH_DAILY_CAP = 10_000
    return smtp_sink


def test_500_leads_at_one_domain_are_sent_inside_the_window_at_the_cap_each_once_by_two_dispatchers(paced):
    VariantFactory()
    events = [_lead_created(n) for n in range(500)]
    assert set(ScorerStage().process_batch(events)) == {"applied"}
    scored = [outbox_event(row) for row in OutboxEvent.objects.filter(topic=LEADS_SCORED).order_by("pk")]
    outreach_stage = OutreachStage(random.Random(5), clock=lambda: FRIDAY)
    for start in range(0, len(scored), 200):
        assert set(outreach_stage.process_batch(scored[start : start + 200])) == {"applied"}
    due = dict(Outreach.objects.values_list("message_id", "scheduled_for"))
    assert len(due) == 500 and Lead.objects.filter(outreach__isnull=True).count() == 0

    env = pipeline_env(database_name=connection.settings_dict["NAME"], bootstrap="127.0.0.1:1", smtp_port=paced.port)
    drivers = [Driver(env, batch_size=7), Driver(env, batch_size=7)]
    sent_by, seen = [0, 0], set()
    try:
        # The clock steps from one due time to the next; both dispatchers are asked at each.
        for now in sorted(set(due.values())):
            for driver in drivers:
                driver.ask(now)
            for index, driver in enumerate(drivers):
                sent_by[index] += driver.sent()
            arrived = {mail["Message-ID"] for mail in paced.received()} - seen
            assert all(due[message_id] <= now for message_id in arrived), "a mail went out early"
            seen |= arrived
    finally:
        codes = [driver.close() for driver in drivers]
    assert codes == [0, 0]

    mails = [mail["Message-ID"] for mail in paced.received()]
    assert len(mails) == len(set(mails)) == 500, "every mail exactly once"
    assert min(sent_by) > 0, f"both dispatchers shared the work: {sent_by}"
    sent_at = list(Outreach.objects.values_list("sent_at", flat=True))
    for moment in sent_at:
        local = moment.astimezone(NEW_YORK)
        assert local.weekday() < 5 and 9 <= local.hour < 17, f"sent outside the window: {local}"
    assert max(Counter(hour_of(moment) for moment in sent_at).values()) == CAP
    assert min(sent_at) == FRIDAY
