"""Pacing, the pure part (leads.pacing): send windows in local time across DST, caps with the
warm-up ramp, and the slots the allocator hands out."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leads.pacing import (
    Caps,
    InvalidPacing,
    SendWindow,
    SlotAllocator,
    hour_of,
    send_window_parse,
    time_zone_parse,
    warmup_start_parse,
)

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
BUSINESS_HOURS = send_window_parse("mon-fri 09:00-17:00")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("mon-fri 09:00-17:00", {0, 1, 2, 3, 4}, 540, 1020),
        ("mon,wed,fri 08:30-12:00", {0, 2, 4}, 510, 720),
        ("Mon-Sun 00:00-24:00", set(range(7)), 0, 1440),
        ("sat-sun 10:00-14:00", {5, 6}, 600, 840),
        ("fri-mon 07:05-07:06", {4, 5, 6, 0}, 425, 426),
        ("  mon-tue , thu  9:00 - 17:30 ", {0, 1, 3}, 540, 1050),
    ],
)
def test_a_send_window_is_parsed_into_days_and_local_minutes(text, days, start, end):
    assert send_window_parse(text) == SendWindow(days=frozenset(days), start_minute=start, end_minute=end)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "is not of the form"),
        ("weekdays 09:00-17:00", "'weekdays' is not a day"),
        ("mon-fri 09:00", "is not of the form"),
        ("mon-fri 17:00-09:00", "must start before it ends"),
        ("mon-fri 09:00-09:00", "must start before it ends"),
        ("mon-fri 09:60-17:00", "09:60 is not a time of day"),
        ("mon-fri 09:00-24:30", "24:30 is not a time of day"),
        ("mon-frx 09:00-17:00", "'frx' is not a day"),
    ],
)
def test_a_malformed_send_window_names_what_is_wrong(text, complaint):
    with pytest.raises(InvalidPacing, match=complaint):
        send_window_parse(text)


def test_an_unknown_time_zone_and_a_malformed_warmup_date_are_refused():
    assert time_zone_parse("Europe/Berlin") == BERLIN
    with pytest.raises(InvalidPacing, match="'Mars/Olympus' is not an IANA time zone"):
        time_zone_parse("Mars/Olympus")
    with pytest.raises(InvalidPacing, match="not an IANA time zone"):
        time_zone_parse("../etc/passwd")
    assert warmup_start_parse("") is None
    assert warmup_start_parse("2026-11-30") == date(2026, 11, 30)
    with pytest.raises(InvalidPacing, match="YYYY-MM-DD"):
        warmup_start_parse("30/11/2026")


# --- windows --------------------------------------------------------------------------------


def test_the_window_is_read_in_the_recipients_local_time():
    # Tuesday 2026-12-01 14:30 UTC is 09:30 in New York and 15:30 in Berlin.
    moment = utc(2026, 12, 1, 14, 30)
    assert BUSINESS_HOURS.contains(moment, NEW_YORK)
    assert BUSINESS_HOURS.contains(moment, BERLIN)
    # 13:30 UTC is 08:30 in New York: it opens at 09:00 local.
    assert BUSINESS_HOURS.next_open(utc(2026, 12, 1, 13, 30), NEW_YORK) == utc(2026, 12, 1, 14, 0)


def test_after_closing_on_friday_the_window_opens_on_monday_morning():
    friday_evening = utc(2026, 12, 4, 17, 0)  # closing time exactly: closed
    assert not BUSINESS_HOURS.contains(friday_evening, UTC_ZONE)
    assert BUSINESS_HOURS.next_open(friday_evening, UTC_ZONE) == utc(2026, 12, 7, 9, 0)
    assert BUSINESS_HOURS.next_open(utc(2026, 12, 5, 12, 0), BERLIN) == utc(2026, 12, 7, 8, 0)


def test_the_window_follows_daylight_saving_time():
    # New York: EDT (UTC-4) until 2026-11-01, EST (UTC-5) after; 09:00 local moves an hour in UTC.
    assert BUSINESS_HOURS.next_open(utc(2026, 10, 30, 0, 0), NEW_YORK) == utc(2026, 10, 30, 13, 0)
    assert BUSINESS_HOURS.next_open(utc(2026, 11, 2, 0, 0), NEW_YORK) == utc(2026, 11, 2, 14, 0)
    # Berlin springs forward on 2026-03-29 (a Sunday): Monday opens at 07:00 UTC, Friday before at 08:00.
    assert BUSINESS_HOURS.next_open(utc(2026, 3, 27, 0, 0), BERLIN) == utc(2026, 3, 27, 8, 0)
    assert BUSINESS_HOURS.next_open(utc(2026, 3, 28, 0, 0), BERLIN) == utc(2026, 3, 30, 7, 0)


def test_a_window_over_the_fall_back_night_spans_the_repeated_hour():
    night = send_window_parse("mon-sun 00:00-03:00")
    # 2026-11-01 in New York: 01:00-02:00 happens twice, so 00:00-03:00 lasts four hours (04:00-08:00 UTC).
    assert night.contains(utc(2026, 11, 1, 7, 30), NEW_YORK)
    assert not night.contains(utc(2026, 11, 1, 8, 0), NEW_YORK)


def test_an_always_open_window_is_open_at_any_instant():
    always = send_window_parse("mon-sun 00:00-24:00")
    assert always.always_open
    for hours in range(0, 24 * 7, 5):
        moment = utc(2026, 3, 28, 0, 17) + timedelta(hours=hours)
        assert always.contains(moment, NEW_YORK)


# --- caps -----------------------------------------------------------------------------------


def test_without_warmup_every_day_has_the_daily_cap():
    assert Caps(domain_hourly=5, daily=300).daily_on(date(2026, 12, 1)) == 300


def test_the_warmup_ramps_linearly_from_the_first_days_cap_to_the_daily_cap():
    caps = Caps(domain_hourly=5, daily=1050, warmup_start=date(2026, 12, 1), warmup_days=10, warmup_first_day=50)
    ramp = [caps.daily_on(date(2026, 12, 1) + timedelta(days=n)) for n in range(12)]
    assert ramp == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950, 1050, 1050]
    assert caps.daily_on(date(2026, 11, 20)) == 50  # before it starts: as cautious as its first day


# --- the allocator --------------------------------------------------------------------------


def test_slots_respect_the_domain_cap_per_hour_and_are_spread_within_the_hour():
    allocator = SlotAllocator(caps=Caps(domain_hourly=4, daily=1000), booked_per_domain_hour={}, booked_per_day={})
    always = send_window_parse("mon-sun 00:00-24:00")
    now = utc(2026, 12, 1, 10, 0)
    slots = [allocator.allocate(domain="acme.com", window=always, zone=UTC_ZONE, earliest=now) for _ in range(10)]
    assert slots[:5] == [
        now,
        now + timedelta(minutes=15),
        now + timedelta(minutes=30),
        now + timedelta(minutes=45),
        utc(2026, 12, 1, 11),
    ]
    assert max(Counter(hour_of(slot) for slot in slots).values()) == 4
    # Another domain is not held up by acme.com's cap.
    assert allocator.allocate(domain="globex.com", window=always, zone=UTC_ZONE, earliest=now) == now


def test_late_in_an_hour_mail_takes_the_remaining_steps_and_then_the_next_hour():
    allocator = SlotAllocator(caps=Caps(domain_hourly=4, daily=1000), booked_per_domain_hour={}, booked_per_day={})
    now = utc(2026, 12, 1, 10, 40)
    slots = [
        allocator.allocate(domain="acme.com", window=BUSINESS_HOURS, zone=UTC_ZONE, earliest=now) for _ in range(3)
    ]
    assert slots == [now, utc(2026, 12, 1, 10, 45), utc(2026, 12, 1, 11, 0)]


def test_what_is_booked_already_counts_against_the_caps():
    hour = utc(2026, 12, 1, 10)
    allocator = SlotAllocator(
        caps=Caps(domain_hourly=3, daily=5),
        booked_per_domain_hour={("acme.com", hour): 3},
        booked_per_day={date(2026, 12, 1): 4},
    )
    slot = allocator.allocate(domain="acme.com", window=BUSINESS_HOURS, zone=UTC_ZONE, earliest=hour)
    assert slot == utc(2026, 12, 1, 11)
    # The day is full now (5): the next mail, to any domain, waits for the next day's window.
    assert allocator.allocate(domain="globex.com", window=BUSINESS_HOURS, zone=UTC_ZONE, earliest=hour) == utc(
        2026, 12, 2, 9
    )


def test_a_spread_step_past_the_windows_close_moves_to_the_next_opening():
    # Kolkata is UTC+05:30: the window 09:00-17:00 local closes at 11:30 UTC, mid-hour.
    kolkata = ZoneInfo("Asia/Kolkata")
    allocator = SlotAllocator(caps=Caps(domain_hourly=2, daily=1000), booked_per_domain_hour={}, booked_per_day={})
    now = utc(2026, 12, 1, 11, 0)
    slots = [allocator.allocate(domain="acme.in", window=BUSINESS_HOURS, zone=kolkata, earliest=now) for _ in range(3)]
    assert slots == [now, utc(2026, 12, 2, 3, 30), utc(2026, 12, 2, 4, 0)]
    assert all(BUSINESS_HOURS.contains(slot, kolkata) for slot in slots)
