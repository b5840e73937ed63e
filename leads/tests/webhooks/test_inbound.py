"""Inbound replies posted over HTTP in the providers' formats (Postmark JSON, signed Mailgun form)
to anymail's inbound views, through our receiver, the outbox and the in-process bus to the
feedback stage: replied and classified, out-of-office, unsubscribe requests, redelivery, the model
classifier on a loopback server and the rules behind it. Real PostgreSQL; the transactions
commit, so the in-process bus delivers as in the embedded shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.test import Client

from leads.models import EngagementEvent, Lead, OutboxEvent, Outreach, Suppression, UnmatchedProviderEvent, Variant
from leads.services.suppression import address_key, suppressions_matching, value_hash
from leads.services.unsubscribe import unsubscribe_token
from leads.tests.webhooks.inbound_payloads import (
    AUTHORIZATION,
    REPLY_TO,
    UNSUBSCRIBE_MAILTO,
    mailgun_inbound,
    postmark_inbound,
    sent_outreach,
    thread_headers,
)
from tests.llm_server import Reply as LlmReply
from tests.llm_server import completion, error

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("leads.tests.webhooks.urls")]

POSTMARK, MAILGUN = "/webhooks/postmark/inbound/", "/webhooks/mailgun/inbound/"
QUOTED = "\n\nOn Mon, 30 Nov 2026 at 09:00, Whisperer Sales <outreach@whisperer.example> wrote:\n> Hi Grace,\n> ..."


def _post_postmark(client: Client, outreach: Outreach | None, text: str, **fields: Any) -> Any:
    headers = fields.pop("headers", None)
    if headers is None and outreach is not None:
        headers = thread_headers(in_reply_to=outreach.message_id or "", references=outreach.message_id or "")
    body = postmark_inbound(
        sender=fields.pop("sender", outreach.to_email if outreach else "someone@elsewhere.example"),
        to=fields.pop("to", REPLY_TO),
        subject=fields.pop("subject", "Re: Hello"),
        text=text,
        headers=headers or (),
        **fields,
    )
    return client.post(
        POSTMARK, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=AUTHORIZATION
    )


def _post_json(client: Client, body: dict[str, Any]) -> Any:
    data = json.dumps(body)
    return client.post(POSTMARK, data=data, content_type="application/json", HTTP_AUTHORIZATION=AUTHORIZATION)


def _reply(outreach: Outreach) -> EngagementEvent:
    return EngagementEvent.objects.get(outreach=outreach, event_type=EngagementEvent.Type.REPLIED)


def test_a_postmark_reply_threaded_to_a_sent_outreach_is_a_classified_reply_and_the_lead_responded(
    client, inbound_settings
):
    outreach = sent_outreach()

    response = _post_postmark(client, outreach, "Yes, we are interested. Can we book a call next week?" + QUOTED)

    assert response.status_code == 200
    reply = _reply(outreach)
    assert reply.provider == "postmark"
    assert reply.payload == {
        "provider": "postmark",
        "subject": "Re: Hello",
        "text": "Yes, we are interested. Can we book a call next week?",
        "auto_reply": False,
        "classification": "interested",
        "classified_by": "rules",
    }
    assert outreach.to_email not in json.dumps(reply.payload)  # the lead holds the address, not the reply
    outreach.refresh_from_db()
    assert (outreach.status, outreach.replied_at) == (Outreach.Status.REPLIED, reply.occurred_at)
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.RESPONDED


def test_a_signed_mailgun_reply_threads_through_references_to_the_providers_id(client, inbound_settings):
    outreach = sent_outreach(provider_message_id="<20261201100000.1.ABCDEF@mg.whisperer.example>")
    references = "<older@acme.example> <20261201100000.1.ABCDEF@mg.whisperer.example>"
    form = mailgun_inbound(
        sender=outreach.to_email,
        to=REPLY_TO,
        subject="Re: Hello",
        text="Not interested, thank you.",
        headers=thread_headers(references=references),
    )

    assert client.post(MAILGUN, data=form, HTTP_AUTHORIZATION=AUTHORIZATION).status_code == 200

    reply = _reply(outreach)
    assert (reply.provider, reply.payload["classification"]) == ("mailgun", "not_interested")
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.REPLIED  # a refusal is still a response
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.RESPONDED


def test_a_mailgun_post_with_a_wrong_signature_is_refused_and_changes_nothing(client, inbound_settings):
    outreach = sent_outreach()
    form = mailgun_inbound(
        sender=outreach.to_email,
        to=REPLY_TO,
        subject="Re: Hello",
        text="Interested!",
        headers=thread_headers(in_reply_to=outreach.message_id or ""),
        signing_key="not-the-key",
    )

    assert client.post(MAILGUN, data=form, HTTP_AUTHORIZATION=AUTHORIZATION).status_code == 400
    assert not OutboxEvent.objects.exists()
    assert not EngagementEvent.objects.exists()


def test_an_out_of_office_reply_is_recorded_but_is_not_a_response(client, inbound_settings):
    outreach = sent_outreach()
    headers = (*thread_headers(in_reply_to=outreach.message_id or ""), ("Auto-Submitted", "auto-replied"))

    _post_postmark(client, outreach, "Thanks for your message. I am travelling.", headers=headers)

    reply = _reply(outreach)
    assert (reply.payload["auto_reply"], reply.payload["classification"]) == (True, "out_of_office")
    outreach.refresh_from_db()
    assert (outreach.status, outreach.replied_at, outreach.reward) == (Outreach.Status.SENT, None, "")
    lead = Lead.objects.get(pk=outreach.lead_id)
    assert (lead.status, lead.responded_at) == (Lead.Status.CONTACTED, None)


def test_a_reply_asking_to_be_removed_suppresses_the_address_and_counts_as_an_unsubscribe(client, inbound_settings):
    outreach = sent_outreach()

    _post_postmark(client, outreach, "Please remove me from your list.")

    assert _reply(outreach).payload["classification"] == "unsubscribe_request"
    assert suppressions_matching([outreach.to_email]) == {
        address_key(outreach.to_email): "the address is suppressed (unsubscribed)"
    }
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.UNSUBSCRIBED, Outreach.Reward.FAILURE)
    assert Lead.objects.get(pk=outreach.lead_id).unsubscribed_at is not None
    variant = Variant.objects.get(pk=outreach.variant_id or 0)
    assert (variant.alpha, variant.beta, variant.failures) == (1, 2, 1)


def test_mail_to_the_unsubscribe_address_suppresses_the_sender_and_unsubscribes_the_outreach_it_names(
    client, inbound_settings
):
    outreach = sent_outreach()
    subject = f"unsubscribe {unsubscribe_token(outreach_id=outreach.pk)}"  # as the mailto: link fills it in

    response = _post_postmark(client, None, "", sender=outreach.to_email, to=UNSUBSCRIBE_MAILTO, subject=subject)

    assert response.status_code == 200
    entry = Suppression.objects.get(value_hash=value_hash(address_key(outreach.to_email)))
    assert (entry.reason, entry.source) == (Suppression.Reason.UNSUBSCRIBED, "mailto")
    [engagement] = EngagementEvent.objects.filter(outreach=outreach)
    assert engagement.event_type == EngagementEvent.Type.UNSUBSCRIBED
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.UNSUBSCRIBED, Outreach.Reward.FAILURE)


def test_mail_to_the_unsubscribe_address_naming_no_outreach_still_suppresses_the_sender(client, inbound_settings):
    sender = "stranger@elsewhere.example"

    _post_postmark(client, None, "Take me off whatever list this is.", sender=sender, to=UNSUBSCRIBE_MAILTO)

    assert suppressions_matching([sender]) == {sender: "the address is suppressed (unsubscribed)"}
    assert not EngagementEvent.objects.exists()
    assert not UnmatchedProviderEvent.objects.exists()


def test_a_redelivered_reply_changes_nothing(client, inbound_settings):
    outreach = sent_outreach()
    body = postmark_inbound(
        sender=outreach.to_email,
        to=REPLY_TO,
        subject="Re: Hello",
        text="Sounds good, tell me more.",
        headers=thread_headers(in_reply_to=outreach.message_id or ""),
    )

    for _ in range(3):
        response = client.post(
            POSTMARK, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=AUTHORIZATION
        )
        assert response.status_code == 200

    assert EngagementEvent.objects.filter(outreach=outreach).count() == 1
    assert OutboxEvent.objects.filter(event_type="engagement.replied").count() == 1
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1


def test_a_reply_that_names_no_outreach_is_kept_with_its_sender_hashed_and_answered_200(client, inbound_settings):
    headers = thread_headers(in_reply_to="<not-ours@elsewhere.example>")

    response = _post_postmark(client, None, "Who is this?", sender="Ada@Example.org", headers=headers)

    assert response.status_code == 200
    row = UnmatchedProviderEvent.objects.get()
    assert (row.provider, row.event_type, row.provider_message_id) == (
        "postmark",
        "inbound",
        "not-ours@elsewhere.example",
    )
    assert row.recipient_hash == value_hash("ada@example.org")
    assert not OutboxEvent.objects.exists()


def test_a_reply_is_classified_by_the_model_when_one_is_configured(client, llm_inbound_settings, llm_server):
    llm_server.script(LlmReply(body=completion(json.dumps({"classification": "not_interested"}))))
    outreach = sent_outreach()

    _post_postmark(client, outreach, "Tell me more? Actually, our board said no this year.")

    payload = _reply(outreach).payload
    assert (payload["classification"], payload["classified_by"]) == ("not_interested", "model")
    [request] = llm_server.received
    schema = request.body["response_format"]["json_schema"]
    assert schema["name"] == "reply_class"
    assert json.loads(request.body["messages"][1]["content"])["text"].startswith("Tell me more?")
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.RESPONDED


def test_the_rules_classify_a_reply_when_the_model_fails(client, llm_inbound_settings, llm_server):
    llm_server.script(error(500), error(500))
    outreach = sent_outreach()

    _post_postmark(client, outreach, "I'm interested, can we set up a call?")

    payload = _reply(outreach).payload
    assert (payload["classification"], payload["classified_by"]) == ("interested", "rules")
    assert payload["classification_fallback"] == "llm unavailable: HTTP 500 after 2 attempts"
    assert len(llm_server.received) == 2


def test_a_reply_posted_to_a_live_server_is_applied(live_server, inbound_settings):
    outreach = sent_outreach()
    body = postmark_inbound(
        sender=outreach.to_email,
        to=REPLY_TO,
        subject="Re: Hello",
        text="Happy to chat on Thursday.",
        headers=thread_headers(in_reply_to=outreach.message_id or ""),
    )

    response = requests.post(
        f"{live_server.url}{POSTMARK}",
        json=body,
        headers={"Authorization": AUTHORIZATION},
        timeout=10,
    )

    assert response.status_code == 200
    assert _reply(outreach).payload["classification"] == "interested"
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.RESPONDED


def test_a_post_without_the_webhook_secret_is_refused(client, inbound_settings):
    outreach = sent_outreach()
    body = postmark_inbound(sender=outreach.to_email, to=REPLY_TO, subject="Re: Hello", text="Interested")

    assert client.post(POSTMARK, data=json.dumps(body), content_type="application/json").status_code == 400
    assert not OutboxEvent.objects.exists()
