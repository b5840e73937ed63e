"""One person held everywhere the database can hold them, for the privacy tests, and the search of
every text, char and JSON column of every table for what identifies them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone

from leads.dead_letters import dead_letter_record
from leads.models import Lead, OutboxEvent, Outreach, Variant
from leads.services.feedback import engagement_submit
from leads.services.ingest import lead_ingest_batch
from leads.services.suppression import suppression_add
from leads.tests.factories import EngagementEventFactory, LeadFactory, OutreachFactory, VariantFactory
from leads.topics import LEADS_RAW, OUTREACH_EVENTS

NAME = "Philippa Quarrington"
ADDRESS = "philippa.quarrington@northwind-traders.com"
LINKEDIN = "https://www.linkedin.com/in/philippa-quarrington-4711"
# What must be gone after erasure (each searched ignoring case).
NEEDLES = (ADDRESS, NAME, "Philippa", "Quarrington", LINKEDIN)
LIGHTFIELD_IDS = ("lf-philippa-crm-1", "lf-philippa-crm-2", "lf-philippa-web-3")
COUNTERS = ("alpha", "beta", "sends", "successes", "failures")


@dataclass(frozen=True)
class Person:
    leads: list[Lead]
    outreach: list[Outreach]
    variant: Variant
    other: Lead  # someone else at the same company, who must be left alone

    def counters(self) -> dict[int, tuple[float, ...]]:
        return {v.pk: tuple(getattr(v, name) for name in COUNTERS) for v in Variant.objects.order_by("pk")}


def _event(lightfield_id: str, email: str) -> dict[str, object]:
    return {
        "event_type": "lead.created",
        "lightfield_id": lightfield_id,
        "company": {"name": "Northwind Traders", "size": "51-200", "description": f"{NAME} runs sales ops here."},
        "contact": {"name": NAME, "email": email, "title": "Head of Sales Operations", "linkedin": LINKEDIN},
        "source": {"channel": "webinar", "referrer": f"https://ref.example.com/?who={email}"},
        "metadata": {"pain_points": ["manual outreach"], "budget_range": "50k-100k"},
    }


def person_everywhere() -> Person:
    """Three leads with the address in three cases (two from the CRM, one from a web form), their
    outreach (sent and converted, hard-bounced, scheduled) naming the person, engagement payloads
    with the address, outbox rows both published and pending, two dead letters and a suppression."""
    emails = (ADDRESS.title(), ADDRESS, ADDRESS.upper().replace("NORTHWIND-TRADERS.COM", "northwind-traders.com"))
    lead_ingest_batch(events=[_event(lf, email) for lf, email in zip(LIGHTFIELD_IDS, emails, strict=True)])
    OutboxEvent.objects.filter(topic=LEADS_RAW, key=LIGHTFIELD_IDS[0]).update(published_at=timezone.now())
    leads = list(Lead.objects.filter(lightfield_id__in=LIGHTFIELD_IDS).order_by("lightfield_id"))
    Lead.objects.filter(pk=leads[0].pk).update(
        status=Lead.Status.CONVERTED, score=0.91, failure_reason=f"earlier: {ADDRESS} refused once"
    )
    variant = VariantFactory(alpha=3.0, beta=4.0, sends=7, successes=2, failures=3)
    now = timezone.now()
    common = {"variant": variant, "subject": f"{NAME.split()[0]}, a question", "html_body": f"<p>Hi {NAME}</p>"}
    converted = OutreachFactory(
        lead=leads[0], to_email=emails[0], recipient_key=ADDRESS, recipient_domain="northwind-traders.com",
        body=f"Hi Philippa,\nwrite to {ADDRESS}", status=Outreach.Status.CONVERTED, sent_at=now - timedelta(days=3),
        converted_at=now, reward=Outreach.Reward.SUCCESS, rewarded_at=now, message_id="<m1@pipeline.example>", **common,
    )  # fmt: skip
    bounced = OutreachFactory(
        lead=leads[1], to_email=emails[1], recipient_key=ADDRESS, recipient_domain="northwind-traders.com",
        body="Hi Philippa", status=Outreach.Status.BOUNCED, bounce_type="hard", bounced_at=now,
        error=f"550 5.1.1 <{ADDRESS}>: no such user", reward=Outreach.Reward.FAILURE, rewarded_at=now, **common,
    )  # fmt: skip
    scheduled = OutreachFactory(
        lead=leads[2], to_email=emails[2], recipient_key=ADDRESS, recipient_domain="northwind-traders.com",
        body="Hi Philippa", status=Outreach.Status.SCHEDULED, scheduled_for=now + timedelta(hours=2), **common,
    )  # fmt: skip
    EngagementEventFactory(outreach=converted, event_type="clicked", payload={"recipient": ADDRESS, "ua": "Mail"})
    EngagementEventFactory(outreach=bounced, event_type="bounced", payload={"to": emails[1], "name": NAME})
    # A pending engagement on the outbox (not yet applied: its reward is still to come).
    engagement_submit(
        events=[
            {
                "event_id": "open-1",
                "event_type": "opened",
                "outreach_id": converted.pk,
                "payload": {"recipient": emails[0]},
            }
        ]
    )
    dead_letter_record(
        stage="scorer", topic=LEADS_RAW, key=LIGHTFIELD_IDS[1], event_id="dl-1",
        value=json.dumps(_event(LIGHTFIELD_IDS[1], "not an address")).encode(),
        headers={"event_type": "lead.created", "correlation_id": "c-1"},
        error=f"InvalidEvent: contact.email for {NAME} is not a valid address", attempts=1,
    )  # fmt: skip
    dead_letter_record(
        stage="feedback", topic=OUTREACH_EVENTS, key="someone-else", event_id="dl-2",
        value=f"garbage from {NAME} <{ADDRESS.upper()}> {{".encode(), headers={},
        error="PoisonEvent: not JSON", attempts=1,
    )  # fmt: skip
    suppression_add(kind="address", value=emails[2], reason="unsubscribed", source="one-click", note=f"{NAME} asked")
    other = LeadFactory(company_name="Northwind Traders", contact_name="Ada Lovelace", contact_email="ada@example.com")
    return Person(leads=leads, outreach=[converted, bounced, scheduled], variant=variant, other=other)


def holders(needle: str) -> list[str]:
    """Every column of every table that holds `needle` (ignoring case): each text, char (email
    included) and JSON column of every installed model, JSON searched as its text."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField):
                rows = model._base_manager.annotate(_text=Cast(field.name, models.TextField()))
                hit = rows.filter(_text__icontains=needle).exists()
            elif isinstance(field, models.CharField | models.TextField):
                hit = model._base_manager.filter(**{f"{field.name}__icontains": needle}).exists()
            else:
                continue
            if hit:
                found.append(f"{model._meta.label}.{field.name}")
    return found


def searched_columns() -> int:
    """How many columns `holders` searches (so a test can show the search is not empty)."""
    return sum(
        isinstance(field, models.JSONField | models.CharField | models.TextField)
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
        for field in model._meta.concrete_fields
    )
