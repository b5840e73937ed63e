"""Staff's hand on the outreach queue: send a scheduled mail now, or cancel it.

Neither sends anything itself (no SMTP inside a web request): "send now" makes the row due, and
the next dispatch (within OUTREACH_DISPATCH_INTERVAL_SECONDS) takes it, with the suppression and
snooze checks every send gets. Both act only on a row that is still scheduled, by a conditional
update, so a dispatcher that claimed it meanwhile wins and staff get a Conflict.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from leads.models import Outreach
from pipeline_whisperer.exceptions import Conflict

logger = logging.getLogger(__name__)


def outreach_send_now(*, outreach: Outreach, now: datetime | None = None) -> Outreach:
    """Make a scheduled outreach due at once, ahead of its pacing; Conflict unless scheduled."""
    now = now or timezone.now()
    updated = Outreach.objects.filter(pk=outreach.pk, status=Outreach.Status.SCHEDULED).update(
        scheduled_for=now, updated_at=timezone.now()
    )
    if not updated:
        raise Conflict(_not_scheduled(outreach))
    logger.info("outreach %s moved to the front of the queue", outreach.pk)
    outreach.refresh_from_db()
    return outreach


def outreach_cancel(*, outreach: Outreach, reason: str, by: str) -> Outreach:
    """Cancel a scheduled outreach (status cancelled, the reason and who in its error); Conflict
    unless scheduled."""
    now = timezone.now()
    reason = reason.strip() or "no reason given"
    updated = Outreach.objects.filter(pk=outreach.pk, status=Outreach.Status.SCHEDULED).update(
        status=Outreach.Status.CANCELLED, cancelled_at=now, error=f"cancelled by {by}: {reason}", updated_at=now
    )
    if not updated:
        raise Conflict(_not_scheduled(outreach))
    logger.info("outreach %s cancelled by %s: %s", outreach.pk, by, reason)
    outreach.refresh_from_db()
    return outreach


def _not_scheduled(outreach: Outreach) -> str:
    status = Outreach.objects.filter(pk=outreach.pk).values_list("status", flat=True).first()
    return f"Outreach {outreach.pk} is {status or 'gone'}, not scheduled: only a scheduled mail can be changed."
