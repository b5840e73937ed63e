"""A lead's story for the console: its history in time order, as the lead's admin page shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from leads.models import EngagementEvent, Lead, Outreach
from leads.services.reply_classes import reply_class_label


@dataclass(frozen=True)
class StoryEntry:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    lines: tuple[str, ...] = ()


def lead_story(*, lead: Lead) -> list[StoryEntry]:
    """A lead's history in time order: ingested, scored (with reasons), each outreach (with the
    message as rendered), each engagement event (a reply with its class and text), and
    conversion. Two queries."""
    entries = [StoryEntry(at=lead.created_at, kind="ingested", title=f"Ingested from {lead.source_channel or 'CRM'}")]
    if lead.scored_at and lead.score is not None:
        title = f"Scored {lead.score:.2f} as {lead.get_persona_display()} by {lead.scoring_model or 'rules'}"
        entries.append(StoryEntry(at=lead.scored_at, kind="scored", title=title, lines=tuple(lead.scoring_reasons)))
    if lead.not_contacted_reason:
        entries.append(
            StoryEntry(at=lead.updated_at, kind="not-contacted", title=f"Not contacted: {lead.not_contacted_reason}")
        )
    outreach = Outreach.objects.filter(lead=lead).select_related("variant__experiment")
    for message in outreach:
        variant = str(message.variant) if message.variant else "no variant (forced)"
        when = ""
        if message.status == Outreach.Status.SCHEDULED and message.scheduled_for:
            when = f", scheduled for {message.scheduled_for:%Y-%m-%d %H:%M} UTC"
        entries.append(
            StoryEntry(
                at=message.sent_at or message.created_at,
                kind=f"outreach.{message.status}",
                title=f"Outreach {message.status}: {variant}, to {message.to_email}{when}",
                detail=f"Subject: {message.subject}\n\n{message.body}"
                + (f"\n\n{message.error}" if message.error else ""),
            )
        )
    events = EngagementEvent.objects.filter(outreach__lead=lead).only(
        "event_type", "occurred_at", "outreach_id", "provider", "payload"
    )
    entries.extend(_engagement_entry(event) for event in events)
    if lead.converted_at:
        entries.append(StoryEntry(at=lead.converted_at, kind="converted", title="Converted"))
    return sorted(entries, key=lambda entry: entry.at)


def _engagement_entry(event: EngagementEvent) -> StoryEntry:
    """One engagement; a reply with its class and its text, as the lead wrote it."""
    title = f"{event.get_event_type_display()} (outreach {event.outreach_id})"
    via = f"via {event.provider}" if event.provider else ""
    if event.event_type != EngagementEvent.Type.REPLIED:
        return StoryEntry(at=event.occurred_at, kind=f"engagement.{event.event_type}", title=title)
    payload = event.payload if isinstance(event.payload, dict) else {}
    label = reply_class_label(payload)
    lines = tuple(line for line in (f"Subject: {payload['subject']}" if payload.get("subject") else "", via) if line)
    return StoryEntry(
        at=event.occurred_at,
        kind=f"engagement.{event.event_type}",
        title=f"{title}: {label}" if label else title,
        detail=str(payload.get("text") or ""),
        lines=lines,
    )
