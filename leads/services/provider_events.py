"""Email providers' tracking events (anymail's normalised `AnymailTrackingEvent`) recorded as
our engagement events.

The webhook request only records: each event that names an outreach of ours becomes an
`engagement.<type>` message on `outreach.events` (the outbox), for the feedback stage to apply;
one that names none becomes an `UnmatchedProviderEvent` row; what means nothing to the bandit
(queued, sent, autoresponded, unknown, ...) is only counted. A batch costs one query to match and
one insert each for the outbox and the unmatched rows, in one transaction, so a provider posting
a thousand events a request (SendGrid) is cheap to take.

Every event gets a stable id (the provider's own, else a hash of what it says), so a webhook the
provider delivers again changes nothing downstream. The recipient's address is never stored: it
may be a person since erased; unmatched rows keep its hash only.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter as PrometheusCounter

from leads.addresses import InvalidAddress
from leads.models import EngagementEvent, Outreach, UnmatchedProviderEvent
from leads.outbox import Emission, outbox_emit_many
from leads.services.suppression import address_key, value_hash
from leads.topics import OUTREACH_EVENTS

PROVIDER_EVENTS = PrometheusCounter(
    "pipeline_provider_events",
    "Email providers' tracking events received, by provider and outcome (matched, unmatched, ignored).",
    ["provider", "outcome"],
)

# anymail's event types that move an outreach, and the engagement each becomes.
ENGAGEMENT_TYPES = {
    EventType.DELIVERED: EngagementEvent.Type.DELIVERED,
    EventType.OPENED: EngagementEvent.Type.OPENED,
    EventType.CLICKED: EngagementEvent.Type.CLICKED,
    EventType.BOUNCED: EngagementEvent.Type.BOUNCED,
    EventType.COMPLAINED: EngagementEvent.Type.COMPLAINED,
    EventType.UNSUBSCRIBED: EngagementEvent.Type.UNSUBSCRIBED,
    EventType.DEFERRED: EngagementEvent.Type.DEFERRED,
    EventType.REJECTED: EngagementEvent.Type.REJECTED,
    EventType.FAILED: EngagementEvent.Type.REJECTED,
}
# A bounce for these reasons (or for none given) is hard; for any other it is soft.
_HARD_REASONS = (RejectReason.INVALID, RejectReason.BOUNCED, None)
# Free text from the provider is kept short: it is for staff reading the engagement.
_TEXT_LIMIT = 500
_EVENT_ID_LIMIT = 100


@dataclass(frozen=True)
class ProviderEventsOutcome:
    """How many events of a request were matched to an outreach, recorded unmatched, or ignored."""

    matched: int = 0
    unmatched: int = 0
    ignored: int = 0


def provider_slug(esp_name: str) -> str:
    """anymail's esp_name as we store it: "Amazon SES" -> "amazon_ses" (the webhook path's name)."""
    return esp_name.strip().lower().replace(" ", "_")


def provider_events_record(*, events: Sequence[tuple[str, AnymailTrackingEvent]]) -> ProviderEventsOutcome:
    """Record one webhook request's tracking events, given as (esp_name, event), in one
    transaction: the outbox rows of the matched, the rows of the unmatched. Safe to call again
    with the same events (a provider's retry): the ids repeat, so nothing is applied twice."""
    relevant, ignored = [], Counter[str]()
    seen: Counter[str] = Counter()
    for esp_name, event in events:
        provider = provider_slug(esp_name)
        if event.event_type not in ENGAGEMENT_TYPES:
            ignored[provider] += 1
            continue
        event_id = provider_event_id(provider, event)
        seen[event_id] += 1
        if seen[event_id] > 1:  # one notification for several recipients (SES): the same order on retry
            event_id = f"{event_id}:{seen[event_id]}"
        relevant.append((provider, event_id, event))
    found = _outreach_for([event for _, _, event in relevant])
    emissions, unmatched = [], []
    outcome: Counter[tuple[str, str]] = Counter({(p, "ignored"): n for p, n in ignored.items()})
    for provider, event_id, event in relevant:
        outreach = found.by_provider_id.get(event.message_id or "") or found.by_pk.get(_metadata_outreach_id(event))
        if outreach is None:
            unmatched.append(_unmatched_row(provider, event_id, event))
            outcome[(provider, "unmatched")] += 1
        else:
            emissions.append(_emission(provider, event_id, event, outreach))
            outcome[(provider, "matched")] += 1
    with transaction.atomic():
        if emissions:
            outbox_emit_many(emissions)
        if unmatched:
            UnmatchedProviderEvent.objects.bulk_create(unmatched, ignore_conflicts=True)
    for (provider, result), count in outcome.items():
        PROVIDER_EVENTS.labels(provider=provider, outcome=result).inc(count)
    return ProviderEventsOutcome(
        matched=sum(n for (_, r), n in outcome.items() if r == "matched"),
        unmatched=len(unmatched),
        ignored=sum(ignored.values()),
    )


def provider_event_id(provider: str, event: AnymailTrackingEvent) -> str:
    """The event's id: the provider's own when it gives one (Postmark only for bounces, Mailgun's
    signature token, SendGrid's sg_event_id, SES's SNS MessageId), else a hash of what the event
    says, the same each time the provider delivers it again."""
    if event.event_id:
        event_id = f"{provider}:{event.event_id}"
        if len(event_id) <= _EVENT_ID_LIMIT:
            return event_id
    parts = [
        provider,
        event.event_type,
        event.message_id or "",
        event.recipient or "",
        event.timestamp.isoformat() if event.timestamp else "",
        event.click_url or "",
        event.event_id or "",
    ]
    return f"{provider}:h:{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()[:40]}"


def bounce_type(provider: str, event: AnymailTrackingEvent) -> str:
    """Hard or soft. anymail says `bounced` for both where a provider tells them apart in its own
    fields (Postmark's Type, SES's bounceType, SendGrid's type), so those are read first."""
    raw = event.esp_event if isinstance(event.esp_event, Mapping) else {}
    soft = (
        (provider == "postmark" and raw.get("Type") == "SoftBounce")
        or (provider == "amazon_ses" and (raw.get("bounce") or {}).get("bounceType") in ("Transient", "Undetermined"))
        or (provider == "sendgrid" and raw.get("type") == "blocked")
        or event.reject_reason not in _HARD_REASONS
    )
    return Outreach.BounceType.SOFT if soft else Outreach.BounceType.HARD


@dataclass(frozen=True)
class _Target:
    """The outreach an event names: its id and its lead's key (the message's partition key)."""

    pk: int
    lightfield_id: str


@dataclass(frozen=True)
class _Found:
    by_provider_id: dict[str, _Target]
    by_pk: dict[int | None, _Target]


def _outreach_for(events: Sequence[AnymailTrackingEvent]) -> _Found:
    """The outreach the events name, by the provider's message id or our metadata's outreach id,
    in one query (rows as tuples: a provider's batch names up to 1,000)."""
    provider_ids = {event.message_id for event in events if event.message_id}
    pks = {pk for pk in map(_metadata_outreach_id, events) if pk is not None}
    if not provider_ids and not pks:
        return _Found({}, {})
    rows = Outreach.objects.filter(Outreach.with_provider_id(provider_ids) | Q(pk__in=pks)).values_list(
        "pk", "provider_message_id", "lead__lightfield_id"
    )
    found = _Found({}, {})
    for pk, provider_message_id, lightfield_id in rows:
        found.by_pk[pk] = target = _Target(pk, lightfield_id)
        if provider_message_id:
            found.by_provider_id[provider_message_id] = target
    return found


def _metadata_outreach_id(event: AnymailTrackingEvent) -> int | None:
    """Our metadata's outreach id; providers hand it back as text (Mailgun, SendGrid) or a number."""
    metadata = event.metadata if isinstance(event.metadata, Mapping) else {}
    value = metadata.get("outreach_id")
    text = str(value).strip() if isinstance(value, int | str) else ""
    return int(text) if text.isdigit() and len(text) < 19 else None


def _emission(provider: str, event_id: str, event: AnymailTrackingEvent, outreach: _Target) -> Emission:
    event_type = ENGAGEMENT_TYPES[event.event_type]
    message: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "outreach_id": outreach.pk,
        "occurred_at": _occurred_at(event).isoformat(),
        "provider": provider,
        "payload": _payload(provider, event),
    }
    if event_type == EngagementEvent.Type.BOUNCED:
        message["bounce_type"] = bounce_type(provider, event)
    return Emission(OUTREACH_EVENTS, outreach.lightfield_id, f"engagement.{event_type}", message)


def _payload(provider: str, event: AnymailTrackingEvent) -> dict[str, Any]:
    """What staff and the feedback stage need, never the recipient's address."""
    fields = {
        "provider": provider,
        "click_url": event.click_url,
        "reject_reason": event.reject_reason,
        "description": event.description,
        "mta_response": event.mta_response,
        "user_agent": event.user_agent,
    }
    return {key: str(value)[:_TEXT_LIMIT] for key, value in fields.items() if value}


def _unmatched_row(provider: str, event_id: str, event: AnymailTrackingEvent) -> UnmatchedProviderEvent:
    metadata = event.metadata if isinstance(event.metadata, Mapping) else {}
    return UnmatchedProviderEvent(
        provider=provider,
        event_id=event_id,
        event_type=str(event.event_type)[:32],
        provider_message_id=(event.message_id or "")[:255],
        recipient_hash=_recipient_hash(event.recipient),
        metadata={str(key)[:100]: str(value)[:_TEXT_LIMIT] for key, value in list(metadata.items())[:20]},
        occurred_at=event.timestamp,
    )


def _recipient_hash(recipient: str | None) -> str:
    """The hash suppressions are matched by, so staff can look an address up without it stored."""
    if not recipient:
        return ""
    try:
        return value_hash(address_key(recipient))
    except InvalidAddress:
        return value_hash(recipient.strip().lower())


def _occurred_at(event: AnymailTrackingEvent) -> datetime:
    timestamp = event.timestamp
    return timestamp if isinstance(timestamp, datetime) and timestamp.tzinfo else timezone.now()
