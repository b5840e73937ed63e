"""The pipeline's guarantees when its stages take whole consumer batches (`run_pipeline STAGE
--batch-size 500`), on a real broker (tansu), real PostgreSQL and a real SMTP server.

A stage SIGKILLed in the middle of a batch leaves no lead behind, mails nobody twice and counts
every reward once after its restart; and 5,000 leads end in the same state, to the row, through
Kafka in batches as through the in-process bus. These assert behaviour only: they hold for a
stage that commits event by event as for one that commits a batch at a time.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from leads.models import DeadLetter, EngagementEvent, Lead, OutboxEvent, Outreach, ProcessedEvent, Variant
from leads.services.simulation import simulated_events
from leads.topics import LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS
from tests.pipeline_support import leads_settled, produce_raw, wait_until
from tests.stand_ins import PipelineProcess, SmtpSink

pytestmark = pytest.mark.django_db(transaction=True)

BATCH_SIZE = 500
STAGES = ("relay", "scorer", "outreach", "dispatch", "feedback")
# Leads in the kill tests, chosen so that a stage committing event by event (about 60 scored and
# 20-60 mailed a second on a busy two-core machine) stays near a minute: the scorer's test has
# four batches of leads.raw, the outreach test two of leads.scored (about 700 qualify), the
# feedback test about 700 outreach.sent and 950 engagements on outreach.events.
SCORER_KILL_LEADS = 2000
OUTREACH_KILL_LEADS = 1000
FEEDBACK_KILL_LEADS = 1000
# The stage is killed once this much of its work is visible: inside the first batch for a stage
# that commits event by event, inside a later one for a stage that commits a batch at a time.
KILL_AFTER = 100
SETTLE_TIMEOUT = 180.0
# The end-state comparison: ten batches of 500, once through Kafka and once in-process. With
# stages that commit event by event this takes over six minutes on a busy two-core machine (about
# three through Kafka, three and a half in-process); it stays at 5,000, the volume the batch
# pipeline is built for.
SAME_STATE_LEADS = 5000
SAME_STATE_TIMEOUT = 900.0


@pytest.fixture
def batch_stage(pipeline) -> Callable[[str], PipelineProcess]:
    """Starts `run_pipeline STAGE --batch-size 500` against the test database and the broker."""
    return lambda stage: pipeline(stage, "--batch-size", str(BATCH_SIZE))


def scored_leads() -> int:
    return Lead.objects.filter(scored_at__isnull=False).count()


def rewarded_outreach() -> int:
    return Outreach.objects.exclude(reward="").count()


def kill_mid_way(process: PipelineProcess, progress: Callable[[], int], total: int, *, timeout: float = 90.0) -> None:
    """SIGKILL `process` as soon as `progress()` reaches KILL_AFTER, and check that the kill came
    before the stage had done all `total` items of its work (otherwise the test proves nothing)."""
    deadline = time.monotonic() + timeout
    while progress() < KILL_AFTER:
        assert process.alive(), f"the {process.stage} stage died on its own:\n{process.log()}"
        assert time.monotonic() < deadline, f"the {process.stage} stage did not get going in {timeout}s"
        time.sleep(0.02)
    process.kill()
    done = progress()
    assert done < total, f"the {process.stage} stage had done all {total} before the kill"


def assert_every_lead_processed_once(total: int) -> None:
    """Each lead scored once: disqualified below OUTREACH_MIN_SCORE, contacted once at or above it."""

    def belongs(score: float | None) -> tuple[str, int]:
        qualified = score is not None and score >= settings.OUTREACH_MIN_SCORE
        return (Lead.Status.CONTACTED, 1) if qualified else (Lead.Status.DISQUALIFIED, 0)

    leads = list(Lead.objects.values_list("lightfield_id", "score", "status", "outreach_count"))
    assert len(leads) == total
    wrong = [lead for lead in leads if lead[2:] != belongs(lead[1])]
    assert not wrong, f"{len(wrong)} leads are not where they belong, e.g. {wrong[:3]}"
    # A redelivered leads.raw event changed nothing: one leads.scored event per lead.
    assert OutboxEvent.objects.filter(topic=LEADS_SCORED).count() == total
    assert not DeadLetter.objects.exists()


def assert_nobody_mailed_twice(smtp_sink: SmtpSink) -> None:
    """One sent Outreach per contacted lead; at the SMTP server one Message-ID per recipient (its
    Outreach's: a send retried after the kill may arrive again, but as the same mail), and as many
    recipients as Outreach rows; each send counted once on its variant and on outreach.events."""
    outreach = dict(Outreach.objects.values_list("to_email", "message_id"))
    per_lead = Counter(Outreach.objects.values_list("lead_id", flat=True))
    assert len(per_lead) == Lead.objects.filter(status=Lead.Status.CONTACTED).count() > 0
    assert set(per_lead.values()) == {1}, "a lead has two Outreach rows"
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SENT}
    wait_until(lambda: {mail["To"] for mail in smtp_sink.received()} >= set(outreach), timeout=30, what="every mail")
    message_ids: dict[str, set[str]] = defaultdict(set)
    for mail in smtp_sink.received():
        message_ids[mail["To"]].add(mail["Message-ID"])
    twice = {to: ids for to, ids in message_ids.items() if len(ids) > 1}
    assert not twice, f"{len(twice)} recipients got two different mails, e.g. {list(twice.items())[:3]}"
    assert len(message_ids) == len(outreach) == len(per_lead)
    assert {to: ids.pop() for to, ids in message_ids.items()} == outreach
    sent_events = OutboxEvent.objects.filter(topic=OUTREACH_EVENTS, event_type="outreach.sent").count()
    assert sum(Variant.objects.values_list("sends", flat=True)) == sent_events == len(outreach)


def test_a_batch_of_500_with_a_poison_and_a_contract_breaking_event_applies_498_at_once(batch_stage, broker):
    good = list(simulated_events(count=498, seed=11, prefix="mixed"))
    nameless = {"lightfield_id": "nameless", "company": {"name": ""}}
    produce_raw(broker.bootstrap, [*good[:250], b"{not json", *good[250:400], nameless, *good[400:]])
    scorer = batch_stage("scorer")

    wait_until(lambda: scored_leads() == 498 and DeadLetter.objects.count() == 2, timeout=60, what="498 scored, 2 dead")
    assert sorted(DeadLetter.objects.values_list("key", "attempts")) == [("nameless", 1), ("poison", 1)]
    # The batch path: no event of these batches went the event-by-event way, and the claims of
    # the 498 share the few timestamps of the few batches the consumer handed over.
    assert "retrying it event by event" not in scorer.log()
    assert ProcessedEvent.objects.filter(stage="scorer").values("processed_at").distinct().count() <= 6
    # The stage is still running: the next lead is scored too.
    produce_raw(broker.bootstrap, list(simulated_events(count=1, seed=12, prefix="after")))
    wait_until(lambda: scored_leads() == 499, timeout=30, what="the lead after the dead letters")
    assert scorer.alive()


def test_a_scorer_killed_mid_batch_leaves_no_lead_behind_and_mails_nobody_twice(
    batch_stage, broker, smtp_sink, experiment
):
    for stage in ("relay", "outreach", "dispatch", "feedback"):
        batch_stage(stage)
    produce_raw(broker.bootstrap, list(simulated_events(count=SCORER_KILL_LEADS, seed=41, prefix="scorer-kill")))
    scorer = batch_stage("scorer")  # it joins with four batches waiting on leads.raw

    kill_mid_way(scorer, scored_leads, SCORER_KILL_LEADS)
    batch_stage("scorer")
    wait_until(leads_settled(SCORER_KILL_LEADS), timeout=SETTLE_TIMEOUT, what="every lead after the scorer's restart")

    assert_every_lead_processed_once(SCORER_KILL_LEADS)
    assert_nobody_mailed_twice(smtp_sink)


def test_an_outreach_stage_killed_mid_batch_mails_every_qualified_lead_exactly_once(
    batch_stage, broker, smtp_sink, experiment
):
    for stage in ("relay", "scorer", "dispatch", "feedback"):
        batch_stage(stage)
    produce_raw(broker.bootstrap, list(simulated_events(count=OUTREACH_KILL_LEADS, seed=42, prefix="outreach-kill")))
    wait_until(lambda: scored_leads() == OUTREACH_KILL_LEADS, timeout=SETTLE_TIMEOUT, what="every lead scored")
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="an empty outbox")
    qualified = Lead.objects.filter(status=Lead.Status.SCORED).count()

    # The outreach stage starts on a backlog of several batches of leads.scored.
    outreach = batch_stage("outreach")
    kill_mid_way(outreach, Outreach.objects.count, qualified)
    batch_stage("outreach")
    wait_until(leads_settled(OUTREACH_KILL_LEADS), timeout=SETTLE_TIMEOUT, what="every lead after the outreach restart")

    assert Outreach.objects.count() == qualified
    assert_every_lead_processed_once(OUTREACH_KILL_LEADS)
    assert_nobody_mailed_twice(smtp_sink)


def engagements_for(outreach_ids: list[int]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Engagements for each outreach and the one reward each must end with: converted (success),
    bounced (failure), or converted then bounced (success: the first reward is the only one)."""
    kinds = [
        (("converted",), Outreach.Reward.SUCCESS),
        (("bounced",), Outreach.Reward.FAILURE),
        (("converted", "bounced"), Outreach.Reward.SUCCESS),
    ]
    events, rewards = [], {}
    for index, outreach_id in enumerate(outreach_ids):
        event_types, rewards[outreach_id] = kinds[index % len(kinds)]
        events += [
            {"event_id": f"fb-{outreach_id}-{event_type}", "event_type": event_type, "outreach_id": outreach_id}
            for event_type in event_types
        ]
    return events, rewards


def test_a_feedback_stage_killed_mid_batch_counts_every_reward_exactly_once(
    api_client, batch_stage, broker, smtp_sink, experiment
):
    for stage in ("relay", "scorer", "outreach", "dispatch"):
        batch_stage(stage)
    produce_raw(broker.bootstrap, list(simulated_events(count=FEEDBACK_KILL_LEADS, seed=43, prefix="feedback-kill")))
    wait_until(leads_settled(FEEDBACK_KILL_LEADS), timeout=SETTLE_TIMEOUT, what="every lead scored and contacted")

    sent = list(Outreach.objects.order_by("pk").values_list("pk", flat=True))
    engagements, expected_rewards = engagements_for(sent)
    for start in range(0, len(engagements), BATCH_SIZE):
        chunk = engagements[start : start + BATCH_SIZE]
        response = api_client.post("/api/v1/engagements", chunk, format="json")
        assert response.status_code == 202, response.content
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="an empty outbox")
    # The feedback stage starts on a backlog of several batches: every outreach.sent, then the engagements.
    feedback = batch_stage("feedback")
    kill_mid_way(feedback, rewarded_outreach, len(sent))
    batch_stage("feedback")
    wait_until(
        lambda: EngagementEvent.objects.count() == len(engagements) and rewarded_outreach() == len(sent),
        timeout=SETTLE_TIMEOUT,
        what="every engagement and every reward after the feedback restart",
    )

    assert dict(Outreach.objects.values_list("pk", "reward")) == expected_rewards
    for variant in Variant.objects.all():
        rewarded = Outreach.objects.filter(variant=variant)
        assert variant.successes == rewarded.filter(reward=Outreach.Reward.SUCCESS).count()
        assert variant.failures == rewarded.filter(reward=Outreach.Reward.FAILURE).count()
        assert (variant.alpha, variant.beta) == (1 + variant.successes, 1 + variant.failures)
    assert sum(Variant.objects.values_list("successes", flat=True)) == Counter(expected_rewards.values())["success"]
    assert Lead.objects.filter(status=Lead.Status.CONVERTED).count() == Counter(expected_rewards.values())["success"]
    assert not DeadLetter.objects.exists()


# --- The same end state through Kafka batches and through the in-process bus -------------

# What a run decides about a lead without the bandit's random draw.
LEAD_FIELDS = (
    *Lead.DESCRIPTIVE_FIELDS,
    "raw_payload",
    "lightfield_created_at",
    "status",
    "score",
    "persona",
    "scoring_model",
    "scoring_reasons",
    "failure_reason",
    "outreach_count",
    "engagement_count",
)


@dataclass(frozen=True)
class EndState:
    """The parts of a run's end state that do not depend on which variant the bandit drew."""

    leads: dict[str, tuple]  # lightfield_id -> LEAD_FIELDS
    outreach: dict[str, list[tuple[str, str]]]  # lightfield_id -> sorted (status, to_email)
    sends: int
    outbox: dict[tuple[str, str], int]  # (topic, event_type) -> rows, the leads.raw door left out
    raw_outbox: int
    pending_outbox: int
    dead_letters: int
    recipients: list[str]


def end_state(mails: list) -> EndState:
    outreach: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for lightfield_id, status, to_email in Outreach.objects.values_list("lead__lightfield_id", "status", "to_email"):
        outreach[lightfield_id].append((status, to_email))
    outbox = Counter(OutboxEvent.objects.values_list("topic", "event_type"))
    return EndState(
        leads={row[0]: row[1:] for row in Lead.objects.values_list("lightfield_id", *LEAD_FIELDS)},
        outreach={lightfield_id: sorted(rows) for lightfield_id, rows in outreach.items()},
        sends=sum(Variant.objects.values_list("sends", flat=True)),
        outbox={key: count for key, count in outbox.items() if key[0] != LEADS_RAW},
        raw_outbox=OutboxEvent.objects.filter(topic=LEADS_RAW).count(),
        pending_outbox=OutboxEvent.objects.pending().count(),
        dead_letters=DeadLetter.objects.count(),
        recipients=sorted(mail["To"] for mail in mails),
    )


def forget_the_run() -> None:
    """Remove what a run wrote, keeping the experiment with fresh posteriors."""
    Outreach.objects.all().delete()
    Lead.objects.all().delete()
    for model in (OutboxEvent, ProcessedEvent, DeadLetter):
        model.objects.all().delete()
    Variant.objects.update(alpha=1.0, beta=1.0, sends=0, successes=0, failures=0)


def through_kafka_in_batches(events: list[dict], batch_stage, broker, smtp_sink: SmtpSink) -> EndState:
    processes = [batch_stage(stage) for stage in STAGES]
    produce_raw(broker.bootstrap, events)
    wait_until(leads_settled(len(events)), timeout=SAME_STATE_TIMEOUT, what=f"{len(events)} leads through Kafka")
    wait_until(lambda: not OutboxEvent.objects.pending().exists(), what="an empty outbox")
    for process in processes:
        assert process.terminate() == 0, process.log()
    return end_state(smtp_sink.received())


def through_the_in_process_bus(events: list[dict], api_client, settings, smtp_sink: SmtpSink) -> EndState:
    """The embedded default: no broker, each ingest request runs the stages after it commits."""
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    # As the stage processes have it (loopback_env): no pacing cap holds mail back.
    settings.OUTREACH_MAX_PER_COMPANY_DOMAIN = settings.OUTREACH_DOMAIN_HOURLY_CAP = 1_000_000
    settings.OUTREACH_DAILY_CAP = 1_000_000
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_sink.port
    mails_before = len(smtp_sink.received())
    for start in range(0, len(events), BATCH_SIZE):
        response = api_client.post("/api/v1/leads/ingest", events[start : start + BATCH_SIZE], format="json")
        assert response.status_code == 202, response.content
    return end_state(smtp_sink.received()[mails_before:])


def test_5000_leads_end_in_the_same_state_through_kafka_batches_and_the_in_process_bus(
    api_client, batch_stage, broker, smtp_sink, experiment, settings
):
    events = list(simulated_events(count=SAME_STATE_LEADS, seed=61, prefix="same"))

    kafka = through_kafka_in_batches(events, batch_stage, broker, smtp_sink)
    forget_the_run()
    bus = through_the_in_process_bus(events, api_client, settings, smtp_sink)

    assert len(kafka.leads) == len(bus.leads) == SAME_STATE_LEADS
    assert kafka.leads.keys() == bus.leads.keys()
    differing = [(lead, fields, bus.leads[lead]) for lead, fields in kafka.leads.items() if fields != bus.leads[lead]]
    assert not differing, f"{len(differing)} leads differ ({LEAD_FIELDS}), e.g. {differing[:2]}"
    assert kafka.outreach == bus.outreach
    assert 0 < kafka.sends == bus.sends == sum(len(rows) for rows in bus.outreach.values())
    assert kafka.outbox == bus.outbox
    assert kafka.outbox[(LEADS_SCORED, "lead.scored")] == SAME_STATE_LEADS
    # leads.raw is the door: produced straight to Kafka, queued in the outbox by the ingest API.
    assert (kafka.raw_outbox, bus.raw_outbox) == (0, SAME_STATE_LEADS)
    assert kafka.pending_outbox == bus.pending_outbox == 0
    assert kafka.dead_letters == bus.dead_letters == 0
    assert kafka.recipients == bus.recipients == sorted(to for rows in bus.outreach.values() for _, to in rows)
