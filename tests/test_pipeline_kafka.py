"""The whole loop on a real Kafka-protocol broker (tansu), real PostgreSQL and a real SMTP server:
ingest, score, outreach, engagement, conversion, posterior; and what happens when parts die."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer

from leads.models import DeadLetter, Lead, OutboxEvent, Outreach, Variant
from leads.pipeline.events import encode
from leads.services.simulation import simulated_events
from leads.topics import LEADS_RAW, LEADS_SCORED, dead_letter_topic
from tests.pipeline_support import leads_settled, produce_raw, read_topic, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

STAGES = ("relay", "scorer", "outreach", "dispatch", "feedback")


def test_leads_from_the_api_and_from_kafka_flow_to_conversion(api_client, pipeline, broker, smtp_sink, experiment):
    process = pipeline("all")
    via_api = list(simulated_events(count=15, seed=1, prefix="api"))
    via_kafka = list(simulated_events(count=15, seed=2, prefix="kafka"))

    response = api_client.post("/api/v1/leads/ingest", via_api, format="json", HTTP_X_REQUEST_ID="e2e-corr-1")
    assert response.status_code == 202, response.content
    produce_raw(broker.bootstrap, via_kafka)
    wait_until(leads_settled(30), what="30 leads scored and contacted")

    contacted = Lead.objects.filter(status=Lead.Status.CONTACTED)
    assert contacted.count() == Outreach.objects.filter(status=Outreach.Status.SENT).count() > 0
    wait_until(lambda: len(smtp_sink.received()) == contacted.count(), what="every outreach mail at the SMTP server")
    assert {m["To"] for m in smtp_sink.received()} == set(contacted.values_list("contact_email", flat=True))
    assert {lead.lightfield_id[:3] for lead in Lead.objects.all()} == {"api", "kaf"}

    converting = list(Outreach.objects.order_by("pk")[:3])
    engagements = [
        {"event_id": f"conv-{o.pk}", "event_type": "converted", "message_id": o.message_id} for o in converting
    ]
    assert api_client.post("/api/v1/engagements", engagements, format="json").status_code == 202
    wait_until(lambda: Lead.objects.filter(status=Lead.Status.CONVERTED).count() == 3, what="3 conversions")

    wait_until(lambda: sum(v.successes for v in Variant.objects.all()) == 3, what="3 successes on the variants")
    for variant in Variant.objects.all():
        assert variant.alpha == 1 + variant.successes
        assert variant.sends == Outreach.objects.filter(variant=variant, sent_at__isnull=False).count()
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="an empty outbox")
    assert process.terminate() == 0, process.log()

    # The request's correlation id travelled into Kafka headers and on through the stages.
    caused_by_ingest = OutboxEvent.objects.filter(key__startswith="api", topic__in=[LEADS_RAW, LEADS_SCORED])
    assert set(caused_by_ingest.values_list("correlation_id", flat=True)) == {"e2e-corr-1"}
    headers = [dict(m.headers()) for m in read_topic(broker.bootstrap, LEADS_RAW, 30) if m.key().startswith(b"api")]
    assert len(headers) == 15
    assert {h["correlation_id"] for h in headers} == {b"e2e-corr-1"}


def test_a_poison_message_is_dead_lettered_and_the_stage_keeps_going(pipeline, broker, experiment):
    pipeline("scorer")
    good = list(simulated_events(count=2, seed=3, prefix="good"))
    missing_company = {"lightfield_id": "no-company", "company": {"name": ""}}
    produce_raw(broker.bootstrap, [good[0], b"{not json", missing_company, good[1]])

    wait_until(lambda: Lead.objects.filter(lightfield_id__startswith="good").count() == 2, what="the good leads")
    wait_until(lambda: DeadLetter.objects.count() == 2, what="two dead letters")
    errors = sorted(DeadLetter.objects.values_list("error", flat=True))
    assert "company.name is required" in errors[0]
    assert errors[1].startswith("PoisonEvent: not JSON")
    assert not Lead.objects.filter(lightfield_id="no-company").exists()

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "dlq-reader",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([dead_letter_topic(LEADS_RAW)])
    dead: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(dead) < 2 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            dead.append(message.value())
    consumer.close()
    assert sorted(dead) == sorted([b"{not json", encode(missing_company)])


def test_a_stage_killed_mid_batch_contacts_nobody_twice_and_counts_every_reward_once(
    api_client, pipeline, broker, smtp_sink, experiment
):
    for stage in ("relay", "scorer", "dispatch"):
        pipeline(stage)
    outreach_process, feedback_process = pipeline("outreach"), pipeline("feedback")
    events = list(simulated_events(count=150, seed=4, prefix="kill"))
    for start in range(0, 150, 50):
        assert api_client.post("/api/v1/leads/ingest", events[start : start + 50], format="json").status_code == 202

    wait_until(lambda: Outreach.objects.count() >= 10, what="outreach under way")
    outreach_process.kill()  # SIGKILL, mid-batch
    pipeline("outreach")
    wait_until(leads_settled(150), timeout=120, what="every lead processed after the restart")

    mail_ids_by_recipient: dict[str, set[str]] = defaultdict(set)
    for message in smtp_sink.received():
        mail_ids_by_recipient[message["To"]].add(message["Message-ID"])
    assert all(len(ids) == 1 for ids in mail_ids_by_recipient.values()), "a lead got two different mails"
    per_lead = Counter(Outreach.objects.values_list("lead_id", flat=True))
    assert set(per_lead.values()) == {1}
    assert len(mail_ids_by_recipient) == Outreach.objects.count()

    sent = list(Outreach.objects.all())
    engagements = [
        {"event_id": f"k-{o.pk}", "event_type": "converted" if o.pk % 3 == 0 else "bounced", "outreach_id": o.pk}
        for o in sent
    ]
    assert api_client.post("/api/v1/engagements", engagements, format="json").status_code == 202
    wait_until(lambda: Outreach.objects.exclude(reward="").count() >= len(sent) // 3, what="rewards under way")
    feedback_process.kill()
    pipeline("feedback")
    wait_until(lambda: Outreach.objects.filter(reward="").count() == 0, timeout=90, what="every reward")

    for variant in Variant.objects.all():
        rewarded = Outreach.objects.filter(variant=variant)
        assert variant.successes == rewarded.filter(reward=Outreach.Reward.SUCCESS).count()
        assert variant.failures == rewarded.filter(reward=Outreach.Reward.FAILURE).count()
        assert (variant.alpha, variant.beta) == (1 + variant.successes, 1 + variant.failures)


def _pipeline_settled(api_client, pipeline, *, leads: int, seed: int) -> None:
    """Every stage running, with `leads` leads through it (so each has joined its group)."""
    for stage in STAGES:
        pipeline(stage)
    before = list(simulated_events(count=leads, seed=seed, prefix="before"))
    assert api_client.post("/api/v1/leads/ingest", before, format="json").status_code == 202
    wait_until(leads_settled(leads), what="the first leads")


def _everything_flowed_once(leads: int, what: str) -> None:
    wait_until(leads_settled(leads), timeout=120, what=what)
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="an empty outbox")
    assert set(Counter(Outreach.objects.values_list("lead_id", flat=True)).values()) == {1}


def test_ingest_answers_while_the_broker_is_down_and_everything_flows_when_it_returns(
    api_client, pipeline, broker, smtp_sink, experiment
):
    _pipeline_settled(api_client, pipeline, leads=10, seed=5)

    broker.pause()
    during = list(simulated_events(count=40, seed=6, prefix="during"))
    started = time.monotonic()
    for start in range(0, 40, 10):
        response = api_client.post("/api/v1/leads/ingest", during[start : start + 10], format="json")
        assert response.status_code == 202
    assert time.monotonic() - started < 10, "ingest waited on the broker"
    time.sleep(3)
    assert OutboxEvent.objects.pending().count() >= 40
    broker.resume()

    _everything_flowed_once(50, what="every lead after the broker returned")


def test_the_relay_recovers_when_deliveries_time_out_during_a_long_broker_outage(
    api_client, pipeline, broker, smtp_sink, experiment
):
    """Longer than KAFKA_PUBLISH_TIMEOUT_SECONDS: the idempotent producer's messages time out,
    which can leave it fenced for good; the relay must carry on with a new one."""
    _pipeline_settled(api_client, pipeline, leads=5, seed=8)

    broker.pause()
    during = list(simulated_events(count=20, seed=9, prefix="during"))
    assert api_client.post("/api/v1/leads/ingest", during, format="json").status_code == 202
    time.sleep(35)  # well past the 5 s publish timeout of the stage processes (pipeline_env)
    broker.resume()

    _everything_flowed_once(25, what="every lead after a long outage")


def test_two_processes_of_one_stage_share_its_partitions(pipeline, broker, experiment):
    scorers = [pipeline("scorer"), pipeline("scorer")]
    events = list(simulated_events(count=90, seed=7, prefix="shared"))
    for start in range(0, 90, 5):  # spread over ~10 s, across the group's first rebalance
        produce_raw(broker.bootstrap, events[start : start + 5])
        time.sleep(0.5)
    wait_until(lambda: Lead.objects.filter(scored_at__isnull=False).count() == 90, what="90 scored leads")

    applied = []
    for scorer in scorers:
        assert scorer.terminate() == 0, scorer.log()
        (line,) = [line for line in scorer.log().splitlines() if "scorer stopped:" in line]
        applied.append(int(line.split("'applied': ")[1].split(",")[0]))
    assert sum(applied) == 90
    assert min(applied) > 0, f"one process did all the work: {applied}"
