"""Bounces, complaints, deferrals and unsubscribes through leads.services.feedback and the
feedback stage: suppression, exactly one reward, and soft-bounce retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leads.models import EngagementEvent, Lead, OutboxEvent, Outreach, Suppression, Variant
from leads.pipeline.events import outbox_event
from leads.pipeline.stages import FeedbackStage, Outcome
from leads.services.feedback import engagement_apply_batch, engagement_submit
from leads.services.suppression import address_key, value_hash
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory
from leads.topics import OUTREACH_EVENTS

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _retries(settings: Any) -> None:
    settings.OUTREACH_SOFT_BOUNCE_RETRIES = 2
    settings.OUTREACH_SOFT_BOUNCE_RETRY_MINUTES = 30
    settings.KAFKA_BOOTSTRAP_SERVERS = ""


def _sent(**fields: Any) -> Outreach:
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=AT, outreach_count=1)
    outreach = OutreachFactory(
        lead=lead, variant=VariantFactory(sends=1), status=Outreach.Status.SENT, sent_at=AT, **fields
    )
    return Outreach.objects.get(pk=outreach.pk)


def _event(outreach: Outreach, event_type: str, event_id: str, *, at: datetime = AT, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "outreach_id": outreach.pk,
        "occurred_at": at.isoformat(),
        "payload": {},
        **extra,
    }


def _apply(*events: dict[str, Any]) -> list[EngagementEvent]:
    return engagement_apply_batch(events=list(events))


def _beta(outreach: Outreach) -> tuple[float, float, int, int]:
    variant = Variant.objects.get(outreach=outreach)
    return variant.alpha, variant.beta, variant.successes, variant.failures


def _suppression(outreach: Outreach) -> Suppression | None:
    digest = value_hash(address_key(outreach.to_email))
    return Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value_hash=digest).first()


# --- Hard bounces, complaints, unsubscribes -------------------------------------------------


def test_a_hard_bounce_bounces_suppresses_and_is_one_failure():
    outreach = _sent()
    _apply(_event(outreach, "bounced", "b-1", bounce_type="hard"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "hard", "failure")
    assert outreach.bounced_at == AT
    assert Lead.objects.get(pk=outreach.lead_id).bounced_at == AT
    entry = _suppression(outreach)
    assert (entry.reason, entry.source) == (Suppression.Reason.HARD_BOUNCE, "feedback")
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


def test_a_bounce_without_a_type_is_hard():
    outreach = _sent()
    (engagement,) = _apply(_event(outreach, "bounced", "b-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type) == ("bounced", "hard")
    assert engagement.payload == {"bounce_type": "hard"}
    assert _suppression(outreach).reason == Suppression.Reason.HARD_BOUNCE


def test_a_complaint_marks_the_outreach_complained_suppresses_and_is_one_failure():
    outreach = _sent()
    _apply(_event(outreach, "complained", "c-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward, outreach.complained_at) == ("complained", "failure", AT)
    assert _suppression(outreach).reason == Suppression.Reason.COMPLAINT
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


def test_an_unsubscribe_suppresses_the_address_and_is_one_failure():
    outreach = _sent()
    _apply(_event(outreach, "unsubscribed", "u-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == ("unsubscribed", "failure")
    assert Lead.objects.get(pk=outreach.lead_id).unsubscribed_at == AT
    assert _suppression(outreach).reason == Suppression.Reason.UNSUBSCRIBED
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


@pytest.mark.parametrize("late", ["delivered", "opened", "clicked", "replied", "converted", "bounced"])
def test_nothing_after_a_complaint_changes_its_status_or_its_one_reward(late):
    outreach = _sent()
    _apply(_event(outreach, "complained", "c-1"), _event(outreach, late, "late-1", at=AT + timedelta(hours=1)))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == ("complained", "failure")
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


def test_a_complaint_after_an_unsubscribe_keeps_the_first_reward_and_reason_and_is_still_counted():
    outreach = _sent()
    _apply(_event(outreach, "unsubscribed", "u-1"), _event(outreach, "complained", "c-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward, outreach.complained_at) == ("unsubscribed", "failure", AT)
    assert _suppression(outreach).reason == Suppression.Reason.UNSUBSCRIBED
    assert Suppression.objects.count() == 1
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


@pytest.mark.parametrize(
    "event", [("bounced", {"bounce_type": "hard"}), ("complained", {}), ("unsubscribed", {})], ids=lambda e: e[0]
)
def test_the_same_event_again_changes_nothing(event):
    event_type, extra = event
    outreach = _sent()
    assert len(_apply(_event(outreach, event_type, "e-1", **extra))) == 1
    before = Outreach.objects.filter(pk=outreach.pk).values().get()
    assert _apply(_event(outreach, event_type, "e-1", **extra)) == []
    assert Outreach.objects.filter(pk=outreach.pk).values().get() == before
    assert (EngagementEvent.objects.count(), Suppression.objects.count()) == (1, 1)
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


def test_a_hard_bounce_and_a_complaint_of_one_outreach_in_one_batch_give_one_reward():
    outreach = _sent()
    _apply(_event(outreach, "bounced", "b-1"), _event(outreach, "complained", "c-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == ("bounced", "failure")
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


# --- Soft bounces and deferrals --------------------------------------------------------------


def test_a_soft_bounce_reschedules_the_mail_and_suppresses_nothing():
    outreach = _sent()
    (engagement,) = _apply(_event(outreach, "bounced", "s-1", bounce_type="soft"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.soft_bounces, outreach.reward) == ("scheduled", 1, "")
    assert outreach.scheduled_for == AT + timedelta(minutes=30)
    assert (outreach.bounce_type, outreach.bounced_at) == ("", None)
    assert engagement.payload == {"bounce_type": "soft"}
    assert Lead.objects.get(pk=outreach.lead_id).bounced_at is None
    assert not Suppression.objects.exists()
    assert _beta(outreach) == (1.0, 1.0, 0, 0)


def _resent(outreach: Outreach, at: datetime) -> None:
    """What the dispatcher does with a due retry: send it again."""
    Outreach.objects.filter(pk=outreach.pk).update(status=Outreach.Status.SENT, sent_at=at)


def test_each_retry_waits_longer_and_after_the_retries_the_soft_bounce_is_one_failure_without_suppression():
    outreach = _sent()
    waits = []
    for attempt in range(2):  # OUTREACH_SOFT_BOUNCE_RETRIES = 2
        at = AT + timedelta(hours=attempt * 3)
        _apply(_event(outreach, "bounced", f"s-{attempt}", at=at, bounce_type="soft"))
        outreach.refresh_from_db()
        assert (outreach.status, outreach.soft_bounces, outreach.reward) == ("scheduled", attempt + 1, "")
        assert outreach.scheduled_for is not None
        waits.append(outreach.scheduled_for - at)
        _resent(outreach, outreach.scheduled_for)
    assert waits == [timedelta(minutes=30), timedelta(minutes=60)]
    _apply(_event(outreach, "bounced", "s-last", at=AT + timedelta(hours=9), bounce_type="soft"))
    _apply(_event(outreach, "bounced", "s-later", at=AT + timedelta(hours=10), bounce_type="soft"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "soft", "failure")
    assert outreach.soft_bounces == 2
    assert not Suppression.objects.exists()
    assert Lead.objects.get(pk=outreach.lead_id).bounced_at is None
    assert _beta(outreach) == (1.0, 2.0, 0, 1)


def test_with_no_retries_the_first_soft_bounce_is_the_failure(settings):
    settings.OUTREACH_SOFT_BOUNCE_RETRIES = 0
    outreach = _sent()
    _apply(_event(outreach, "bounced", "s-1", bounce_type="soft"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "soft", "failure")


def test_a_second_soft_bounce_before_the_retry_went_out_changes_nothing():
    outreach = _sent()
    _apply(_event(outreach, "bounced", "s-1", bounce_type="soft"))
    _apply(_event(outreach, "bounced", "s-2", at=AT + timedelta(minutes=5), bounce_type="soft"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.soft_bounces, outreach.scheduled_for) == (
        "scheduled",
        1,
        AT + timedelta(minutes=30),
    )


def test_a_soft_bounce_of_mail_that_was_opened_is_only_recorded():
    outreach = _sent()
    _apply(_event(outreach, "opened", "o-1"), _event(outreach, "bounced", "s-1", bounce_type="soft"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.soft_bounces) == ("opened", 0)
    assert EngagementEvent.objects.filter(event_type="bounced").count() == 1


def test_an_open_after_a_soft_bounce_takes_the_mail_out_of_the_queue():
    outreach = _sent()
    _apply(_event(outreach, "bounced", "s-1", bounce_type="soft"), _event(outreach, "opened", "o-1"))
    outreach.refresh_from_db()
    assert outreach.status == "opened"  # it arrived after all: no second mail


def test_a_hard_bounce_of_a_mail_waiting_for_its_retry_bounces_it_for_good():
    outreach = _sent()
    _apply(_event(outreach, "bounced", "s-1", bounce_type="soft"), _event(outreach, "bounced", "h-1"))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.bounce_type, outreach.reward) == ("bounced", "hard", "failure")
    assert _suppression(outreach).reason == Suppression.Reason.HARD_BOUNCE


def test_a_deferral_is_recorded_and_changes_no_status_or_reward():
    outreach = _sent()
    (engagement,) = _apply(_event(outreach, "deferred", "d-1"))
    outreach.refresh_from_db()
    assert engagement.event_type == "deferred"
    assert (outreach.status, outreach.reward, outreach.soft_bounces) == ("sent", "", 0)
    assert not Suppression.objects.exists()
    assert _beta(outreach) == (1.0, 1.0, 0, 0)


# --- Through the feedback stage ------------------------------------------------------------


def _through_the_stage(events: list[dict[str, Any]]) -> list[Outcome]:
    """Queue the events as the API does, then hand their outbox rows to the feedback stage."""
    before = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).count()
    engagement_submit(events=events)
    rows = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).order_by("id")[before:]
    return FeedbackStage().process_batch([outbox_event(row) for row in rows])


def test_the_stage_applies_a_batch_of_bounces_and_complaints_once_each():
    hard, soft, complained = _sent(), _sent(), _sent()
    events = [
        {"event_id": "h-1", "event_type": "bounced", "outreach_id": hard.pk, "occurred_at": AT},
        {"event_id": "s-1", "event_type": "bounced", "bounce_type": "soft", "outreach_id": soft.pk, "occurred_at": AT},
        {"event_id": "c-1", "event_type": "complained", "outreach_id": complained.pk, "occurred_at": AT},
    ]
    assert _through_the_stage(events) == ["applied"] * 3
    assert _through_the_stage(events) == ["applied"] * 3  # new bus ids, same engagement ids
    statuses = dict(Outreach.objects.values_list("pk", "status"))
    assert [statuses[o.pk] for o in (hard, soft, complained)] == ["bounced", "scheduled", "complained"]
    assert sorted(Suppression.objects.values_list("reason", flat=True)) == ["complaint", "hard_bounce"]
    assert sorted(Outreach.objects.values_list("reward", flat=True)) == ["", "failure", "failure"]
    assert sum(Variant.objects.values_list("failures", flat=True)) == 2
    assert EngagementEvent.objects.count() == 3


def test_the_stage_dead_letters_an_engagement_with_an_unknown_bounce_type():
    outreach = _sent()
    engagement_submit(events=[{"event_id": "x-1", "event_type": "bounced", "outreach_id": outreach.pk}])
    row = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).latest("id")
    row.payload["bounce_type"] = "medium"
    row.save(update_fields=["payload"])
    assert FeedbackStage().process_batch([outbox_event(row)]) == ["dead"]
    assert Outreach.objects.get(pk=outreach.pk).status == "sent"
