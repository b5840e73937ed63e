"""Staff read replies: on the lead's story and on the outreach's admin page, with their class."""

from __future__ import annotations

import pytest
from django.urls import reverse

from leads.tests.factories import EngagementEventFactory, OutreachFactory

pytestmark = pytest.mark.django_db

REPLY = {
    "provider": "postmark",
    "subject": "Re: Hello Acme",
    "text": "Thursday works. <b>Call me</b>",
    "auto_reply": False,
    "classification": "interested",
    "classified_by": "model",
}


def _replied():
    outreach = OutreachFactory(status="replied")
    EngagementEventFactory(
        outreach=outreach, event_id="postmark:reply:1", event_type="replied", provider="postmark", payload=REPLY
    )
    return outreach


def test_the_leads_story_shows_each_reply_with_its_class_and_text(admin_client):
    outreach = _replied()

    html = admin_client.get(reverse("admin:leads_lead_change", args=[outreach.lead_id])).content.decode()

    assert f"Replied (outreach {outreach.pk}): Interested (model)" in html
    assert "Thursday works. &lt;b&gt;Call me&lt;/b&gt;" in html  # the lead's words, shown as text
    assert "Subject: Re: Hello Acme" in html
    assert "via postmark" in html


def test_the_outreach_admin_page_lists_its_replies_with_their_class(admin_client):
    outreach = _replied()
    EngagementEventFactory(outreach=outreach, event_type="opened")

    response = admin_client.get(reverse("admin:leads_outreach_change", args=[outreach.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Replies" in html
    assert "Interested (model)" in html
    assert "Thursday works. &lt;b&gt;Call me&lt;/b&gt;" in html
    assert 'name="engagements-1-id"' not in html  # one row: the open is not a reply


def test_a_reply_not_classified_reads_as_a_plain_reply(admin_client):
    outreach = OutreachFactory(status="replied")
    EngagementEventFactory(outreach=outreach, event_type="replied", payload={"via": "api"})

    html = admin_client.get(reverse("admin:leads_lead_change", args=[outreach.lead_id])).content.decode()

    assert f"Replied (outreach {outreach.pk})</strong>" in html
