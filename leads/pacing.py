"""Pacing, the pure part: send windows in the recipient's local time, caps per recipient domain
per hour and per day (with a warm-up ramp), and the earliest slot that respects all three.

No models and no settings here: `leads.services.pacing` loads what is already booked and passes
it in, so the rules can be tested against any clock. Every datetime is timezone-aware; hour and
day buckets are UTC.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
HOUR = timedelta(hours=1)
# No send window or cap makes a slot further away than this; past it the inputs are wrong.
_HORIZON = timedelta(days=800)
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,\-\s]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


class InvalidPacing(ValueError):
    """A send window, time zone or warm-up date that cannot be used; the message says why."""


@dataclass(frozen=True)
class SendWindow:
    """Days of the week (0 is Monday) and a daily span [start, end) in minutes of local time."""

    days: frozenset[int]
    start_minute: int
    end_minute: int

    @property
    def always_open(self) -> bool:
        return len(self.days) == 7 and self.start_minute == 0 and self.end_minute == MINUTES_PER_DAY

    def next_open(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The earliest instant >= `moment` inside the window, read in `zone` (DST-correct: the
        window's edges are local wall-clock times, converted per day)."""
        if self.always_open:
            return moment
        local_day = moment.astimezone(zone).date()
        for offset in range(8):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = _local_instant(day, self.start_minute, zone)
            closing = _local_instant(day, self.end_minute, zone)
            if moment < closing:
                return max(opening, moment)
        raise AssertionError("a window with at least one day opens within a week")

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        return self.next_open(moment, zone) == moment


def _local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """`minute` of local `day` in `zone`, as a UTC instant (24:00 is the next day's midnight).
    A wall time that a spring-forward skips maps to the instant just after the gap's offset change."""
    if minute == MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), 0
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)


def send_window_parse(text: str) -> SendWindow:
    """`"mon-fri 09:00-17:00"`, `"mon,wed,fri 08:30-12:00"`, `"sat-sun 10:00-14:00"`,
    `"mon-sun 00:00-24:00"` (always open); InvalidPacing naming what is wrong otherwise."""
    match = _WINDOW.match(text.lower())
    if match is None:
        raise InvalidPacing(f'{text!r} is not of the form "mon-fri 09:00-17:00" (days, then local start-end)')
    days: set[int] = set()
    for part in match["days"].replace(" ", "").split(","):
        first, _, last = part.partition("-")
        start_day, end_day = _day(first, text), _day(last or first, text)
        days.update((start_day + step) % 7 for step in range((end_day - start_day) % 7 + 1))
    start, end = _minute(match["start"], text), _minute(match["end"], text)
    if start >= end:
        raise InvalidPacing(f"{text!r}: the window must start before it ends")
    return SendWindow(days=frozenset(days), start_minute=start, end_minute=end)


def _day(name: str, text: str) -> int:
    if name not in DAY_NAMES:
        raise InvalidPacing(f"{text!r}: {name!r} is not a day (use {', '.join(DAY_NAMES)})")
    return DAY_NAMES.index(name)


def _minute(clock: str, text: str) -> int:
    hours, minutes = (int(part) for part in clock.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise InvalidPacing(f"{text!r}: {clock} is not a time of day between 00:00 and 24:00")
    return hours * 60 + minutes


def time_zone_parse(name: str) -> ZoneInfo:
    """The IANA zone `name` ("Europe/Berlin"); InvalidPacing if there is none by that name."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPacing(f"{name!r} is not an IANA time zone (such as Europe/Berlin or UTC)") from None


def warmup_start_parse(text: str) -> date | None:
    """A warm-up start date (YYYY-MM-DD), or None for an empty value."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidPacing(f"{text!r} is not a date of the form YYYY-MM-DD") from None


@dataclass(frozen=True)
class Caps:
    """Mail per recipient domain per hour, and per day overall with an optional warm-up ramp."""

    domain_hourly: int
    daily: int
    warmup_start: date | None = None
    warmup_days: int = 30
    warmup_first_day: int = 50

    def daily_on(self, day: date) -> int:
        """The day's cap: during warm-up a linear ramp from the first day's cap (day 0) towards the
        daily cap, reached the day the warm-up ends; before the warm-up starts, the first day's cap."""
        if self.warmup_start is None:
            return self.daily
        first = min(self.warmup_first_day, self.daily)
        elapsed = (day - self.warmup_start).days
        if elapsed >= self.warmup_days:
            return self.daily
        elapsed = max(elapsed, 0)
        return first + (self.daily - first) * elapsed // self.warmup_days


def hour_of(moment: datetime) -> datetime:
    """The UTC hour bucket `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class SlotAllocator:
    """Hands out send times, one row at a time, on top of what is booked already.

    Each slot is the earliest instant >= `earliest` inside the row's window with its domain's hour
    and the day both under their caps; within an hour a domain's mail is spread at
    3600/cap-second steps (hour start + k * step, or now if that is later) instead of all at its
    top. A class because a batch books as it goes:
    each slot counts against the caps for the next.
    """

    def __init__(
        self,
        *,
        caps: Caps,
        booked_per_domain_hour: Mapping[tuple[str, datetime], int],
        booked_per_day: Mapping[date, int],
        latest_per_domain_hour: Mapping[tuple[str, datetime], datetime] | None = None,
    ) -> None:
        self.caps = caps
        self.per_domain_hour: defaultdict[tuple[str, datetime], int] = defaultdict(int, booked_per_domain_hour)
        self.per_day: defaultdict[date, int] = defaultdict(int, booked_per_day)
        # Per (domain, zone, window): everything before this instant is full or closed, so the
        # next row there need not look at it again (caps only fill up within a batch).
        self._searched_to: dict[tuple[str, str, SendWindow], datetime] = {}
        # The latest slot booked per (domain, hour): the next mail there goes a step after it.
        self._latest: dict[tuple[str, datetime], datetime] = dict(latest_per_domain_hour or {})

    def allocate(self, *, domain: str, window: SendWindow, zone: ZoneInfo, earliest: datetime) -> datetime:
        """Book the earliest allowed slot for one mail to `domain`, and return it."""
        hint_key = (domain, zone.key, window)
        moment = max(earliest, self._searched_to.get(hint_key, earliest))
        step = HOUR / self.caps.domain_hourly
        while moment - earliest < _HORIZON:
            moment = window.next_open(moment, zone)
            hour = hour_of(moment)
            day = hour.date()
            if self.per_day[day] >= self.caps.daily_on(day):
                moment = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
                continue
            # The hour's positions are its start plus k steps: a mail goes at `moment` or at the
            # next free position after the last one booked, so mail to a domain is spread out.
            latest = self._latest.get((domain, hour))
            after_latest = 0 if latest is None else (latest - hour) // step + 1
            position = max(self.per_domain_hour[(domain, hour)], after_latest)
            if position >= self.caps.domain_hourly:
                moment = hour + HOUR
                continue
            slot = max(moment, hour + step * position)
            if not window.contains(slot, zone):
                moment = slot  # the position falls past the window's close: look again from there
                continue
            self.per_domain_hour[(domain, hour)] += 1
            self._latest[(domain, hour)] = slot
            self.per_day[day] += 1
            self._searched_to[hint_key] = moment
            return slot
        raise InvalidPacing(f"no send slot for {domain} within {_HORIZON.days} days of {earliest.isoformat()}")
