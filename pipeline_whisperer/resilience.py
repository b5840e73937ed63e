"""Calling a flaky dependency: retries with backoff, and a circuit breaker.

Infrastructure only: nothing here knows about leads, Django or any client library. Both
pieces take their randomness, clock and sleep as arguments so tests drive them exactly.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """The wait after failed attempt `attempt` (0-based): full jitter, uniform in [0, cap].

    The cap doubles with each attempt up to `max_delay`; drawing the whole wait at random
    keeps many clients that failed together from retrying together.
    """
    cap = min(max_delay, base_delay * 2**attempt)
    return rng.uniform(0, cap)


def retry_call(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    retry_on: tuple[type[BaseException], ...],
    rng: random.Random,
    sleep: Callable[[float], None] = time.sleep,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call `fn` up to `attempts` times, backing off between tries; return its first result.

    Only exceptions in `retry_on` (and, with `retry_if`, only those it accepts: an HTTP error
    whose status says "try again") are retried; any other propagates at once, and the last
    retryable one propagates when the attempts run out.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts - 1):
        try:
            return fn()
        except retry_on as error:
            if retry_if is not None and not retry_if(error):
                raise
            sleep(backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay, rng=rng))
    return fn()


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Stops calling a dependency that keeps failing, then lets one trial call through.

    A class rather than a function because it holds state between calls: the count of
    consecutive failures, when it opened, and whether a half-open trial is out. Closed, it
    allows every call; after `failure_threshold` consecutive failures it opens and refuses
    calls for `reset_timeout` seconds; then it is half-open and allows a single trial, whose
    success closes it and whose failure opens it again. Every allowed call must end in
    `record_success()` or `record_failure()`, or a half-open breaker waits for its trial forever.
    Safe to share between threads.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def allow(self) -> bool:
        """Whether a call may go ahead now; half-open, only the first caller gets the trial."""
        with self._lock:
            state = self._state()
            if state is BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                return True
            return state is BreakerState.CLOSED

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_out = False

    def record_failure(self) -> None:
        with self._lock:
            self._trial_out = False
            if self._opened_at is not None:  # a failed trial (or a late failure) re-opens it
                self._opened_at = self._clock()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._opened_at = self._clock()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN
