"""Retries with exponential backoff and full jitter, and the circuit breaker's three states."""

from __future__ import annotations

import itertools
import random
import statistics
import threading

import pytest

from pipeline_whisperer.resilience import BreakerState, CircuitBreaker, backoff_delay, retry_call


class Flaky:
    """Fails with `error` the first `failures` times it is called, then returns "done"."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("down")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def retry(fn, *, attempts=4, sleeps=None, rng=None, base_delay=0.1, max_delay=10.0):
    return retry_call(
        fn,
        attempts=attempts,
        base_delay=base_delay,
        max_delay=max_delay,
        retry_on=(ConnectionError, TimeoutError),
        rng=rng or random.Random(1),
        sleep=(sleeps if sleeps is not None else []).append,
    )


def test_first_success_returns_without_sleeping():
    sleeps: list[float] = []

    assert retry(Flaky(0), sleeps=sleeps) == "done"
    assert sleeps == []


def test_retryable_failures_are_retried_until_success():
    flaky, sleeps = Flaky(2), list[float]()

    assert retry(flaky, sleeps=sleeps) == "done"
    assert flaky.calls == 3
    assert len(sleeps) == 2


def test_last_error_propagates_when_the_attempts_run_out():
    flaky, sleeps = Flaky(10, TimeoutError("slow")), list[float]()

    with pytest.raises(TimeoutError, match="slow"):
        retry(flaky, attempts=4, sleeps=sleeps)
    assert flaky.calls == 4
    assert len(sleeps) == 3  # no sleep after the last attempt


def test_errors_not_listed_are_raised_at_once():
    flaky = Flaky(10, ValueError("bad request"))

    with pytest.raises(ValueError, match="bad request"):
        retry(flaky)
    assert flaky.calls == 1


def test_a_listed_error_that_retry_if_turns_down_is_raised_at_once():
    flaky, sleeps = Flaky(10, ConnectionError("refused for good")), list[float]()

    with pytest.raises(ConnectionError, match="for good"):
        retry_call(
            flaky,
            attempts=4,
            base_delay=0.1,
            max_delay=1.0,
            retry_on=(ConnectionError,),
            retry_if=lambda error: "for good" not in str(error),
            rng=random.Random(1),
            sleep=sleeps.append,
        )
    assert (flaky.calls, sleeps) == (1, [])


def test_attempts_below_one_are_refused():
    with pytest.raises(ValueError, match="attempts"):
        retry(Flaky(0), attempts=0)


def test_backoff_delays_stay_within_a_doubling_cap():
    sleeps: list[float] = []

    with pytest.raises(ConnectionError):
        retry(Flaky(10), attempts=6, sleeps=sleeps, rng=random.Random(42), base_delay=0.1, max_delay=1.0)

    caps = [0.1, 0.2, 0.4, 0.8, 1.0]  # doubling, then held at max_delay
    assert len(sleeps) == len(caps)
    assert all(0 <= delay <= cap for delay, cap in zip(sleeps, caps, strict=True))


def test_backoff_delays_grow_on_average():
    rng = random.Random(3)
    means = [
        statistics.fmean(backoff_delay(attempt, base_delay=0.1, max_delay=100, rng=rng) for _ in range(2000))
        for attempt in range(5)
    ]

    for earlier, later in itertools.pairwise(means):
        assert 1.7 < later / earlier < 2.3  # full jitter: the mean is half the cap, which doubles


def test_backoff_delays_are_jittered():
    def delays(seed: int) -> list[float]:
        sleeps: list[float] = []
        with pytest.raises(ConnectionError):
            retry(Flaky(10), attempts=5, sleeps=sleeps, rng=random.Random(seed))
        return sleeps

    assert delays(1) == delays(1)  # seeded: reproducible
    assert delays(1) != delays(2)  # but not the same for every client
    assert len(set(delays(1))) == 4
    assert all(delay not in (0.1, 0.2, 0.4, 0.8) for delay in delays(1))  # not the bare exponential


def test_breaker_allows_calls_while_closed():
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=ManualClock())

    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_breaker_opens_after_the_threshold_of_consecutive_failures():
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=ManualClock())

    for _ in range(3):
        breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10, clock=ManualClock())

    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()

    assert breaker.state is BreakerState.CLOSED


def test_breaker_is_half_open_after_the_reset_timeout_and_allows_one_trial():
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()

    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # the trial is out


def test_successful_trial_closes_the_breaker():
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()
    clock.now = 10.0

    assert breaker.allow()
    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_trial_opens_the_breaker_for_another_reset_timeout():
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()
    clock.now = 10.0

    assert breaker.allow()
    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    clock.now = 19.9
    assert not breaker.allow()
    clock.now = 20.0
    assert breaker.allow()


def test_only_one_of_many_concurrent_callers_gets_the_half_open_trial():
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()
    clock.now = 10.0
    start = threading.Barrier(16)
    allowed: list[bool] = []

    def caller() -> None:
        start.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert allowed.count(True) == 1


def test_concurrent_failures_are_all_counted():
    breaker = CircuitBreaker(failure_threshold=800, reset_timeout=10, clock=ManualClock())

    def fail_many() -> None:
        for _ in range(100):
            breaker.record_failure()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert breaker.state is BreakerState.OPEN


def test_breaker_refuses_a_threshold_below_one():
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0, reset_timeout=1)
