"""Engagement and rewards through leads.services.feedback, including concurrent workers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections, transaction
from django.utils import timezone

from leads.models import EngagementEvent, Lead, OutboxEvent, Outreach, Variant
from leads.services.feedback import engagement_apply, engagement_submit, outreach_reward
from leads.services.outreach import outreach_expire_stale
from leads.tests.factories import LeadFactory, OutreachFactory, VariantFactory
from leads.topics import OUTREACH_EVENTS


def _sent_outreach(**fields: Any) -> Outreach:
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now(), outreach_count=1)
    variant = fields.pop("variant") if "variant" in fields else VariantFactory(sends=1)
    return OutreachFactory(lead=lead, variant=variant, status=Outreach.Status.SENT, sent_at=timezone.now(), **fields)


def _apply(outreach: Outreach, event_type: str, *, event_id: str | None = None, at: str | None = None) -> Any:
    return engagement_apply(
        event={
            "event_id": event_id or f"{event_type}-{outreach.pk}",
            "event_type": event_type,
            "outreach_id": outreach.pk,
            "occurred_at": at,
            "payload": {"via": "test"},
        }
    )


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(index)` in `count` threads that start together, each on its own connection."""
    barrier, results, errors = threading.Barrier(count), [None] * count, []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except Exception as error:  # reported to the test below, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


# --- engagement_apply -----------------------------------------------------------------------


@pytest.mark.django_db
def test_engagement_apply_records_the_event_and_moves_the_outreach_forward():
    outreach = _sent_outreach()
    engagement = _apply(outreach, "opened", at="2025-03-01T10:00:00+00:00")
    assert (engagement.event_type, engagement.payload) == ("opened", {"via": "test"})
    assert engagement.occurred_at.isoformat() == "2025-03-01T10:00:00+00:00"
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.OPENED
    assert outreach.opened_at == engagement.occurred_at
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("at", "stored"),
    [
        ("2025-03-01T10:00:00+17:19", "2025-02-28T16:41:00+00:00"),  # an offset PostgreSQL refuses
        ("2025-03-01T10:00:00", "2025-03-01T10:00:00+00:00"),  # no offset: UTC
    ],
)
def test_engagement_apply_stores_the_time_in_utc(at, stored):
    assert _apply(_sent_outreach(), "opened", at=at).occurred_at.isoformat() == stored


@pytest.mark.django_db
@pytest.mark.parametrize("at", ["2025-13-01T10:00:00Z", "not a time", "0001-01-01T00:00:00+05:00"])
def test_engagement_apply_takes_an_unreadable_time_as_now(at):
    before = timezone.now()
    assert _apply(_sent_outreach(), "opened", at=at).occurred_at >= before


@pytest.mark.django_db
def test_an_earlier_status_after_a_later_one_keeps_the_later_status_but_records_its_time():
    outreach = _sent_outreach()
    _apply(outreach, "replied")
    _apply(outreach, "opened")
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.REPLIED
    assert outreach.opened_at is not None
    assert outreach.replied_at is not None


@pytest.mark.django_db
def test_the_first_time_of_a_status_is_kept():
    outreach = _sent_outreach()
    _apply(outreach, "opened", event_id="open-1", at="2025-03-01T10:00:00+00:00")
    _apply(outreach, "opened", event_id="open-2", at="2025-03-02T10:00:00+00:00")
    outreach.refresh_from_db()
    assert outreach.opened_at.isoformat() == "2025-03-01T10:00:00+00:00"
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 2


@pytest.mark.django_db
def test_a_repeated_engagement_event_id_changes_nothing():
    outreach = _sent_outreach()
    assert _apply(outreach, "converted", event_id="dup") is not None
    assert _apply(outreach, "converted", event_id="dup") is None
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.successes) == (2.0, 1)
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1
    assert EngagementEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["clicked", "replied"])
def test_a_click_or_reply_marks_a_contacted_lead_responded(event_type):
    outreach = _sent_outreach()
    _apply(outreach, event_type)
    lead = Lead.objects.get(pk=outreach.lead_id)
    assert lead.status == Lead.Status.RESPONDED
    assert lead.responded_at is not None


@pytest.mark.django_db
def test_a_reply_does_not_move_a_snoozed_lead():
    outreach = _sent_outreach()
    Lead.objects.filter(pk=outreach.lead_id).update(status=Lead.Status.SNOOZED)
    _apply(outreach, "replied")
    lead = Lead.objects.get(pk=outreach.lead_id)
    assert (lead.status, lead.responded_at is not None) == (Lead.Status.SNOOZED, True)


@pytest.mark.django_db
def test_a_conversion_converts_the_lead_and_rewards_the_variant_with_a_success():
    outreach = _sent_outreach()
    _apply(outreach, "converted")
    outreach.refresh_from_db()
    lead = Lead.objects.get(pk=outreach.lead_id)
    variant = Variant.objects.get(outreach=outreach)
    assert (outreach.status, outreach.reward) == (Outreach.Status.CONVERTED, Outreach.Reward.SUCCESS)
    assert outreach.converted_at is not None and outreach.rewarded_at == outreach.converted_at
    assert (lead.status, lead.converted_at, lead.responded_at) == (
        Lead.Status.CONVERTED,
        outreach.converted_at,
        outreach.converted_at,
    )
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (2.0, 1.0, 1, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["bounced", "unsubscribed"])
def test_a_bounce_or_unsubscribe_marks_the_lead_and_rewards_the_variant_with_a_failure(event_type):
    outreach = _sent_outreach()
    _apply(outreach, event_type)
    outreach.refresh_from_db()
    lead = Lead.objects.get(pk=outreach.lead_id)
    variant = Variant.objects.get(outreach=outreach)
    assert (outreach.status, outreach.reward) == (event_type, Outreach.Reward.FAILURE)
    assert getattr(lead, f"{event_type}_at") == getattr(outreach, f"{event_type}_at")
    assert getattr(lead, f"{event_type}_at") is not None
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (1.0, 2.0, 0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("later", ["opened", "bounced", "unsubscribed"])
def test_a_converted_outreach_keeps_its_status_and_its_one_reward(later):
    outreach = _sent_outreach()
    _apply(outreach, "converted")
    _apply(outreach, later)
    outreach.refresh_from_db()
    variant = Variant.objects.get(outreach=outreach)
    assert (outreach.status, outreach.reward) == (Outreach.Status.CONVERTED, Outreach.Reward.SUCCESS)
    assert (variant.alpha, variant.beta) == (2.0, 1.0)


@pytest.mark.django_db
def test_engagement_apply_for_an_unknown_outreach_raises_and_records_nothing():
    with pytest.raises(Outreach.DoesNotExist):
        engagement_apply(event={"event_id": "e-1", "event_type": "opened", "outreach_id": 404_404})
    assert not EngagementEvent.objects.exists()


# --- engagement_submit ----------------------------------------------------------------------


@pytest.mark.django_db
def test_engagement_submit_queues_known_outreach_and_reports_unknown_by_index():
    by_id = _sent_outreach()
    by_message = _sent_outreach(message_id="<m-1@localhost>")
    items = engagement_submit(
        events=[
            {"event_id": "a", "event_type": "opened", "outreach_id": by_id.pk},
            {"event_id": "b", "event_type": "clicked", "outreach_id": 404_404},
            {"event_id": "c", "event_type": "replied", "message_id": "<m-1@localhost>"},
        ]
    )
    assert [(item.index, item.outreach_id, item.error) for item in items] == [
        (0, by_id.pk, None),
        (1, None, "no such outreach"),
        (2, by_message.pk, None),
    ]
    rows = list(OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).order_by("id"))
    assert [(row.event_type, row.key, row.payload["outreach_id"]) for row in rows] == [
        ("engagement.opened", by_id.lead.lightfield_id, by_id.pk),
        ("engagement.replied", by_message.lead.lightfield_id, by_message.pk),
    ]
    assert not EngagementEvent.objects.exists()  # the feedback stage applies them, not the API


# --- outreach_reward ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_outreach_gets_exactly_one_reward():
    outreach = _sent_outreach()
    at = timezone.now()
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=at) is True
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=at + timedelta(days=1)) is False
    outreach.refresh_from_db()
    assert (outreach.reward, outreach.rewarded_at) == (Outreach.Reward.FAILURE, at)
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (1.0, 2.0, 0, 1)


@pytest.mark.django_db
def test_a_success_raises_alpha_and_successes():
    outreach = _sent_outreach(converted_at=timezone.now())
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.SUCCESS, at=timezone.now())
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (2.0, 1.0, 1, 0)


@pytest.mark.django_db
def test_a_failure_raises_beta_and_failures():
    outreach = _sent_outreach()
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=timezone.now())
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (1.0, 2.0, 0, 1)


@pytest.mark.django_db
def test_a_success_after_a_failure_changes_neither_the_outreach_nor_the_variant():
    outreach = _sent_outreach(converted_at=timezone.now())
    outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=timezone.now())
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.SUCCESS, at=timezone.now()) is False
    assert Outreach.objects.get(pk=outreach.pk).reward == Outreach.Reward.FAILURE
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta) == (1.0, 2.0)


@pytest.mark.django_db
def test_an_outreach_without_a_variant_is_rewarded_without_touching_any_variant():
    outreach = _sent_outreach(variant=None)
    assert outreach_reward(outreach=outreach, reward=Outreach.Reward.FAILURE, at=timezone.now()) is True
    assert Outreach.objects.get(pk=outreach.pk).reward == Outreach.Reward.FAILURE
    assert not Variant.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_the_same_reward_at_once_give_exactly_one():
    outreach = _sent_outreach(converted_at=timezone.now())
    rewards = [Outreach.Reward.SUCCESS, Outreach.Reward.FAILURE]

    def claim(index: int) -> bool:
        with transaction.atomic():
            return outreach_reward(outreach=outreach, reward=rewards[index], at=timezone.now())

    claimed = _in_threads(2, claim)
    assert sorted(claimed) == [False, True]
    winner = rewards[claimed.index(True)]
    variant = Variant.objects.get(outreach=outreach)
    assert variant.successes + variant.failures == 1
    assert (variant.alpha, variant.beta) == ((2.0, 1.0) if winner == Outreach.Reward.SUCCESS else (1.0, 2.0))
    assert Outreach.objects.get(pk=outreach.pk).reward == winner


@pytest.mark.django_db(transaction=True)
def test_a_claim_waiting_on_an_uncommitted_claim_is_refused_once_it_commits():
    outreach = _sent_outreach(converted_at=timezone.now())
    first_claimed = threading.Event()

    def claim(index: int) -> bool:
        if index == 1:
            first_claimed.wait(timeout=10)  # so its UPDATE meets the first one's row lock
        with transaction.atomic():
            won = outreach_reward(outreach=outreach, reward=Outreach.Reward.SUCCESS, at=timezone.now())
            if index == 0:
                first_claimed.set()
                threading.Event().wait(0.3)  # hold the claim uncommitted while the second arrives
        return won

    assert _in_threads(2, claim) == [True, False]
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.successes) == (2.0, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_rewards_for_different_outreach_of_one_variant_lose_no_update():
    variant = VariantFactory(sends=20)
    now = timezone.now()
    outreach = [_sent_outreach(variant=variant, converted_at=now) for _ in range(20)]

    def reward(index: int) -> bool:
        with transaction.atomic():
            return outreach_reward(outreach=outreach[index], reward=Outreach.Reward.SUCCESS, at=now)

    assert _in_threads(20, reward) == [True] * 20
    variant.refresh_from_db()
    assert (variant.alpha, variant.beta, variant.successes) == (1.0 + 20, 1.0, 20)


@pytest.mark.django_db
@pytest.mark.parametrize("late", ["delivered", "opened", "clicked", "replied"])
def test_a_late_engagement_on_an_expired_outreach_keeps_it_expired(late):
    outreach = _sent_outreach()
    outreach_expire_stale(now=timezone.now() + timedelta(days=30))
    _apply(outreach, late)
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.EXPIRED, Outreach.Reward.FAILURE)
    assert getattr(outreach, f"{late}_at") is not None


@pytest.mark.django_db
def test_a_conversion_after_expiry_shows_on_the_outreach_and_lead_but_the_reward_stays_a_failure():
    outreach = _sent_outreach()
    outreach_expire_stale(now=timezone.now() + timedelta(days=30))
    _apply(outreach, "converted")
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.CONVERTED, Outreach.Reward.FAILURE)
    assert Lead.objects.get(pk=outreach.lead_id).status == Lead.Status.CONVERTED
    variant = Variant.objects.get(outreach=outreach)
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (1.0, 2.0, 0, 1)
