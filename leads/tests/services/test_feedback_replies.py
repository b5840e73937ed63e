"""Applying classified replies (leads.services.feedback): what each class does to outreach and lead."""

from __future__ import annotations

import pytest

from leads.models import Lead, Outreach, Suppression
from leads.services.feedback import engagement_apply
from leads.tests.webhooks.inbound_payloads import sent_outreach

pytestmark = pytest.mark.django_db


def _reply(outreach: Outreach, classification: str | None) -> None:
    payload = {"text": "...", **({"classification": classification} if classification else {})}
    engagement_apply(
        event={
            "event_id": f"reply-{outreach.pk}",
            "event_type": "replied",
            "outreach_id": outreach.pk,
            "provider": "mailgun",
            "payload": payload,
        }
    )
    outreach.refresh_from_db()


@pytest.mark.parametrize("classification", ["interested", "not_interested", "other", None])
def test_a_reply_of_any_other_class_is_a_response(classification):
    outreach = sent_outreach()
    _reply(outreach, classification)
    assert (outreach.status, outreach.reward) == (Outreach.Status.REPLIED, "")
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.RESPONDED
    assert outreach.engagements.get().provider == "mailgun"


def test_an_out_of_office_reply_is_recorded_and_moves_nothing():
    outreach = sent_outreach()
    _reply(outreach, "out_of_office")
    assert outreach.engagements.get().payload["classification"] == "out_of_office"
    assert (outreach.status, outreach.replied_at) == (Outreach.Status.SENT, None)
    lead = Lead.objects.get(pk=outreach.lead_id)
    assert (lead.status, lead.engagement_count, lead.responded_at) == (Lead.Status.CONTACTED, 0, None)


def test_an_unsubscribe_request_is_applied_as_an_unsubscribe():
    outreach = sent_outreach()
    _reply(outreach, "unsubscribe_request")
    assert (outreach.status, outreach.reward) == (Outreach.Status.UNSUBSCRIBED, Outreach.Reward.FAILURE)
    assert outreach.engagements.get().event_type == "replied"  # staff still read what was written
    assert Suppression.objects.get().reason == Suppression.Reason.UNSUBSCRIBED
    assert Lead.objects.get(pk=outreach.lead_id).unsubscribed_at is not None
