"""Bounces, complaints and the brake on the embedded shape: engagement posted to the REST API is
applied by the feedback stage in this process right after the request commits (real PostgreSQL),
the brake trips, /metrics and the console say so, and staff resume from the console."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.tests.support import metric_samples
from leads.models import Lead, Outreach, SendingPause, Suppression, Variant
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_process_bus(settings) -> None:
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.OUTREACH_BRAKE_MIN_SAMPLE = 100
    settings.OUTREACH_MAX_COMPLAINT_RATE = 0.003
    settings.OUTREACH_SOFT_BOUNCE_RETRIES = 1
    settings.OUTREACH_SOFT_BOUNCE_RETRY_MINUTES = 15


def _sent(variant: Variant, n: int) -> Outreach:
    lead = LeadFactory(status=Lead.Status.CONTACTED, contact_email=f"p{n}@prospect.example.com")
    return OutreachFactory(
        lead=lead,
        variant=variant,
        status=Outreach.Status.SENT,
        sent_at=timezone.now() - timedelta(hours=1),
        message_id=f"<m{n}@whisperer.example>",
    )


def _engage(client, outreach: Outreach, event_type: str, **extra) -> None:
    event = {"event_id": f"{event_type}-{outreach.pk}", "event_type": event_type, "message_id": outreach.message_id}
    response = client.post("/api/v1/engagements", [{**event, **extra}], format="json")
    assert response.status_code == 202 and response.json()["accepted"] == 1, response.content


def test_a_complaint_past_the_threshold_pauses_sending_until_staff_resume(api_client, admin_client):
    variant = VariantFactory(sends=100)
    mails = [_sent(variant, n) for n in range(100)]
    _engage(api_client, mails[0], "bounced")  # hard: 1 of 100 is below 5%
    assert SendingPause.objects.count() == 0
    _engage(api_client, mails[1], "complained")  # 1 of 100 is above 0.3%

    pause = SendingPause.objects.get(in_force=True)
    assert "complaint rate 1.00% (1 of 100 sent" in pause.reason
    assert dict(Suppression.objects.values_list("value", "reason")) == {
        "p0@prospect.example.com": "hard_bounce",
        "p1@prospect.example.com": "complaint",
    }
    variant.refresh_from_db()
    assert (variant.beta, variant.failures) == (3.0, 2)
    samples = metric_samples(admin_client.get("/metrics"))
    assert samples[("pipeline_sending_paused", ())] == 1
    assert samples[("pipeline_outreach_complaint_rate_7d", ())] == 0.01
    assert pause.reason in admin_client.get("/admin/console/").content.decode()

    assert admin_client.post("/admin/console/sending/resume/").status_code == 302
    assert SendingPause.objects.filter(in_force=True).count() == 0
    _engage(api_client, mails[2], "complained")  # checked again, counting only since the resume
    assert Outreach.objects.get(pk=mails[2].pk).status == Outreach.Status.COMPLAINED
    assert SendingPause.objects.count() == 1
    assert metric_samples(admin_client.get("/metrics"))[("pipeline_sending_paused", ())] == 0


def test_a_soft_bounce_through_the_api_queues_the_mail_again_and_a_second_one_is_the_failure(api_client):
    variant = VariantFactory(sends=1)
    outreach = _sent(variant, 0)
    _engage(api_client, outreach, "bounced", bounce_type="soft")
    outreach.refresh_from_db()
    assert (outreach.status, outreach.soft_bounces, outreach.reward) == ("scheduled", 1, "")
    Outreach.objects.filter(pk=outreach.pk).update(status=Outreach.Status.SENT)  # the dispatcher's resend
    response = api_client.post(
        "/api/v1/engagements",
        [{"event_id": "soft-2", "event_type": "bounced", "bounce_type": "soft", "outreach_id": outreach.pk}],
        format="json",
    )
    assert response.status_code == 202
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "soft", "failure")
    assert not Suppression.objects.exists()
    variant.refresh_from_db()
    assert (variant.beta, variant.failures) == (2.0, 1)
