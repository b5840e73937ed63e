"""Sent outreach to reply to, and inbound mail as providers post it: Postmark's inbound JSON and
Mailgun's signed forward() form.

Shapes from the providers' documentation and anymail's own tests (test_postmark_inbound.py,
test_mailgun_inbound.py): Postmark sends FromFull/ToFull, OriginalRecipient, Subject, MessageID
(its own UUID), TextBody, StrippedTextReply and Headers [{"Name", "Value"}] with Return-Path
first; Mailgun sends form fields (recipient, sender, subject, body-plain, stripped-text,
message-headers as a JSON list of [name, value]) signed with timestamp, token and an HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from django.utils import timezone

from leads.models import Lead, Outreach
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory

WEBHOOK_SECRET = "provider:inbound-secret"
MAILGUN_SIGNING_KEY = "key-test-mailgun-signing"
UNSUBSCRIBE_MAILTO = "unsubscribe@whisperer.example"
REPLY_TO = "outreach@whisperer.example"
AUTHORIZATION = "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()  # the webhook secret


def thread_headers(*, in_reply_to: str = "", references: str = "") -> tuple[tuple[str, str], ...]:
    headers = (("In-Reply-To", in_reply_to),) if in_reply_to else ()
    return headers + ((("References", references),) if references else ())


def postmark_inbound(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    headers: tuple[tuple[str, str], ...] = (),
    message_id: str = "",
    stripped: str = "",
) -> dict[str, Any]:
    """A Postmark inbound webhook body (without "Include raw email content")."""
    message_id = message_id or f"<{uuid.uuid4().hex}@mail.acme.example>"
    return {
        "FromName": "Grace Hopper",
        "From": sender,
        "FromFull": {"Email": sender, "Name": "Grace Hopper", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "Bcc": "",
        "BccFull": [],
        "OriginalRecipient": to,
        "ReplyTo": "",
        "Subject": subject,
        "MessageID": str(uuid.uuid4()),
        "Date": "Tue, 1 Dec 2026 10:00:00 +0000",
        "MailboxHash": "",
        "TextBody": text,
        "HtmlBody": "",
        "StrippedTextReply": stripped,
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": f"<{sender}>"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "X-Spam-Score", "Value": "0.1"},
            {"Name": "MIME-Version", "Value": "1.0"},
            {"Name": "Message-ID", "Value": message_id},
            *({"Name": name, "Value": value} for name, value in headers),
        ],
        "Attachments": [],
    }


def mailgun_inbound(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    headers: tuple[tuple[str, str], ...] = (),
    message_id: str = "",
    signing_key: str = MAILGUN_SIGNING_KEY,
    token: str = "",
) -> dict[str, str]:
    """A Mailgun forward() route post, fully parsed, signed with `signing_key`."""
    message_id = message_id or f"<{uuid.uuid4().hex}@mail.acme.example>"
    timestamp, token = "1796112000", token or uuid.uuid4().hex
    message_headers = [
        ["From", f"Grace Hopper <{sender}>"],
        ["To", to],
        ["Subject", subject],
        ["Message-Id", message_id],
        ["Date", "Tue, 1 Dec 2026 10:00:00 +0000"],
        *([name, value] for name, value in headers),
    ]
    return {
        "recipient": to,
        "sender": sender,
        "from": f"Grace Hopper <{sender}>",
        "subject": subject,
        "body-plain": text,
        "stripped-text": "",
        "message-headers": json.dumps(message_headers),
        "timestamp": timestamp,
        "token": token,
        "signature": hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest(),
    }


def sent_outreach(**fields: Any) -> Outreach:
    """An outreach as dispatch leaves it: sent, with our Message-ID (and the provider's id if given)."""
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now(), outreach_count=1)
    fields.setdefault("message_id", f"<{lead.lightfield_id}.1@whisperer.example>")
    return OutreachFactory(
        lead=lead, variant=VariantFactory(sends=1), status=Outreach.Status.SENT, sent_at=timezone.now(), **fields
    )
