"""Provider tracking webhooks end to end in the production shape: gunicorn with the production
configuration, the test database, and `run_pipeline relay` and `run_pipeline feedback` on a real
broker (tansu), all started once for the module. Each provider's documented payloads are posted
over HTTP, three times each and out of order; the posterior moves exactly once. Refused and
malformed posts change nothing, and the stage keeps running.

"Applied" is not waited for by time: a test waits until the feedback stage has recorded every
outbox row the webhooks wrote for its lead (ProcessedEvent), then looks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.utils import timezone

from leads.models import (
    EngagementEvent,
    Experiment,
    Lead,
    OutboxEvent,
    Outreach,
    ProcessedEvent,
    Suppression,
    UnmatchedProviderEvent,
    Variant,
)
from leads.services.privacy import privacy_erase
from leads.tests import webhook_payloads as hooks
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory
from tests.pipeline_support import wait_until
from tests.stand_ins import PipelineProcess, TansuBroker, free_port, pipeline_env
from tests.test_gunicorn_config import Gunicorn

pytestmark = pytest.mark.django_db(transaction=True)
_JSON: dict[str, Any] = {"Content-Type": "application/json"}


class Stack:
    def __init__(self, server: Gunicorn, feedback: PipelineProcess) -> None:
        self.server, self.feedback = server, feedback

    def post(self, post: hooks.WebhookPost, *, auth: str | None = hooks.SECRET) -> requests.Response:
        request = post.with_auth(auth) if auth else post
        url = f"http://127.0.0.1:{self.server.port}{request.path}"
        return requests.post(url, data=request.body, headers=request.headers, timeout=30)


@pytest.fixture(scope="module")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    broker = TansuBroker().start()
    logs = tmp_path_factory.mktemp("webhooks")
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"], bootstrap=broker.bootstrap, smtp_port=free_port()
    )
    env.update(
        ANYMAIL_WEBHOOK_SECRET=hooks.SECRET,
        ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY=hooks.MAILGUN_SIGNING_KEY,
        ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS="false",
        # SES posts are signed by a loopback key; its certificate is served from this process.
        ANYMAIL_AMAZON_SES_SNS_CERT_URL_PATTERN=hooks.sns_signer().cert_url_pattern,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="2",
    )
    processes = [PipelineProcess(stage, env, Path(logs)).start() for stage in ("relay", "feedback")]
    server = Gunicorn(env, Path(logs) / "gunicorn.log").start()
    yield Stack(server, processes[1])
    server.stop()
    for process in processes:
        process.kill()
    broker.stop()


def _sent(provider_message_id: str, success_event: str = Experiment.SuccessEvent.CONVERTED) -> Outreach:
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now(), outreach_count=1)
    variant = VariantFactory(experiment=ExperimentFactory(success_event=success_event), sends=1)
    return OutreachFactory(
        lead=lead,
        variant=variant,
        status=Outreach.Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=provider_message_id,
    )


def _applied(stack: Stack, *outreach: Outreach) -> None:
    """Wait until the feedback stage has taken every engagement written for these leads."""
    # Read now: an erasure renames the lead.
    keys = list(Lead.objects.filter(outreach__in=[o.pk for o in outreach]).values_list("lightfield_id", flat=True))
    engagements = OutboxEvent.objects.filter(key__in=keys, event_type__startswith="engagement.")

    def done() -> bool:
        assert stack.feedback.alive(), stack.feedback.log()[-3000:]
        ids = {str(i) for i in engagements.values_list("event_id", flat=True)}
        return bool(ids) and ids <= set(
            ProcessedEvent.objects.filter(stage="feedback", event_id__in=ids).values_list("event_id", flat=True)
        )

    wait_until(done, timeout=90, what="the feedback stage to apply the webhooks' events")


def _posterior(outreach: Outreach) -> tuple[float, float]:
    variant = Variant.objects.get(pk=outreach.variant.pk)
    return variant.alpha, variant.beta


def _three_times_out_of_order(stack: Stack, posts: list[hooks.WebhookPost]) -> None:
    """Every post three times: the later events first, then all again in order, then reversed."""
    for round_ in (posts[::-1], posts, posts[::-1]):
        for post in round_:
            response = stack.post(post)
            assert response.status_code == 200, response.text


def test_postmark_open_and_click_before_delivery_reward_a_click_experiment_once(stack):
    outreach = _sent("5e1f7a1c-0000-4000-8000-000000000001", Experiment.SuccessEvent.CLICKED)
    posts = [
        hooks.postmark("Delivery", outreach.provider_message_id),
        hooks.postmark("Open", outreach.provider_message_id),
        hooks.postmark("Click", outreach.provider_message_id, OriginalLink="https://whisperer.example/pricing"),
    ]
    _three_times_out_of_order(stack, posts)
    _applied(stack, outreach)
    assert _posterior(outreach) == (2.0, 1.0)
    outreach.refresh_from_db()
    assert (outreach.reward, outreach.status) == (Outreach.Reward.SUCCESS, Outreach.Status.CLICKED)
    engagements = EngagementEvent.objects.filter(outreach=outreach)
    assert sorted(engagements.values_list("event_type", flat=True)) == ["clicked", "delivered", "opened"]
    assert set(engagements.values_list("provider", flat=True)) == {"postmark"}
    assert engagements.get(event_type="clicked").payload["click_url"] == "https://whisperer.example/pricing"


def test_a_signed_mailgun_bounce_before_its_delivery_fails_the_variant_once_and_suppresses(stack):
    outreach = _sent("<20261130120000.1.mg@whisperer.example>")
    bare = outreach.provider_message_id.strip("<>")
    posts = [hooks.mailgun("delivered", bare, token="d" * 50), hooks.mailgun("failed", bare, token="f" * 50)]
    _three_times_out_of_order(stack, posts)
    _applied(stack, outreach)
    assert _posterior(outreach) == (1.0, 2.0)
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type) == (Outreach.Status.BOUNCED, Outreach.BounceType.HARD)
    assert Suppression.objects.filter(value=outreach.recipient_key or outreach.to_email, reason="hard_bounce").exists()


def test_a_sendgrid_batch_posted_three_times_moves_the_posterior_once_and_records_the_unmatched_once(stack):
    outreach = _sent("a2b9c6e0-0000-4000-8000-000000000003")
    batch = [
        hooks.sendgrid_event("spamreport", outreach.provider_message_id, sg_event_id="sg-c"),
        hooks.sendgrid_event("open", outreach.provider_message_id, sg_event_id="sg-o"),
        hooks.sendgrid_event("processed", outreach.provider_message_id, sg_event_id="sg-p"),
        hooks.sendgrid_event("delivered", outreach.provider_message_id, sg_event_id="sg-d"),
        hooks.sendgrid_event("delivered", "not-ours", sg_event_id="sg-x", email="stranger@example.org"),
    ]
    _three_times_out_of_order(stack, [hooks.sendgrid(batch)])
    _applied(stack, outreach)
    assert _posterior(outreach) == (1.0, 2.0)
    assert Outreach.objects.get(pk=outreach.pk).status == Outreach.Status.COMPLAINED
    assert EngagementEvent.objects.filter(outreach=outreach).count() == 3  # processed is only counted
    [unmatched] = UnmatchedProviderEvent.objects.all()
    assert (unmatched.provider, unmatched.provider_message_id) == ("sendgrid", "not-ours")
    assert "stranger" not in json.dumps([unmatched.metadata, unmatched.recipient_hash])


def test_an_ses_bounce_before_delivery_through_sns_fails_once(stack):
    outreach = _sent("010f0190a1b2c3d4-0000-4000-8000-000000000004-000000")
    posts = [
        hooks.ses("Delivery", outreach.provider_message_id, sns_id="11111111-aaaa-5bbb-8ccc-000000000001"),
        hooks.ses("Bounce", outreach.provider_message_id, sns_id="11111111-aaaa-5bbb-8ccc-000000000002"),
    ]
    _three_times_out_of_order(stack, posts)
    _applied(stack, outreach)
    assert _posterior(outreach) == (1.0, 2.0)
    assert EngagementEvent.objects.filter(outreach=outreach, provider="amazon_ses").count() == 2


def test_refused_and_malformed_posts_change_nothing_and_the_stage_keeps_running(stack):
    outreach = _sent("bad-input-0000-4000-8000-000000000005")
    message_id = outreach.provider_message_id
    refused = [
        (stack.post(hooks.postmark("Bounce", message_id), auth="hooks:wrong-password"), 400),
        (stack.post(hooks.mailgun("failed", message_id, token="b" * 50, key="forged-key")), 400),
        (stack.post(hooks.ses("Bounce", message_id, sns_id="22222222-aaaa-5bbb-8ccc-000000000001"), auth=None), 401),
        (stack.post(_changed_after_signing(hooks.ses("Bounce", message_id, sns_id="22222222-aaaa-5bbb-8ccc-2"))), 400),
        (stack.post(hooks.WebhookPost("/webhooks/postmark/tracking/", b'{"RecordType": "Bou', _JSON)), 400),
        (
            stack.post(
                hooks.WebhookPost("/webhooks/sendgrid/tracking/", hooks.postmark("Bounce", message_id).body, _JSON)
            ),
            400,
        ),
        (stack.post(hooks.WebhookPost("/webhooks/postmark/tracking/", b"[" + b" " * 10_000_000 + b"]", _JSON)), 413),
    ]
    for response, status in refused:
        assert response.status_code == status, response.text
        assert status == 401 or response.headers["Content-Type"] == "application/problem+json"
    assert not OutboxEvent.objects.exists()
    assert not UnmatchedProviderEvent.objects.exists()
    assert stack.post(hooks.postmark("Delivery", message_id)).status_code == 200
    _applied(stack, outreach)
    assert Outreach.objects.get(pk=outreach.pk).status == Outreach.Status.DELIVERED
    assert _posterior(outreach) == (1.0, 1.0)


def _changed_after_signing(post: hooks.WebhookPost) -> hooks.WebhookPost:
    """An SNS post whose SES event was edited after SNS signed it (a hard bounce passed off as a soft one)."""
    message = json.loads(post.body)
    message["Message"] = message["Message"].replace("Permanent", "Transient")
    return hooks.WebhookPost(post.path, json.dumps(message).encode(), post.headers)


def test_a_bounce_for_an_erased_person_is_applied_without_their_address(stack):
    outreach = _sent("erased-0000-4000-8000-000000000006")
    address = outreach.to_email
    privacy_erase(email=address, requested_by="test")
    for _ in range(3):
        assert stack.post(hooks.postmark("Bounce", outreach.provider_message_id, Email=address)).status_code == 200
    _applied(stack, outreach)
    assert _posterior(outreach) == (1.0, 2.0)
    stored = json.dumps(
        [
            list(EngagementEvent.objects.values("payload", "event_id")),
            list(OutboxEvent.objects.values_list("payload", flat=True)),
            list(UnmatchedProviderEvent.objects.values()),
        ],
        default=str,
    )
    assert address.lower() not in stored.lower()


def test_with_the_database_down_a_webhook_gets_503_so_the_provider_retries(stack, tmp_path):
    env = {**stack.server.env, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"}
    env.pop("GUNICORN_BIND")
    down = Gunicorn({**env, "WEB_CONCURRENCY": "1"}, tmp_path / "gunicorn-down.log").start()
    try:
        response = Stack(down, stack.feedback).post(hooks.postmark("Delivery", "db-down-message"))
    finally:
        down.stop()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert response.headers["Content-Type"] == "application/problem+json"
