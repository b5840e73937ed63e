"""The whole loop on the embedded shape: no Kafka, so each outbox row is handed to its stage in
this process as soon as the transaction that wrote it commits. Real PostgreSQL, a real SMTP
server on loopback, and the REST API as the only door: ingest, score, mail, engagement, reward.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from leads.models import DeadLetter, EngagementEvent, Lead, OutboxEvent, Outreach, Variant
from leads.pipeline.dispatch import ticker_stop
from leads.pipeline.events import encode
from leads.pipeline.inprocess import drain
from leads.tests.factories import ExperimentFactory, OutreachTemplateFactory, VariantFactory
from leads.topics import LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS
from tests.pipeline_support import wait_until
from tests.stand_ins import SmtpSink, free_port

pytestmark = pytest.mark.django_db(transaction=True)

SENDER = "Whisperer Sales"
# Each variant's template, and what it renders to for the qualified lead below.
TEMPLATES = {
    "A": (
        "Quick question for {{ company.name }}",
        "Hi {{ contact.first_name }},\n\n{{ company.name }} could stop {{ lead.pain_points|first }}.\n\n"
        "{{ sender.name }}",
    ),
    "B": (
        "{{ contact.first_name }}, a faster pipeline for {{ company.name }}",
        "Hello {{ contact.name }} ({{ contact.title }}),\nRegards, {{ sender.name }}",
    ),
}
RENDERED = {
    "A": (
        "Quick question for Acme Analytics",
        f"Hi Grace,\n\nAcme Analytics could stop manual data entry.\n\n{SENDER}",
    ),
    "B": ("Grace, a faster pipeline for Acme Analytics", f"Hello Grace Hopper (CTO),\nRegards, {SENDER}"),
}
STRONG = {"size": "201-1000", "industry": "Software", "title": "CTO", "budget": "100k-500k", "timeline": "immediate"}
WEAK = {"size": "1-10", "industry": "Government", "title": "Intern", "budget": "<10k", "timeline": None}


def lightfield_event(lightfield_id: str, *, profile: dict[str, Any] = STRONG, **changes: Any) -> dict[str, Any]:
    """A Lightfield lead.created event; STRONG scores 0.88 with the rules, WEAK 0.08."""
    event: dict[str, Any] = {
        "event_type": "lead.created",
        "timestamp": "2025-03-04T05:06:07Z",
        "lightfield_id": lightfield_id,
        "company": {"name": "Acme Analytics", "industry": profile["industry"], "size": profile["size"]},
        "contact": {"name": "Grace Hopper", "email": f"{lightfield_id}@acme.example.com", "title": profile["title"]},
        "metadata": {
            "pain_points": ["manual data entry", "tool sprawl"] if profile is STRONG else [],
            "budget_range": profile["budget"],
            "timeline": profile["timeline"],
        },
    }
    event.update(changes)
    return event


def _send_mail_to(settings, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port


@pytest.fixture
def in_process_bus(settings) -> None:
    """No broker: outbox rows go to the stages right after commit. Rules scoring, a fixed sender."""
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.OPENAI_API_KEY = ""
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.OUTREACH_SENDER_NAME = SENDER
    settings.DEFAULT_FROM_EMAIL = f"{SENDER} <outreach@whisperer.example>"
    # Every test lead works at Acme: no company or domain cap holds their mail back.
    settings.OUTREACH_MAX_PER_COMPANY_DOMAIN = 1_000_000
    settings.OUTREACH_DOMAIN_HOURLY_CAP = 1_000_000


@pytest.fixture
def mailbox(in_process_bus, settings, smtp_sink: SmtpSink) -> Iterator[SmtpSink]:
    """Outreach goes by SMTP to the sink; what falls due after its batch, the ticker sends soon."""
    _send_mail_to(settings, smtp_sink.port)
    settings.OUTREACH_DISPATCH_INTERVAL_SECONDS = 0.05
    try:
        yield smtp_sink
    finally:
        ticker_stop()


@pytest.fixture
def variants() -> dict[str, Variant]:
    """One active experiment for every persona, with two variants that render differently."""
    experiment = ExperimentFactory(name="Openers")
    return {
        name: VariantFactory(
            experiment=experiment,
            name=name,
            template=OutreachTemplateFactory(name=f"Opener {name}", subject=subject, body=body),
        )
        for name, (subject, body) in TEMPLATES.items()
    }


def ingest(client, *events: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post("/api/v1/leads/ingest", list(events), format="json", **headers)
    assert response.status_code == 202, response.content
    return response.json()


def ingest_all_sent(client, *events: dict[str, Any]) -> None:
    """Ingest, then wait for every mail to be sent: mail to one domain is spread over its hour
    (a step apart, milliseconds at the tests' cap), so the batch's later mails may not be due yet
    when it is dispatched, and the in-process ticker sends them."""
    ingest(client, *events)
    queued = (Outreach.Status.SCHEDULED, Outreach.Status.PENDING)
    wait_until(lambda: not Outreach.objects.filter(status__in=queued).exists(), timeout=30, what="every mail sent")


def engage(client, outreach: Outreach, event_type: str, event_id: str | None = None) -> None:
    """Post one engagement through the API, naming the outreach by the Message-ID of its mail."""
    event = {"event_id": event_id or f"{event_type}-{outreach.pk}", "event_type": event_type}
    response = client.post("/api/v1/engagements", [{**event, "message_id": outreach.message_id}], format="json")
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1, response.content


def body_of(mail: Message) -> str:
    """The text as written: SMTP's CRLF line ends and the line end closing the DATA removed."""
    return mail.get_payload(decode=True).decode().replace("\r\n", "\n").removesuffix("\n")


def reload(*rows: Any) -> None:
    for row in rows:
        row.refresh_from_db()


@pytest.fixture
def contacted(api_client, mailbox, variants) -> Outreach:
    """A qualified lead ingested through the API, and the outreach the pipeline sent it."""
    ingest(api_client, lightfield_event("lf-contacted"))
    outreach = Outreach.objects.select_related("lead", "variant").get(lead__lightfield_id="lf-contacted")
    assert outreach.status == Outreach.Status.SENT
    return outreach


# --- Ingest, score, mail ----------------------------------------------------------------


def test_leads_ingested_through_the_api_are_scored_by_the_rules(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-strong"), lightfield_event("lf-weak", profile=WEAK))
    strong, weak = Lead.objects.get(lightfield_id="lf-strong"), Lead.objects.get(lightfield_id="lf-weak")
    assert (strong.score, strong.persona, strong.scoring_model) == (0.88, "mid_market", "rules-v1")
    assert (weak.score, weak.status) == (0.08, Lead.Status.DISQUALIFIED)
    assert strong.scoring_reasons and weak.scoring_reasons


def test_each_qualified_lead_gets_one_mail_whose_message_id_is_its_outreach(api_client, mailbox, variants):
    ingest_all_sent(api_client, *(lightfield_event(f"lf-q{n}") for n in range(3)))
    outreach = {o.to_email: o for o in Outreach.objects.all()}
    mails = mailbox.received()
    assert sorted(mail["To"] for mail in mails) == sorted(outreach) == [f"lf-q{n}@acme.example.com" for n in range(3)]
    for mail in mails:
        assert mail["Message-ID"] == outreach[mail["To"]].message_id
        assert mail["X-Outreach-ID"] == str(outreach[mail["To"]].pk)
        assert mail["From"] == f"{SENDER} <outreach@whisperer.example>"


def test_the_mail_carries_the_subject_and_body_rendered_from_the_chosen_variant(contacted, mailbox):
    [mail] = mailbox.received()
    subject, body = RENDERED[contacted.variant.name]
    text, footer = body_of(mail).split("\n\n-- \n")  # the sender's footer follows the rendered body
    assert (mail["Subject"], text) == (subject, body)
    assert footer.startswith(f"{SENDER}, ")
    assert (contacted.subject, contacted.body) == (subject, body)


def test_a_contacted_lead_and_its_variant_record_the_send(contacted):
    lead, variant = contacted.lead, contacted.variant
    reload(lead, variant)
    assert (lead.status, lead.outreach_count) == (Lead.Status.CONTACTED, 1)
    assert lead.contacted_at == contacted.sent_at
    assert variant.sends == 1
    assert contacted.message_id.endswith("@whisperer.example>")


def test_a_disqualified_lead_gets_no_mail(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-weak", profile=WEAK))
    assert Lead.objects.get().status == Lead.Status.DISQUALIFIED
    assert not Outreach.objects.exists()
    assert mailbox.received() == []


def test_a_lead_without_an_email_address_gets_no_mail(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-no-email", contact={"name": "Nobody", "title": "CTO"}))
    assert Lead.objects.get().status == Lead.Status.SCORED
    assert mailbox.received() == []


def test_every_outbox_row_is_delivered_before_the_request_returns(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-d1"), lightfield_event("lf-d2", profile=WEAK))
    topics = sorted(OutboxEvent.objects.values_list("topic", flat=True))
    assert topics == sorted([LEADS_RAW, LEADS_RAW, LEADS_SCORED, LEADS_SCORED, OUTREACH_EVENTS])
    assert not OutboxEvent.objects.pending().exists()


def test_the_request_id_of_the_ingest_follows_the_lead_through_every_stage(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-traced"), HTTP_X_REQUEST_ID="trace-77")
    assert {(row.topic, row.correlation_id) for row in OutboxEvent.objects.all()} == {
        (LEADS_RAW, "trace-77"),
        (LEADS_SCORED, "trace-77"),
        (OUTREACH_EVENTS, "trace-77"),
    }


def test_a_contacted_lead_ingested_again_is_not_mailed_twice(api_client, contacted, mailbox):
    ingest(api_client, lightfield_event("lf-contacted", timeline="next year"))
    assert Outreach.objects.count() == 1
    assert len(mailbox.received()) == 1


def test_a_lead_rescored_above_the_threshold_gets_outreach(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-grows", profile=WEAK))
    lead = Lead.objects.get()
    edit = {"contact_title": "CEO", "company_size": "1000+", "budget_range": "500k+", "timeline": "immediate"}
    assert api_client.patch(f"/api/v1/leads/{lead.pk}", edit, format="json").status_code == 200
    assert mailbox.received() == []

    assert api_client.post(f"/api/v1/leads/{lead.pk}/rescore").status_code == 202
    reload(lead)
    assert (lead.status, lead.score) == (Lead.Status.CONTACTED, 0.8)
    [mail] = mailbox.received()
    assert mail["Message-ID"] == Outreach.objects.get(lead=lead).message_id


def test_a_lead_rescored_below_the_threshold_gets_no_outreach(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-still-weak", profile=WEAK))
    lead = Lead.objects.get()
    assert api_client.post(f"/api/v1/leads/{lead.pk}/rescore").status_code == 202
    assert mailbox.received() == []


def test_force_outreach_mails_a_disqualified_lead(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-forced", profile=WEAK))
    lead = Lead.objects.get()
    assert api_client.post(f"/api/v1/leads/{lead.pk}/force-outreach").status_code == 202
    [mail] = mailbox.received()
    assert mail["To"] == "lf-forced@acme.example.com"
    reload(lead)
    assert lead.status == Lead.Status.CONTACTED


# --- Engagement and the bandit ----------------------------------------------------------


def test_engagements_move_the_outreach_from_opened_to_clicked_to_replied(api_client, contacted):
    seen = []
    for event_type in ("opened", "clicked", "replied"):
        engage(api_client, contacted, event_type)
        reload(contacted)
        seen.append(contacted.status)
    assert seen == ["opened", "clicked", "replied"]
    assert contacted.opened_at and contacted.clicked_at and contacted.replied_at


def test_a_late_opened_does_not_move_a_clicked_outreach_back(api_client, contacted):
    engage(api_client, contacted, "clicked")
    engage(api_client, contacted, "opened")
    reload(contacted)
    assert contacted.status == Outreach.Status.CLICKED
    assert contacted.opened_at is not None


def test_an_open_leaves_the_lead_contacted_and_a_click_makes_it_responded(api_client, contacted):
    lead = contacted.lead
    engage(api_client, contacted, "opened")
    reload(lead)
    assert lead.status == Lead.Status.CONTACTED
    engage(api_client, contacted, "clicked")
    reload(lead)
    assert (lead.status, lead.engagement_count) == (Lead.Status.RESPONDED, 2)
    assert lead.responded_at is not None


def test_a_reply_makes_the_lead_responded(api_client, contacted):
    engage(api_client, contacted, "replied")
    reload(contacted.lead)
    assert contacted.lead.status == Lead.Status.RESPONDED


def test_a_conversion_converts_the_lead_and_adds_one_to_the_variants_alpha(api_client, contacted):
    engage(api_client, contacted, "opened")
    engage(api_client, contacted, "converted")
    lead, variant = contacted.lead, contacted.variant
    reload(contacted, lead, variant)
    assert (contacted.status, contacted.reward) == (Outreach.Status.CONVERTED, Outreach.Reward.SUCCESS)
    assert (lead.status, lead.converted_at is not None) == (Lead.Status.CONVERTED, True)
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (2.0, 1.0, 1, 0)


@pytest.mark.parametrize("event_type", ["bounced", "unsubscribed"])
def test_a_bounce_or_unsubscribe_adds_one_to_the_variants_beta(api_client, contacted, event_type):
    engage(api_client, contacted, event_type)
    lead, variant = contacted.lead, contacted.variant
    reload(contacted, lead, variant)
    assert (contacted.status, contacted.reward) == (event_type, Outreach.Reward.FAILURE)
    assert getattr(lead, f"{event_type}_at") is not None
    assert (variant.alpha, variant.beta, variant.successes, variant.failures) == (1.0, 2.0, 0, 1)


def test_the_posteriors_follow_conversions_and_bounces_across_leads(api_client, mailbox, variants):
    ingest_all_sent(api_client, *(lightfield_event(f"lf-p{n}") for n in range(6)))
    outreach = list(Outreach.objects.order_by("pk"))
    kinds = ["converted", "converted", "bounced", "unsubscribed", "opened", "clicked"]
    for item, event_type in zip(outreach, kinds, strict=True):
        engage(api_client, item, event_type)
    for variant in Variant.objects.all():
        mine = Outreach.objects.filter(variant=variant)
        assert variant.alpha == 1 + mine.filter(status="converted").count()
        assert variant.beta == 1 + mine.filter(status__in=["bounced", "unsubscribed"]).count()
        assert variant.sends == mine.count()
    response = api_client.get(f"/api/v1/experiments/{variants['A'].experiment_id}/variants")
    assert sum(row["alpha"] - 1 for row in response.json()) == 2
    assert sum(row["beta"] - 1 for row in response.json()) == 2


def test_a_repeated_engagement_event_id_changes_nothing(api_client, contacted):
    engage(api_client, contacted, "converted", event_id="crm-evt-1")
    engage(api_client, contacted, "converted", event_id="crm-evt-1")
    lead, variant = contacted.lead, contacted.variant
    reload(lead, variant)
    assert EngagementEvent.objects.filter(event_id="crm-evt-1").count() == 1
    assert (variant.alpha, variant.successes) == (2.0, 1)
    assert lead.engagement_count == 1


def test_the_engagement_list_shows_what_the_feedback_stage_applied(api_client, contacted):
    engage(api_client, contacted, "opened", event_id="crm-open")
    rows = api_client.get("/api/v1/engagements").json()["results"]
    assert [(row["event_id"], row["event_type"], row["outreach"]) for row in rows] == [
        ("crm-open", "opened", contacted.pk)
    ]


@pytest.mark.parametrize(
    ("first", "then", "reward", "alpha", "beta"),
    [("converted", "bounced", "success", 2.0, 1.0), ("bounced", "converted", "failure", 1.0, 2.0)],
)
def test_an_outreach_is_rewarded_once_when_it_both_converts_and_bounces(
    api_client, contacted, first, then, reward, alpha, beta
):
    engage(api_client, contacted, first)
    engage(api_client, contacted, then)
    variant = contacted.variant
    reload(contacted, variant)
    assert (contacted.status, contacted.reward) == (first, reward)
    assert (variant.alpha, variant.beta, variant.successes + variant.failures) == (alpha, beta, 1)


# --- Never again: bounced and unsubscribed leads ----------------------------------------


@pytest.mark.parametrize("event_type", ["bounced", "unsubscribed"])
def test_force_outreach_of_a_lead_that_bounced_or_unsubscribed_is_409(api_client, contacted, mailbox, event_type):
    engage(api_client, contacted, event_type)
    response = api_client.post(f"/api/v1/leads/{contacted.lead_id}/force-outreach")
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert len(mailbox.received()) == 1


@pytest.mark.parametrize("event_type", ["bounced", "unsubscribed"])
def test_a_lead_that_bounced_or_unsubscribed_is_not_mailed_when_ingested_again(
    api_client, contacted, mailbox, event_type
):
    engage(api_client, contacted, event_type)
    ingest(api_client, lightfield_event("lf-contacted", timeline="this quarter", extra="changed"))
    assert Outreach.objects.count() == 1
    assert len(mailbox.received()) == 1


@pytest.mark.parametrize("event_type", ["bounced", "unsubscribed"])
def test_a_lead_that_bounced_or_unsubscribed_is_not_mailed_when_rescored(api_client, contacted, mailbox, event_type):
    engage(api_client, contacted, event_type)
    assert api_client.post(f"/api/v1/leads/{contacted.lead_id}/rescore").status_code == 202
    assert Outreach.objects.count() == 1
    assert len(mailbox.received()) == 1


# --- Attribution window -----------------------------------------------------------------


def _sent_days_ago(outreach: Outreach, days: float) -> None:
    Outreach.objects.filter(pk=outreach.pk).update(sent_at=timezone.now() - timedelta(days=days))


def test_close_stale_outreach_expires_outreach_sent_before_the_window_with_one_failure_each(
    api_client, mailbox, variants, settings
):
    ingest_all_sent(api_client, *(lightfield_event(f"lf-s{n}") for n in range(3)))
    stale = list(Outreach.objects.order_by("pk")[:2])
    fresh = Outreach.objects.order_by("pk").last()
    for outreach in stale:
        _sent_days_ago(outreach, settings.ATTRIBUTION_WINDOW_DAYS + 0.5)
    _sent_days_ago(fresh, settings.ATTRIBUTION_WINDOW_DAYS - 0.5)

    call_command("close_stale_outreach")
    reload(*stale, fresh)
    assert [(o.status, o.reward) for o in stale] == [(Outreach.Status.EXPIRED, Outreach.Reward.FAILURE)] * 2
    assert all(o.expired_at for o in stale)
    assert (fresh.status, fresh.reward) == (Outreach.Status.SENT, "")
    for variant in Variant.objects.all():
        expired = Outreach.objects.filter(variant=variant, status=Outreach.Status.EXPIRED).count()
        assert (variant.beta, variant.failures, variant.alpha) == (1 + expired, expired, 1.0)


def test_close_stale_outreach_run_twice_changes_nothing_the_second_time(api_client, mailbox, variants, settings):
    ingest_all_sent(api_client, *(lightfield_event(f"lf-t{n}") for n in range(2)))
    for outreach in Outreach.objects.all():
        _sent_days_ago(outreach, settings.ATTRIBUTION_WINDOW_DAYS + 1)
    call_command("close_stale_outreach")
    after_first = (
        list(Variant.objects.order_by("pk").values_list("alpha", "beta", "failures", "updated_at")),
        list(Outreach.objects.order_by("pk").values_list("status", "reward", "rewarded_at", "expired_at")),
    )
    call_command("close_stale_outreach")
    assert (
        list(Variant.objects.order_by("pk").values_list("alpha", "beta", "failures", "updated_at")),
        list(Outreach.objects.order_by("pk").values_list("status", "reward", "rewarded_at", "expired_at")),
    ) == after_first
    assert sum(beta - 1 for beta in Variant.objects.values_list("beta", flat=True)) == 2


def test_close_stale_outreach_leaves_an_outreach_that_converted_alone(api_client, contacted, settings):
    engage(api_client, contacted, "converted")
    _sent_days_ago(contacted, settings.ATTRIBUTION_WINDOW_DAYS + 1)
    call_command("close_stale_outreach")
    variant = contacted.variant
    reload(contacted, variant)
    assert (contacted.status, contacted.reward) == (Outreach.Status.CONVERTED, Outreach.Reward.SUCCESS)
    assert (variant.alpha, variant.beta) == (2.0, 1.0)


def test_close_stale_outreach_leaves_an_opened_outreach_inside_the_window_alone(api_client, contacted, settings):
    engage(api_client, contacted, "opened")
    _sent_days_ago(contacted, settings.ATTRIBUTION_WINDOW_DAYS - 1)
    call_command("close_stale_outreach")
    reload(contacted)
    assert (contacted.status, contacted.reward) == (Outreach.Status.OPENED, "")


# --- Faults -----------------------------------------------------------------------------


def _outbox_row(topic: str, key: str, payload: Any) -> OutboxEvent:
    """An event as an external producer would queue it, outside any service."""
    return OutboxEvent.objects.create(
        event_id=uuid.uuid4(), topic=topic, key=key, event_type="lead.created", payload=payload
    )


def test_a_poison_event_is_dead_lettered_with_its_error_and_later_events_still_flow(mailbox, variants):
    poison = _outbox_row(LEADS_RAW, "", {"lightfield_id": ""})
    _outbox_row(LEADS_RAW, "lf-after-poison", lightfield_event("lf-after-poison"))

    drain()

    dead = DeadLetter.objects.get()
    assert (dead.stage, dead.topic, dead.event_id, dead.attempts) == ("scorer", LEADS_RAW, str(poison.event_id), 1)
    assert dead.error == "InvalidEvent: lightfield_id must be 1-64 letters, digits, or _ . : -"
    assert dead.value == encode({"lightfield_id": ""}).decode()
    assert Lead.objects.get().lightfield_id == "lf-after-poison"
    assert [mail["To"] for mail in mailbox.received()] == ["lf-after-poison@acme.example.com"]
    assert not OutboxEvent.objects.pending().exists()


def test_a_delivered_outbox_row_is_not_delivered_again(api_client, mailbox, variants):
    ingest(api_client, lightfield_event("lf-once"))
    assert drain() == 0
    assert len(mailbox.received()) == 1


@pytest.fixture
def smtp_port(in_process_bus, settings) -> int:
    """A loopback port for SMTP servers the test starts and stops itself."""
    port = free_port()
    _send_mail_to(settings, port)
    return port


def _ingest_while_smtp_is_down(client, port: int) -> Outreach:
    """Ingest a qualified lead while the SMTP server on `port` is stopped: the outreach stage
    schedules its mail, the in-process dispatch claims it and cannot send it."""
    SmtpSink(port).start().stop()
    ingest(client, lightfield_event("lf-outage"))
    pending = Outreach.objects.get()
    assert pending.status == Outreach.Status.PENDING
    return pending


def test_a_mail_due_while_smtp_was_down_stays_queued_not_dead_lettered(api_client, variants, smtp_port):
    try:
        pending = _ingest_while_smtp_is_down(api_client, smtp_port)
    finally:
        ticker_stop()
    assert not DeadLetter.objects.exists()
    # The outreach stage applied lead.scored (it only schedules); the mail waits in the queue.
    assert not OutboxEvent.objects.pending().exists()
    assert pending.sent_at is None and pending.error == ""
    assert Lead.objects.get().status == Lead.Status.SCORED


def test_a_mail_kept_during_an_smtp_outage_goes_out_under_its_message_id_when_the_server_is_back(
    api_client, variants, smtp_port, settings
):
    settings.OUTREACH_DISPATCH_INTERVAL_SECONDS = 0.2
    try:
        pending = _ingest_while_smtp_is_down(api_client, smtp_port)
        sink = SmtpSink(smtp_port).start()
        try:
            wait_until(lambda: sink.received(), timeout=30, what="the in-process ticker to send the kept mail")
            [mail] = sink.received()
        finally:
            sink.stop()
    finally:
        ticker_stop()
    [outreach] = Outreach.objects.all()
    assert outreach.pk == pending.pk
    assert outreach.status == Outreach.Status.SENT
    assert mail["Message-ID"] == outreach.message_id == pending.message_id
    assert Lead.objects.get().status == Lead.Status.CONTACTED
    assert not DeadLetter.objects.exists()
