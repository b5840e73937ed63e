"""Helpers for tests that count requests against the API rate limits.

django-ratelimit's windows are fixed and each identity's minute starts at its own offset, so a
test that sends N requests must not straddle a window's end: these wait, before the test
counts anything, until every window it uses has enough of its minute left.
"""

from __future__ import annotations

import time

from django_ratelimit.core import _get_window  # private, but it is the window the counters use


def seconds_left_in_minute(identity: str) -> int:
    return _get_window(identity, 60) - int(time.time())


def wait_for_fresh_minutes(*identities: str, needed: int) -> None:
    """Return once each identity's current one-minute window has at least `needed` seconds left."""
    while (shortest := min(seconds_left_in_minute(identity) for identity in identities)) < needed:
        time.sleep(shortest + 1)
