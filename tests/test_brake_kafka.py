"""The brake in the production shape: `run_pipeline relay` and `run_pipeline feedback` processes
on a real broker (tansu) and real PostgreSQL. A complaint posted to the API and a soft bounce
produced straight to `outreach.events` are applied by the feedback process, which trips the brake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Outreach, SendingPause, Suppression
from leads.pipeline.events import encode
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory
from leads.topics import OUTREACH_EVENTS
from pipeline_whisperer.kafka import make_producer
from tests.pipeline_support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_feedback_process_applies_bounces_and_complaints_and_trips_the_brake(api_client, pipeline, broker):
    sent_at = timezone.now() - timedelta(hours=1)
    lead = LeadFactory(lightfield_id="lf-brake")
    variant = VariantFactory(sends=100)
    mails = [
        OutreachFactory(lead=lead, variant=variant, status=Outreach.Status.SENT, sent_at=sent_at) for _ in range(100)
    ]
    pipeline("relay")
    feedback = pipeline("feedback")

    soft = {"event_id": "soft-k", "event_type": "bounced", "bounce_type": "soft", "outreach_id": mails[0].pk}
    producer = make_producer()
    producer.produce(
        OUTREACH_EVENTS, key=b"lf-brake", value=encode(soft), headers=[("event_type", b"engagement.bounced")]
    )
    assert producer.flush(15) == 0
    complaint = {"event_id": "complaint-k", "event_type": "complained", "outreach_id": mails[1].pk}
    assert api_client.post("/api/v1/engagements", [complaint], format="json").status_code == 202

    wait_until(lambda: SendingPause.objects.filter(in_force=True).exists(), timeout=60, what="the brake to trip")
    assert "sending paused by the deliverability brake" in feedback.log()
    assert "complaint rate 1.00% (1 of 100 sent" in SendingPause.objects.get().reason
    wait_until(lambda: Outreach.objects.get(pk=mails[0].pk).soft_bounces == 1, what="the soft bounce")
    assert Outreach.objects.get(pk=mails[0].pk).status == Outreach.Status.SCHEDULED
    assert list(Suppression.objects.values_list("reason", flat=True)) == ["complaint"]
    variant.refresh_from_db()
    assert (variant.beta, variant.failures) == (2.0, 1)  # the complaint; the soft bounce is no reward
