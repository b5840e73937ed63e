"""The deliverability brake (leads.services.brake): the rates, the thresholds on both sides, the
minimum sample, staff's pause and resume, and the feedback stage tripping it."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from leads.models import Lead, OutboxEvent, Outreach, SendingPause
from leads.pipeline.events import outbox_event
from leads.pipeline.stages import FeedbackStage, Outcome
from leads.services.brake import (
    brake_check,
    deliverability_rates,
    sending_pause,
    sending_paused,
    sending_resume,
)
from leads.services.feedback import engagement_submit
from leads.tests.factories import LeadFactory
from leads.topics import OUTREACH_EVENTS

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _brake(settings: Any) -> None:
    settings.OUTREACH_BRAKE_MIN_SAMPLE = 100
    settings.OUTREACH_MAX_COMPLAINT_RATE = 0.003
    settings.OUTREACH_MAX_BOUNCE_RATE = 0.05
    settings.KAFKA_BOOTSTRAP_SERVERS = ""


def _mail(count: int, *, sent_at: datetime = NOW - timedelta(days=1), **fields: Any) -> list[Outreach]:
    """`count` outreach sent at `sent_at` (one lead: the brake counts mail, not people)."""
    lead = LeadFactory(status=Lead.Status.CONTACTED)
    rows = [
        Outreach(
            lead=lead,
            to_email=f"r{n}@example.com",
            subject="s",
            body="b",
            sent_at=sent_at,
            **{"status": "sent", **fields},
        )
        for n in range(count)
    ]
    return Outreach.objects.bulk_create(rows)


def _complaints(count: int, *, at: datetime = NOW - timedelta(hours=1)) -> list[Outreach]:
    return _mail(count, status=Outreach.Status.COMPLAINED, complained_at=at)


def _hard_bounces(count: int, *, at: datetime = NOW - timedelta(hours=1)) -> list[Outreach]:
    return _mail(count, status=Outreach.Status.BOUNCED, bounce_type="hard", bounced_at=at)


# --- Rates ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_rates_count_the_last_seven_days_only():
    _mail(10, sent_at=NOW - timedelta(days=8))
    _mail(19)
    _hard_bounces(1)
    _mail(5, status="bounced", bounce_type="soft", bounced_at=NOW - timedelta(hours=1))  # soft: not in the rate
    _complaints(2, at=NOW - timedelta(days=8))  # sent a day ago, complained of before: sent only
    rates = deliverability_rates(now=NOW)
    assert (rates.sent, rates.hard_bounces, rates.complaints) == (27, 1, 0)
    assert rates.bounce_rate == 1 / 27
    assert rates.since == NOW - timedelta(days=7)


@pytest.mark.django_db
def test_with_nothing_sent_the_rates_are_zero():
    rates = deliverability_rates(now=NOW)
    assert (rates.sent, rates.bounce_rate, rates.complaint_rate) == (0, 0.0, 0.0)


# --- Thresholds ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_complaint_in_334_sent_is_below_the_threshold_and_does_not_trip():
    _mail(333)
    _complaints(1)  # 1 / 334 = 0.2994%
    assert brake_check(now=NOW) is None
    assert sending_paused() is None


@pytest.mark.django_db
def test_one_complaint_in_333_sent_passes_the_threshold_and_trips(caplog):
    _mail(332)
    _complaints(1)  # 1 / 333 = 0.3003%
    with caplog.at_level(logging.ERROR, logger="leads.services.brake"):
        pause = brake_check(now=NOW)
    assert pause is not None and sending_paused() == pause
    assert "complaint rate 0.30% (1 of 333 sent" in pause.reason
    assert "OUTREACH_MAX_COMPLAINT_RATE 0.30%" in pause.reason
    assert pause.paused_by == ""
    (record,) = caplog.records  # one ERROR line: Sentry's logging integration turns it into an event
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("sending paused by the deliverability brake: complaint rate 0.30%")


@pytest.mark.django_db
def test_a_rate_exactly_at_the_threshold_does_not_trip():
    _mail(997)
    _complaints(3)  # 3 / 1000 = 0.3% exactly: the rate must pass it
    assert brake_check(now=NOW) is None


@pytest.mark.django_db
def test_hard_bounces_at_five_percent_do_not_trip_and_above_do():
    _mail(95)
    _hard_bounces(5)  # 5 / 100 = 5%
    assert brake_check(now=NOW) is None
    _hard_bounces(1)  # 6 / 101
    pause = brake_check(now=NOW)
    assert pause is not None
    assert "hard-bounce rate 5.94% (6 of 101 sent" in pause.reason
    assert "OUTREACH_MAX_BOUNCE_RATE 5.00%" in pause.reason


@pytest.mark.django_db
def test_below_the_minimum_sample_nothing_trips_however_high_the_rates():
    _mail(49)
    _complaints(25)
    _hard_bounces(25)  # 99 sent, half of them bad
    assert brake_check(now=NOW) is None
    _mail(1)  # the hundredth
    assert brake_check(now=NOW) is not None


@pytest.mark.django_db
def test_a_brake_that_tripped_does_not_trip_again_while_paused():
    _mail(99)
    _complaints(1)
    assert brake_check(now=NOW) is not None
    _complaints(5)
    assert brake_check(now=NOW) is None
    assert SendingPause.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_workers_tripping_the_brake_at_once_leave_one_pause():
    _mail(99)
    _complaints(1)
    barrier, results, errors = threading.Barrier(4), [], []

    def trip() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(brake_check(now=NOW))
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=trip) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert SendingPause.objects.filter(in_force=True).count() == 1
    assert len([pause for pause in results if pause is not None]) == 1


# --- Resume -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_resume_lifts_the_pause_and_the_brake_does_not_trip_again_on_the_old_data():
    _mail(99)
    _complaints(1)
    pause = brake_check(now=NOW)
    lifted = sending_resume(by="ops")
    assert lifted.pk == pause.pk
    pause.refresh_from_db()
    assert (pause.in_force, pause.resumed_by) == (None, "ops") and pause.resumed_at is not None
    assert sending_paused() is None
    later = timezone.now() + timedelta(minutes=1)
    assert deliverability_rates(now=later).sent == 0
    assert brake_check(now=later) is None


@pytest.mark.django_db
def test_after_a_resume_new_complaints_past_the_threshold_trip_it_again():
    _mail(99)
    _complaints(1)
    brake_check(now=NOW)
    sending_resume(by="ops")
    after = timezone.now() + timedelta(seconds=1)
    _mail(199, sent_at=after)
    _complaints(1, at=after)
    assert brake_check(now=after + timedelta(minutes=1)) is not None
    assert SendingPause.objects.count() == 2


@pytest.mark.django_db
def test_resume_when_nothing_is_paused_changes_nothing():
    assert sending_resume(by="ops") is None
    assert not SendingPause.objects.exists()


@pytest.mark.django_db
def test_staff_pause_records_who_and_why_and_a_second_pause_returns_the_first():
    first = sending_pause(by="ops", reason="List import looks wrong")
    again = sending_pause(by="someone", reason="Also")
    assert again.pk == first.pk
    assert (first.paused_by, first.reason) == ("ops", "List import looks wrong")
    assert SendingPause.objects.count() == 1
    assert brake_check(now=NOW) is None  # already paused


# --- The feedback stage ------------------------------------------------------------------------


def _stage_complaints(stage: FeedbackStage, outreach: list[Outreach]) -> list[Outcome]:
    before = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).count()
    engagement_submit(
        events=[
            {
                "event_id": f"c-{row.pk}",
                "event_type": "complained",
                "outreach_id": row.pk,
                "occurred_at": timezone.now(),
            }
            for row in outreach
        ]
    )
    rows = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).order_by("id")[before:]
    return stage.process_batch([outbox_event(row) for row in rows])


@pytest.mark.django_db
def test_the_feedback_stage_trips_the_brake_after_a_batch_with_complaints(caplog):
    recent = timezone.now() - timedelta(hours=1)
    _mail(98, sent_at=recent)
    sent = _mail(2, sent_at=recent)
    stage = FeedbackStage()
    assert _stage_complaints(stage, sent[:1]) == ["applied"]  # 1 of 100: 1% > 0.3%
    pause = sending_paused()
    assert pause is not None and "complaint rate 1.00% (1 of 100 sent" in pause.reason
    assert any(r.levelno == logging.ERROR and "deliverability brake" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_the_feedback_stage_leaves_sending_on_below_the_threshold():
    recent = timezone.now() - timedelta(hours=1)
    _mail(998, sent_at=recent)
    sent = _mail(2, sent_at=recent)
    assert _stage_complaints(FeedbackStage(), sent) == ["applied", "applied"]  # 2 of 1000: 0.2%
    assert sending_paused() is None
