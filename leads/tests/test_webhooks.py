"""The providers' webhook door (/webhooks/<provider>/tracking/) through the Django test client:
the guards, anymail's own refusals, and what a request records (outbox rows for matched
events, unmatched rows, nothing on a refusal). The feedback stage's side is in
leads/tests/services/test_provider_feedback.py; the whole loop over HTTP in tests/test_webhooks_http.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from leads.models import OutboxEvent, Outreach, UnmatchedProviderEvent
from leads.services.suppression import value_hash
from leads.tests import webhook_payloads as hooks
from leads.tests.factories import OutreachFactory
from pipeline_whisperer.checks import webhook_secret_is_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def anymail(settings: Any) -> Any:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": hooks.SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": hooks.MAILGUN_SIGNING_KEY,
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
        "AMAZON_SES_SNS_CERT_URL_PATTERN": hooks.sns_signer().cert_url_pattern,
    }
    return settings


def _post(post: hooks.WebhookPost, *, auth: str | None = hooks.SECRET) -> Any:
    request = post.with_auth(auth) if auth else post
    headers = {k: v for k, v in request.headers.items() if k != "Content-Type"}
    return Client().post(request.path, data=request.body, content_type=post.headers["Content-Type"], headers=headers)


def _engagements() -> list[dict[str, Any]]:
    return [row.payload for row in OutboxEvent.objects.filter(event_type__startswith="engagement.").order_by("id")]


def _outreach(provider_message_id: str) -> Outreach:
    return OutreachFactory(status=Outreach.Status.SENT, provider_message_id=provider_message_id)


def test_a_postmark_delivery_becomes_one_engagement_with_the_same_id_on_every_retry(anymail):
    outreach = _outreach("883953f4-6105-42a2-a16a-77a8eac79483")
    post = hooks.postmark("Delivery", outreach.provider_message_id)
    assert _post(post).status_code == 200
    assert _post(post).status_code == 200
    first, again = _engagements()
    assert first == again
    assert first["event_type"] == "delivered"
    assert first["outreach_id"] == outreach.pk
    assert first["provider"] == "postmark"
    assert first["event_id"].startswith("postmark:h:")
    assert "lead@example.com" not in json.dumps(first)


def test_a_click_carries_its_url_and_a_bounce_its_type(anymail):
    outreach = _outreach("f4830d10-9c35-4f0c-bca3-3d9b459821f8")
    _post(hooks.postmark("Click", outreach.provider_message_id, OriginalLink="https://whisperer.example/pricing"))
    _post(hooks.postmark("Bounce", outreach.provider_message_id, Type="SoftBounce", ID=42))
    _post(hooks.postmark("Bounce", outreach.provider_message_id, ID=43))
    click, soft, hard = _engagements()
    assert click["payload"]["click_url"] == "https://whisperer.example/pricing"
    assert (soft["bounce_type"], soft["event_id"]) == ("soft", "postmark:42")
    assert (hard["bounce_type"], hard["event_id"]) == ("hard", "postmark:43")


def test_without_a_webhook_secret_production_refuses_every_post(settings):
    settings.ANYMAIL = {}
    outreach = _outreach("m-1")
    response = _post(hooks.postmark("Delivery", outreach.provider_message_id), auth=None)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert "ANYMAIL_WEBHOOK_SECRET" in response.json()["detail"]
    assert _engagements() == []


def test_a_wrong_secret_is_refused_by_anymail_and_records_nothing(anymail):
    outreach = _outreach("m-2")
    response = _post(hooks.postmark("Delivery", outreach.provider_message_id), auth="hooks:wrong")
    assert response.status_code == 400
    assert "basic auth" in response.json()["detail"]
    assert _engagements() == []


def test_mailgun_needs_its_signature_and_matches_by_the_bracketed_message_id(anymail):
    outreach = _outreach("<20261130.1@mg.whisperer.example>")
    forged = hooks.mailgun("delivered", "20261130.1@mg.whisperer.example", token="t" * 50, key="not-the-key")
    response = _post(forged)
    assert response.status_code == 400
    assert "incorrect signature" in response.json()["detail"]
    assert _engagements() == []
    assert _post(hooks.mailgun("delivered", "20261130.1@mg.whisperer.example", token="t" * 50)).status_code == 200
    [delivered] = _engagements()
    assert (delivered["outreach_id"], delivered["event_id"]) == (outreach.pk, "mailgun:" + "t" * 50)


def test_a_sendgrid_batch_records_matched_and_unmatched_once_and_ignores_the_rest(anymail):
    outreach = _outreach("anymail-uuid-1")
    batch = [
        hooks.sendgrid_event("processed", "anymail-uuid-1", sg_event_id="sg-1"),
        hooks.sendgrid_event("delivered", "anymail-uuid-1", sg_event_id="sg-2"),
        hooks.sendgrid_event("click", "anymail-uuid-1", sg_event_id="sg-3"),
        hooks.sendgrid_event("open", "someone-elses", sg_event_id="sg-4", email="Other@Example.com"),
    ]
    for _ in range(2):
        assert _post(hooks.sendgrid(batch)).status_code == 200
    assert [(e["event_type"], e["event_id"]) for e in _engagements()] == [
        ("delivered", "sendgrid:sg-2"),
        ("clicked", "sendgrid:sg-3"),
    ] * 2
    [unmatched] = UnmatchedProviderEvent.objects.all()
    assert (unmatched.provider, unmatched.event_id, unmatched.event_type) == ("sendgrid", "sendgrid:sg-4", "opened")
    assert unmatched.recipient_hash == value_hash("other@example.com")
    assert outreach.pk == _engagements()[0]["outreach_id"]


def test_an_event_without_our_provider_id_is_matched_by_the_metadatas_outreach_id(anymail):
    outreach = _outreach("")
    event = hooks.sendgrid_event("delivered", "unknown-id", sg_event_id="sg-9", outreach_id=str(outreach.pk))
    _post(hooks.sendgrid([event]))
    [delivered] = _engagements()
    assert delivered["outreach_id"] == outreach.pk


def test_ses_bounces_are_hard_when_permanent_and_soft_when_transient(anymail):
    outreach = _outreach("0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000")
    assert _post(hooks.ses("Bounce", outreach.provider_message_id, sns_id="sns-1")).status_code == 200
    transient = hooks.ses("Bounce", outreach.provider_message_id, sns_id="sns-2", bounce={"bounceType": "Transient"})
    assert _post(transient).status_code == 200
    permanent, soft = _engagements()
    assert (permanent["bounce_type"], permanent["event_id"]) == ("hard", "amazon_ses:sns-1")
    assert soft["bounce_type"] == "soft"


def test_an_ses_post_without_credentials_gets_the_401_sns_needs(anymail):
    outreach = _outreach("ses-1")
    response = _post(hooks.ses("Delivery", outreach.provider_message_id, sns_id="sns-3"), auth=None)
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"]
    assert _engagements() == []


@pytest.mark.parametrize(
    "post",
    [
        hooks.WebhookPost(
            "/webhooks/postmark/tracking/",
            b'{"RecordType": "Delivery", "MessageID": "m',
            {"Content-Type": "application/json"},
        ),
        hooks.WebhookPost(
            "/webhooks/sendgrid/tracking/", b'[{"event": "delivered"', {"Content-Type": "application/json"}
        ),
        hooks.WebhookPost(
            "/webhooks/postmark/tracking/",
            hooks.mailgun("delivered", "x@y", token="t" * 50).body,
            {"Content-Type": "application/json"},
        ),
        hooks.WebhookPost(
            "/webhooks/sendgrid/tracking/", hooks.postmark("Delivery", "m-3").body, {"Content-Type": "application/json"}
        ),
        hooks.WebhookPost(
            "/webhooks/mailgun/tracking/",
            json.dumps([hooks.sendgrid_event("open", "m", sg_event_id="s")]).encode(),
            {"Content-Type": "application/json"},
        ),
        hooks.WebhookPost(
            "/webhooks/amazon_ses/tracking/", hooks.postmark("Delivery", "m-3").body, {"Content-Type": "text/plain"}
        ),
    ],
    ids=[
        "truncated-postmark",
        "truncated-sendgrid",
        "mailgun-at-postmark",
        "postmark-at-sendgrid",
        "sendgrid-at-mailgun",
        "postmark-at-ses",
    ],
)
def test_a_body_anymail_cannot_read_is_a_clear_400_that_records_nothing(anymail, post):
    response = _post(post)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "\n" not in response.json()["detail"]
    assert _engagements() == []
    assert not UnmatchedProviderEvent.objects.exists()


def test_a_body_over_the_limit_gets_413_unread(anymail):
    anymail.WEBHOOK_MAX_BODY_BYTES = 4096
    outreach = _outreach("m-4")
    big = hooks.postmark("Delivery", outreach.provider_message_id, Details="x" * 5000)
    response = _post(big)
    assert response.status_code == 413
    assert "limit is 4096" in response.json()["detail"]
    assert _engagements() == []


def test_the_deployment_check_warns_when_a_provider_sends_without_a_webhook_secret(settings):
    settings.ANYMAIL = {}
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    [warning] = webhook_secret_is_set(None)
    assert warning.id == "pipeline_whisperer.W001"
    settings.ANYMAIL = {"WEBHOOK_SECRET": hooks.SECRET}
    assert webhook_secret_is_set(None) == []
    settings.ANYMAIL, settings.EMAIL_BACKEND = {}, "django.core.mail.backends.smtp.EmailBackend"
    assert webhook_secret_is_set(None) == []  # with SMTP no provider posts


def test_an_sns_subscription_confirmation_is_answered_200_and_records_nothing(anymail):
    assert _post(hooks.ses_subscription_confirmation("sns-sub-1")).status_code == 200
    assert _engagements() == []


def test_a_providers_head_check_is_answered_even_before_the_secret_is_set(settings):
    settings.ANYMAIL = {}
    assert Client().head("/webhooks/postmark/tracking/").status_code == 200
