"""The transactional outbox, exactly-once application and dead letters."""

from __future__ import annotations

import pytest

from leads.dead_letters import dead_letter_record
from leads.idempotency import AlreadyApplied, event_was_applied, exactly_once
from leads.models import DeadLetter, Lead, OutboxEvent, ProcessedEvent
from leads.outbox import Emission, outbox_emit, outbox_emit_many
from leads.pipeline.events import Event, outbox_event
from leads.tests.factories import LeadFactory
from leads.topics import LEADS_RAW, LEADS_SCORED
from pipeline_whisperer.correlation import correlation_scope

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_exactly_once_records_the_event_with_the_blocks_writes():
    with exactly_once(stage="scorer", event_id="evt-1"):
        LeadFactory(lightfield_id="lf-written")
    assert event_was_applied(stage="scorer", event_id="evt-1")
    assert Lead.objects.filter(lightfield_id="lf-written").exists()


def test_exactly_once_a_second_time_raises_already_applied_and_writes_nothing():
    with exactly_once(stage="scorer", event_id="evt-1"):
        LeadFactory(lightfield_id="lf-first")
    ran = False
    with pytest.raises(AlreadyApplied, match="evt-1"), exactly_once(stage="scorer", event_id="evt-1"):
        ran = True
        LeadFactory(lightfield_id="lf-second")
    assert not ran
    assert not Lead.objects.filter(lightfield_id="lf-second").exists()
    assert ProcessedEvent.objects.filter(stage="scorer", event_id="evt-1").count() == 1


def test_exactly_once_rolls_back_the_blocks_writes_and_the_record_when_the_block_fails():
    with pytest.raises(Boom), exactly_once(stage="scorer", event_id="evt-1"):
        LeadFactory(lightfield_id="lf-rolled-back")
        outbox_emit(topic=LEADS_SCORED, key="lf-rolled-back", event_type="lead.scored", payload={})
        raise Boom
    assert not Lead.objects.filter(lightfield_id="lf-rolled-back").exists()
    assert not OutboxEvent.objects.exists()
    assert not event_was_applied(stage="scorer", event_id="evt-1")


def test_exactly_once_can_apply_the_event_after_a_failed_attempt():
    with pytest.raises(Boom), exactly_once(stage="scorer", event_id="evt-1"):
        raise Boom
    with exactly_once(stage="scorer", event_id="evt-1"):
        LeadFactory(lightfield_id="lf-second-try")
    assert Lead.objects.filter(lightfield_id="lf-second-try").exists()


def test_exactly_once_is_per_stage():
    with exactly_once(stage="scorer", event_id="evt-1"):
        pass
    with exactly_once(stage="feedback", event_id="evt-1"):
        pass
    assert set(ProcessedEvent.objects.values_list("stage", flat=True)) == {"scorer", "feedback"}


def test_outbox_emit_many_keeps_the_order_of_the_emissions():
    keys = [f"lf-{n}" for n in (5, 1, 4, 2, 3)]
    event_ids = outbox_emit_many(
        [Emission(LEADS_RAW, key, "lead.created", {"n": index}) for index, key in enumerate(keys)]
    )
    assert list(OutboxEvent.objects.order_by("id").values_list("key", flat=True)) == keys
    assert list(OutboxEvent.objects.order_by("id").values_list("event_id", flat=True)) == event_ids
    assert [row.payload["n"] for row in OutboxEvent.objects.order_by("id")] == [0, 1, 2, 3, 4]


def test_outbox_rows_are_pending_with_distinct_event_ids_and_the_correlation_id():
    with correlation_scope("corr-42"):
        event_ids = outbox_emit_many([Emission(LEADS_RAW, "lf-1", "lead.created", {}) for _ in range(3)])
    assert len(set(event_ids)) == 3
    stored = list(OutboxEvent.objects.all())
    assert all(row.published_at is None and row.correlation_id == "corr-42" for row in stored)


def test_outbox_event_is_the_wire_form_of_a_row():
    with correlation_scope("corr-7"):
        row = outbox_emit(topic=LEADS_SCORED, key="lf-9", event_type="lead.scored", payload={"lead_id": 9})
    event = outbox_event(row)
    assert event == Event(
        topic=LEADS_SCORED,
        key="lf-9",
        value=b'{"lead_id":9}',
        event_id=str(row.event_id),
        event_type="lead.scored",
        correlation_id="corr-7",
    )
    assert event.payload() == {"lead_id": 9}


def test_dead_letter_record_keeps_undecodable_bytes_and_truncates_a_long_error():
    dead = dead_letter_record(
        stage="scorer",
        topic=LEADS_RAW,
        key="lf-1",
        event_id="evt-1",
        value=b"\xffnot json",
        headers={"x": "y"},
        error="e" * 20_000,
        attempts=2,
    )
    dead.refresh_from_db()
    assert (dead.stage, dead.topic, dead.key, dead.event_id) == ("scorer", LEADS_RAW, "lf-1", "evt-1")
    assert (dead.value, dead.headers["x"], dead.attempts) == ("\ufffdnot json", "y", 2)
    assert len(dead.error) == 10_000
    assert dead.status == DeadLetter.Status.PENDING


def test_dead_letter_record_stores_nul_bytes_and_cuts_an_over_long_key_and_event_id():
    dead = dead_letter_record(
        stage="scorer",
        topic=LEADS_RAW,
        key="k" * 300,
        event_id="e" * 300,
        value=b"a\x00b",
        headers={},
        error="bad \x00 byte",
        attempts=1,
    )
    dead.refresh_from_db()
    assert (dead.key, dead.event_id) == ("k" * 100, "e" * 100)
    assert (dead.value, dead.error) == ("a\ufffdb", "bad \ufffd byte")
