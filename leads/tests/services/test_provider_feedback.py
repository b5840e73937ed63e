"""What the feedback stage makes of the providers' engagements: the reward each experiment's
success event gives (exactly once), rejections (failed, no reward, suppression by reason), the
reporting provider stored; and the provider event mapping (types, ids, bounce types)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent
from django.utils import timezone
from prometheus_client import REGISTRY

from leads.models import EngagementEvent, Experiment, Lead, OutboxEvent, Outreach, Suppression, Variant
from leads.services.feedback import engagement_apply_batch
from leads.services.outreach import outreach_expire_stale
from leads.services.provider_events import bounce_type, provider_event_id, provider_events_record
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory

pytestmark = pytest.mark.django_db


def _sent(success_event: str = Experiment.SuccessEvent.CONVERTED, **fields: Any) -> Outreach:
    experiment = ExperimentFactory(success_event=success_event)
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now(), outreach_count=1)
    variant = VariantFactory(experiment=experiment, sends=1)
    return OutreachFactory(lead=lead, variant=variant, status=Outreach.Status.SENT, sent_at=timezone.now(), **fields)


def _event(outreach: Outreach, event_type: str, event_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "outreach_id": outreach.pk,
        "occurred_at": timezone.now().isoformat(),
        "provider": "postmark",
        "payload": payload,
    }


def _posterior(outreach: Outreach) -> tuple[float, float]:
    variant = Variant.objects.get(pk=outreach.variant.pk)
    return variant.alpha, variant.beta


def test_a_click_is_the_success_of_an_experiment_that_names_clicks_once_only():
    outreach = _sent(Experiment.SuccessEvent.CLICKED)
    engagement_apply_batch(events=[_event(outreach, "opened", "o-1"), _event(outreach, "clicked", "c-1")])
    engagement_apply_batch(events=[_event(outreach, "clicked", "c-2"), _event(outreach, "converted", "v-1")])
    outreach.refresh_from_db()
    assert (outreach.reward, outreach.status) == (Outreach.Reward.SUCCESS, Outreach.Status.CONVERTED)
    assert _posterior(outreach) == (2.0, 1.0)


def test_a_click_is_no_success_where_the_experiment_counts_conversions():
    outreach = _sent()
    engagement_apply_batch(events=[_event(outreach, "clicked", "c-3")])
    outreach.refresh_from_db()
    assert (outreach.reward, _posterior(outreach)) == ("", (1.0, 1.0))
    engagement_apply_batch(events=[_event(outreach, "converted", "v-2")])
    assert _posterior(outreach) == (2.0, 1.0)


@pytest.mark.parametrize(
    ("classification", "rewarded"), [("interested", True), ("not_interested", False), (None, False)]
)
def test_a_reply_is_a_success_only_when_classified_interested(classification, rewarded):
    outreach = _sent(Experiment.SuccessEvent.REPLIED_INTERESTED)
    payload = {"classification": classification} if classification else {}
    engagement_apply_batch(events=[_event(outreach, "replied", "r-1", **payload)])
    assert _posterior(outreach) == ((2.0, 1.0) if rewarded else (1.0, 1.0))


def test_a_hard_bounce_still_fails_an_experiment_that_counts_clicks():
    outreach = _sent(Experiment.SuccessEvent.CLICKED)
    engagement_apply_batch(events=[{**_event(outreach, "bounced", "b-1"), "bounce_type": "hard"}])
    engagement_apply_batch(events=[_event(outreach, "clicked", "c-4")])
    assert _posterior(outreach) == (1.0, 2.0)


@pytest.mark.parametrize(
    ("reason", "suppressed"),
    [("invalid", "hard_bounce"), ("bounced", "hard_bounce"), ("unsubscribed", "unsubscribed"), ("blocked", None)],
)
def test_a_rejection_fails_the_outreach_without_a_reward_and_suppresses_by_its_reason(reason, suppressed):
    outreach = _sent(to_email="rejected@example.com", recipient_key="rejected@example.com")
    [engagement] = engagement_apply_batch(events=[_event(outreach, "rejected", "x-1", reject_reason=reason)])
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.FAILED, "")
    assert outreach.failed_at is not None
    assert engagement.provider == "postmark"
    assert _posterior(outreach) == (1.0, 1.0)
    entry = Suppression.objects.filter(value="rejected@example.com").first()
    assert (entry.reason if entry else None) == suppressed
    outreach.sent_at = datetime(2020, 1, 1, tzinfo=UTC)
    outreach.save(update_fields=["sent_at"])
    outreach_expire_stale()  # it never reached anyone: expiry gives it no failure either
    assert _posterior(outreach) == (1.0, 1.0)


def test_a_rejection_after_delivery_keeps_the_status():
    outreach = _sent()
    engagement_apply_batch(events=[_event(outreach, "opened", "o-2"), _event(outreach, "rejected", "x-2")])
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.OPENED


def test_the_provider_is_stored_on_the_engagement_and_our_api_leaves_it_empty():
    outreach = _sent()
    api_event = {**_event(outreach, "opened", "api-1"), "provider": None}
    engagement_apply_batch(events=[_event(outreach, "delivered", "d-1"), api_event])
    assert dict(EngagementEvent.objects.values_list("event_id", "provider")) == {"d-1": "postmark", "api-1": ""}


def _tracking(**fields: Any) -> AnymailTrackingEvent:
    return AnymailTrackingEvent(**{"event_type": "delivered", "message_id": "m-1", **fields})


def test_event_ids_are_the_providers_own_or_a_stable_hash():
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert provider_event_id("sendgrid", _tracking(event_id="sg-1")) == "sendgrid:sg-1"
    hashed = provider_event_id("postmark", _tracking(timestamp=at, recipient="a@example.com"))
    assert hashed == provider_event_id("postmark", _tracking(timestamp=at, recipient="a@example.com"))
    assert hashed != provider_event_id(
        "postmark", _tracking(event_type="opened", timestamp=at, recipient="a@example.com")
    )
    assert len(provider_event_id("mailgun", _tracking(event_id="t" * 200))) <= 100


@pytest.mark.parametrize(
    ("provider", "fields", "expected"),
    [
        ("postmark", {"reject_reason": "bounced", "esp_event": {"Type": "HardBounce"}}, "hard"),
        ("postmark", {"reject_reason": "bounced", "esp_event": {"Type": "SoftBounce"}}, "soft"),
        ("amazon_ses", {"reject_reason": "bounced", "esp_event": {"bounce": {"bounceType": "Permanent"}}}, "hard"),
        ("amazon_ses", {"reject_reason": "bounced", "esp_event": {"bounce": {"bounceType": "Undetermined"}}}, "soft"),
        ("sendgrid", {"esp_event": {"type": "bounce"}}, "hard"),
        ("sendgrid", {"esp_event": {"type": "blocked"}}, "soft"),
        ("mailgun", {"reject_reason": "invalid"}, "hard"),
        ("mailgun", {"reject_reason": "other"}, "soft"),
        ("mailgun", {"reject_reason": "timed_out"}, "soft"),
    ],
)
def test_bounce_types_follow_the_reason_and_the_providers_own_fields(provider, fields, expected):
    assert bounce_type(provider, _tracking(event_type="bounced", **fields)) == expected


def test_a_batch_is_matched_in_one_query_and_written_in_one_insert_each(django_assert_max_num_queries):
    outreach = [_sent(provider_message_id=f"pm-{n}") for n in range(20)]
    events = [("SendGrid", _tracking(message_id=o.provider_message_id, event_id=f"sg-{o.pk}")) for o in outreach]
    events += [("SendGrid", _tracking(message_id="nobody", event_id=f"u-{n}")) for n in range(20)]
    events += [("SendGrid", _tracking(event_type="queued", event_id="q-1"))]
    with django_assert_max_num_queries(5):  # match, savepoint, outbox insert, unmatched insert, release
        outcome = provider_events_record(events=events)
    assert (outcome.matched, outcome.unmatched, outcome.ignored) == (20, 20, 1)
    assert OutboxEvent.objects.filter(event_type="engagement.delivered").count() == 20


def test_every_event_is_counted_by_provider_and_outcome():
    def count(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value("pipeline_provider_events_total", {"provider": "mailgun", "outcome": outcome})
            or 0
        )

    outreach = _sent(provider_message_id="<counted@mg.example>")
    before = {outcome: count(outcome) for outcome in ("matched", "unmatched", "ignored")}
    provider_events_record(
        events=[
            ("Mailgun", _tracking(message_id=outreach.provider_message_id, event_id="c-1")),
            ("Mailgun", _tracking(message_id="<stranger@mg.example>", event_id="c-2")),
            ("Mailgun", _tracking(event_type="queued", event_id="c-3")),
            ("Mailgun", _tracking(event_type="autoresponded", event_id="c-4")),
        ]
    )
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "matched": 1,
        "unmatched": 1,
        "ignored": 2,
    }
