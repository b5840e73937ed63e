"""Telling a dependency that is down (wait for it) from an event that can never succeed
(dead-letter it), and waiting one out.

A pipeline stage that meets a down database, mail server or broker must not dead-letter the
events in hand: it backs off, reconnects and retries the same batch until the dependency is back,
logging once per outage, and gives up (so its supervisor sees it) only after
PIPELINE_OUTAGE_GIVE_UP_SECONDS.
"""

from __future__ import annotations

import logging
import random
import smtplib
import threading
import time

import psycopg
from anymail.exceptions import AnymailAPIError
from confluent_kafka import KafkaException
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from psycopg_pool import PoolTimeout

from pipeline_whisperer.resilience import backoff_delay
from pipeline_whisperer.worker_probes import WORKER_HEALTH

logger = logging.getLogger(__name__)

# Unreachable, refusing connections, timing out, or restarting: worth waiting for.
_DOWN: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,  # connections made outside Django's (the relay's leadership lock)
    psycopg.InterfaceError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    KafkaException,
)


class OutageGaveUp(RuntimeError):
    """A dependency stayed down past PIPELINE_OUTAGE_GIVE_UP_SECONDS: the process should exit."""


def dependency_down(error: BaseException) -> bool:
    """Whether `error`, or the error that caused it, says a dependency is unavailable for now
    (SMTP's 4xx replies and an email provider's 5xx, 429 or missing answer included) rather
    than that the work itself is wrong."""
    if isinstance(error, OutageGaveUp):  # waited long enough: no more waiting
        return False
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, AnymailAPIError):  # the provider's answer decides, whatever caused it
            status = provider_status(cause)
            return status is None or status >= 500 or status == 429
        if isinstance(cause, _DOWN):
            return True
        if isinstance(cause, smtplib.SMTPResponseException) and 400 <= cause.smtp_code < 500:
            return True
        cause = cause.__cause__
    return False


def provider_status(error: AnymailAPIError) -> int | None:
    """The HTTP status of the provider's answer; None when there was none (unreachable, timed
    out). Requests-based backends carry it as `status_code`; Amazon SES's (boto3) in the parsed
    error response."""
    if error.status_code is not None:
        return int(error.status_code)
    response = error.response
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


class Outage:
    """One worker's view of an outage: when it began, how often it was retried (a class: the
    loop keeps it across tries). `wait` logs the first failure only, sleeps with capped
    exponential backoff and full jitter, and drops the thread's database connections so the
    next try reconnects; `over` logs the recovery."""

    def __init__(self, name: str, stop: threading.Event, *, rng: random.Random | None = None) -> None:
        self.name, self.stop = name, stop
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        self.started: float | None = None
        self.attempts = 0

    @property
    def ongoing(self) -> bool:
        return self.started is not None

    def wait(self, error: BaseException) -> None:
        """Back off after `error`; OutageGaveUp once the outage lasted too long."""
        now = time.monotonic()
        WORKER_HEALTH.outage(self.name, f"{type(error).__name__}: {error}")
        if self.started is None:
            self.started = now
            logger.error(
                "%s: a dependency is unavailable (%s: %s); retrying with backoff",
                self.name,
                type(error).__name__,
                error,
            )
        elif now - self.started > settings.PIPELINE_OUTAGE_GIVE_UP_SECONDS:
            raise OutageGaveUp(f"{self.name}: unavailable for {now - self.started:.0f} s: {error}") from error
        connections.close_all()
        delay = backoff_delay(
            self.attempts, base_delay=0.5, max_delay=settings.PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS, rng=self.rng
        )
        self.attempts += 1
        self.stop.wait(delay)

    def over(self) -> None:
        WORKER_HEALTH.outage(self.name, None)
        if self.started is not None:
            logger.warning(
                "%s: dependency back after %.1f s and %s retries",
                self.name,
                time.monotonic() - self.started,
                self.attempts,
            )
        self.started, self.attempts = None, 0
