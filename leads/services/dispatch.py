"""Dispatch: send the outreach that is due, exactly once, however many dispatchers run.

Two transactions around the sends, never one open across them. The first claims due rows with
`SKIP LOCKED` (so concurrent dispatchers take disjoint rows), cancels those whose recipient was
suppressed or whose lead was snoozed since scheduling, and marks the rest pending with the time
of the claim. The mail then goes over OUTREACH_SEND_CONNECTIONS reused connections. The second
marks what went out as sent and emits `outreach.sent` through the outbox.

Between the two, each message the mail server or email provider accepts is recorded at once, on
its own (`leads.services.sending`): `handed_over_at`, and the provider's message id. A dispatcher that dies before the
second transaction leaves pending rows; once their claim is older than
OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS another dispatcher takes them: one handed over already is
recorded as sent without going out again, one that was not is sent again under the same
Message-ID, so a retried send is recognisable as the same mail. While a SendingPause is in force
nothing is claimed.

A mail server or provider that is down (no answer, a timeout, SMTP 4xx, HTTP 5xx or 429) leaves
the rows pending, to go once it is back; a provider's other 4xx fails that outreach alone with
the provider's message; a refused recipient fails it and its lead.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from leads.addresses import InvalidAddress
from leads.caching import experiments_invalidate, lead_metrics_invalidate
from leads.models import Lead, Outreach, SendingPause, Variant
from leads.outbox import Emission, outbox_emit_many
from leads.services.brake import sending_paused
from leads.services.sending import Delivery, dispatch_send
from leads.services.suppression import address_key, suppressions_matching
from leads.topics import OUTREACH_EVENTS
from pipeline_whisperer.outages import dependency_down

logger = logging.getLogger(__name__)

# A lead in one of these becomes contacted when mail goes out.
PRE_CONTACT_STATUSES = (Lead.Status.RAW, Lead.Status.SCORED, Lead.Status.DISQUALIFIED, Lead.Status.FAILED)


@dataclass(frozen=True)
class DispatchReport:
    """What one `dispatch_due` did. `error` is the outage that kept `deferred` rows from going out."""

    claimed: int = 0
    sent: int = 0
    cancelled: int = 0
    failed: int = 0
    deferred: int = 0
    paused: bool = False
    error: Exception | None = None

    @property
    def taken(self) -> int:
        """Rows this pass took off the queue (sent or not, or cancelled): a full batch means more may wait."""
        return self.claimed + self.cancelled


def dispatch_due(*, now: datetime | None = None, limit: int | None = None) -> DispatchReport:
    """Send up to `limit` (PIPELINE_BATCH_SIZE) outreach due by `now`, and resend those whose
    claim timed out. Safe under concurrent dispatchers in any number of processes. A mail server
    that is down leaves its rows pending (claim given back) and is reported in `error`."""
    now = now or timezone.now()
    deliveries, cancelled, paused = _claim_due(now=now, limit=limit or settings.PIPELINE_BATCH_SIZE)
    if paused or not deliveries:
        return DispatchReport(cancelled=cancelled, paused=paused)
    dispatch_send(deliveries)
    with transaction.atomic():
        dispatch_record(deliveries=deliveries, now=now)
        deferred = [d.outreach.pk for d in deliveries if d.error is not None and dependency_down(d.error)]
        # Given back: dated past the timeout, so the next dispatch (after the outage) takes it again.
        released = now - timedelta(seconds=settings.OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS + 1)
        Outreach.objects.filter(pk__in=deferred).update(claimed_at=released, updated_at=timezone.now())
    return DispatchReport(
        claimed=len(deliveries),
        sent=sum(d.sent for d in deliveries),
        cancelled=cancelled,
        failed=sum(not d.sent for d in deliveries) - len(deferred),
        deferred=len(deferred),
        error=next((d.error for d in deliveries if d.outreach.pk in deferred), None),
    )


def _claim_due(*, now: datetime, limit: int) -> tuple[list[Delivery], int, bool]:
    """The first transaction: the claimed rows to send, how many were cancelled, whether paused."""
    stale = now - timedelta(seconds=settings.OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        pause = sending_paused()
        _announce_pause(pause)
        if pause is not None:
            return [], 0, True
        rows = list(
            Outreach.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("lead", "variant")
            .filter(
                Q(status=Outreach.Status.SCHEDULED, scheduled_for__lte=now)
                | Q(status=Outreach.Status.PENDING, claimed_at__lt=stale)
            )
            .order_by(F("scheduled_for").asc(nulls_first=True), "pk")[:limit]
        )
        refusals = _refusals(rows)
        for outreach in rows:
            if outreach.pk in refusals:
                _cancel(outreach, refusals[outreach.pk], now=now)
        claimed = [outreach for outreach in rows if outreach.pk not in refusals]
        for outreach in claimed:
            outreach.message_id = outreach.message_id or message_id_new()  # a resend reuses it
            if outreach.status == Outreach.Status.SCHEDULED:  # a new send (a soft bounce's retry too)
                outreach.handed_over_at = None
            outreach.status, outreach.claimed_at, outreach.updated_at = Outreach.Status.PENDING, now, timezone.now()
        Outreach.objects.bulk_update(claimed, ["message_id", "handed_over_at", "status", "claimed_at", "updated_at"])
    deliveries = [Delivery(outreach, handed_over=outreach.handed_over_at is not None) for outreach in claimed]
    return deliveries, len(refusals), False


def _refusals(rows: Sequence[Outreach]) -> dict[int, str]:
    """Why each of `rows` may no longer be sent (suppressed or snoozed since it was scheduled)."""
    keys = {outreach.pk: _recipient_key(outreach) for outreach in rows}
    suppressed = suppressions_matching(keys.values())
    refusals = {}
    for outreach in rows:
        lead = outreach.lead
        if keys[outreach.pk] in suppressed:
            refusals[outreach.pk] = suppressed[keys[outreach.pk]]
        elif lead.status == Lead.Status.SNOOZED:
            refusals[outreach.pk] = "the lead is snoozed"
        elif lead.unsubscribed_at:
            refusals[outreach.pk] = "the lead unsubscribed"
        elif lead.bounced_at:
            refusals[outreach.pk] = "mail to the lead bounced"
    return refusals


def _recipient_key(outreach: Outreach) -> str:
    if outreach.recipient_key:
        return outreach.recipient_key
    try:
        return address_key(outreach.to_email)
    except InvalidAddress:
        return outreach.to_email.strip().lower()


def _cancel(outreach: Outreach, reason: str, *, now: datetime) -> None:
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.CANCELLED, cancelled_at=now, claimed_at=None, error=reason, updated_at=timezone.now()
    )
    logger.info("outreach %s cancelled before sending: %s", outreach.pk, reason)


def message_id_new() -> str:
    """A fresh Message-ID in the sender's domain."""
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">") or "localhost"
    return f"<{uuid.uuid4().hex}@{domain}>"


_announced_pause: int | None = None  # the pause this process logged already


def _announce_pause(pause: SendingPause | None) -> None:
    """Log a pause once (per process), and its end."""
    global _announced_pause
    if pause is not None and pause.pk != _announced_pause:
        logger.warning("sending is paused (%s): dispatch sends nothing until staff resume it", pause.reason)
    elif pause is None and _announced_pause is not None:
        logger.warning("sending resumed: dispatch sends what is due")
    _announced_pause = None if pause is None else pause.pk


# --- recording: the second transaction -----------------------------------------------------


def dispatch_record(*, deliveries: Sequence[Delivery], now: datetime | None = None) -> None:
    """After the sends: mark what went out as sent (leads contacted, variants' sends counted once
    per variant, `outreach.sent` emitted in one insert), what was refused or failed for good as
    failed; a delivery that met a mail server that is down is left pending. Call in a transaction."""
    now = now or timezone.now()
    for delivery in deliveries:
        if delivery.refused:
            _mark_refused(delivery.outreach, delivery.refused, now=now)
        elif delivery.error is not None and not dependency_down(delivery.error):
            _mark_failed(delivery.outreach, f"{type(delivery.error).__name__}: {delivery.error}", now=now)
    sent = [delivery for delivery in deliveries if delivery.sent]
    if sent:
        _mark_sent(sent, now=now)


def _mark_sent(deliveries: Sequence[Delivery], *, now: datetime) -> None:
    sent = [delivery.outreach for delivery in deliveries]
    Outreach.objects.filter(pk__in=[o.pk for o in sent]).update(
        status=Outreach.Status.SENT, sent_at=now, error="", updated_at=timezone.now()
    )
    # A soft bounce's retry (sent before) is the same outreach again: the lead and the variant
    # counted it the first time.
    first = [o for o in sent if o.sent_at is None]
    sends_per_lead = Counter(o.lead_id for o in first)
    for count in set(sends_per_lead.values()):
        Lead.objects.filter(pk__in=[pk for pk, n in sends_per_lead.items() if n == count]).update(
            contacted_at=Coalesce(F("contacted_at"), now),
            outreach_count=F("outreach_count") + count,
            # A forced send to a lead who already answered or converted leaves that status as it is.
            status=Case(When(status__in=PRE_CONTACT_STATUSES, then=Value(Lead.Status.CONTACTED)), default=F("status")),
            updated_at=now,
        )
    lead_metrics_invalidate()
    for variant_id, count in Counter(o.variant_id for o in first if o.variant_id is not None).items():
        Variant.objects.filter(pk=variant_id).update(sends=F("sends") + count, updated_at=now)
    if any(o.variant_id is not None for o in sent):  # sends, and pending sends in adjusted posteriors
        experiments_invalidate()
    outbox_emit_many(
        [
            Emission(
                OUTREACH_EVENTS,
                delivery.outreach.lead.lightfield_id,
                "outreach.sent",
                {
                    "outreach_id": delivery.outreach.pk,
                    "lead_id": delivery.outreach.lead_id,
                    "variant_id": delivery.outreach.variant_id,
                    "message_id": delivery.outreach.message_id,
                    "sent_at": now.isoformat(),
                },
                delivery.correlation_id,
            )
            for delivery in deliveries
        ]
    )


def _mark_refused(outreach: Outreach, reason: str, *, now: datetime) -> None:
    _mark_failed(outreach, reason, now=now)
    Lead.objects.filter(pk=outreach.lead_id).update(status=Lead.Status.FAILED, failure_reason=reason, updated_at=now)
    lead_metrics_invalidate()


def _mark_failed(outreach: Outreach, reason: str, *, now: datetime) -> None:
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.FAILED, failed_at=now, error=reason, updated_at=timezone.now()
    )
    logger.warning("outreach %s failed: %s", outreach.pk, reason)
