"""Scheduling against real PostgreSQL: the send window, the per-domain and daily caps with the
warm-up ramp, what is booked already, and two schedulers at once (leads.services.pacing through
outreach_schedule_batch)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from leads.models import Lead, Outreach
from leads.pacing import hour_of
from leads.services.outreach import OutreachRequest, outreach_schedule_batch
from leads.tests.factories import OutreachFactory, VariantFactory

# A Friday afternoon in New York (15:30 EST), a few years ahead of the wall clock.
FRIDAY = datetime(2030, 1, 4, 20, 30, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def pacing_settings(settings: Any) -> Any:
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.OUTREACH_SEND_WINDOW = "mon-sun 00:00-24:00"
    settings.OUTREACH_DEFAULT_TIME_ZONE = "UTC"
    settings.OUTREACH_DOMAIN_HOURLY_CAP = 20
    settings.OUTREACH_DAILY_CAP = 10_000
    settings.OUTREACH_WARMUP_START = ""
    return settings


def _leads(count: int, *, email: str = "person{n}@gmail.com", prefix: str = "lf", **fields: Any) -> list[Lead]:
    """`count` scored leads in one insert; `email` may name `{n}`."""
    return Lead.objects.bulk_create(
        Lead(
            lightfield_id=f"{prefix}-{n:05d}",
            company_name=f"Company {n}",
            contact_email=email.format(n=n),
            status=Lead.Status.SCORED,
            score=0.8,
            **fields,
        )
        for n in range(count)
    )


def _schedule(leads: list[Lead], *, now: datetime, batch: int = 100) -> None:
    for start in range(0, len(leads), batch):
        requests = [OutreachRequest(lead_id=lead.pk) for lead in leads[start : start + batch]]
        outreach_schedule_batch(requests=requests, rng=random.Random(start), now=now)


def _slots(rows: QuerySet[Outreach] | None = None) -> list[datetime]:
    """The send times of `rows` (all outreach by default), earliest first; every one has one."""
    rows = Outreach.objects.all() if rows is None else rows
    slots = list(rows.order_by("scheduled_for").values_list("scheduled_for", flat=True))
    assert None not in slots
    return [slot for slot in slots if slot is not None]


@pytest.mark.django_db
def test_500_leads_at_one_domain_land_inside_the_window_at_most_the_cap_per_hour_each_once(settings):
    settings.OUTREACH_SEND_WINDOW = "mon-fri 09:00-17:00"
    settings.OUTREACH_DEFAULT_TIME_ZONE = "America/New_York"
    VariantFactory()
    leads = _leads(500)
    _schedule(leads, now=FRIDAY)

    rows = list(Outreach.objects.values_list("lead_id", "scheduled_for", "status", "recipient_domain"))
    assert sorted(lead_id for lead_id, *_ in rows) == sorted(lead.pk for lead in leads)  # each exactly once
    assert {(status, domain) for _, _, status, domain in rows} == {(Outreach.Status.SCHEDULED, "gmail.com")}
    slots = _slots()
    assert len(slots) == 500
    for slot in slots:
        local = slot.astimezone(NEW_YORK)
        assert local.weekday() < 5 and 9 <= local.hour < 17, local
        assert slot >= FRIDAY
    per_hour = Counter(hour_of(slot) for slot in slots)
    assert max(per_hour.values()) == 20
    # Spread out within each hour, not all at its top: every slot of an hour is distinct.
    assert all(len({s for s in slots if hour_of(s) == hour}) == n for hour, n in per_hour.items())
    # As early as allowed: Friday's last 90 minutes (from now), then Monday and Tuesday in full.
    assert min(slots) == FRIDAY
    assert per_hour[datetime(2030, 1, 4, 20, tzinfo=UTC)] == 10  # from 20:30, at 3-minute steps
    monday = [hour for hour in per_hour if hour.date() == date(2030, 1, 7)]
    assert sorted(hour.hour for hour in monday) == list(range(14, 22))  # 09:00-17:00 EST
    assert sum(per_hour[hour] for hour in monday) == 160


@pytest.mark.django_db
def test_the_lead_s_own_time_zone_decides_its_window(settings):
    settings.OUTREACH_SEND_WINDOW = "mon-fri 09:00-17:00"
    settings.OUTREACH_DEFAULT_TIME_ZONE = "America/New_York"
    VariantFactory()
    [tokyo] = _leads(1, prefix="tokyo", time_zone="Asia/Tokyo")
    [default] = _leads(1, prefix="default", email="other{n}@yahoo.com")
    _schedule([tokyo, default], now=FRIDAY)
    slots = dict(Outreach.objects.values_list("lead_id", "scheduled_for"))
    # Friday 20:30 UTC is Saturday 05:30 in Tokyo: its next window opens Monday 09:00 JST.
    assert slots[tokyo.pk] == datetime(2030, 1, 7, 0, 0, tzinfo=UTC)
    assert slots[default.pk] == FRIDAY


@pytest.mark.django_db
def test_the_daily_cap_counts_mail_sent_and_scheduled_already(settings):
    settings.OUTREACH_DAILY_CAP = 30
    now = datetime(2030, 1, 8, 10, 0, tzinfo=UTC)
    VariantFactory()
    for hours_ago in range(10):
        OutreachFactory(status=Outreach.Status.OPENED, sent_at=now - timedelta(hours=hours_ago % 9, minutes=5))
    OutreachFactory(status=Outreach.Status.SCHEDULED, scheduled_for=now + timedelta(hours=3))
    OutreachFactory(status=Outreach.Status.CANCELLED, scheduled_for=now + timedelta(hours=3))  # not booked
    OutreachFactory(status=Outreach.Status.SENT, sent_at=now - timedelta(days=1))  # yesterday's: not today's
    leads = _leads(40, email="p{n}@firm{n}.example")
    _schedule(leads, now=now)
    per_day = Counter(slot.date() for slot in _slots(Outreach.objects.filter(lead__in=leads)))
    assert per_day == {now.date(): 30 - 11, (now + timedelta(days=1)).date(): 21}


@pytest.mark.django_db
def test_the_warmup_ramps_the_daily_cap_from_its_first_day(settings):
    now = datetime(2030, 1, 8, 10, 0, tzinfo=UTC)
    settings.OUTREACH_DAILY_CAP = 100
    settings.OUTREACH_WARMUP_START = "2030-01-07"  # yesterday was day 0
    settings.OUTREACH_WARMUP_DAYS = 10
    settings.OUTREACH_WARMUP_FIRST_DAY_CAP = 10
    VariantFactory()
    leads = _leads(50, email="p{n}@firm{n}.example")
    _schedule(leads, now=now)
    per_day = Counter(slot.date() for slot in _slots())
    day = now.date()
    # Day 1 of 10: 10 + 90 * 1/10 = 19; day 2: 28; day 3: the rest.
    assert per_day == {day: 19, day + timedelta(days=1): 28, day + timedelta(days=2): 3}


@pytest.mark.django_db
def test_the_domain_cap_counts_what_is_booked_in_the_hour_already(settings):
    settings.OUTREACH_DOMAIN_HOURLY_CAP = 5
    now = datetime(2030, 1, 8, 10, 0, tzinfo=UTC)
    VariantFactory()
    for minute in (0, 10, 20):
        OutreachFactory(
            status=Outreach.Status.PENDING, recipient_domain="gmail.com", scheduled_for=now.replace(minute=minute)
        )
    OutreachFactory(status=Outreach.Status.SENT, recipient_domain="gmail.com", sent_at=now.replace(minute=1))
    leads = _leads(3)
    _schedule(leads, now=now)
    slots = _slots(Outreach.objects.filter(lead__in=leads))
    assert slots[0] == now.replace(minute=48)  # the fifth of the hour, at the fifth step
    assert [hour_of(slot) for slot in slots[1:]] == [now + timedelta(hours=1)] * 2


def _schedule_in_thread(
    leads: list[Lead], now: datetime, start: threading.Barrier, errors: list[BaseException]
) -> None:
    try:
        start.wait(timeout=10)
        _schedule(leads, now=now, batch=25)
    except BaseException as error:  # reported to the test
        errors.append(error)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_never_exceed_a_cap_nor_write_to_one_person_twice(settings):
    settings.OUTREACH_DOMAIN_HOURLY_CAP = 10
    # The wall clock: the re-contact window is counted back from it over rows created now.
    now = timezone.now()
    VariantFactory()
    first = _leads(60, prefix="first")
    second = _leads(60, prefix="second", email="person{n}@gmail.com")  # the same 60 people again
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_schedule_in_thread, args=(batch, now, start, errors)) for batch in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    slots = _slots()
    assert len(slots) == 60  # each person once, under one of their two leads
    assert max(Counter(hour_of(slot) for slot in slots).values()) <= 10
    assert len({hour_of(slot) for slot in slots}) >= 6
    assert Outreach.objects.values("recipient_key").distinct().count() == 60
    refused = Lead.objects.exclude(not_contacted_reason="")
    assert refused.count() == 60
    assert {lead.not_contacted_reason for lead in refused} == {
        "the address was written to within 90 days (under another lead)"
    }


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_keep_the_domain_cap_for_different_people(settings):
    settings.OUTREACH_DOMAIN_HOURLY_CAP = 10
    now = datetime(2030, 1, 8, 10, 0, tzinfo=UTC)
    VariantFactory()
    batches = [_leads(40, prefix=side, email=side + "{n}@gmail.com") for side in ("a", "b")]
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    threads = [threading.Thread(target=_schedule_in_thread, args=(batch, now, start, errors)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    per_hour = Counter(hour_of(slot) for slot in _slots())
    assert sum(per_hour.values()) == 80
    assert per_hour == {now + timedelta(hours=n): 10 for n in range(8)}
