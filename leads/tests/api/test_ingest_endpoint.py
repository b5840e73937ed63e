"""POST /api/v1/leads/ingest: Lightfield lead.created events stored as leads and queued on `leads.raw`.

These tests never commit, so the in-process bus does not run: they see what the request itself
stored, the leads and their outbox rows, and nothing the stages would do afterwards.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from leads.models import Lead, OutboxEvent
from leads.tests.api.support import query_count
from leads.tests.factories import LeadFactory
from leads.topics import LEADS_RAW
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

INGEST = "/api/v1/leads/ingest"


def lightfield_event(lightfield_id: str = "lf-ingest-1", **changes: Any) -> dict[str, Any]:
    """A complete Lightfield lead.created event; `changes` replace its top-level sections."""
    event: dict[str, Any] = {
        "event_type": "lead.created",
        "timestamp": "2025-03-04T05:06:07Z",
        "lightfield_id": lightfield_id,
        "company": {
            "name": "Acme Analytics",
            "website": "https://acme.example.com",
            "industry": "Software",
            "size": "201-1000",
            "description": "Dashboards for warehouses",
        },
        "contact": {
            "name": "Grace Hopper",
            "email": "grace@acme.example.com",
            "title": "CTO",
            "linkedin": "https://linkedin.example.com/in/grace",
        },
        "source": {"channel": "webinar", "campaign": "spring-launch", "referrer": "https://news.example.com"},
        "metadata": {
            "tech_stack": ["Postgres", "Snowflake"],
            "pain_points": ["manual data entry", "tool sprawl"],
            "budget_range": "100k-500k",
            "timeline": "this quarter",
        },
    }
    event.update(changes)
    return event


def ingest(client, body: Any, **headers: str):
    return client.post(INGEST, body, format="json", **headers)


def accepted(response) -> dict[str, Any]:
    assert response.status_code == 202, response.content
    return response.json()


# --- One event and batches --------------------------------------------------------------


def test_one_event_sent_as_an_object_is_accepted(api_client):
    body = accepted(ingest(api_client, lightfield_event("lf-one")))
    lead = Lead.objects.get()
    assert body == {
        "accepted": 1,
        "rejected": 0,
        "items": [
            {
                "index": 0,
                "lightfield_id": "lf-one",
                "lead_id": lead.pk,
                "created": True,
                "lead_status": "raw",
                "error": None,
            }
        ],
    }


def test_the_event_fields_are_stored_on_the_lead(api_client):
    accepted(ingest(api_client, lightfield_event("lf-fields")))
    lead = Lead.objects.get(lightfield_id="lf-fields")
    assert lead.status == Lead.Status.RAW
    assert lead.score is None
    assert (lead.company_name, lead.company_website, lead.company_industry, lead.company_size) == (
        "Acme Analytics",
        "https://acme.example.com",
        "Software",
        "201-1000",
    )
    assert lead.company_description == "Dashboards for warehouses"
    assert (lead.contact_name, lead.contact_email, lead.contact_title) == (
        "Grace Hopper",
        "grace@acme.example.com",
        "CTO",
    )
    assert lead.contact_linkedin == "https://linkedin.example.com/in/grace"
    assert (lead.source_channel, lead.source_campaign, lead.source_referrer) == (
        "webinar",
        "spring-launch",
        "https://news.example.com",
    )
    assert lead.tech_stack == ["Postgres", "Snowflake"]
    assert lead.pain_points == ["manual data entry", "tool sprawl"]
    assert (lead.budget_range, lead.timeline) == ("100k-500k", "this quarter")
    assert lead.lightfield_created_at == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_a_batch_is_answered_with_one_item_per_event_in_order(api_client):
    body = accepted(ingest(api_client, [lightfield_event(f"lf-batch-{n}") for n in range(3)]))
    leads = {lead.lightfield_id: lead.pk for lead in Lead.objects.all()}
    assert (body["accepted"], body["rejected"]) == (3, 0)
    assert [(item["index"], item["lightfield_id"], item["lead_id"]) for item in body["items"]] == [
        (n, f"lf-batch-{n}", leads[f"lf-batch-{n}"]) for n in range(3)
    ]
    assert {item["created"] for item in body["items"]} == {True}


def test_an_event_with_only_lightfield_id_and_company_name_is_accepted(api_client):
    minimal = {"lightfield_id": "lf-minimal", "company": {"name": "Bare Co"}}
    accepted(ingest(api_client, minimal))
    lead = Lead.objects.get(lightfield_id="lf-minimal")
    assert (lead.company_name, lead.contact_email, lead.company_size, lead.tech_stack) == ("Bare Co", "", "", [])
    assert lead.lightfield_created_at is None


def test_null_sections_and_fields_are_taken_as_missing(api_client):
    event = lightfield_event(
        "lf-nulls",
        timestamp=None,
        contact=None,
        source={"channel": None, "campaign": None, "referrer": None},
        metadata={"tech_stack": None, "pain_points": None, "budget_range": None, "timeline": None},
    )
    event["company"]["size"] = None
    accepted(ingest(api_client, event))
    lead = Lead.objects.get(lightfield_id="lf-nulls")
    assert (lead.contact_email, lead.company_size, lead.budget_range, lead.source_channel) == ("", "", "", "")
    assert (lead.tech_stack, lead.pain_points, lead.lightfield_created_at) == ([], [], None)


# --- Invalid events ---------------------------------------------------------------------


def test_invalid_events_are_reported_by_index_while_the_valid_ones_are_stored(api_client):
    events = [
        lightfield_event("lf-good-0"),
        lightfield_event("lf-no-company", company={"name": ""}),
        "not an object",
        lightfield_event("lf-good-3"),
        lightfield_event("lf-bad-size", company={"name": "Sized", "size": "huge"}),
    ]
    body = accepted(ingest(api_client, events))
    assert (body["accepted"], body["rejected"]) == (2, 3)
    errors = {item["index"]: item["error"] for item in body["items"] if item["error"]}
    assert errors == {
        1: "company.name is required",
        2: "the event must be a JSON object",
        4: "company.size must be one of 1-10, 11-50, 51-200, 201-1000, 1000+ (got 'huge')",
    }
    refused = [item for item in body["items"] if item["error"]]
    assert {(item["lightfield_id"], item["lead_id"], item["created"]) for item in refused} == {(None, None, None)}
    assert set(Lead.objects.values_list("lightfield_id", flat=True)) == {"lf-good-0", "lf-good-3"}


def test_a_1_5_mb_event_is_refused_on_its_own_and_the_events_beside_it_are_stored(api_client):
    big = lightfield_event("lf-big", company={"name": "Big", "description": "x" * 1_500_000})
    body = accepted(ingest(api_client, [lightfield_event("lf-before"), big, lightfield_event("lf-after")]))
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["items"][1]["error"].startswith("the event is 1,5")
    assert body["items"][1]["error"].endswith("bytes as JSON; at most 900,000 are accepted")
    assert set(Lead.objects.values_list("lightfield_id", flat=True)) == {"lf-before", "lf-after"}
    assert OutboxEvent.objects.count() == 2  # nothing the relay could not publish


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"company": {"name": "No id"}}, "lightfield_id must be 1-64 letters, digits, or _ . : -"),
        ({"lightfield_id": "   ", "company": {"name": "Blank id"}}, "lightfield_id must be 1-64 letters"),
        ({"lightfield_id": 42, "company": {"name": "Number id"}}, "lightfield_id must be 1-64 letters"),
        ({"lightfield_id": "x" * 65, "company": {"name": "Long id"}}, "lightfield_id must be 1-64 letters"),
        ({"lightfield_id": "lf-x", "company": "Acme"}, "company must be an object"),
        ({"lightfield_id": "lf-x", "company": {"name": ["Acme"]}}, "company.name must be a string"),
        ({"lightfield_id": "lf-x", "company": {"name": "Acme"}, "timestamp": "yesterday"}, "timestamp must be"),
        ({"lightfield_id": "lf-x", "company": {"name": "Acme"}, "timestamp": "2025-13-01T00:00:00Z"}, "timestamp"),
        (
            {"lightfield_id": "lf-x", "company": {"name": "Acme"}, "metadata": {"budget_range": "a lot"}},
            "metadata.budget_range must be one of",
        ),
        (
            {"lightfield_id": "lf-x", "company": {"name": "Acme"}, "metadata": {"tech_stack": "Postgres"}},
            "metadata.tech_stack must be a list of strings",
        ),
        (
            {"lightfield_id": "lf-x", "company": {"name": "Acme"}, "contact": {"time_zone": "Mars/Olympus_Mons"}},
            "contact.time_zone: 'Mars/Olympus_Mons' is not a known IANA time zone",
        ),
    ],
    ids=[
        "no-id",
        "blank-id",
        "numeric-id",
        "long-id",
        "company-not-object",
        "name-not-string",
        "timestamp-not-iso",
        "impossible-timestamp",
        "unknown-budget",
        "stack-not-list",
        "unknown-time-zone",
    ],
)
def test_an_event_breaking_the_contract_is_refused_with_the_reason(api_client, event, error):
    body = accepted(ingest(api_client, [lightfield_event("lf-fine"), event]))
    assert body["items"][1]["error"].startswith(error)
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-fine"]


def test_a_batch_with_no_valid_event_is_400_with_the_errors_keyed_by_index(api_client):
    response = ingest(api_client, [{"lightfield_id": "lf-a"}, 7])
    body = assert_problem(response, 400, ["0", "1"])
    assert body["errors"] == {"0": ["company.name is required"], "1": ["the event must be a JSON object"]}
    assert not Lead.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize("body", [[], "a string", 12], ids=["empty-list", "string", "number"])
def test_a_body_that_is_neither_an_object_nor_a_list_of_them_is_400(api_client, body):
    assert_problem(ingest(api_client, body), 400)
    assert not Lead.objects.exists()


def test_a_batch_over_the_limit_is_413_and_stores_nothing(api_client, settings):
    settings.INGEST_MAX_BATCH = 3
    response = ingest(api_client, [lightfield_event(f"lf-big-{n}") for n in range(4)])
    body = assert_problem(response, 413)
    assert body["max_batch"] == 3
    assert not Lead.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_batch_of_exactly_the_limit_is_accepted(api_client, settings):
    settings.INGEST_MAX_BATCH = 3
    body = accepted(ingest(api_client, [lightfield_event(f"lf-full-{n}") for n in range(3)]))
    assert body["accepted"] == 3


def ingest_raw(client, text: str):
    """POST `text` as it is: some hostile JSON (NaN, 1e999) has no Python value to render it from."""
    return client.generic("POST", INGEST, text.encode(), content_type="application/json")


def _event_json(raw: dict[str, str] | None = None, **changes: Any) -> str:
    """A Lightfield event as JSON text, with each of `raw`'s fields appended as written (unparsed)."""
    text = json.dumps(lightfield_event("lf-hostile", **changes))
    return text[:-1] + "".join(f", {json.dumps(name)}: {value}" for name, value in (raw or {}).items()) + "}"


_CLEAN = json.dumps(lightfield_event("lf-clean"))
_NOT_FINITE = "score_hint is not a finite number (NaN, Infinity or out of range)"
_BAD_EMAIL = "contact.email is not a valid address: "
# Each event the database could not store, or that would fail at send time, and its answer.
HOSTILE = {
    "nul-in-a-field": (_event_json(company={"name": "Acme\u0000Corp"}), "company.name contains a NUL character"),
    "nul-in-an-unknown-field": (
        _event_json({"notes": '["fine", "not\\u0000fine"]'}),
        "notes[1] contains a NUL character",
    ),
    "nul-in-a-key": (_event_json(company={"name": "Acme", "key\u0000": "value"}), "a key in company contains a NUL"),
    "lone-surrogate-in-a-field": (_event_json({"contact": '{"name": "\\ud800"}'}), "contact.name contains a lone"),
    "lone-surrogate-deep-inside": (
        _event_json({"extra": '{"deep": ["\\udfff"]}'}),
        "extra.deep[0] contains a lone surrogate",
    ),
    "nan": (_event_json({"score_hint": "NaN"}), _NOT_FINITE),
    "infinity": (_event_json({"score_hint": "-Infinity"}), _NOT_FINITE),
    "out-of-range-number": (_event_json({"score_hint": "1e999"}), _NOT_FINITE),
    "display-name-email": (
        _event_json(contact={"email": "Friend <x@acme.example.com>"}),
        _BAD_EMAIL + "A display name",
    ),
    "crlf-in-the-email": (_event_json(contact={"email": "x@acme.example.com\r\nBcc: y@z.example"}), _BAD_EMAIL),
    "comma-in-the-email": (_event_json(contact={"email": "a,b@acme.example.com"}), _BAD_EMAIL),
}


@pytest.mark.parametrize(("text", "error"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_event_is_refused_by_index_and_the_valid_one_beside_it_is_stored(api_client, text, error):
    body = accepted(ingest_raw(api_client, f"[{_CLEAN}, {text}]"))
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["items"][1]["error"].startswith(error)
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-clean"]
    assert list(OutboxEvent.objects.values_list("key", flat=True)) == ["lf-clean"]


def test_a_batch_of_every_hostile_event_stores_only_the_valid_one(api_client):
    texts = [text for text, _ in HOSTILE.values()]
    body = accepted(ingest_raw(api_client, "[" + ", ".join([*texts, _CLEAN]) + "]"))
    assert (body["accepted"], body["rejected"]) == (1, len(HOSTILE))
    for item, (_, error) in zip(body["items"], HOSTILE.values(), strict=False):
        assert item["error"].startswith(error)
    assert body["items"][-1]["lightfield_id"] == "lf-clean"
    assert list(Lead.objects.values_list("lightfield_id", flat=True)) == ["lf-clean"]


def test_a_single_event_holding_nan_is_a_400_naming_the_field(api_client):
    body = assert_problem(ingest_raw(api_client, _event_json({"hint": "NaN"})), 400, ["0"])
    assert body["errors"] == {"0": ["hint is not a finite number (NaN, Infinity or out of range)"]}


def test_the_literal_text_backslash_u0000_is_stored_as_sent(api_client):
    accepted(ingest(api_client, lightfield_event("lf-text", note="the escape \\u0000 as text")))
    assert Lead.objects.get().raw_payload["note"] == "the escape \\u0000 as text"


def test_the_contact_email_is_stored_in_its_normalised_form(api_client):
    accepted(ingest(api_client, lightfield_event("lf-case", contact={"email": "  Dana@ACME-One.Example "})))
    assert Lead.objects.get().contact_email == "Dana@acme-one.example"


@pytest.mark.parametrize("contact", [{"email": ""}, {"email": None}, {"name": "No Address"}], ids=repr)
def test_an_event_without_a_contact_email_is_stored_without_one(api_client, contact):
    accepted(ingest(api_client, lightfield_event("lf-no-email", contact=contact)))
    assert Lead.objects.get().contact_email == ""


def test_line_breaks_in_header_fields_become_spaces_and_the_description_keeps_them(api_client):
    event = lightfield_event(
        "lf-lines",
        company={"name": "Acme\r\nBcc: x@evil.example", "description": "Line one\nLine two"},
        contact={"name": "Grace\nHopper", "title": "CTO\r\n", "email": "grace@acme.example.com"},
    )
    accepted(ingest(api_client, event))
    lead = Lead.objects.get()
    assert (lead.company_name, lead.contact_name, lead.contact_title) == (
        "Acme Bcc: x@evil.example",
        "Grace Hopper",
        "CTO",
    )
    assert lead.company_description == "Line one\nLine two"


def test_the_contact_time_zone_is_stored_on_the_lead(api_client):
    event = lightfield_event("lf-zoned")
    event["contact"]["time_zone"] = " America/New_York "
    accepted(ingest(api_client, event))
    assert Lead.objects.get(lightfield_id="lf-zoned").time_zone == "America/New_York"


def test_a_timestamp_with_an_offset_postgresql_cannot_store_is_kept_in_utc(api_client):
    # ISO 8601 allows offsets up to 23:59; PostgreSQL refuses any beyond 15:59 (this was a 500).
    accepted(ingest(api_client, lightfield_event("lf-far-east", timestamp="2025-03-04T17:25:07+17:19")))
    lead = Lead.objects.get(lightfield_id="lf-far-east")
    assert lead.lightfield_created_at == datetime(2025, 3, 4, 0, 6, 7, tzinfo=UTC)


def test_a_timestamp_out_of_range_in_utc_is_refused_by_index(api_client):
    event = lightfield_event("lf-too-early", timestamp="0001-01-01T00:00:00+17:00")
    body = accepted(ingest(api_client, [lightfield_event("lf-fine"), event]))
    assert body["items"][1]["error"].startswith("timestamp")


# --- Upsert by lightfield_id ------------------------------------------------------------


def test_a_second_ingest_of_a_lightfield_id_updates_the_same_lead(api_client):
    first = accepted(ingest(api_client, lightfield_event("lf-again")))["items"][0]
    changed = lightfield_event("lf-again", company={"name": "Acme Renamed", "size": "1000+"})
    second = accepted(ingest(api_client, changed))["items"][0]
    assert (second["lead_id"], second["created"]) == (first["lead_id"], False)
    lead = Lead.objects.get()
    assert (lead.company_name, lead.company_size) == ("Acme Renamed", "1000+")
    assert lead.raw_payload == changed


def test_a_second_ingest_keeps_the_score_and_status_the_pipeline_gave_the_lead(api_client):
    lead = LeadFactory(lightfield_id="lf-scored", status=Lead.Status.CONTACTED, score=0.9, persona="enterprise")
    item = accepted(ingest(api_client, lightfield_event("lf-scored")))["items"][0]
    assert (item["lead_id"], item["created"], item["lead_status"]) == (lead.pk, False, "contacted")
    lead.refresh_from_db()
    assert (lead.status, lead.score, lead.persona) == (Lead.Status.CONTACTED, 0.9, "enterprise")
    assert lead.company_name == "Acme Analytics"


def test_a_lightfield_id_twice_in_one_batch_makes_one_lead_with_the_later_event(api_client):
    earlier = lightfield_event("lf-twice", company={"name": "Earlier Name"})
    later = lightfield_event("lf-twice", company={"name": "Later Name"})
    body = accepted(ingest(api_client, [earlier, later]))
    lead = Lead.objects.get()
    assert lead.company_name == "Later Name"
    assert [(item["index"], item["lead_id"]) for item in body["items"]] == [(0, lead.pk), (1, lead.pk)]
    assert body["accepted"] == 2


def test_a_lightfield_id_twice_in_one_batch_is_queued_once_with_the_later_event(api_client):
    later = lightfield_event("lf-twice", company={"name": "Later Name"})
    accepted(ingest(api_client, [lightfield_event("lf-twice"), later]))
    assert list(OutboxEvent.objects.values_list("payload", flat=True)) == [later]


def test_unknown_fields_are_kept_in_the_raw_payload(api_client):
    event = lightfield_event("lf-extra", crm_owner="ops-team", score_hint=0.4)
    event["company"]["ticker"] = "ACME"
    event["metadata"]["intent"] = {"topics": ["pipelines"], "strength": 3}
    accepted(ingest(api_client, event))
    lead = Lead.objects.get()
    assert lead.raw_payload == event
    assert lead.raw_payload["crm_owner"] == "ops-team"
    assert lead.raw_payload["metadata"]["intent"] == {"topics": ["pipelines"], "strength": 3}


# --- The outbox -------------------------------------------------------------------------


def test_each_accepted_event_is_queued_on_leads_raw_keyed_by_lightfield_id_unchanged(api_client):
    events = [lightfield_event("lf-q-1", unknown_field=[1, 2]), {"lightfield_id": "lf-q-2", "company": {"name": "Q"}}]
    sent = copy.deepcopy(events)
    accepted(ingest(api_client, events))
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [(row.topic, row.key, row.event_type) for row in rows] == [
        (LEADS_RAW, "lf-q-1", "lead.created"),
        (LEADS_RAW, "lf-q-2", "lead.created"),
    ]
    assert [row.payload for row in rows] == sent
    assert {row.published_at for row in rows} == {None}
    assert len({row.event_id for row in rows}) == 2


def test_refused_events_are_not_queued(api_client):
    accepted(ingest(api_client, [lightfield_event("lf-kept"), {"lightfield_id": "lf-refused"}]))
    assert list(OutboxEvent.objects.values_list("key", flat=True)) == ["lf-kept"]


def test_a_reingested_event_is_queued_again(api_client):
    accepted(ingest(api_client, lightfield_event("lf-requeued")))
    accepted(ingest(api_client, lightfield_event("lf-requeued", timeline="next year")))
    assert list(OutboxEvent.objects.values_list("key", flat=True)) == ["lf-requeued", "lf-requeued"]


def test_x_request_id_becomes_the_outbox_correlation_id_and_comes_back(api_client):
    response = ingest(api_client, [lightfield_event("lf-c1"), lightfield_event("lf-c2")], HTTP_X_REQUEST_ID="req-42")
    accepted(response)
    assert response["X-Request-ID"] == "req-42"
    assert set(OutboxEvent.objects.values_list("correlation_id", flat=True)) == {"req-42"}


def test_without_x_request_id_the_outbox_rows_carry_the_id_the_response_gives(api_client):
    response = ingest(api_client, [lightfield_event("lf-n1"), lightfield_event("lf-n2")])
    accepted(response)
    assert response["X-Request-ID"]
    assert set(OutboxEvent.objects.values_list("correlation_id", flat=True)) == {response["X-Request-ID"]}


def test_a_malformed_x_request_id_is_replaced_by_a_fresh_one(api_client):
    response = ingest(api_client, lightfield_event("lf-m"), HTTP_X_REQUEST_ID="bad id; drop table")
    accepted(response)
    assert response["X-Request-ID"] != "bad id; drop table"
    assert OutboxEvent.objects.get().correlation_id == response["X-Request-ID"]


def test_the_400_problem_carries_the_request_correlation_id(api_client):
    response = ingest(api_client, [{"lightfield_id": "lf-none"}], HTTP_X_REQUEST_ID="req-400")
    body = assert_problem(response, 400, ["0"])
    assert body["correlation_id"] == "req-400"


# --- Cost -------------------------------------------------------------------------------


def test_a_batch_of_fifty_runs_no_more_queries_than_a_batch_of_one(api_client):
    accepted(ingest(api_client, [lightfield_event("lf-cost-warm-up")]))  # the key's first use is recorded once
    one = query_count(lambda: accepted(ingest(api_client, [lightfield_event("lf-cost-single")])))
    fifty = query_count(lambda: accepted(ingest(api_client, [lightfield_event(f"lf-cost-{n}") for n in range(50)])))
    assert fifty == one
