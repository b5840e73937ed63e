"""The stages, fed Event objects directly: idempotency, retries, dead letters, and what each does."""

from __future__ import annotations

import dataclasses
import logging
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from django.core import mail
from django.db import OperationalError
from django.utils import timezone

from leads.idempotency import event_was_applied
from leads.models import DeadLetter, EngagementEvent, Experiment, Lead, OutboxEvent, Outreach, Variant
from leads.pipeline.events import Event, encode, event_from_message, outbox_event
from leads.pipeline.stages import DependencyDown, FeedbackStage, Item, OutreachStage, ScorerStage, Stage
from leads.scoring.rules import RULES_MODEL, score_by_rules
from leads.scoring.types import LeadFacts
from leads.services.leads import lead_emit_scored
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory
from leads.topics import LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def pipeline_settings(settings: Any) -> Any:
    settings.PIPELINE_MAX_ATTEMPTS = 3
    settings.PIPELINE_RETRY_BACKOFF_SECONDS = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.OPENAI_API_KEY = ""
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    mail.outbox = []
    return settings


def _lightfield(lightfield_id: str = "lf-acme", **changes: Any) -> dict[str, Any]:
    event = {
        "event_type": "lead.created",
        "timestamp": "2025-03-01T10:00:00Z",
        "lightfield_id": lightfield_id,
        "company": {"name": "Acme", "website": "https://acme.example.com", "industry": "Software", "size": "51-200"},
        "contact": {"name": "Grace Hopper", "email": "grace@acme.example.com", "title": "CTO"},
        "source": {"channel": "webinar", "campaign": "spring", "referrer": None},
        "metadata": {"tech_stack": ["Postgres"], "pain_points": ["low reply rates"], "budget_range": "50k-100k"},
        "x-unknown": "kept",
    }
    event.update(changes)
    return event


def _raw_event(payload: Any, *, event_id: str = "raw-1", correlation_id: str = "") -> Event:
    value = payload if isinstance(payload, bytes) else encode(payload)
    return Event(
        topic=LEADS_RAW,
        key="lf-acme",
        value=value,
        event_id=event_id,
        event_type="lead.created",
        correlation_id=correlation_id,
    )


def _scored_event(lead: Lead, *, force: bool = False) -> Event:
    """The lead.scored event exactly as the outbox would put it on the wire."""
    lead_emit_scored(lead, force=force)
    return outbox_event(OutboxEvent.objects.filter(topic=LEADS_SCORED).latest("id"))


def _engagement_event(outreach_id: int, event_type: str = "opened", *, event_id: str = "eng-1") -> Event:
    payload = {"event_id": event_id, "event_type": event_type, "outreach_id": outreach_id, "payload": {}}
    return Event(
        topic=OUTREACH_EVENTS,
        key="lf-acme",
        value=encode(payload),
        event_id=f"bus-{event_id}",
        event_type=f"engagement.{event_type}",
    )


def _scored_lead(**fields: Any) -> Lead:
    defaults = {"status": Lead.Status.SCORED, "score": 0.69, "persona": "mid_market"}
    return LeadFactory(**{**defaults, **fields})


def _experiment(*, target_persona: str = "", status: str = Experiment.Status.ACTIVE, variants: int = 2) -> Experiment:
    experiment = ExperimentFactory(target_persona=target_persona, status=status)
    VariantFactory.create_batch(variants, experiment=experiment)
    return experiment


def _sent_rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic=OUTREACH_EVENTS, event_type="outreach.sent"))


# --- The loop: idempotency, poison, retries -------------------------------------------------


def test_a_redelivered_event_is_skipped_and_changes_nothing():
    stage, event = ScorerStage(), _raw_event(_lightfield())
    assert stage.process(event) == "applied"
    lead = Lead.objects.get(lightfield_id="lf-acme")
    assert stage.process(event) == "skipped"
    assert Lead.objects.get().updated_at == lead.updated_at
    assert OutboxEvent.objects.count() == 1
    assert not DeadLetter.objects.exists()


def test_an_event_id_applied_before_is_skipped_before_anything_is_written():
    stage, event = ScorerStage(), _raw_event(_lightfield())
    stage.process(event)
    assert stage.process(_raw_event(_lightfield(company={"name": "Renamed"}))) == "skipped"
    assert Lead.objects.get().company_name == "Acme"
    assert OutboxEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("stage_class", "event", "error"),
    [
        (ScorerStage, _raw_event(b"{not json"), "PoisonEvent: not JSON"),
        (ScorerStage, _raw_event([1, 2]), "PoisonEvent: the event must be a JSON object"),
        (ScorerStage, _raw_event(_lightfield(company={"size": "51-200"})), "InvalidEvent: company.name is required"),
        (ScorerStage, _raw_event(_lightfield(lightfield_id="")), "InvalidEvent: lightfield_id must be"),
        (ScorerStage, _raw_event(_lightfield(timestamp="yesterday")), "InvalidEvent: timestamp must be"),
        (
            OutreachStage,
            Event(topic=LEADS_SCORED, key="lf-1", value=b'{"lead_id": "7"}', event_id="s-1"),
            "PoisonEvent: lead.scored needs an integer lead_id",
        ),
        (
            FeedbackStage,
            Event(
                topic=OUTREACH_EVENTS,
                key="lf-1",
                value=b'{"event_id": "e-1", "event_type": "opened"}',
                event_id="f-1",
                event_type="engagement.opened",
            ),
            "PoisonEvent: an engagement needs outreach_id and event_id",
        ),
    ],
    ids=["not-json", "not-an-object", "no-company-name", "empty-lightfield-id", "bad-timestamp", "lead-id", "no-ids"],
)
def test_a_poison_event_is_dead_lettered_at_once(stage_class, event, error, caplog):
    caplog.set_level(logging.WARNING, logger="leads.pipeline.stages")
    assert stage_class().process(event) == "dead"
    dead = DeadLetter.objects.get()
    assert (dead.stage, dead.topic, dead.event_id, dead.attempts) == (stage_class.name, event.topic, event.event_id, 1)
    assert dead.error.startswith(error)
    assert dead.value == event.value.decode()
    assert not [record for record in caplog.records if record.levelno == logging.WARNING]  # never retried
    # Done with, as a dead letter: a redelivery of its batch is skipped, never dead-lettered twice.
    assert event_was_applied(stage=stage_class.name, event_id=event.event_id)
    assert not Lead.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_batch_of_500_with_a_poison_and_a_contract_breaking_event_applies_498_at_once(django_assert_max_num_queries):
    good = [_raw_event(_lightfield(f"lf-{n}"), event_id=f"raw-{n}") for n in range(498)]
    poison = _raw_event(b"{not json", event_id="raw-poison")
    breaking = _raw_event({"lightfield_id": "lf-nameless", "company": {"name": ""}}, event_id="raw-nameless")
    events = [*good[:200], poison, *good[200:400], breaking, *good[400:]]
    # The batch path: a constant number of queries, however many events (one claim per 300 ids).
    with django_assert_max_num_queries(15):
        outcomes = ScorerStage().process_batch(events)
    assert Counter(outcomes) == {"applied": 498, "dead": 2}
    assert (outcomes[200], outcomes[401]) == ("dead", "dead")
    assert Lead.objects.count() == OutboxEvent.objects.count() == 498
    assert sorted(DeadLetter.objects.values_list("event_id", "attempts")) == [("raw-nameless", 1), ("raw-poison", 1)]


def test_an_event_over_the_size_limit_is_dead_lettered_at_once_and_the_rest_of_its_batch_applied(settings):
    settings.PIPELINE_MAX_EVENT_BYTES = 2_000
    oversized = _raw_event(_lightfield("lf-big", company={"name": "Big", "description": "x" * 3_000}), event_id="big")
    outcomes = ScorerStage().process_batch([oversized, _raw_event(_lightfield("lf-small"), event_id="small")])
    assert outcomes == ["dead", "applied"]
    dead = DeadLetter.objects.get()
    assert (dead.event_id, dead.attempts) == ("big", 1)
    assert dead.error.startswith("PoisonEvent: the event is 3,") and "PIPELINE_MAX_EVENT_BYTES" in dead.error
    assert len(dead.value) > 3_000  # kept whole in the database
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-small"]


@pytest.mark.parametrize(
    ("raw_field", "error"),
    [
        ('"hint": NaN', "InvalidEvent: hint is not a finite number"),
        ('"hint": -Infinity', "InvalidEvent: hint is not a finite number"),
        ('"hint": 1e999', "InvalidEvent: hint is not a finite number"),
        ('"hint": ["\\ud800"]', "InvalidEvent: hint[0] contains a lone surrogate"),
        ('"contact": {"email": "Friend <x@acme.example.com>"}', "InvalidEvent: contact.email is not a valid address"),
        ('"contact": {"email": "x@acme.example.com\\r\\nBcc: y@evil.example"}', "InvalidEvent: contact.email is not"),
    ],
    ids=["nan", "-infinity", "1e999", "lone-surrogate", "display-name-email", "crlf-email"],
)
def test_an_event_the_database_or_the_mail_could_not_take_is_dead_lettered_at_the_first_attempt(raw_field, error):
    # As an external producer could write it: JSON text that Python decodes but PostgreSQL refuses.
    hostile = _raw_event(encode(_lightfield("lf-hostile"))[:-1] + b"," + raw_field.encode() + b"}", event_id="raw-bad")
    outcomes = ScorerStage().process_batch([_raw_event(_lightfield("lf-good"), event_id="raw-good"), hostile])
    assert outcomes == ["applied", "dead"]
    dead = DeadLetter.objects.get()
    assert (dead.event_id, dead.attempts, dead.value) == ("raw-bad", 1, hostile.value.decode())
    assert dead.error.startswith(error)
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-good"]


def test_a_message_with_nul_bytes_in_its_key_value_and_headers_is_dead_lettered_not_a_crash():
    event = event_from_message(
        topic=LEADS_RAW,
        key=b"lf-\x00",
        value=b"\x00{not json",
        headers=[("event_id", b"evt-\x00"), ("x-trace\x00", b"a\x00b")],
    )
    assert ScorerStage().process(event) == "dead"
    dead = DeadLetter.objects.get()
    assert (dead.key, dead.event_id, dead.value) == ("lf-\ufffd", "evt-\ufffd", "\ufffd{not json")
    assert dead.headers["x-trace\ufffd"] == "a\ufffdb"
    assert dead.error.startswith("PoisonEvent: not JSON")


def test_a_message_whose_event_id_is_too_long_to_record_is_dead_lettered_after_its_retries():
    long_id = "e" * 150
    event = event_from_message(
        topic=LEADS_RAW, key=b"k" * 150, value=encode(_lightfield()), headers=[("event_id", long_id.encode())]
    )
    assert ScorerStage().process(event) == "dead"
    dead = DeadLetter.objects.get()
    assert (dead.event_id, dead.key, dead.attempts) == (long_id[:100], "k" * 100, 3)
    assert dead.error.startswith("DataError")
    assert not Lead.objects.exists()


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_an_event_that_keeps_failing_is_retried_then_dead_lettered_with_the_error(settings, caplog, max_attempts):
    settings.PIPELINE_MAX_ATTEMPTS = max_attempts
    caplog.set_level(logging.WARNING, logger="leads.pipeline.stages")
    event = _engagement_event(outreach_id=987_654)
    assert FeedbackStage().process(event) == "dead"
    dead = DeadLetter.objects.get()
    assert (dead.stage, dead.event_id, dead.attempts) == ("feedback", event.event_id, max_attempts)
    assert dead.error == "DoesNotExist: Outreach matching query does not exist."
    failures = [record for record in caplog.records if "failed on" in record.getMessage()]
    assert len(failures) == max_attempts
    assert event_was_applied(stage="feedback", event_id=event.event_id)  # done with, as a dead letter
    assert not EngagementEvent.objects.exists()


def test_an_event_that_fails_and_then_succeeds_is_applied_once():
    class FlakyStage(Stage):
        """A stage whose handling fails twice before it works: the base class's retry loop is under test."""

        name, topic = "flaky", LEADS_RAW

        def __init__(self) -> None:
            self.calls = 0

        def decode(self, event: Event) -> None:
            return None

        def handle(self, items: Sequence[Item]) -> None:
            self.calls += 1
            LeadFactory(lightfield_id=f"lf-call-{self.calls}")
            if self.calls < 3:
                raise RuntimeError("a fault of this event's handling, not of a dependency")

    stage = FlakyStage()
    assert stage.process(_raw_event({}, event_id="flaky-1")) == "applied"
    assert stage.calls == 3
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-call-3"]
    assert not DeadLetter.objects.exists()


class DatabaseDownStage(Stage):
    """A stage whose database connection breaks the first `outage` times it writes."""

    name, topic = "outage", LEADS_RAW

    def __init__(self, outage: int) -> None:
        self.outage, self.calls = outage, 0

    def decode(self, event: Event) -> None:
        return None

    def handle(self, items: Sequence[Item]) -> None:
        self.calls += 1
        LeadFactory(lightfield_id=f"lf-call-{self.calls}")
        if self.calls <= self.outage:
            raise OperationalError("terminating connection due to administrator command")


def test_a_batch_meeting_a_database_outage_raises_dependency_down_and_dead_letters_nothing():
    stage, events = DatabaseDownStage(outage=1), [_raw_event({}, event_id=f"down-{n}") for n in range(3)]
    with pytest.raises(DependencyDown, match="administrator command"):
        stage.process_batch(events)
    assert stage.calls == 1  # not retried event by event: the outage is not the events' fault
    assert not DeadLetter.objects.exists()
    assert not Lead.objects.exists()  # the batch's transaction rolled back
    # The caller retries the same batch once the database is back: applied once.
    assert stage.process_batch(events) == ["applied"] * 3
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-call-2"]


def test_a_poison_event_redelivered_after_it_was_dead_lettered_is_skipped_not_dead_lettered_again():
    poison = _raw_event(b"{not json", event_id="raw-poison")
    assert ScorerStage().process_batch([poison]) == ["dead"]
    assert ScorerStage().process_batch([poison, _raw_event(_lightfield())]) == ["skipped", "applied"]
    assert DeadLetter.objects.count() == 1


def test_a_lead_scored_event_for_a_deleted_lead_is_applied_and_does_nothing():
    lead = _scored_lead()
    _experiment()
    event = _scored_event(lead)
    lead.delete()
    assert OutreachStage(random.Random(1)).process(event) == "applied"
    assert mail.outbox == []
    assert event_was_applied(stage="outreach", event_id=event.event_id)
    assert not DeadLetter.objects.exists()


# --- Scorer ---------------------------------------------------------------------------------


def test_scorer_stage_creates_and_scores_the_lead_and_emits_lead_scored():
    expected = score_by_rules(
        LeadFacts(
            company_name="Acme",
            company_size="51-200",
            company_industry="Software",
            contact_title="CTO",
            budget_range="50k-100k",
            timeline="",
            pain_points=("low reply rates",),
        )
    )
    event = _raw_event(_lightfield(), correlation_id="corr-scorer")
    assert ScorerStage().process(event) == "applied"
    lead = Lead.objects.get(lightfield_id="lf-acme")
    assert (lead.company_name, lead.contact_email, lead.source_channel) == ("Acme", "grace@acme.example.com", "webinar")
    assert lead.raw_payload["x-unknown"] == "kept"
    assert (lead.score, lead.persona, lead.scoring_model) == (expected.score, expected.persona, RULES_MODEL)
    assert lead.status == Lead.Status.SCORED
    assert lead.scoring_reasons == list(expected.reasons)
    row = OutboxEvent.objects.get()
    assert (row.topic, row.key, row.event_type, row.correlation_id) == (
        LEADS_SCORED,
        "lf-acme",
        "lead.scored",
        "corr-scorer",
    )
    assert row.payload == {
        "lead_id": lead.pk,
        "lightfield_id": "lf-acme",
        "score": expected.score,
        "persona": expected.persona,
        "status": "scored",
        "force": False,
    }
    assert event_was_applied(stage="scorer", event_id=event.event_id)


def test_scorer_stage_updates_an_existing_lead_from_a_newer_event():
    LeadFactory(lightfield_id="lf-acme", company_name="Old name", contact_email="old@acme.example.com")
    event = _raw_event(_lightfield())
    assert ScorerStage().process(event) == "applied"
    lead = Lead.objects.get(lightfield_id="lf-acme")
    assert (lead.company_name, lead.contact_email, lead.status) == ("Acme", "grace@acme.example.com", "scored")


def test_scorer_stage_disqualifies_a_lead_below_the_threshold_and_still_emits_it(settings):
    settings.OUTREACH_MIN_SCORE = 0.99
    assert ScorerStage().process(_raw_event(_lightfield())) == "applied"
    assert Lead.objects.get().status == Lead.Status.DISQUALIFIED
    assert OutboxEvent.objects.get().payload["status"] == "disqualified"


def test_scorer_stage_keeps_a_snoozed_lead_snoozed():
    LeadFactory(lightfield_id="lf-acme", status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.RAW)
    assert ScorerStage().process(_raw_event(_lightfield())) == "applied"
    lead = Lead.objects.get()
    assert (lead.status, lead.status_before_snooze) == (Lead.Status.SNOOZED, Lead.Status.SCORED)
    assert lead.score is not None


# --- Outreach -------------------------------------------------------------------------------


def test_outreach_stage_schedules_one_mail_and_sends_nothing():
    lead = _scored_lead(company_name="Initech", contact_email="Grace.Hopper@Initech.example")
    experiment = _experiment()
    event = _scored_event(lead)
    before = timezone.now()
    assert OutreachStage(random.Random(7)).process(event) == "applied"

    outreach = Outreach.objects.get()
    assert outreach.variant.experiment == experiment
    assert (outreach.status, outreach.to_email) == (Outreach.Status.SCHEDULED, lead.contact_email)
    assert (outreach.recipient_key, outreach.recipient_domain) == ("grace.hopper@initech.example", "initech.example")
    assert outreach.subject == "Hello Initech"
    assert outreach.message_id.startswith("<") and outreach.message_id.endswith("@localhost>")
    assert outreach.scheduled_for is not None
    assert before <= outreach.scheduled_for <= timezone.now()  # the window is open: due at once
    assert outreach.sent_at is None
    assert mail.outbox == []  # the dispatch stage sends it
    lead.refresh_from_db()
    # The lead becomes contacted when the mail goes out, not when it is scheduled.
    assert (lead.status, lead.outreach_count, lead.contacted_at) == (Lead.Status.SCORED, 0, None)
    assert not Variant.objects.filter(sends__gt=0).exists()
    assert _sent_rows() == []
    assert event_was_applied(stage="outreach", event_id=event.event_id)


def test_the_same_lead_scored_event_again_schedules_nothing_more():
    lead = _scored_lead()
    _experiment()
    event = _scored_event(lead)
    stage = OutreachStage(random.Random(7))
    assert stage.process(event) == "applied"
    assert stage.process(event) == "skipped"
    assert Outreach.objects.count() == 1


def test_a_new_lead_scored_event_for_a_lead_with_scheduled_outreach_schedules_nothing_more():
    lead = _scored_lead()
    _experiment()
    stage = OutreachStage(random.Random(7))
    assert stage.process(_scored_event(lead)) == "applied"
    lead.refresh_from_db()
    assert stage.process(_scored_event(lead)) == "applied"
    assert stage.process(_scored_event(lead, force=True)) == "applied"
    assert Outreach.objects.count() == 1
    assert Lead.objects.get(pk=lead.pk).not_contacted_reason == ""


def test_a_batch_schedules_each_lead_once_in_one_transaction():
    _experiment()
    leads = [_scored_lead() for _ in range(5)]
    events = [_scored_event(lead) for lead in leads] + [_scored_event(leads[0])]
    assert OutreachStage(random.Random(7)).process_batch(events) == ["applied"] * 6
    assert sorted(Outreach.objects.values_list("lead_id", flat=True)) == sorted(lead.pk for lead in leads)
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SCHEDULED}
    assert Outreach.objects.values("message_id").distinct().count() == 5


def test_scheduling_clears_the_reason_a_lead_was_not_contacted_before():
    lead = _scored_lead(score=0.3)
    _experiment()
    stage = OutreachStage(random.Random(7))
    stage.process(_scored_event(lead))
    assert Lead.objects.get(pk=lead.pk).not_contacted_reason == "the score is below OUTREACH_MIN_SCORE"
    Lead.objects.filter(pk=lead.pk).update(score=0.9)
    stage.process(_scored_event(Lead.objects.get(pk=lead.pk)))
    assert Lead.objects.get(pk=lead.pk).not_contacted_reason == ""
    assert Outreach.objects.filter(lead=lead, status=Outreach.Status.SCHEDULED).count() == 1


def _refused_lead(case: str) -> Lead:
    """A lead and experiments such that the lead may not be written to, for the reason `case` names."""
    lead_fields: dict[str, dict[str, Any]] = {
        "snoozed": {"status": Lead.Status.SNOOZED, "status_before_snooze": Lead.Status.SCORED},
        "disqualified": {"status": Lead.Status.DISQUALIFIED, "score": 0.3},
        "below-min-score": {"score": 0.49},
        "never-scored": {"score": None},
        "no-email": {"contact_email": ""},
        "unsubscribed": {"unsubscribed_at": timezone.now()},
        "bounced": {"bounced_at": timezone.now()},
        "contacted": {"status": Lead.Status.CONTACTED, "outreach_count": 1},
    }
    experiment_fields: dict[str, dict[str, Any] | None] = {
        "no-experiment": None,
        "experiment-for-another-persona": {"target_persona": "enterprise"},
        "experiment-paused": {"status": Experiment.Status.PAUSED},
    }
    experiment = None if case == "no-experiment" else _experiment(**(experiment_fields.get(case) or {}))
    lead = _scored_lead(**lead_fields.get(case, {}))
    if case == "variants-paused":
        experiment.variants.update(is_active=False)
    if case == "previous-outreach":
        OutreachFactory(lead=lead, variant=experiment.variants.first(), status=Outreach.Status.SENT)
    return lead


REFUSALS = [
    "snoozed",
    "disqualified",
    "below-min-score",
    "never-scored",
    "no-email",
    "unsubscribed",
    "bounced",
    "contacted",
    "previous-outreach",
    "no-experiment",
    "experiment-for-another-persona",
    "experiment-paused",
    "variants-paused",
]


NOT_CONTACTED_REASONS = {
    "snoozed": "the lead is snoozed",
    "disqualified": "the lead is disqualified",
    "below-min-score": "the score is below OUTREACH_MIN_SCORE",
    "never-scored": "the score is below OUTREACH_MIN_SCORE",
    "no-email": "the lead has no email address we could send to",
    "unsubscribed": "the lead unsubscribed",
    "bounced": "mail to the lead bounced",
    "contacted": "",
    "previous-outreach": "",  # written to before: the lead says nothing about not being contacted
    "no-experiment": "no active experiment targets the lead's persona",
    "experiment-for-another-persona": "no active experiment targets the lead's persona",
    "experiment-paused": "no active experiment targets the lead's persona",
    "variants-paused": "no active experiment targets the lead's persona",
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_lead_that_may_not_be_written_to_gets_no_outreach_and_says_why(case):
    lead = _refused_lead(case)
    outreach_before = Outreach.objects.count()
    event = _scored_event(lead)
    assert OutreachStage(random.Random(7)).process(event) == "applied"
    assert Outreach.objects.count() == outreach_before
    refreshed = Lead.objects.get(pk=lead.pk)
    assert refreshed.status == lead.status
    assert refreshed.not_contacted_reason == NOT_CONTACTED_REASONS[case]
    assert not Variant.objects.filter(sends__gt=0).exists()
    assert _sent_rows() == []
    assert event_was_applied(stage="outreach", event_id=event.event_id)


@pytest.mark.parametrize(
    "fields",
    [
        {"status": Lead.Status.DISQUALIFIED, "score": 0.1},
        {"status": Lead.Status.RAW, "score": None},
        {"status": Lead.Status.CONTACTED, "outreach_count": 1, "previous_outreach": True},
        {"status": Lead.Status.RESPONDED, "outreach_count": 1, "previous_outreach": True},
    ],
    ids=["low-score", "unscored", "contacted", "responded"],
)
def test_force_overrides_score_status_and_previous_outreach(fields):
    fields = dict(fields)
    previous = fields.pop("previous_outreach", False)
    lead = _scored_lead(**fields)
    variant = _experiment().variants.first()
    if previous:
        OutreachFactory(lead=lead, variant=variant, status=Outreach.Status.SENT, sent_at=timezone.now())
    assert OutreachStage(random.Random(7)).process(_scored_event(lead, force=True)) == "applied"
    assert Outreach.objects.filter(lead=lead, status=Outreach.Status.SCHEDULED).count() == 1
    assert Outreach.objects.filter(lead=lead).count() == 1 + previous


@pytest.mark.parametrize(
    "fields",
    [
        {"unsubscribed_at": timezone.now()},
        {"bounced_at": timezone.now()},
        {"status": Lead.Status.SNOOZED, "status_before_snooze": Lead.Status.SCORED},
        {"contact_email": ""},
    ],
    ids=["unsubscribed", "bounced", "snoozed", "no-email"],
)
def test_force_does_not_override_unsubscribe_bounce_snooze_or_a_missing_address(fields):
    lead = _scored_lead(**fields)
    _experiment()
    assert OutreachStage(random.Random(7)).process(_scored_event(lead, force=True)) == "applied"
    assert not Outreach.objects.exists()
    assert Lead.objects.get(pk=lead.pk).not_contacted_reason != ""


def test_experiments_targeting_another_persona_are_not_used():
    # Were the enterprise arm considered, its posterior would win every draw.
    enterprise = ExperimentFactory(target_persona="enterprise")
    VariantFactory(experiment=enterprise, alpha=1000.0, beta=1.0)
    mid_market = _experiment(target_persona="mid_market")
    stage = OutreachStage(random.Random(11))
    for _ in range(20):
        assert stage.process(_scored_event(_scored_lead(persona="mid_market"))) == "applied"
    assert Outreach.objects.filter(status=Outreach.Status.SCHEDULED).count() == 20
    assert set(Outreach.objects.values_list("variant__experiment", flat=True)) == {mid_market.pk}


def test_an_experiment_for_every_persona_is_used_for_any_persona():
    everyone = _experiment(target_persona="")
    assert OutreachStage(random.Random(3)).process(_scored_event(_scored_lead(persona="startup"))) == "applied"
    assert Outreach.objects.get().variant.experiment == everyone


def test_a_paused_variant_is_never_chosen():
    experiment = _experiment(variants=2)
    VariantFactory(experiment=experiment, alpha=1000.0, beta=1.0, is_active=False)
    stage = OutreachStage(random.Random(5))
    for _ in range(20):
        stage.process(_scored_event(_scored_lead()))
    assert Outreach.objects.filter(status=Outreach.Status.SCHEDULED).count() == 20
    assert not Outreach.objects.filter(variant__is_active=False).exists()


# --- Feedback -------------------------------------------------------------------------------


def test_feedback_stage_applies_an_engagement_once():
    outreach = OutreachFactory(status=Outreach.Status.SENT, sent_at=timezone.now())
    event = _engagement_event(outreach.pk, "clicked")
    stage = FeedbackStage()
    assert stage.process(event) == "applied"
    assert stage.process(event) == "skipped"
    outreach.refresh_from_db()
    assert outreach.status == Outreach.Status.CLICKED
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1
    assert EngagementEvent.objects.count() == 1


def test_feedback_stage_applies_an_engagement_redelivered_under_a_new_bus_id_once():
    outreach = OutreachFactory(status=Outreach.Status.SENT, sent_at=timezone.now())
    stage = FeedbackStage()
    first = _engagement_event(outreach.pk, "opened", event_id="eng-same")
    again = dataclasses.replace(first, event_id=f"bus-{uuid.uuid4()}")
    assert stage.process(first) == stage.process(again) == "applied"
    assert EngagementEvent.objects.count() == 1
    assert Lead.objects.get(pk=outreach.lead_id).engagement_count == 1


def test_feedback_stage_records_outreach_sent_without_changing_anything():
    outreach = OutreachFactory(status=Outreach.Status.SENT, sent_at=timezone.now())
    event = Event(
        topic=OUTREACH_EVENTS,
        key="lf-1",
        value=encode({"outreach_id": outreach.pk}),
        event_id="sent-1",
        event_type="outreach.sent",
    )
    assert FeedbackStage().process(event) == "applied"
    assert event_was_applied(stage="feedback", event_id="sent-1")
    assert not EngagementEvent.objects.exists()
