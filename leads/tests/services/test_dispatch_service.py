"""Sending what is due and recording it (leads.services.dispatch), and staff's send-now and cancel
(leads.services.queue)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Outreach, Variant
from leads.services.dispatch import dispatch_due, dispatch_record
from leads.services.queue import outreach_cancel, outreach_send_now
from leads.services.sending import Delivery, dispatch_send
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory
from pipeline_whisperer.exceptions import Conflict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def locmem_mail(settings: Any) -> Any:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return settings


def _scheduled(**fields: Any) -> Outreach:
    fields.setdefault("lead", LeadFactory(status=Lead.Status.SCORED))
    fields.setdefault("scheduled_for", timezone.now() - timedelta(minutes=1))
    return OutreachFactory(status=fields.pop("status", Outreach.Status.SCHEDULED), **fields)


def test_dispatch_sends_the_due_rows_counts_each_variants_sends_once_and_emits_outreach_sent():
    variant, now = VariantFactory(), timezone.now()
    rows = [_scheduled(variant=variant) for _ in range(5)]
    report = dispatch_due(now=now, limit=10)
    assert (report.claimed, report.sent) == (5, 5)
    assert sorted(message.to[0] for message in mail.outbox) == sorted(row.to_email for row in rows)
    assert set(Outreach.objects.values_list("status", "sent_at")) == {(Outreach.Status.SENT, now)}
    assert Variant.objects.get(pk=variant.pk).sends == 5
    sent = OutboxEvent.objects.filter(event_type="outreach.sent")
    assert sorted(event.payload["outreach_id"] for event in sent) == sorted(row.pk for row in rows)
    assert {event.key for event in sent} == {row.lead.lightfield_id for row in rows}


def test_dispatch_leaves_rows_due_later_and_takes_at_most_the_limit():
    now = timezone.now()
    due = [_scheduled(scheduled_for=now - timedelta(minutes=m)) for m in (1, 2, 3)]
    later = _scheduled(scheduled_for=now + timedelta(seconds=1))
    assert dispatch_due(now=now, limit=2).sent == 2
    assert dispatch_due(now=now, limit=2).sent == 1
    assert dispatch_due(now=now, limit=2).claimed == 0
    assert {o.pk for o in Outreach.objects.filter(status=Outreach.Status.SENT)} == {o.pk for o in due}
    assert Outreach.objects.get(pk=later.pk).status == Outreach.Status.SCHEDULED


def test_the_mail_carries_the_rows_message_id_and_outreach_id():
    row = _scheduled(message_id="<fixed-1@whisperer.example>")
    dispatch_due(limit=10)
    [message] = mail.outbox
    assert message.message()["Message-ID"] == "<fixed-1@whisperer.example>"
    assert message.extra_headers["X-Outreach-ID"] == str(row.pk)


def test_a_row_without_message_id_gets_one_at_its_claim_so_a_resend_reuses_it():
    row = _scheduled(message_id=None)
    dispatch_due(limit=10)
    row.refresh_from_db()
    assert row.message_id.startswith("<") and row.message_id.endswith("@localhost>")
    assert mail.outbox[0].message()["Message-ID"] == row.message_id


def test_a_sent_row_contacts_its_lead_and_a_second_send_counts_on_the_lead_keeping_the_first_contact():
    first_contact = timezone.now() - timedelta(days=3)
    lead = LeadFactory(status=Lead.Status.CONTACTED, outreach_count=1, contacted_at=first_contact)
    _scheduled(lead=lead)
    fresh = _scheduled()
    dispatch_due(limit=10)
    lead.refresh_from_db()
    assert (lead.outreach_count, lead.contacted_at, lead.status) == (2, first_contact, Lead.Status.CONTACTED)
    fresh_lead = Lead.objects.get(pk=fresh.lead_id)
    assert (fresh_lead.status, fresh_lead.outreach_count) == (Lead.Status.CONTACTED, 1)


def test_dispatch_send_and_record_outside_the_queue_keep_the_correlation_id():
    row = _scheduled(status=Outreach.Status.PENDING)
    deliveries = [Delivery(row, correlation_id="corr-9")]
    dispatch_send(deliveries)
    dispatch_record(deliveries=deliveries)
    assert OutboxEvent.objects.get(event_type="outreach.sent").correlation_id == "corr-9"


# --- staff: send now, cancel ----------------------------------------------------------------


def test_send_now_makes_a_scheduled_row_due_for_the_next_dispatch():
    now = timezone.now()
    row = _scheduled(scheduled_for=now + timedelta(hours=5))
    assert outreach_send_now(outreach=row, now=now).scheduled_for == now
    assert dispatch_due(now=now, limit=10).sent == 1


def test_cancel_cancels_a_scheduled_row_with_who_and_why_and_it_is_never_sent():
    row = _scheduled()
    cancelled = outreach_cancel(outreach=row, reason="wrong segment", by="ada")
    assert cancelled.status == Outreach.Status.CANCELLED and cancelled.cancelled_at is not None
    assert cancelled.error == "cancelled by ada: wrong segment"
    assert dispatch_due(limit=10).claimed == 0
    assert mail.outbox == []


@pytest.mark.parametrize("status", [Outreach.Status.PENDING, Outreach.Status.SENT, Outreach.Status.CANCELLED])
def test_send_now_and_cancel_refuse_a_row_that_is_not_scheduled(status):
    row = _scheduled(status=status)
    with pytest.raises(Conflict, match=f"is {status}, not scheduled"):
        outreach_send_now(outreach=row)
    with pytest.raises(Conflict, match="not scheduled"):
        outreach_cancel(outreach=row, reason="x", by="ada")
    assert Outreach.objects.get(pk=row.pk).status == status
