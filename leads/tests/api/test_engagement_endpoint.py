"""/api/v1/engagements: POST validates engagement events and queues them on `outreach.events`;
GET lists the ones the feedback stage applied.

These tests never commit, so the in-process bus does not run: a POST leaves outbox rows and
changes no outreach, lead or variant (that is the feedback stage's work, tested end to end).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads.models import EngagementEvent, Lead, OutboxEvent, Outreach
from leads.tests.api.support import query_count
from leads.tests.factories import EngagementEventFactory, LeadFactory, OutreachFactory
from leads.topics import OUTREACH_EVENTS
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

ENGAGEMENTS = "/api/v1/engagements"


@pytest.fixture
def outreach() -> Outreach:
    lead = LeadFactory(lightfield_id="lf-engaged", status=Lead.Status.CONTACTED, score=0.8)
    return OutreachFactory(
        lead=lead, status=Outreach.Status.SENT, sent_at=timezone.now(), message_id="<abc123@localhost>"
    )


def post(client, body: Any, **headers: str):
    return client.post(ENGAGEMENTS, body, format="json", **headers)


def accepted(response) -> dict[str, Any]:
    assert response.status_code == 202, response.content
    return response.json()


def queued() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic=OUTREACH_EVENTS).order_by("id"))


# --- Accepted events --------------------------------------------------------------------


def test_an_engagement_by_outreach_id_is_answered_202_with_its_item(api_client, outreach):
    body = accepted(post(api_client, [{"event_id": "evt-1", "event_type": "opened", "outreach_id": outreach.pk}]))
    assert body == {
        "accepted": 1,
        "rejected": 0,
        "items": [{"index": 0, "event_id": "evt-1", "outreach_id": outreach.pk, "error": None}],
    }


def test_an_engagement_is_queued_on_outreach_events_keyed_by_the_lead(api_client, outreach):
    occurred = "2025-05-06T07:08:09+00:00"
    event = {
        "event_id": "evt-q",
        "event_type": "clicked",
        "outreach_id": outreach.pk,
        "occurred_at": occurred,
        "payload": {"url": "https://acme.example.com/pricing"},
    }
    accepted(post(api_client, [event]))
    [row] = queued()
    assert (row.key, row.event_type, row.published_at) == ("lf-engaged", "engagement.clicked", None)
    assert row.payload == {
        "event_id": "evt-q",
        "event_type": "clicked",
        "outreach_id": outreach.pk,
        "occurred_at": occurred,
        "payload": {"url": "https://acme.example.com/pricing"},
    }


def test_an_engagement_by_message_id_is_queued_for_that_outreach(api_client, outreach):
    body = accepted(
        post(api_client, [{"event_id": "evt-m", "event_type": "opened", "message_id": outreach.message_id}])
    )
    assert body["items"][0]["outreach_id"] == outreach.pk
    assert queued()[0].payload["outreach_id"] == outreach.pk


def test_one_engagement_sent_as_an_object_is_accepted(api_client, outreach):
    body = accepted(post(api_client, {"event_id": "evt-o", "event_type": "replied", "outreach_id": outreach.pk}))
    assert (body["accepted"], body["rejected"]) == (1, 0)
    assert [row.event_type for row in queued()] == ["engagement.replied"]


@pytest.mark.parametrize("event_type", [choice.value for choice in EngagementEvent.Type])
def test_every_engagement_type_is_accepted(api_client, outreach, event_type):
    accepted(
        post(api_client, [{"event_id": f"evt-{event_type}", "event_type": event_type, "outreach_id": outreach.pk}])
    )
    assert queued()[0].payload["event_type"] == event_type


def test_a_bounce_without_a_bounce_type_is_queued_as_hard(api_client, outreach):
    accepted(post(api_client, [{"event_id": "evt-b", "event_type": "bounced", "outreach_id": outreach.pk}]))
    assert queued()[0].payload["bounce_type"] == "hard"


def test_a_soft_bounce_is_queued_as_soft(api_client, outreach):
    event = {"event_id": "evt-s", "event_type": "bounced", "bounce_type": "soft", "outreach_id": outreach.pk}
    accepted(post(api_client, [event]))
    assert queued()[0].payload["bounce_type"] == "soft"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_type": "bounced", "bounce_type": "medium"}, "is not a valid choice"),
        ({"event_type": "complained", "bounce_type": "hard"}, "Only a bounced event has a bounce_type"),
    ],
)
def test_a_bad_bounce_type_is_refused(api_client, outreach, event, error):
    response = post(api_client, [{"event_id": "evt-x", "outreach_id": outreach.pk, **event}])
    assert response.status_code == 400
    assert error in json.dumps(response.json())
    assert queued() == []


def test_the_schema_says_a_bounce_without_a_type_is_hard(staff_client):
    schema = staff_client.get("/api/schema/", {"format": "json"}).json()
    field = schema["components"]["schemas"]["EngagementInputRequest"]["properties"]["bounce_type"]
    assert "Absent means hard" in field["description"]


def test_an_engagement_without_occurred_at_is_stamped_with_the_time_it_arrived(api_client, outreach):
    before = timezone.now()
    accepted(post(api_client, [{"event_id": "evt-now", "event_type": "opened", "outreach_id": outreach.pk}]))
    stamped = datetime.fromisoformat(queued()[0].payload["occurred_at"])
    assert before <= stamped <= timezone.now()


def test_an_engagement_without_payload_is_queued_with_an_empty_one(api_client, outreach):
    accepted(post(api_client, [{"event_id": "evt-bare", "event_type": "opened", "outreach_id": outreach.pk}]))
    assert queued()[0].payload["payload"] == {}


def test_a_batch_is_queued_in_order(api_client, outreach):
    events = [
        {"event_id": f"evt-{n}", "event_type": kind, "outreach_id": outreach.pk}
        for n, kind in enumerate(["delivered", "opened", "clicked"])
    ]
    accepted(post(api_client, events))
    assert [row.payload["event_id"] for row in queued()] == ["evt-0", "evt-1", "evt-2"]


def test_posting_an_engagement_does_not_apply_it(api_client, outreach):
    accepted(post(api_client, [{"event_id": "evt-later", "event_type": "converted", "outreach_id": outreach.pk}]))
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.SENT, "")
    assert not EngagementEvent.objects.exists()


def test_x_request_id_becomes_the_queued_rows_correlation_id_and_comes_back(api_client, outreach):
    events = [{"event_id": f"evt-c{n}", "event_type": "opened", "outreach_id": outreach.pk} for n in range(2)]
    response = post(api_client, events, HTTP_X_REQUEST_ID="engage-7")
    accepted(response)
    assert response["X-Request-ID"] == "engage-7"
    assert {row.correlation_id for row in queued()} == {"engage-7"}


# --- Refused events ---------------------------------------------------------------------


def test_an_engagement_for_unknown_outreach_is_reported_by_index_while_the_others_are_queued(api_client, outreach):
    events = [
        {"event_id": "evt-known", "event_type": "opened", "outreach_id": outreach.pk},
        {"event_id": "evt-no-id", "event_type": "opened", "outreach_id": outreach.pk + 1000},
        {"event_id": "evt-no-msg", "event_type": "opened", "message_id": "<nobody@localhost>"},
    ]
    body = accepted(post(api_client, events))
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert body["items"][1:] == [
        {"index": 1, "event_id": "evt-no-id", "outreach_id": None, "error": "no such outreach"},
        {"index": 2, "event_id": "evt-no-msg", "outreach_id": None, "error": "no such outreach"},
    ]
    assert [row.payload["event_id"] for row in queued()] == ["evt-known"]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_type": "opened", "outreach_id": 1}, "event_id:"),
        ({"event_id": "has space", "event_type": "opened", "outreach_id": 1}, "event_id: Use 1-100 letters"),
        ({"event_id": "e" * 101, "event_type": "opened", "outreach_id": 1}, "event_id: Use 1-100 letters"),
        ({"event_id": "evt-t", "event_type": "forwarded", "outreach_id": 1}, "event_type:"),
        ({"event_id": "evt-t", "outreach_id": 1}, "event_type:"),
        ({"event_id": "evt-t", "event_type": "opened"}, "non_field_errors: Give exactly one of"),
        (
            {"event_id": "evt-t", "event_type": "opened", "outreach_id": 1, "message_id": "<x@y>"},
            "non_field_errors: Give exactly one of",
        ),
        ({"event_id": "evt-t", "event_type": "opened", "outreach_id": 0}, "outreach_id:"),
        ({"event_id": "evt-t", "event_type": "opened", "outreach_id": 1, "occurred_at": "soon"}, "occurred_at:"),
        ({"event_id": "evt-t", "event_type": "opened", "outreach_id": 1, "payload": ["x"]}, "payload:"),
        ("opened", "non_field_errors:"),
    ],
    ids=[
        "no-event-id",
        "event-id-with-space",
        "event-id-too-long",
        "unknown-type",
        "no-type",
        "no-outreach",
        "both-outreach-and-message",
        "outreach-id-zero",
        "bad-time",
        "payload-not-object",
        "not-an-object",
    ],
)
def test_an_invalid_engagement_is_reported_by_index_with_the_reason(api_client, outreach, event, error):
    valid = {"event_id": "evt-valid", "event_type": "opened", "outreach_id": outreach.pk}
    body = accepted(post(api_client, [valid, event]))
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["items"][1]["index"] == 1
    assert body["items"][1]["error"].startswith(error)
    assert [row.payload["event_id"] for row in queued()] == ["evt-valid"]


def test_a_batch_with_no_valid_engagement_is_400_with_the_errors_keyed_by_index(api_client, outreach):
    events = [{"event_id": "evt-a", "event_type": "forwarded", "outreach_id": outreach.pk}, {"event_id": "evt-b"}]
    body = assert_problem(post(api_client, events), 400, ["0", "1"])
    assert body["errors"]["0"][0].startswith("event_type:")
    assert not OutboxEvent.objects.exists()


def test_a_batch_naming_only_unknown_outreach_is_400_with_the_errors_keyed_by_index(api_client, outreach):
    events = [
        {"event_id": "evt-x", "event_type": "opened", "outreach_id": outreach.pk + 1000},
        {"event_id": "evt-y", "event_type": "opened", "message_id": "<nobody@localhost>"},
    ]
    body = assert_problem(post(api_client, events), 400, ["0", "1"])
    assert body["errors"] == {"0": ["no such outreach"], "1": ["no such outreach"]}
    assert not OutboxEvent.objects.exists()


def test_a_nul_character_in_the_payload_is_refused_by_index_not_a_server_error(api_client, outreach):
    events = [
        {"event_id": "evt-ok", "event_type": "opened", "outreach_id": outreach.pk},
        {"event_id": "evt-nul", "event_type": "opened", "outreach_id": outreach.pk, "payload": {"ua": "a\u0000b"}},
    ]
    body = accepted(post(api_client, events))
    assert body["items"][1]["error"].startswith("payload:")
    assert [row.payload["event_id"] for row in queued()] == ["evt-ok"]


@pytest.mark.parametrize("value", ["3.5", "1.0", "abc", "0"])
def test_the_list_refuses_an_outreach_filter_that_is_not_an_id(read_client, value):
    assert_problem(read_client.get(ENGAGEMENTS, {"outreach": value}), 400, ["outreach"])


@pytest.mark.parametrize("raw", ['{"ua": "\\ud800"}', '{"weight": 1e999}'], ids=["lone-surrogate", "1e999"])
def test_a_payload_jsonb_cannot_hold_is_refused_by_index_not_a_server_error(api_client, outreach, raw):
    good = {"event_id": "evt-ok", "event_type": "opened", "outreach_id": outreach.pk}
    bad = json.dumps({**good, "event_id": "evt-bad"})[:-1] + f', "payload": {raw}}}'
    response = api_client.generic("POST", ENGAGEMENTS, f"[{json.dumps(good)}, {bad}]", content_type="application/json")
    body = accepted(response)
    assert body["items"][1]["error"].startswith("payload:")
    assert [row.payload["event_id"] for row in queued()] == ["evt-ok"]


@pytest.mark.parametrize("body", [[], "opened"], ids=["empty-list", "string"])
def test_a_body_that_is_neither_an_object_nor_a_list_of_them_is_400(api_client, body):
    assert_problem(post(api_client, body), 400)


def test_a_batch_over_the_limit_is_413_and_queues_nothing(api_client, outreach, settings):
    settings.INGEST_MAX_BATCH = 2
    events = [{"event_id": f"evt-{n}", "event_type": "opened", "outreach_id": outreach.pk} for n in range(3)]
    assert_problem(post(api_client, events), 413)
    assert not OutboxEvent.objects.exists()


def test_a_batch_of_exactly_the_limit_is_accepted(api_client, outreach, settings):
    settings.INGEST_MAX_BATCH = 2
    events = [{"event_id": f"evt-{n}", "event_type": "opened", "outreach_id": outreach.pk} for n in range(2)]
    assert accepted(post(api_client, events))["accepted"] == 2


def test_posting_engagements_needs_a_write_key(read_client, outreach):
    response = post(read_client, [{"event_id": "evt-r", "event_type": "opened", "outreach_id": outreach.pk}])
    assert_problem(response, 403)
    assert not OutboxEvent.objects.exists()


# --- GET: applied engagements -----------------------------------------------------------


def _rows(response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_the_list_shows_applied_engagements_with_their_fields(read_client, outreach):
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    engagement = EngagementEventFactory(outreach=outreach, event_id="evt-shown", event_type="clicked", occurred_at=at)
    [row] = _rows(read_client.get(ENGAGEMENTS))
    assert row["id"] == engagement.pk
    assert (row["event_id"], row["outreach"], row["event_type"]) == ("evt-shown", outreach.pk, "clicked")
    assert parse_datetime(row["occurred_at"]) == at
    assert parse_datetime(row["received_at"]) == engagement.received_at


def test_the_list_shows_the_latest_engagement_first(read_client, outreach):
    now = timezone.now()
    older = EngagementEventFactory(outreach=outreach, occurred_at=now - timedelta(hours=2))
    newer = EngagementEventFactory(outreach=outreach, occurred_at=now - timedelta(hours=1))
    assert [row["id"] for row in _rows(read_client.get(ENGAGEMENTS))] == [newer.pk, older.pk]


def test_the_list_filters_by_event_type(read_client, outreach):
    opened = EngagementEventFactory(outreach=outreach, event_type="opened")
    EngagementEventFactory(outreach=outreach, event_type="clicked")
    assert [row["id"] for row in _rows(read_client.get(ENGAGEMENTS, {"event_type": "opened"}))] == [opened.pk]


def test_the_list_filters_by_outreach(read_client, outreach):
    mine = EngagementEventFactory(outreach=outreach)
    EngagementEventFactory()
    assert [row["id"] for row in _rows(read_client.get(ENGAGEMENTS, {"outreach": outreach.pk}))] == [mine.pk]


def test_the_list_leaves_out_engagements_that_are_only_queued(api_client, outreach):
    accepted(post(api_client, [{"event_id": "evt-queued", "event_type": "opened", "outreach_id": outreach.pk}]))
    assert _rows(api_client.get(ENGAGEMENTS)) == []


def test_the_list_runs_as_many_queries_for_twenty_engagements_as_for_one(read_client, outreach):
    EngagementEventFactory(outreach=outreach)
    read_client.get(ENGAGEMENTS)  # the key's first use is recorded once
    one = query_count(lambda: _rows(read_client.get(ENGAGEMENTS)))
    EngagementEventFactory.create_batch(19, outreach=outreach)
    assert query_count(lambda: _rows(read_client.get(ENGAGEMENTS))) == one
