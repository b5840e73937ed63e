"""Helpers for tests that count requests against the API rate limits.

The rate limits' windows are fixed and each identity's minute starts at its own offset, so a
test that sends N requests must not straddle a window's end: these wait, before the test
counts anything, until every window it uses has enough of its minute left.
"""

from __future__ import annotations

import time

from pipeline_whisperer.ratelimit import window_end


def seconds_left_in_minute(identity: str) -> int:
    now = int(time.time())
    return window_end(identity, 60, now) - now


def wait_for_fresh_minutes(*identities: str, needed: int) -> None:
    """Return once each identity's current one-minute window has at least `needed` seconds left."""
    while (shortest := min(seconds_left_in_minute(identity) for identity in identities)) < needed:
        time.sleep(shortest + 1)
