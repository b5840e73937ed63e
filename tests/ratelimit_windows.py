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
    """Return once each identity's current one-minute window has at least `needed` seconds left.

    The first such second is worked out, not waited for by sleeping: two identities whose
    minutes start about 30 s apart may share a single such second a minute, which sleeping
    until the nearest window's end would step over every time.
    """
    now = int(time.time())
    fresh = next(
        (
            second
            for second in range(now, now + 60)
            if all(window_end(identity, 60, second) - second >= needed for identity in identities)
        ),
        None,
    )
    if fresh is None:
        raise ValueError(f"no second of a minute leaves {needed} s in every window of {identities}")
    time.sleep(max(0.0, fresh + 0.05 - time.time()))  # into that second, not at its edge
