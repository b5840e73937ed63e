"""The deliverability brake: sending pauses by itself when complaints or hard bounces pass their
thresholds, and staff pause and resume it.

Rates are over the last 7 days, or since the last resume if that is later: a resume starts a new
count, so the brake does not trip again on the data that tripped it. A rate must pass its
threshold strictly (0.3% of 1,000 sent is 3 complaints: at 3 the brake holds, at 4 it trips), and
only once at least OUTREACH_BRAKE_MIN_SAMPLE mails were sent in that time. At most one pause is in
force (`SendingPause.in_force` is unique), so concurrent trips cannot stack. The dispatcher reads
`SendingPause.objects.filter(in_force=True)` before it sends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from leads.models import Outreach, SendingPause

logger = logging.getLogger(__name__)

RATE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Rates:
    """Mail sent, hard bounces and complaints since `since`, and the two rates (0 with nothing sent)."""

    since: datetime
    sent: int
    hard_bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


def deliverability_rates(*, now: datetime) -> Rates:
    """Counts by when each thing happened (sent_at, bounced_at, complained_at) from the later of
    7 days ago and the last resume. Four indexed queries."""
    last_resume = SendingPause.objects.aggregate(at=Max("resumed_at"))["at"]
    since = max(now - RATE_WINDOW, last_resume) if last_resume else now - RATE_WINDOW
    window = {"gte": since, "lte": now}
    outreach = Outreach.objects.order_by()
    return Rates(
        since=since,
        sent=outreach.filter(**_range("sent_at", window)).count(),
        hard_bounces=outreach.filter(bounce_type=Outreach.BounceType.HARD, **_range("bounced_at", window)).count(),
        complaints=outreach.filter(**_range("complained_at", window)).count(),
    )


def _range(field: str, window: dict[str, datetime]) -> dict[str, datetime]:
    return {f"{field}__{lookup}": at for lookup, at in window.items()}


def brake_breach(rates: Rates) -> str:
    """Why these rates must stop sending, or "" when they need not."""
    if rates.sent < settings.OUTREACH_BRAKE_MIN_SAMPLE:
        return ""
    if rates.complaint_rate > settings.OUTREACH_MAX_COMPLAINT_RATE:
        return _breach("complaint", rates.complaints, rates, settings.OUTREACH_MAX_COMPLAINT_RATE)
    if rates.bounce_rate > settings.OUTREACH_MAX_BOUNCE_RATE:
        return _breach("hard-bounce", rates.hard_bounces, rates, settings.OUTREACH_MAX_BOUNCE_RATE)
    return ""


def _breach(kind: str, count: int, rates: Rates, threshold: float) -> str:
    setting = "OUTREACH_MAX_COMPLAINT_RATE" if kind == "complaint" else "OUTREACH_MAX_BOUNCE_RATE"
    return (
        f"{kind} rate {count / rates.sent:.2%} ({count} of {rates.sent} sent since {rates.since:%Y-%m-%d %H:%M} UTC)"
        f" is above {setting} {threshold:.2%}"
    )


def brake_check(*, now: datetime) -> SendingPause | None:
    """Trip the brake if the rates pass a threshold: the pause it created, or None when the rates
    are within bounds or sending is paused already. Safe under concurrent workers (one trips)."""
    if sending_paused() is not None:
        return None
    reason = brake_breach(deliverability_rates(now=now))
    if not reason:
        return None
    try:
        with transaction.atomic():
            pause = SendingPause.objects.create(reason=f"{reason}.")  # paused_by empty: the brake
    except IntegrityError:  # another worker tripped it (or staff paused) meanwhile
        return None
    # ERROR: Sentry's logging integration turns it into an event, so someone is told.
    logger.error("sending paused by the deliverability brake: %s", reason, extra={"sending_pause": pause.pk})
    return pause


def sending_paused() -> SendingPause | None:
    """The pause in force, if sending is paused."""
    return SendingPause.objects.filter(in_force=True).first()


def sending_pause(*, by: str, reason: str) -> SendingPause:
    """Staff pause sending; the pause in force (the existing one when sending was paused already)."""
    try:
        with transaction.atomic():
            pause = SendingPause.objects.create(reason=reason, paused_by=by)
    except IntegrityError:
        return SendingPause.objects.get(in_force=True)
    logger.warning("sending paused by %s: %s", by, reason, extra={"sending_pause": pause.pk})
    return pause


def sending_resume(*, by: str) -> SendingPause | None:
    """Lift the pause in force (one UPDATE, so two resumes cannot both lift it); the lifted pause,
    or None when sending was not paused. The brake's rates count afresh from now."""
    pause = sending_paused()
    if pause is None:
        return None
    now = timezone.now()
    lifted = SendingPause.objects.filter(pk=pause.pk, in_force=True).update(
        in_force=None, resumed_at=now, resumed_by=by
    )
    if not lifted:
        return None
    pause.in_force, pause.resumed_at, pause.resumed_by = None, now, by
    logger.warning("sending resumed by %s (paused since %s: %s)", by, pause.paused_at, pause.reason)
    return pause
