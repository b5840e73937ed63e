"""Pacing, the database part: what is booked already in the hours and days a batch may use, the
lock that serialises booking, and the configured window, zone and caps.

Booked means mail that is scheduled, pending, or went out (sent_at set, whatever became of it
since): each counts in the UTC hour and day it goes or went out.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce, TruncDay, TruncHour

from leads.models import Outreach
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

T = TypeVar("T")
# pg_advisory_xact_lock takes a 64-bit key; this one is ours alone (the same in every process).
_SCHEDULING_LOCK = zlib.crc32(b"pipeline-whisperer:outreach-scheduling")


@dataclass(frozen=True)
class Pacing:
    """The configured send window, the zone of a recipient without one, and the caps."""

    window: SendWindow
    default_zone: ZoneInfo
    caps: Caps


def pacing_configured() -> Pacing:
    """The send window, default zone and caps from the OUTREACH_* settings; InvalidPacing (naming
    the setting) if one is malformed. Start-up calls it, so a running process never meets that."""
    return _pacing(
        settings.OUTREACH_SEND_WINDOW,
        settings.OUTREACH_DEFAULT_TIME_ZONE,
        settings.OUTREACH_WARMUP_START,
        Caps(
            domain_hourly=settings.OUTREACH_DOMAIN_HOURLY_CAP,
            daily=settings.OUTREACH_DAILY_CAP,
            warmup_days=settings.OUTREACH_WARMUP_DAYS,
            warmup_first_day=settings.OUTREACH_WARMUP_FIRST_DAY_CAP,
        ),
    )


@lru_cache(maxsize=8)
def _pacing(window: str, zone: str, warmup_start: str, caps: Caps) -> Pacing:
    return Pacing(
        window=_parsed("OUTREACH_SEND_WINDOW", send_window_parse, window),
        default_zone=_parsed("OUTREACH_DEFAULT_TIME_ZONE", time_zone_parse, zone),
        caps=replace(caps, warmup_start=_parsed("OUTREACH_WARMUP_START", warmup_start_parse, warmup_start)),
    )


def _parsed(name: str, parse: Callable[[str], T], value: str) -> T:
    try:
        return parse(value)
    except InvalidPacing as error:
        raise InvalidPacing(f"{name}: {error}") from None


def recipient_zone(time_zone: str, *, default: ZoneInfo) -> ZoneInfo:
    """The lead's own zone when it names one, else `default`."""
    if not time_zone:
        return default
    try:
        return time_zone_parse(time_zone)
    except InvalidPacing:
        return default  # the event and the API refuse unknown zones; an old row falls back


def scheduling_lock() -> None:
    """Serialise scheduling until the current transaction ends. Caps are counted from what is
    booked, so two schedulers counting at once would each see room and overbook the same hour;
    and two batches of the same person under different lightfield_ids (different partitions,
    different processes) would each find no conversation yet. On PostgreSQL a transaction-level
    advisory lock makes them take turns (released at commit or rollback); SQLite serialises
    writers itself. Take it before reading eligibility or counts, so both see the other's rows."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEDULING_LOCK])


def slot_allocator_load(*, domains: Iterable[str], now: datetime, caps: Caps) -> SlotAllocator:
    """An allocator knowing what is booked from now's hour on for `domains` (how many per hour and
    the latest slot, so a new batch goes on after it) and from the start of now's UTC day
    overall: two grouped queries."""
    booked = Outreach.objects.filter(
        Q(status__in=(Outreach.Status.SCHEDULED, Outreach.Status.PENDING)) | Q(sent_at__isnull=False)
    ).annotate(goes_out=Coalesce("sent_at", "scheduled_for"))
    per_domain_hour = (
        booked.filter(recipient_domain__in=set(domains), goes_out__gte=hour_of(now))
        .annotate(hour=TruncHour("goes_out", tzinfo=UTC))
        .order_by()
        .values_list("recipient_domain", "hour")
        .annotate(n=Count("pk"), latest=Max("goes_out"))
    )
    start_of_day = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    per_day = (
        booked.filter(goes_out__gte=start_of_day)
        .annotate(day=TruncDay("goes_out", tzinfo=UTC))
        .order_by()
        .values_list("day")
        .annotate(n=Count("pk"))
    )
    rows = list(per_domain_hour)
    return SlotAllocator(
        caps=caps,
        booked_per_domain_hour={(domain, hour): n for domain, hour, n, _ in rows},
        latest_per_domain_hour={(domain, hour): latest for domain, hour, _, latest in rows},
        booked_per_day={_utc_date(day): n for day, n in per_day},
    )


def _utc_date(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
