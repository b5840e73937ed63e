"""A soft bounce's retry through the dispatcher (leads.services.dispatch): sent again when due,
under the same Message-ID, counted once for its lead and variant; held while sending is paused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from leads.models import Lead, Outreach, Variant
from leads.services.brake import sending_pause, sending_resume
from leads.services.dispatch import dispatch_due
from leads.services.feedback import engagement_apply_batch
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OUTREACH_SOFT_BOUNCE_RETRIES = 1
    settings.OUTREACH_SOFT_BOUNCE_RETRY_MINUTES = 20
    mail.outbox = []


def _first_send() -> Outreach:
    variant = VariantFactory()
    lead = LeadFactory(status=Lead.Status.SCORED)
    OutreachFactory(lead=lead, variant=variant, status="scheduled", scheduled_for=timezone.now() - timedelta(minutes=1))
    assert dispatch_due(limit=10).sent == 1
    return Outreach.objects.get(lead=lead)


def _retry_due(outreach: Outreach) -> datetime:
    outreach.refresh_from_db()
    assert outreach.scheduled_for is not None
    return outreach.scheduled_for + timedelta(seconds=1)


def _soft_bounce(outreach: Outreach, event_id: str) -> None:
    event = {"event_id": event_id, "event_type": "bounced", "bounce_type": "soft", "outreach_id": outreach.pk}
    engagement_apply_batch(events=[{**event, "occurred_at": timezone.now().isoformat()}])


def test_a_soft_bounced_mail_is_sent_again_when_due_under_its_message_id_and_counted_once():
    outreach = _first_send()
    _soft_bounce(outreach, "soft-1")
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.SCHEDULED
    assert dispatch_due(limit=10).claimed == 0  # not due yet
    assert dispatch_due(now=_retry_due(outreach), limit=10).sent == 1
    first, again = mail.outbox
    assert first.message()["Message-ID"] == again.message()["Message-ID"] == outreach.message_id
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.SENT
    assert outreach.variant is not None and outreach.variant.sends == 1
    assert Lead.objects.get(pk=outreach.lead_id).outreach_count == 1
    _soft_bounce(outreach, "soft-2")  # past OUTREACH_SOFT_BOUNCE_RETRIES = 1
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "soft", "failure")
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.sends, variant.failures) == (1, 1)


def test_a_retry_waits_while_sending_is_paused_and_goes_after_the_resume():
    outreach = _first_send()
    _soft_bounce(outreach, "soft-1")
    due = _retry_due(outreach)
    sending_pause(by="ops", reason="checking")
    assert dispatch_due(now=due, limit=10).paused is True
    assert Outreach.objects.get(pk=outreach.pk).status == Outreach.Status.SCHEDULED
    sending_resume(by="ops")
    assert dispatch_due(now=due, limit=10).sent == 1
    assert len(mail.outbox) == 2
