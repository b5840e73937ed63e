"""The largest event the pipeline carries (PIPELINE_MAX_EVENT_BYTES), on a real broker: a message
over it jams nothing, is dead-lettered once with only a reference on the DLQ, and an outbox row
the broker refuses for good is set aside instead of holding back the rows behind it."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from leads.models import DeadLetter, Lead, OutboxEvent
from leads.outbox import Emission, outbox_emit_many
from leads.pipeline.events import encode
from leads.services.simulation import simulated_events
from leads.topics import LEADS_RAW, dead_letter_topic
from pipeline_whisperer.kafka import make_producer
from tests.pipeline_support import read_topic, wait_until
from tests.stand_ins import PipelineProcess, free_port, pipeline_env

pytestmark = pytest.mark.django_db(transaction=True)


def _scored() -> int:
    return Lead.objects.filter(scored_at__isnull=False).count()


def test_a_2_mb_message_on_leads_raw_is_one_dead_letter_with_a_reference_on_the_dlq_and_the_rest_flows(
    pipeline, broker, tmp_path
):
    good = list(simulated_events(count=20, seed=51, prefix="around"))
    huge = {**good[0], "lightfield_id": "huge", "company": {"name": "Huge", "description": "x" * 2_000_000}}
    external = make_producer(**{"message.max.bytes": 4_000_000})  # another system's producer, larger limit
    for event in [*good[:10], huge, *good[10:]]:
        external.produce(LEADS_RAW, key=event["lightfield_id"].encode(), value=encode(event))
    assert external.flush(15) == 0

    scorer = pipeline("scorer")
    wait_until(lambda: _scored() == 20 and DeadLetter.objects.count() == 1, timeout=60, what="20 scored, 1 dead")
    dead = DeadLetter.objects.get()
    assert (dead.key, dead.attempts) == ("huge", 1) and len(dead.value) > 2_000_000  # kept whole here
    [reference] = read_topic(broker.bootstrap, dead_letter_topic(LEADS_RAW), 1)
    assert json.loads(reference.value()) == {"event_id": dead.event_id, "bytes": len(dead.value), "stage": "scorer"}
    assert dict(reference.headers())["dead_letter_body"] == b"in the database (too large to republish)"

    # Everything read again (a consumer group of its own): the dead letter is recognised, not recorded twice.
    scorer.terminate()
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"],
        bootstrap=broker.bootstrap,
        smtp_port=free_port(),
        KAFKA_CONSUMER_GROUP_PREFIX="reread",
    )
    again = PipelineProcess("scorer", env, tmp_path).start()
    try:
        wait_until(
            lambda: "scorer skipped" in again.log() and again.log().count("scorer skipped") >= 21,
            timeout=60,
            what="all 21 messages read again and skipped",
        )
    finally:
        again.kill()
    assert DeadLetter.objects.count() == 1 and _scored() == 20


def test_an_outbox_row_the_broker_refuses_for_good_is_set_aside_and_the_rows_behind_it_flow(
    kafka_settings, pipeline, settings
):
    small = list(simulated_events(count=5, seed=52, prefix="behind"))
    oversized = {**small[0], "lightfield_id": "oversized", "company": {"name": "O", "description": "y" * 1_200_000}}
    with transaction.atomic():
        outbox_emit_many(
            [Emission(LEADS_RAW, event["lightfield_id"], "lead.created", event) for event in [oversized, *small]]
        )
    pipeline("relay")
    pipeline("scorer")
    wait_until(lambda: _scored() == 5, timeout=60, what="the five leads behind the refused row")
    [set_aside] = OutboxEvent.objects.set_aside()
    assert set_aside.key == "oversized" and "MSG_SIZE_TOO_LARGE" in set_aside.last_error
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="the relay past the refused row for good")
    assert not Lead.objects.filter(lightfield_id="oversized").exists()
