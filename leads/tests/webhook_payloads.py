"""Tracking webhook bodies in each provider's documented format (as in django-anymail's own
webhook tests and the providers' docs), built for a given message, and the requests that carry
them: Postmark (one JSON event), Mailgun (JSON with an HMAC signature block), SendGrid (a JSON
batch) and Amazon SES (an SNS notification around the SES event)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SECRET = "hooks:s3cret-webhook-pass"
MAILGUN_SIGNING_KEY = "key-mailgun-signing-0123456789"
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class WebhookPost:
    """One POST: path, body and headers (basic auth included unless `auth` is empty)."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def with_auth(self, auth: str = SECRET) -> WebhookPost:
        token = base64.b64encode(auth.encode()).decode()
        return WebhookPost(self.path, self.body, {**self.headers, "Authorization": f"Basic {token}"})


def postmark(record_type: str, message_id: str, *, recipient: str = "lead@example.com", **fields: Any) -> WebhookPost:
    """Postmark: Delivery, Open, Click (OriginalLink), Bounce (ID, Type HardBounce/SoftBounce),
    SpamComplaint, SubscriptionChange."""
    event: dict[str, Any] = {"RecordType": record_type, "MessageID": message_id, "ServerID": 23, "Metadata": {}}
    at = WHEN.isoformat().replace("+00:00", "Z")
    if record_type in ("Bounce", "SpamComplaint"):
        event.update(ID=901542550, Type="HardBounce", Email=recipient, BouncedAt=at, Description="Hard bounce")
        event["Details"] = "smtp;550 5.1.1 The email account that you tried to reach does not exist."
    elif record_type == "Delivery":
        event.update(Recipient=recipient, DeliveredAt=at, Details="Test delivery webhook details")
    elif record_type == "SubscriptionChange":
        event.update(Recipient=recipient, ChangedAt=at, SuppressSending=True, SuppressionReason="ManualSuppression")
    else:
        event.update(Recipient=recipient, ReceivedAt=at, UserAgent="Mozilla/5.0 (Windows NT 5.1; rv:11.0)")
    if record_type == "SpamComplaint":
        event["Type"] = "SpamComplaint"
    event.update(fields)
    return _json("/webhooks/postmark/tracking/", event)


def mailgun(event: str, message_id: str, *, token: str, key: str = MAILGUN_SIGNING_KEY, **fields: Any) -> WebhookPost:
    """Mailgun's JSON webhook: `signature` (HMAC-SHA256 of timestamp + token with the signing
    key) and `event-data`; `message_id` without its angle brackets, as Mailgun sends it."""
    timestamp = str(int(WHEN.timestamp()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    data: dict[str, Any] = {
        "event": event,
        "timestamp": WHEN.timestamp(),
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "recipient": "lead@example.com",
        "tags": ["outreach"],
        "user-variables": {},
        "message": {"headers": {"message-id": message_id, "to": "lead@example.com", "subject": "Hello"}},
    }
    if event == "failed":
        data.update(severity="permanent", reason="bounce")
        data["delivery-status"] = {"code": 550, "message": "No such mailbox", "description": ""}
    data.update(fields)
    body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": data}
    return _json("/webhooks/mailgun/tracking/", body)


def sendgrid_event(event: str, anymail_id: str, *, sg_event_id: str, **fields: Any) -> dict[str, Any]:
    """One event of SendGrid's batch; `anymail_id` is the custom arg anymail sends with the mail."""
    item: dict[str, Any] = {
        "email": "lead@example.com",
        "timestamp": int(WHEN.timestamp()),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "sg_event_id": sg_event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "anymail_id": anymail_id,
        "category": ["outreach"],
    }
    if event == "bounce":
        item.update(reason="500 unknown recipient", status="5.0.0", type="bounce")
    if event == "click":
        item.update(url="https://whisperer.example/pricing", useragent="Mozilla/5.0")
    item.update(fields)
    return item


def sendgrid(events: list[dict[str, Any]]) -> WebhookPost:
    return _json("/webhooks/sendgrid/tracking/", events)


def ses(notification_type: str, message_id: str, *, sns_id: str, **detail: Any) -> WebhookPost:
    """An SES notification (Bounce: bounceType Permanent/Transient; Delivery; Complaint; Open;
    Click) inside an SNS Notification, posted as text/plain with SNS's headers."""
    mail = {"timestamp": "2026-11-30T11:59:00.000Z", "messageId": message_id, "destination": ["lead@example.com"]}
    event: dict[str, Any] = {"notificationType": notification_type, "mail": mail}
    if notification_type == "Bounce":
        event["bounce"] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "lead@example.com", "diagnosticCode": "smtp; 550 5.1.1 unknown"}],
        }
    elif notification_type == "Delivery":
        event["delivery"] = {"recipients": ["lead@example.com"], "smtpResponse": "250 ok"}
    elif notification_type == "Complaint":
        event["complaint"] = {"complainedRecipients": [{"emailAddress": "lead@example.com"}]}
    elif notification_type in ("Open", "Click"):
        event = {"eventType": notification_type, "mail": mail, notification_type.lower(): {"userAgent": "Mozilla"}}
        if notification_type == "Click":
            event["click"]["link"] = "https://whisperer.example/pricing"
    for key, value in detail.items():
        event.setdefault(key, {}).update(value)
    sns = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Message": json.dumps(event) + "\n",
        "Timestamp": "2026-11-30T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE-SIGNATURE==",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-12345abcde.pem",
    }
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": sns_id,
    }
    return WebhookPost("/webhooks/amazon_ses/tracking/", json.dumps(sns).encode(), headers)


def _json(path: str, body: Any) -> WebhookPost:
    return WebhookPost(path, json.dumps(body).encode(), {"Content-Type": "application/json"})
