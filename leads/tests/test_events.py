"""Events on the wire: reading a Kafka message's parts, and writing the headers back."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from leads.pipeline.events import Event, encode, event_from_message, wire_headers
from leads.topics import LEADS_RAW, OUTREACH_EVENTS, dead_letter_topic


def test_event_from_message_reads_the_event_id_type_and_correlation_id_from_the_headers():
    event = event_from_message(
        topic=LEADS_RAW,
        key=b"lf-1",
        value=b'{"lightfield_id": "lf-1"}',
        headers=[("event_id", b"evt-1"), ("event_type", b"lead.created"), ("correlation_id", b"corr-1")],
    )
    assert (event.topic, event.key, event.value) == (LEADS_RAW, "lf-1", b'{"lightfield_id": "lf-1"}')
    assert (event.event_id, event.event_type, event.correlation_id) == ("evt-1", "lead.created", "corr-1")


def test_a_message_without_headers_is_identified_by_the_sha256_of_its_bytes():
    body = b'{"lightfield_id": "lf-external"}'
    event = event_from_message(topic=LEADS_RAW, key=b"lf-external", value=body, headers=None)
    assert event.event_id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (event.event_type, event.correlation_id, event.headers) == ("", "", {})


def test_a_redelivered_copy_of_a_message_without_headers_gets_the_same_event_id():
    first = event_from_message(topic=LEADS_RAW, key=None, value=b"same bytes", headers=[])
    again = event_from_message(topic=LEADS_RAW, key=b"other key", value=b"same bytes", headers=[])
    different = event_from_message(topic=LEADS_RAW, key=None, value=b"other bytes", headers=[])
    assert first.event_id == again.event_id != different.event_id


def test_an_empty_event_id_header_falls_back_to_the_sha256():
    event = event_from_message(topic=LEADS_RAW, key=b"k", value=b"body", headers=[("event_id", b"")])
    assert event.event_id == "sha256:" + hashlib.sha256(b"body").hexdigest()


def test_event_from_message_tolerates_a_none_key_and_value():
    event = event_from_message(topic=OUTREACH_EVENTS, key=None, value=None, headers=None)
    assert (event.key, event.value) == ("", b"")
    assert event.event_id == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_event_from_message_tolerates_undecodable_bytes_and_none_header_values():
    event = event_from_message(
        topic=LEADS_RAW, key=b"\xff\xfe", value=b"\xff", headers=[("event_type", None), ("x-bad", b"\xff")]
    )
    assert event.key == "\ufffd\ufffd"
    assert event.headers == {"event_type": "", "x-bad": "\ufffd"}
    assert event.event_type == ""


def test_wire_headers_round_trip_through_event_from_message():
    original = Event(
        topic=LEADS_RAW,
        key="lf-1",
        value=b"{}",
        event_id="evt-1",
        event_type="lead.created",
        correlation_id="corr-1",
        headers={"x-source": "crm"},
    )
    received = event_from_message(
        topic=original.topic, key=original.key.encode(), value=original.value, headers=wire_headers(original)
    )
    assert (received.key, received.value, received.event_id) == ("lf-1", b"{}", "evt-1")
    assert (received.event_type, received.correlation_id) == ("lead.created", "corr-1")
    assert received.headers["x-source"] == "crm"
    assert wire_headers(received) == wire_headers(original)


def test_wire_headers_leave_out_empty_values():
    event = Event(topic=LEADS_RAW, key="lf-1", value=b"{}", event_id="evt-1", headers={"x-empty": ""})
    assert wire_headers(event) == [("event_id", b"evt-1")]


def test_wire_headers_take_the_event_id_from_the_event_not_from_stale_headers():
    event = Event(topic=LEADS_RAW, key="k", value=b"{}", event_id="evt-new", headers={"event_id": "evt-old"})
    assert dict(wire_headers(event))["event_id"] == b"evt-new"


def test_event_payload_decodes_the_json_value():
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = Event(topic=LEADS_RAW, key="k", value=encode({"at": at, "n": 1}), event_id="e")
    assert event.payload() == {"at": "2025-01-02 03:04:05+00:00", "n": 1}


def test_dead_letter_topic_is_the_topic_with_a_dlq_suffix():
    assert dead_letter_topic(LEADS_RAW) == "leads.raw.dlq"


def test_event_from_message_replaces_nul_in_the_key_and_headers_which_postgresql_cannot_store():
    event = event_from_message(
        topic=LEADS_RAW, key=b"k\x00", value=b"\x00", headers=[("event_id", b"e\x00"), ("n\x00", b"v\x00")]
    )
    assert (event.key, event.event_id) == ("k\ufffd", "e\ufffd")
    assert event.headers == {"event_id": "e\ufffd", "n\ufffd": "v\ufffd"}
    assert event.value == b"\x00"  # the body stays as sent
