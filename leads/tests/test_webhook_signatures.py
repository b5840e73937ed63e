"""Provider signatures on the tracking and inbound webhooks: Amazon SNS (our check, in
leads/webhooks/sns.py), SendGrid's signed event webhook and Mailgun's signing key (anymail's).

Each test signs a payload as the provider does, with keys made here, and posts it over the
Django test client to /webhooks/<esp>/..., the door production mounts (leads/webhooks/urls.py),
so an accepted event is recorded as it would be there. SNS signing certificates are served by a
loopback HTTP stand-in (leads/tests/sns_signing.py); the certificate URL pattern is widened to
admit it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import inbound, tracking
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from leads.tests.sns_signing import LOOPBACK_CERT_URL_PATTERN, CertificateServer, SigningKey
from leads.webhooks import sns

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

WEBHOOK_SECRET = "anymail:webhook-secret-for-tests"
BASIC_AUTH = "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode()
MAILGUN_SIGNING_KEY = "mailgun-signing-key-for-tests"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


@pytest.fixture(scope="module")
def sns_key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="module")
def cert_server() -> Iterator[CertificateServer]:
    server = CertificateServer()
    yield server
    server.stop()


@pytest.fixture
def cert_url(cert_server: CertificateServer, sns_key: SigningKey) -> str:
    return cert_server.publish(sns_key.certificate_pem)


@pytest.fixture(autouse=True)
def anymail_settings(settings: Any) -> dict[str, Any]:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
        "AMAZON_SES_SNS_CERT_URL_PATTERN": LOOPBACK_CERT_URL_PATTERN,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    return settings.ANYMAIL


@pytest.fixture
def tracked() -> Iterator[list[Any]]:
    """The anymail tracking events the webhooks send, in order."""
    events: list[Any] = []

    def receive(sender: object, event: Any, esp_name: str, **kwargs: object) -> None:
        events.append(event)

    tracking.connect(receive)
    yield events
    tracking.disconnect(receive)


@pytest.fixture
def received() -> Iterator[list[Any]]:
    """The anymail inbound events the webhooks send, in order."""
    events: list[Any] = []

    def receive(sender: object, event: Any, esp_name: str, **kwargs: object) -> None:
        events.append(event)

    inbound.connect(receive)
    yield events
    inbound.disconnect(receive)


# --- SNS messages --------------------------------------------------------------------------


def ses_delivery_notification() -> dict[str, Any]:
    """An SNS Notification carrying an SES Delivery event (SES event publishing format)."""
    ses_event = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2026-12-01T15:00:00.000Z",
            "messageId": "0100018c-ses-message-id",
            "destination": ["lead@example.com"],
            "headers": [],
        },
        "delivery": {"recipients": ["lead@example.com"], "smtpResponse": "250 2.0.0 OK"},
    }
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-12-01T15:00:01.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def ses_inbound_notification() -> dict[str, Any]:
    """An SNS Notification carrying an SES receipt with the mail inline (SNS action)."""
    raw = "From: Lead <lead@example.com>\r\nTo: us@example.com\r\nSubject: Re: hello\r\n\r\nYes, interested.\r\n"
    ses_event = {
        "notificationType": "Received",
        "mail": {"timestamp": "2026-12-01T15:00:00.000Z", "messageId": "inbound-1", "source": "lead@example.com"},
        "receipt": {"action": {"type": "SNS", "encoding": "UTF8"}, "recipients": ["us@example.com"]},
        "content": raw,
    }
    return {**ses_delivery_notification(), "Message": json.dumps(ses_event)}


def confirmation(kind: str) -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2425c464de",
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
        "Timestamp": "2026-12-01T15:00:01.000Z",
    }


def post_sns(message: dict[str, Any], *, webhook: str = "tracking", auth: str = BASIC_AUTH) -> Any:
    return Client().post(
        f"/webhooks/amazon_ses/{webhook}/",
        data=json.dumps(message),
        content_type="text/plain; charset=UTF-8",
        headers={
            "Authorization": auth,
            "x-amz-sns-message-type": message["Type"],
            "x-amz-sns-message-id": message["MessageId"],
        },
    )


# --- SNS: accepted -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_sns_notification_is_accepted_and_tracked(
    version: str, sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    response = post_sns(sns_key.sign(ses_delivery_notification(), version=version, cert_url=cert_url))

    assert response.status_code == 200
    assert [(event.event_type, event.message_id, event.recipient) for event in tracked] == [
        ("delivered", "0100018c-ses-message-id", "lead@example.com")
    ]


def test_signed_sns_notification_with_a_subject_is_accepted(
    sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    message = {**ses_delivery_notification(), "Subject": "Amazon SES Email Event Notification"}

    response = post_sns(sns_key.sign(message, version="2", cert_url=cert_url))

    assert response.status_code == 200
    assert len(tracked) == 1


@pytest.mark.parametrize(
    ("kind", "version"),
    [("SubscriptionConfirmation", "1"), ("SubscriptionConfirmation", "2"), ("UnsubscribeConfirmation", "2")],
)
def test_signed_sns_confirmation_is_accepted(
    kind: str, version: str, sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    response = post_sns(sns_key.sign(confirmation(kind), version=version, cert_url=cert_url))

    assert response.status_code == 200
    assert tracked == []


def test_signed_sns_inbound_notification_is_accepted(sns_key: SigningKey, cert_url: str, received: list[Any]) -> None:
    message = sns_key.sign(ses_inbound_notification(), version="2", cert_url=cert_url)

    response = post_sns(message, webhook="inbound")

    assert response.status_code == 200
    assert [event.message.subject for event in received] == ["Re: hello"]


def test_signing_certificate_is_fetched_once_per_url(
    sns_key: SigningKey, cert_server: CertificateServer, cert_url: str, tracked: list[Any]
) -> None:
    for _ in range(3):
        assert post_sns(sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url)).status_code == 200

    assert cert_server.requested.count(cert_url.split(str(cert_server.port), 1)[1]) == 1
    assert len(tracked) == 3


# --- SNS: refused --------------------------------------------------------------------------


def test_sns_notification_changed_after_signing_is_refused(
    sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url)
    message["Message"] = message["Message"].replace("lead@example.com", "someone@example.com")

    assert post_sns(message).status_code == 400
    assert tracked == []


def test_sns_notification_with_an_unsigned_subject_added_is_refused(
    sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    message = sns_key.sign(ses_delivery_notification(), version="1", cert_url=cert_url)
    message["Subject"] = "added later"

    assert post_sns(message).status_code == 400
    assert tracked == []


def test_sns_confirmation_with_another_subscribe_url_is_refused(
    sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    message = sns_key.sign(confirmation("SubscriptionConfirmation"), version="2", cert_url=cert_url)
    message["SubscribeURL"] = "https://attacker.example/confirm"

    assert post_sns(message).status_code == 400


def test_sns_notification_signed_by_another_key_is_refused(
    sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    impostor = SigningKey()

    assert post_sns(impostor.sign(ses_delivery_notification(), version="2", cert_url=cert_url)).status_code == 400
    assert tracked == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://127.0.0.2:{port}/cert.pem",
        "http://localhost:{port}/cert.pem",
        "http://anyone@127.0.0.1:{port}/cert.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "file:///etc/ssl/certs/ca-certificates.crt",
    ],
)
def test_sns_certificate_from_a_host_outside_the_pattern_is_refused_unfetched(
    cert_url: str, sns_key: SigningKey, cert_server: CertificateServer, tracked: list[Any]
) -> None:
    fetched_before = len(cert_server.requested)
    message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url.format(port=cert_server.port))

    assert post_sns(message).status_code == 400
    assert len(cert_server.requested) == fetched_before
    assert tracked == []


@pytest.mark.parametrize(
    ("field", "value"), [("Signature", None), ("Signature", "not base64!"), ("SignatureVersion", "3")]
)
def test_sns_notification_without_a_usable_signature_is_refused(
    field: str, value: str | None, sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url)
    if value is None:
        del message[field]
    else:
        message[field] = value

    assert post_sns(message).status_code == 400
    assert tracked == []


def test_sns_certificate_url_serving_no_certificate_is_refused(
    sns_key: SigningKey, cert_server: CertificateServer, tracked: list[Any]
) -> None:
    for document in (404, b"not a certificate"):
        message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_server.publish(document))
        assert post_sns(message).status_code == 400
    assert tracked == []


def test_sns_post_with_wrong_basic_auth_is_refused_before_any_certificate_fetch(
    sns_key: SigningKey, cert_server: CertificateServer, tracked: list[Any]
) -> None:
    cert_url = cert_server.publish(sns_key.certificate_pem)
    wrong_auth = "Basic " + base64.b64encode(b"anymail:guess").decode()

    response = post_sns(sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url), auth=wrong_auth)

    assert response.status_code == 400
    assert cert_url.split(str(cert_server.port), 1)[1] not in cert_server.requested
    assert tracked == []


def test_sns_notification_from_a_topic_outside_the_allowed_list_is_refused(
    anymail_settings: dict[str, Any], sns_key: SigningKey, cert_url: str, tracked: list[Any]
) -> None:
    anymail_settings["AMAZON_SES_SNS_TOPIC_ARNS"] = [TOPIC_ARN]
    ours = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url)
    theirs = sns_key.sign(
        {**ses_delivery_notification(), "TopicArn": "arn:aws:sns:us-east-1:999999999999:their-topic"},
        version="2",
        cert_url=cert_url,
    )

    assert (post_sns(ours).status_code, post_sns(theirs).status_code) == (200, 400)
    assert len(tracked) == 1


@pytest.mark.parametrize("body", ['{"Type": "Notification", "MessageId": "m-1", "Mess', '["Notification"]'])
def test_sns_post_that_is_not_a_json_object_is_refused(body: str, tracked: list[Any]) -> None:
    response = Client().post(
        "/webhooks/amazon_ses/tracking/",
        data=body,
        content_type="text/plain; charset=UTF-8",
        headers={
            "Authorization": BASIC_AUTH,
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": "m-1",
        },
    )

    assert response.status_code == 400
    assert tracked == []


# --- SNS: the certificate server cannot answer ---------------------------------------------


def test_sns_notification_is_answered_503_while_the_certificate_server_is_down_then_accepted(
    sns_key: SigningKey, tracked: list[Any]
) -> None:
    server = CertificateServer()
    cert_url = server.publish(sns_key.certificate_pem)
    server.stop()  # the port now refuses connections
    message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_url)

    refused = post_sns(message)

    assert (refused.status_code, refused["Retry-After"]) == (503, str(sns.RETRY_AFTER_SECONDS))
    assert tracked == []
    back = CertificateServer(port=server.port)
    back.documents = server.documents
    try:
        assert post_sns(message).status_code == 200  # SNS's retry: the failure was not cached
    finally:
        back.stop()
    assert len(tracked) == 1


def test_sns_notification_is_answered_503_when_the_certificate_server_fails(
    sns_key: SigningKey, cert_server: CertificateServer, tracked: list[Any]
) -> None:
    message = sns_key.sign(ses_delivery_notification(), version="2", cert_url=cert_server.publish(503))

    assert post_sns(message).status_code == 503
    assert tracked == []


# --- SNS: settings -------------------------------------------------------------------------


def test_sns_signature_check_can_be_turned_off(anymail_settings: dict[str, Any], tracked: list[Any]) -> None:
    anymail_settings["AMAZON_SES_VERIFY_SNS_SIGNATURES"] = False

    assert post_sns(ses_delivery_notification()).status_code == 200
    assert len(tracked) == 1


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com@evil.example/cert.pem", False),
        ("https://evil.example/?host=sns.us-east-1.amazonaws.com", False),
        ("https://sqs.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/cert.pem", False),
    ],
)
def test_default_pattern_admits_only_https_sns_hosts(url: str, allowed: bool) -> None:
    signature = sns.SnsSignature(cert_url_pattern=re.compile(sns.DEFAULT_CERT_URL_PATTERN))

    if allowed:
        assert signature.checked_cert_url(url) == url
    else:
        with pytest.raises(AnymailWebhookValidationFailure):
            signature.checked_cert_url(url)


# --- SendGrid signed event webhook ----------------------------------------------------------


@pytest.fixture
def sendgrid_key(anymail_settings: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    """A P-256 key whose public half is configured as SendGrid shows it (base64 DER)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    anymail_settings["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"] = base64.b64encode(public_der).decode()
    return private_key


def sendgrid_batch() -> bytes:
    events = [
        {"email": "lead@example.com", "timestamp": 1764601200, "event": "delivered", "sg_event_id": "ev-1"},
        {"email": "lead@example.com", "timestamp": 1764601260, "event": "open", "sg_event_id": "ev-2"},
    ]
    return json.dumps(events).encode()


def post_sendgrid(body: bytes, headers: dict[str, str]) -> Any:
    return Client().post(
        "/webhooks/sendgrid/tracking/",
        data=body,
        content_type="application/json",
        headers={"Authorization": BASIC_AUTH, **headers},
    )


def sendgrid_signature_headers(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    timestamp = "1764601300"
    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def test_sendgrid_signed_batch_is_accepted(sendgrid_key: ec.EllipticCurvePrivateKey, tracked: list[Any]) -> None:
    body = sendgrid_batch()

    response = post_sendgrid(body, sendgrid_signature_headers(sendgrid_key, body))

    assert response.status_code == 200
    assert [(event.event_type, event.event_id) for event in tracked] == [("delivered", "ev-1"), ("opened", "ev-2")]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"delivered", b"bounce"), headers),
        lambda body, headers: (body, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1764601301"}),
        lambda body, headers: (body, {"X-Twilio-Email-Event-Webhook-Timestamp": "1764601300"}),
    ],
    ids=["body changed", "timestamp changed", "signature missing"],
)
def test_sendgrid_tampered_batch_is_refused(
    tamper: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]],
    sendgrid_key: ec.EllipticCurvePrivateKey,
    tracked: list[Any],
) -> None:
    body = sendgrid_batch()
    body, headers = tamper(body, sendgrid_signature_headers(sendgrid_key, body))

    assert post_sendgrid(body, headers).status_code == 400
    assert tracked == []


# --- Mailgun signing key --------------------------------------------------------------------


def mailgun_event(signing_key: str) -> dict[str, Any]:
    timestamp, token = "1764601200", uuid.uuid4().hex
    digest = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest},
        "event-data": {
            "event": "delivered",
            "timestamp": 1764601200.5,
            "recipient": "lead@example.com",
            "message": {"headers": {"message-id": "20261201150000.1.mailgun@example.com"}},
        },
    }


def post_mailgun(event: dict[str, Any]) -> Any:
    return Client().post(
        "/webhooks/mailgun/tracking/",
        data=json.dumps(event),
        content_type="application/json",
        headers={"Authorization": BASIC_AUTH},
    )


def test_mailgun_event_signed_with_the_signing_key_is_accepted(tracked: list[Any]) -> None:
    response = post_mailgun(mailgun_event(MAILGUN_SIGNING_KEY))

    assert response.status_code == 200
    assert [(event.event_type, event.message_id) for event in tracked] == [
        ("delivered", "<20261201150000.1.mailgun@example.com>")
    ]


def test_mailgun_event_signed_with_another_key_is_refused(tracked: list[Any]) -> None:
    assert post_mailgun(mailgun_event("some-other-key")).status_code == 400
    assert tracked == []
