"""The dispatcher through anymail's Postmark, Mailgun and Amazon SES backends, against a stand-in of each
provider's send API on loopback: our metadata and tag travel with each message, the provider's
message id is stored beside our Message-ID, one connection carries a share, an outage (5xx, 429,
a timeout) is waited out, a 4xx fails that outreach alone, and a dispatcher killed mid-batch
sends nothing twice."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Outreach, Variant
from leads.services.dispatch import dispatch_due
from leads.tests.factories import LeadFactory, VariantFactory
from tests.pipeline_support import wait_until
from tests.provider_stand_ins import HANG, ProviderStandIn, Received

# Not one of anymail's warnings either (it warns, or refuses, where a provider cannot take what we send).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("error::anymail.exceptions.AnymailWarning"),
]

MAILGUN_DOMAIN = "mg.whisperer.example"
_people = itertools.count()


@pytest.fixture
def stand_in() -> Iterator[ProviderStandIn]:
    started = ProviderStandIn().start()
    yield started
    started.stop()


def _backend_settings(provider: str, stand_in: ProviderStandIn) -> tuple[str, dict[str, object]]:
    """EMAIL_BACKEND and ANYMAIL for `provider`, its API URL pointing at the stand-in."""
    if provider == "ses":
        client = {
            "endpoint_url": stand_in.url,
            "region_name": "eu-west-1",
            "aws_access_key_id": "stand-in",
            "aws_secret_access_key": "stand-in",
            # One try per call, as the requests-based backends make: our retries decide.
            "config": {"retries": {"total_max_attempts": 1}, "connect_timeout": 1, "read_timeout": 1},
        }
        return "anymail.backends.amazon_ses.EmailBackend", {"AMAZON_SES_CLIENT_PARAMS": client}
    if provider == "postmark":
        return "anymail.backends.postmark.EmailBackend", {
            "POSTMARK_SERVER_TOKEN": "stand-in-token",
            "POSTMARK_API_URL": stand_in.url + "/",
        }
    return "anymail.backends.mailgun.EmailBackend", {
        "MAILGUN_API_KEY": "stand-in-key",
        "MAILGUN_SENDER_DOMAIN": MAILGUN_DOMAIN,
        "MAILGUN_API_URL": stand_in.url + "/v3",
    }


@pytest.fixture(params=["postmark", "mailgun", "ses"])
def provider(request, settings, stand_in: ProviderStandIn) -> str:
    """Mail goes out through this provider's anymail backend to the stand-in."""
    settings.EMAIL_BACKEND, settings.ANYMAIL = _backend_settings(request.param, stand_in)
    settings.ANYMAIL["REQUESTS_TIMEOUT"] = 1
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # outreach.sent stays in the outbox: no in-process stages
    settings.OUTREACH_SEND_CONNECTIONS = 1
    return request.param


def _queue(count: int, *, variant: Variant | None = None, **fields) -> list[Outreach]:
    """Outreach due now, as the outreach stage stores it: one lead each."""
    variant = variant or VariantFactory()
    leads = [
        LeadFactory(contact_email=f"person{next(_people)}@bigco.example", status=Lead.Status.SCORED)
        for _ in range(count)
    ]
    return Outreach.objects.bulk_create(
        Outreach(
            lead=lead,
            variant=variant,
            to_email=lead.contact_email,
            recipient_key=lead.contact_email,
            recipient_domain="bigco.example",
            subject="Hello",
            body="Hi there.",
            message_id=f"<{lead.pk}@whisperer.example>",
            status=fields.get("status", Outreach.Status.SCHEDULED),
            scheduled_for=timezone.now() - timedelta(minutes=1),
            claimed_at=fields.get("claimed_at"),
            handed_over_at=fields.get("handed_over_at"),
            provider_message_id=fields.get("provider_message_id", ""),
        )
        for lead in leads
    )


def _message_id_sent(request: Received) -> str:
    if request.api == "postmark":
        return {header["Name"]: header["Value"] for header in request.fields["Headers"]}["Message-ID"]
    if request.api == "ses":
        assert request.raw is not None
        return request.raw["Message-ID"]
    return request.fields["h:Message-Id"][0]


def test_the_request_carries_our_metadata_and_tag_and_the_provider_id_is_stored_beside_our_message_id(
    provider, stand_in
):
    [row] = _queue(1)
    experiment_id = str(row.variant.experiment_id)

    assert dispatch_due(limit=10).sent == 1

    [request] = stand_in.requests()
    metadata = {"outreach_id": str(row.pk), "variant_id": str(row.variant_id), "experiment_id": experiment_id}
    if provider == "postmark":
        assert request.headers["X-Postmark-Server-Token"] == "stand-in-token"
        assert (request.fields["Metadata"], request.fields["Tag"]) == (metadata, f"experiment-{experiment_id}")
    elif provider == "ses":  # in the raw message: SES's own tags restrict their content
        assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=stand-in/")
        assert (json.loads(request.raw["X-Metadata"]), request.raw.get_all("X-Tag")) == (
            metadata,
            [f"experiment-{experiment_id}"],
        )
    else:
        assert request.path == f"/v3/{MAILGUN_DOMAIN}/messages"
        assert {key: request.fields[f"v:{key}"] for key in metadata} == {k: [v] for k, v in metadata.items()}
        assert request.fields["o:tag"] == [f"experiment-{experiment_id}"]
    assert _message_id_sent(request) == row.message_id
    row.refresh_from_db()
    assert (row.status, row.message_id, row.provider_message_id) == ("sent", row.message_id, request.accepted_id)
    assert row.handed_over_at is not None and row.handed_over_at <= row.updated_at


def test_each_share_goes_over_one_reused_connection(provider, stand_in, settings):
    settings.OUTREACH_SEND_CONNECTIONS = 2
    rows = _queue(6)

    assert dispatch_due(limit=10).sent == 6

    assert stand_in.connections == 2
    assert sorted(request.recipient for request in stand_in.accepted()) == sorted(row.to_email for row in rows)


@pytest.mark.parametrize("outage", [503, 429, HANG], ids=["5xx", "429", "timeout"])
def test_a_provider_that_is_down_fails_nothing_and_each_mail_goes_once_it_recovers(provider, stand_in, outage):
    rows = _queue(3)
    stand_in.outage = outage

    down = dispatch_due(limit=10)

    assert (down.sent, down.failed, down.deferred) == (0, 0, 3) and down.error is not None
    assert len(stand_in.requests()) == 3, "the first mail tried three times, then the share waited"
    assert set(Outreach.objects.values_list("status", "handed_over_at")) == {(Outreach.Status.PENDING, None)}
    stand_in.recover()

    assert dispatch_due(limit=10).sent == 3
    assert Counter(request.recipient for request in stand_in.accepted()) == {row.to_email: 1 for row in rows}
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SENT}


POSTMARK_FROM_ERROR = "Invalid 'From' address: 'outreach@localhost'."
MAILGUN_FROM_ERROR = "'from' parameter is not a valid address. please check documentation"
SES_FROM_ERROR = "Email address is not verified. The following identities failed the check: outreach@localhost"
PROVIDER_ERRORS = {  # the status, the documented error body, the provider's message in it
    "postmark": (422, {"ErrorCode": 300, "Message": POSTMARK_FROM_ERROR}, POSTMARK_FROM_ERROR),
    "mailgun": (400, {"message": MAILGUN_FROM_ERROR}, MAILGUN_FROM_ERROR),
    "ses": (400, {"__type": "MessageRejected", "message": SES_FROM_ERROR}, SES_FROM_ERROR),
}


def test_a_client_error_fails_that_outreach_with_the_providers_message_and_the_rest_go(provider, stand_in):
    refused, *others = _queue(3)
    status, body, message = PROVIDER_ERRORS[provider]
    stand_in.errors[refused.to_email] = (status, body)

    report = dispatch_due(limit=10)

    assert (report.sent, report.failed, report.deferred) == (2, 1, 0)
    assert len(stand_in.requests()) == 3, "a client error is not retried"
    refused.refresh_from_db()
    assert refused.status == Outreach.Status.FAILED
    assert message in refused.error
    assert Lead.objects.get(pk=refused.lead_id).status == Lead.Status.SCORED, "the lead itself is not at fault"
    assert {row.status for row in Outreach.objects.filter(pk__in=[o.pk for o in others])} == {Outreach.Status.SENT}


def test_a_recipient_the_provider_rejects_is_refused_like_an_smtp_refusal(settings, stand_in):
    settings.EMAIL_BACKEND, settings.ANYMAIL = _backend_settings("postmark", stand_in)
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    inactive, other = _queue(2)
    stand_in.errors[inactive.to_email] = (
        422,
        {
            "ErrorCode": 406,
            "Message": "You tried to send to a recipient that has been marked as inactive.\n"
            f"Found inactive addresses: {inactive.to_email}.\n"
            "Inactive recipients are ones that have generated a hard bounce or a spam complaint.",
        },
    )

    assert dispatch_due(limit=10).sent == 1

    inactive.refresh_from_db()
    assert (inactive.status, inactive.error) == (
        Outreach.Status.FAILED,
        f"recipient refused by Postmark: {{'{inactive.to_email}': 'rejected'}}",
    )
    assert Lead.objects.get(pk=inactive.lead_id).status == Lead.Status.FAILED
    assert Outreach.objects.get(pk=other.pk).status == Outreach.Status.SENT


def test_a_stale_claim_handed_over_already_is_recorded_as_sent_without_a_resend(provider, stand_in):
    now, variant = timezone.now(), VariantFactory()
    stale = now - timedelta(hours=1)
    [handed_over] = _queue(
        1,
        variant=variant,
        status=Outreach.Status.PENDING,
        claimed_at=stale,
        handed_over_at=stale,
        provider_message_id="id-from-the-first-hand-over",
    )
    [interrupted] = _queue(1, variant=variant, status=Outreach.Status.PENDING, claimed_at=stale)

    assert dispatch_due(now=now, limit=10).sent == 2

    [request] = stand_in.requests()
    assert (request.recipient, _message_id_sent(request)) == (
        interrupted.to_email,
        interrupted.message_id,
    )
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SENT}
    handed_over.refresh_from_db()
    assert (handed_over.provider_message_id, handed_over.handed_over_at) == ("id-from-the-first-hand-over", stale)
    assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.CONTACTED}
    assert Variant.objects.get(pk=variant.pk).sends == 2
    assert OutboxEvent.objects.filter(event_type="outreach.sent").count() == 2


def test_a_dispatcher_killed_mid_batch_then_another_sends_every_mail_to_the_provider_exactly_once(pipeline, stand_in):
    rows = _queue(12)
    stand_in.accept_limit = 4  # then the provider goes quiet, with two requests in flight
    backend, options = _backend_settings("postmark", stand_in)
    env = {
        "EMAIL_BACKEND": backend,
        **{f"ANYMAIL_{key}": str(value) for key, value in options.items()},
        "OUTREACH_SEND_CONNECTIONS": "2",
        "OUTREACH_DISPATCH_INTERVAL_SECONDS": "0.2",
        "OUTREACH_DISPATCH_CLAIM_TIMEOUT_SECONDS": "10",
    }
    first = pipeline("dispatch", **env)
    wait_until(lambda: len(stand_in.requests()) == 6, timeout=60, what="four mails accepted and two in flight")
    first.kill()  # SIGKILL: no second transaction, no clean-up

    assert Outreach.objects.filter(status=Outreach.Status.PENDING).count() == 12
    assert Outreach.objects.exclude(handed_over_at=None).count() == 4
    stand_in.recover()
    second = pipeline("dispatch", **env)
    wait_until(
        lambda: Outreach.objects.filter(status=Outreach.Status.SENT).count() == 12,
        timeout=90,
        what="every mail recorded as sent once the claims went stale",
    )
    assert second.terminate() == 0, second.log()
    assert second.log().count("handed over in an interrupted dispatch: not sent again") == 4

    assert Counter(request.recipient for request in stand_in.accepted()) == {row.to_email: 1 for row in rows}
    ids = dict(Outreach.objects.values_list("to_email", "provider_message_id"))
    assert ids == {request.recipient: request.accepted_id for request in stand_in.accepted()}
    assert OutboxEvent.objects.filter(event_type="outreach.sent").count() == 12
