"""Engagement: accepting events from the API, and applying them to outreach, lead and variant.

The API and the providers' webhooks only validate and queue (`outreach.events`); the feedback
stage applies. Each outreach yields exactly one reward to its variant: the first of its
experiment's success event (success: a conversion always; a click or a reply classified
interested where the experiment names it), hard bounce, complaint or unsubscribe (failure), a
soft bounce past its retries (failure), or expiry. A provider's rejection (the mail never left)
fails the outreach with no reward.
The reward is claimed with a conditional UPDATE on the outreach row, so concurrent workers cannot
both reward it, and the posterior moves with F().

A hard bounce, a complaint and an unsubscribe suppress the address, as does a rejection for an
invalid or bounced address (hard bounce) or an unsubscribed one. A soft bounce suppresses
nothing: the outreach goes back to the queue (scheduled, for the dispatcher) until it has had
OUTREACH_SOFT_BOUNCE_RETRIES retries. A deferral (the provider retries by itself) is recorded only.
A reply counts by its classification (`leads.services.reply_classes`): an out-of-office is
recorded only, an unsubscribe request is applied as an unsubscribe, any other reply (or one not
classified) is a response.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads.addresses import InvalidAddress
from leads.caching import experiments_invalidate, lead_metrics_invalidate
from leads.models import EngagementEvent, Experiment, Lead, Outreach, Suppression, Variant
from leads.outbox import Emission, outbox_emit_many
from leads.services.outreach import FINAL_STATUSES
from leads.services.reply_classes import ReplyClass
from leads.services.suppression import suppression_add
from leads.topics import OUTREACH_EVENTS

logger = logging.getLogger(__name__)

# An expired outreach has had its reward: a late open, click or reply does not reopen it. A
# scheduled one (a soft bounce's retry) that is opened after all was delivered: it leaves the queue.
_STATUS_RANK = {
    status: rank
    for rank, status in enumerate(
        ["scheduled", "pending", "sent", "delivered", "opened", "clicked", "replied", "expired", "converted"]
    )
}
_REWARDS = {
    "converted": Outreach.Reward.SUCCESS,
    "bounced": Outreach.Reward.FAILURE,
    "complained": Outreach.Reward.FAILURE,
    "unsubscribed": Outreach.Reward.FAILURE,
}
_SUPPRESSES = {
    "bounced": Suppression.Reason.HARD_BOUNCE,
    "complained": Suppression.Reason.COMPLAINT,
    "unsubscribed": Suppression.Reason.UNSUBSCRIBED,
}
# A provider's rejection suppresses only for these of its reasons (anymail's reject_reason).
_REJECTION_SUPPRESSES = {
    "invalid": Suppression.Reason.HARD_BOUNCE,
    "bounced": Suppression.Reason.HARD_BOUNCE,
    "unsubscribed": Suppression.Reason.UNSUBSCRIBED,
}
# The engagement that is a success for an experiment naming each success event (besides conversion).
_SUCCESS_EVENTS: dict[str, str] = {
    Experiment.SuccessEvent.CLICKED: EngagementEvent.Type.CLICKED,
    Experiment.SuccessEvent.REPLIED_INTERESTED: EngagementEvent.Type.REPLIED,
}
# A soft bounce is retried only for mail that went out and was not seen arriving since.
_RETRYABLE = (Outreach.Status.SENT, Outreach.Status.DELIVERED)
# A rejection fails only mail not seen arriving (a late one after an open changes no status).
_REJECTABLE = (Outreach.Status.SCHEDULED, Outreach.Status.PENDING, Outreach.Status.SENT)
# The longest wait between soft-bounce retries, however often they double.
_MAX_RETRY_DELAY = timedelta(days=1)


@dataclass(frozen=True)
class EngagementItem:
    index: int
    event_id: str | None = None
    outreach_id: int | None = None
    error: str | None = None


def engagement_submit(*, events: Sequence[dict[str, Any]]) -> list[EngagementItem]:
    """Queue validated engagement events (each with event_id, event_type, and outreach_id or
    message_id) on `outreach.events`; unknown outreach is reported by index."""
    by_id = {e["outreach_id"] for e in events if e.get("outreach_id")}
    by_message = {e["message_id"] for e in events if e.get("message_id")}
    found = Outreach.objects.filter(pk__in=by_id) | Outreach.objects.filter(message_id__in=by_message)
    rows = list(found.select_related("lead").only("pk", "message_id", "lead__lightfield_id"))
    outreach_by_id = {o.pk: o for o in rows}
    outreach_by_message = {o.message_id: o for o in rows}
    items, emissions = [], []
    for index, event in enumerate(events):
        outreach = (
            outreach_by_id.get(event["outreach_id"])
            if event.get("outreach_id")
            else outreach_by_message.get(event.get("message_id"))
        )
        if outreach is None:
            items.append(EngagementItem(index=index, event_id=event["event_id"], error="no such outreach"))
            continue
        occurred_at = event.get("occurred_at") or timezone.now()
        message = {
            "event_id": event["event_id"],
            "event_type": event["event_type"],
            "outreach_id": outreach.pk,
            "occurred_at": occurred_at.isoformat(),
            "payload": event.get("payload") or {},
        }
        if event["event_type"] == EngagementEvent.Type.BOUNCED:
            message["bounce_type"] = event.get("bounce_type") or Outreach.BounceType.HARD
        emissions.append(
            Emission(OUTREACH_EVENTS, outreach.lead.lightfield_id, f"engagement.{event['event_type']}", message)
        )
        items.append(EngagementItem(index=index, event_id=event["event_id"], outreach_id=outreach.pk))
    if emissions:
        outbox_emit_many(emissions)
    return items


def engagement_apply_batch(*, events: Sequence[dict[str, Any]]) -> list[EngagementEvent]:
    """Apply a batch of engagements in order; call inside the stage's transaction. The batch's
    outreach rows are locked in one query (in id order, so concurrent workers cannot deadlock)
    and each variant's counters move once, by the batch's total. A repeated event_id changes
    nothing; an unknown outreach raises Outreach.DoesNotExist."""
    ids = sorted({event["outreach_id"] for event in events})
    locked = (
        # The lead is locked with its outreach, as ever; the experiment is only read.
        Outreach.objects.select_for_update(of=("self", "lead"))
        .select_related("lead", "variant__experiment")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    outreach = {row.pk: row for row in locked}
    tally: Counter[tuple[int, str]] = Counter()
    applied = []
    for event in events:
        if event["outreach_id"] not in outreach:
            raise Outreach.DoesNotExist("Outreach matching query does not exist.")
        engagement = _apply(event, outreach[event["outreach_id"]], tally)
        if engagement is not None:
            applied.append(engagement)
    _move_variants(tally)
    return applied


def engagement_apply(*, event: dict[str, Any]) -> EngagementEvent | None:
    """Apply one engagement; call inside a transaction. A repeated event_id changes nothing."""
    return next(iter(engagement_apply_batch(events=[event])), None)


def _apply(event: dict[str, Any], outreach: Outreach, tally: Counter[tuple[int, str]]) -> EngagementEvent | None:
    event_type = event["event_type"]
    occurred_at = _when(event.get("occurred_at"))
    payload = event.get("payload") or {}
    soft = False
    if event_type == EngagementEvent.Type.BOUNCED:
        soft = bounce_type_of(event) == Outreach.BounceType.SOFT
        payload = {**payload, "bounce_type": Outreach.BounceType.SOFT if soft else Outreach.BounceType.HARD}
    engagement, created = EngagementEvent.objects.get_or_create(
        event_id=event["event_id"],
        defaults={
            "outreach": outreach,
            "event_type": event_type,
            "provider": str(event.get("provider") or "")[:32],
            "occurred_at": occurred_at,
            "payload": payload,
        },
    )
    if not created:
        return None
    effect = _effect_of(event_type, payload)  # what the engagement counts as
    if effect is None:
        return engagement
    _advance_lead(outreach.lead_id, "soft_bounced" if soft else effect, occurred_at)
    if soft:
        _soft_bounce(outreach, occurred_at, tally)
        return engagement
    if effect == EngagementEvent.Type.REJECTED:
        _reject(outreach, payload, occurred_at)
        return engagement
    _advance_outreach(outreach, effect, occurred_at)
    reward = Outreach.Reward.SUCCESS if is_success(outreach, effect, payload) else _REWARDS.get(effect)
    if reward:
        outreach_reward(outreach=outreach, reward=reward, at=occurred_at, tally=tally)
    if effect in _SUPPRESSES:
        _suppress(outreach, _SUPPRESSES[effect])
    return engagement


def _effect_of(event_type: str, payload: dict[str, Any]) -> str | None:
    """What a classified reply does: an out-of-office is no response (nothing moves), an
    unsubscribe request is an unsubscribe; any other reply, or one not classified, is a reply."""
    if event_type != EngagementEvent.Type.REPLIED:
        return event_type
    classification = payload.get("classification")
    if classification == ReplyClass.OUT_OF_OFFICE:
        return None
    if classification == ReplyClass.UNSUBSCRIBE_REQUEST:
        return EngagementEvent.Type.UNSUBSCRIBED
    return event_type


def is_success(outreach: Outreach, event_type: str, payload: dict[str, Any]) -> bool:
    """Whether the engagement is the success of the outreach's experiment: a conversion always;
    a click, or a reply classified interested, where the experiment names it."""
    if event_type == EngagementEvent.Type.CONVERTED:
        return True
    variant = outreach.variant
    chosen = variant.experiment.success_event if variant is not None else Experiment.SuccessEvent.CONVERTED
    if _SUCCESS_EVENTS.get(chosen) != event_type:
        return False
    return event_type != EngagementEvent.Type.REPLIED or payload.get("classification") == ReplyClass.INTERESTED


def _reject(outreach: Outreach, payload: dict[str, Any], at: datetime) -> None:
    """The provider refused the mail: it never left, so the outreach failed with no reward (the
    variant learns nothing from it). Mail seen arriving since keeps its status."""
    changes: dict[str, Any] = {"failed_at": Coalesce(F("failed_at"), at), "updated_at": timezone.now()}
    if outreach.status in _REJECTABLE and not outreach.reward:
        changes["status"] = outreach.status = Outreach.Status.FAILED
    Outreach.objects.filter(pk=outreach.pk).update(**changes)
    reason = _REJECTION_SUPPRESSES.get(payload.get("reject_reason") or "")
    if reason:
        _suppress(outreach, reason)


def bounce_type_of(event: dict[str, Any]) -> str:
    """A bounce's type: hard unless the event says soft (a bounce without a type is hard)."""
    return (
        Outreach.BounceType.SOFT if event.get("bounce_type") == Outreach.BounceType.SOFT else Outreach.BounceType.HARD
    )


def _soft_bounce(outreach: Outreach, at: datetime, tally: Counter[tuple[int, str]]) -> None:
    """Back to the queue, later each time, or, past OUTREACH_SOFT_BOUNCE_RETRIES, bounced for good
    (a failure, still no suppression). Mail that is not in flight (opened since, already retried,
    rewarded) keeps its state: the bounce is only recorded."""
    if outreach.status not in _RETRYABLE or outreach.reward:
        return
    now = timezone.now()
    if outreach.soft_bounces >= settings.OUTREACH_SOFT_BOUNCE_RETRIES:
        Outreach.objects.filter(pk=outreach.pk).update(
            status=Outreach.Status.BOUNCED,
            bounce_type=Outreach.BounceType.SOFT,
            bounced_at=Coalesce(F("bounced_at"), at),
            updated_at=now,
        )
        outreach.status = Outreach.Status.BOUNCED
        outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=at, tally=tally)
        return
    base = timedelta(minutes=settings.OUTREACH_SOFT_BOUNCE_RETRY_MINUTES)
    delay = min(base * 2**outreach.soft_bounces, max(base, _MAX_RETRY_DELAY))
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.SCHEDULED,
        scheduled_for=at + delay,
        soft_bounces=F("soft_bounces") + 1,
        claimed_at=None,
        updated_at=now,
    )
    outreach.status = Outreach.Status.SCHEDULED
    outreach.soft_bounces += 1


def _suppress(outreach: Outreach, reason: str) -> None:
    """Never mail this address again (an existing entry keeps its first reason)."""
    address = outreach.recipient_key or outreach.to_email
    try:
        suppression_add(kind=Suppression.Kind.ADDRESS, value=address, reason=reason, source="feedback")
    except InvalidAddress as error:  # nothing we could mail anyway: the reward still stands
        logger.warning("outreach %s: %r not suppressed (%s)", outreach.pk, address, error)


def outreach_reward(
    *, outreach: Outreach, reward: str, at: datetime, tally: Counter[tuple[int, str]] | None = None
) -> bool:
    """Give the outreach's variant its one reward; False if it had one already. With `tally`,
    the variant's counters are left for the caller to move once per batch (`_move_variants`)."""
    claimed = Outreach.objects.filter(pk=outreach.pk, reward="").update(reward=reward, rewarded_at=at)
    if claimed:
        outreach.reward = reward  # the next event of the batch sees it
    if not claimed or outreach.variant_id is None:
        return bool(claimed)
    pending: Counter[tuple[int, str]] = Counter() if tally is None else tally
    pending[(outreach.variant_id, reward)] += 1
    if tally is None:
        _move_variants(pending)
    return True


def _move_variants(tally: Counter[tuple[int, str]]) -> None:
    """Move each variant's posterior by its counted rewards, with F() (never read-modify-write)."""
    changes: dict[int, dict[str, Any]] = {}
    for (variant_id, reward), count in tally.items():
        if reward == Outreach.Reward.SUCCESS:
            fields = {"alpha": F("alpha") + count, "successes": F("successes") + count}
        else:
            fields = {"beta": F("beta") + count, "failures": F("failures") + count}
        changes.setdefault(variant_id, {}).update(fields)
    for variant_id in sorted(changes):  # in id order, as the outreach stage writes them: no deadlock
        Variant.objects.filter(pk=variant_id).update(**changes[variant_id], updated_at=timezone.now())
    if changes:
        experiments_invalidate()


def _advance_outreach(outreach: Outreach, event_type: str, at: datetime) -> None:
    changes: dict[str, Any] = {"updated_at": timezone.now()}
    if event_type != EngagementEvent.Type.DEFERRED:  # a deferral has no time of its own on the outreach
        changes[f"{event_type}_at"] = Coalesce(F(f"{event_type}_at"), at)
    if event_type == EngagementEvent.Type.BOUNCED:  # soft bounces never come here
        changes["bounce_type"] = Outreach.BounceType.HARD
    current = outreach.status
    if current not in FINAL_STATUSES and (
        event_type in _REWARDS or _STATUS_RANK.get(event_type, -1) > _STATUS_RANK.get(current, -1)
    ):
        changes["status"] = outreach.status = event_type  # the next event of the batch sees it
    Outreach.objects.filter(pk=outreach.pk).update(**changes)


def _advance_lead(lead_id: int, event_type: str, at: datetime) -> None:
    leads = Lead.objects.filter(pk=lead_id)
    leads.update(engagement_count=F("engagement_count") + 1, updated_at=timezone.now())
    if event_type in ("clicked", "replied"):
        leads.update(responded_at=Coalesce(F("responded_at"), at))
        leads.filter(status=Lead.Status.CONTACTED).update(status=Lead.Status.RESPONDED)
        lead_metrics_invalidate()
    elif event_type == "converted":
        leads.update(
            status=Lead.Status.CONVERTED,
            converted_at=Coalesce(F("converted_at"), at),
            responded_at=Coalesce(F("responded_at"), at),
        )
        lead_metrics_invalidate()
    elif event_type in ("bounced", "unsubscribed"):
        leads.update(**{f"{event_type}_at": Coalesce(F(f"{event_type}_at"), at)})


def _when(value: Any) -> datetime:
    """When an engagement happened, in UTC: events produced straight to Kafka are not validated
    by the API, and PostgreSQL refuses UTC offsets beyond 15:59 that ISO 8601 allows. A time that
    is missing or unreadable is taken as now."""
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, such as month 13
        parsed = None
    if parsed is None:
        return timezone.now()
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return timezone.now()
