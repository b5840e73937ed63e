"""Tracking webhook bodies in each provider's documented format (as in django-anymail's own
webhook tests and the providers' docs), built for a given message, and the requests that carry
them: Postmark (one JSON event), Mailgun (JSON with an HMAC signature block), SendGrid (a JSON
batch) and Amazon SES (an SNS notification around the SES event, signed for real by a loopback
key: see `sns_signer`)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leads.tests.sns_signing import SnsSigner

SECRET = "hooks:s3cret-webhook-pass"
MAILGUN_SIGNING_KEY = "key-mailgun-signing-0123456789"
SES_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"
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
    Click) inside an SNS Notification, signed by `sns_signer()`."""
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
    notification = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": SES_TOPIC_ARN,
        "Message": json.dumps(event) + "\n",
        "Timestamp": "2026-11-30T12:00:00.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    return _sns(notification)


def ses_subscription_confirmation(sns_id: str) -> WebhookPost:
    """The SubscriptionConfirmation SNS posts when the SES events topic is subscribed to our URL."""
    token = "2336412f37fb687f5d51e6e2425c464de"
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": sns_id,
        "Token": token,
        "TopicArn": SES_TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {SES_TOPIC_ARN}.",
        "SubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token={token}",
        "Timestamp": "2026-11-30T12:00:00.000Z",
    }
    return _sns(confirmation)


@functools.cache
def sns_signer() -> SnsSigner:
    """The key that signs the SES posts built here, its certificate on a loopback server: made on
    first use and kept for the test run. A webhook admits it when its ANYMAIL
    AMAZON_SES_SNS_CERT_URL_PATTERN is `sns_signer().cert_url_pattern`."""
    return SnsSigner()


def _sns(message: dict[str, Any]) -> WebhookPost:
    """`message` signed as SNS signs it, posted as text/plain with SNS's headers."""
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
    }
    body = json.dumps(sns_signer().sign(message)).encode()
    return WebhookPost("/webhooks/amazon_ses/tracking/", body, headers)


def _json(path: str, body: Any) -> WebhookPost:
    return WebhookPost(path, json.dumps(body).encode(), {"Content-Type": "application/json"})
