"""Time zones as leads carry them: IANA names only (`Europe/Berlin`), checked against the zone
database the process has (tzdata), so an unknown or malformed name is refused where it enters."""

from __future__ import annotations

import functools
import zoneinfo


class UnknownTimeZone(ValueError):
    """Not an IANA time zone name; the message says which."""


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_check(name: str) -> str:
    """`name` stripped, if it is a known IANA zone ("" stays ""); UnknownTimeZone otherwise."""
    name = name.strip()
    if name and name not in _known():
        raise UnknownTimeZone(f"{name[:64]!r} is not a known IANA time zone (such as Europe/Berlin)")
    return name
