"""The dispatch stage: sends the outreach that falls due. Not a topic consumer but a loop over
the queue (`dispatch_due`, whose `SKIP LOCKED` claims let any number of dispatchers share it).

With Kafka, `run_pipeline dispatch` runs `Dispatcher` as a process of its own (and `run_pipeline
all` as one of its threads). In the embedded default (no Kafka) nobody runs that process, so the
in-process bus dispatches in the process that scheduled the mail: right after an outreach batch
commits (`dispatch_in_process`), what is due goes out at once, and a daemon ticker thread, started
lazily then, sends what falls due later. The ticker lives only while mail is queued (it ends once
nothing is scheduled), so a process that never schedules mail (a test, a management command)
never has one; `run_pipeline all` without Kafka ticks from its own loop instead of a thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from leads.models import Outreach
from leads.services.dispatch import DispatchReport, dispatch_due
from pipeline_whisperer.outages import Outage, dependency_down
from pipeline_whisperer.worker_probes import WORKER_HEALTH

logger = logging.getLogger(__name__)


class Dispatcher:
    """The dispatch loop (a class: it keeps the outage and the counters across batches). SIGTERM
    (via `stop`) lets the current batch finish and record before the loop ends; a database or
    mail server that is down is waited out with backoff (the rows stay pending, nothing is
    dead-lettered) and, past PIPELINE_OUTAGE_GIVE_UP_SECONDS, ends it with OutageGaveUp."""

    name = "dispatch"

    def __init__(
        self,
        stop: threading.Event,
        *,
        batch_size: int | None = None,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.stop, self.clock = stop, clock
        self.batch_size = batch_size or settings.PIPELINE_BATCH_SIZE
        self.outage = Outage(self.name, stop)
        self.counts = {"sent": 0, "cancelled": 0, "failed": 0}

    def run(self) -> None:
        logger.info("dispatch polling the outreach queue every %s s", settings.OUTREACH_DISPATCH_INTERVAL_SECONDS)
        try:
            while not self.stop.is_set():
                WORKER_HEALTH.beat(self.name)
                if not self.run_once():
                    self.stop.wait(settings.OUTREACH_DISPATCH_INTERVAL_SECONDS)
        finally:
            close_old_connections()
            logger.info("dispatch stopped: %s", self.counts)

    def run_once(self) -> bool:
        """One batch; whether to go on at once (a full batch, or after an outage's backoff)."""
        try:
            report = dispatch_due(now=self.clock(), limit=self.batch_size)
        except Exception as error:
            if not dependency_down(error):
                raise
            self.outage.wait(error)
            return True
        finally:
            close_old_connections()
        if report.error is not None:  # the mail server is down: its rows wait, pending
            self.outage.wait(report.error)
            return True
        self.outage.over()
        self._count(report)
        return report.taken >= self.batch_size

    def drain(self) -> None:
        """Dispatch batches until nothing due is left or a dependency fails (logged, left for
        the next pass): the in-process shape's pass, which has no backoff loop of its own."""
        while not self.stop.is_set():
            try:
                report = dispatch_due(now=self.clock(), limit=self.batch_size)
            except Exception as error:
                if not dependency_down(error):
                    raise
                logger.warning("in-process dispatch: a dependency is unavailable (%s); trying again later", error)
                return
            self._count(report)
            if report.error is not None or report.taken < self.batch_size:
                return

    def _count(self, report: DispatchReport) -> None:
        self.counts["sent"] += report.sent
        self.counts["cancelled"] += report.cancelled
        self.counts["failed"] += report.failed
        if report.sent or report.cancelled or report.failed:
            logger.info("dispatch sent %s, cancelled %s, failed %s", report.sent, report.cancelled, report.failed)


# --- the embedded default ------------------------------------------------------------------

_ticker_lock = threading.Lock()
_ticker: tuple[int, threading.Thread, threading.Event] | None = None  # (pid, thread, stop)
_loop_ticks = False  # run_pipeline all's in-process loop dispatches itself: no thread


def dispatch_in_process() -> None:
    """After an in-process outreach batch committed: send what is due now, here, and make sure
    a ticker sends what falls due later. A failure is logged, never raised into the caller (the
    commit that triggered it stands; the rows wait in the queue)."""
    try:
        Dispatcher(threading.Event()).drain()
    except Exception:
        logger.exception("in-process dispatch failed; the mail stays queued")
    if not _loop_ticks:
        ticker_ensure()


def dispatch_loop_ticks() -> None:
    """Say that this process's loop dispatches periodically itself (`run_pipeline all`)."""
    global _loop_ticks
    _loop_ticks = True


def ticker_ensure() -> None:
    """Start this process's ticker if mail is queued and none runs (a forked child starts its own)."""
    global _ticker
    with _ticker_lock:
        if _ticker is not None and _ticker[0] == os.getpid() and _ticker[1].is_alive():
            return
        if not _queued():
            return
        stop = threading.Event()
        thread = threading.Thread(target=_tick_until_empty, args=(stop,), name="dispatch-ticker", daemon=True)
        _ticker = (os.getpid(), thread, stop)
        thread.start()


def ticker_stop(timeout: float = 10.0) -> None:
    """Stop this process's ticker, if any, after its current pass."""
    with _ticker_lock:
        ticker = _ticker
    if ticker is not None and ticker[0] == os.getpid():
        ticker[2].set()
        ticker[1].join(timeout)


def _tick_until_empty(stop: threading.Event) -> None:
    dispatcher = Dispatcher(stop)
    try:
        while not stop.wait(settings.OUTREACH_DISPATCH_INTERVAL_SECONDS):
            try:
                dispatcher.drain()
                if not _queued():
                    return
            except Exception:
                logger.exception("in-process dispatch failed; it tries again after the interval")
            finally:
                connection.close()  # the thread's own: none held between passes
    finally:
        connection.close()


def _queued() -> bool:
    """Whether mail waits: scheduled, or claimed by a send that may have been interrupted."""
    return Outreach.objects.filter(
        status__in=[Outreach.Status.SCHEDULED, Outreach.Status.PENDING], scheduled_for__isnull=False
    ).exists()
