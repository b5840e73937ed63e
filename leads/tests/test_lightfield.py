"""The inbound contract: Lightfield lead.created events parsed into Lead fields, or refused."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from faker import Faker

from leads.lightfield import InvalidEvent, fake_event, parse_event, storage_problem

FULL_EVENT = {
    "event_type": "lead.created",
    "timestamp": "2026-03-01T09:30:00+01:00",
    "lightfield_id": "lf-123",
    "company": {
        "name": "Acme Corp",
        "website": "https://acme.example.com",
        "industry": "Software",
        "size": "201-1000",
        "description": "Anvils and rockets",
    },
    "contact": {
        "name": "Wile E. Coyote",
        "email": "wile@acme.example.com",
        "title": "VP Engineering",
        "linkedin": "https://linkedin.example.com/in/wile",
        "time_zone": "America/Phoenix",
    },
    "source": {"channel": "webinar", "campaign": "spring-launch", "referrer": "https://news.example.com"},
    "metadata": {
        "tech_stack": ["Salesforce", "Slack"],
        "pain_points": ["manual data entry"],
        "budget_range": "100k-500k",
        "timeline": "3 months",
    },
}


def _event(**changes: object) -> dict[str, Any]:
    """FULL_EVENT with dotted paths replaced (a value of ... removes the key)."""
    event: dict[str, Any] = copy.deepcopy(FULL_EVENT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target: Any = event
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return event


def test_full_event_fills_every_lead_field():
    fields = parse_event(copy.deepcopy(FULL_EVENT))
    assert fields == {
        "lightfield_id": "lf-123",
        "raw_payload": FULL_EVENT,
        "company_name": "Acme Corp",
        "company_website": "https://acme.example.com",
        "company_industry": "Software",
        "company_size": "201-1000",
        "company_description": "Anvils and rockets",
        "contact_name": "Wile E. Coyote",
        "contact_email": "wile@acme.example.com",
        "contact_title": "VP Engineering",
        "contact_linkedin": "https://linkedin.example.com/in/wile",
        "source_channel": "webinar",
        "source_campaign": "spring-launch",
        "source_referrer": "https://news.example.com",
        "tech_stack": ["Salesforce", "Slack"],
        "pain_points": ["manual data entry"],
        "budget_range": "100k-500k",
        "timeline": "3 months",
        "lightfield_created_at": datetime(2026, 3, 1, 8, 30, tzinfo=UTC),
        "time_zone": "America/Phoenix",
    }


def test_minimal_event_needs_only_lightfield_id_and_company_name():
    fields = parse_event({"lightfield_id": "lf-1", "company": {"name": "Tiny"}})
    assert (fields["lightfield_id"], fields["company_name"]) == ("lf-1", "Tiny")
    assert fields["contact_email"] == fields["company_size"] == fields["budget_range"] == ""
    assert fields["tech_stack"] == fields["pain_points"] == []
    assert fields["lightfield_created_at"] is None


def test_null_sections_and_fields_are_treated_as_missing():
    event = {
        "lightfield_id": "lf-1",
        "company": {"name": "Tiny", "size": None},
        "contact": None,
        "metadata": {"tech_stack": None},
    }
    fields = parse_event(event)
    assert (fields["company_size"], fields["contact_name"], fields["tech_stack"]) == ("", "", [])


def test_unknown_fields_are_kept_in_the_raw_payload():
    event = _event(crm_region="emea", company__employees_exact=412)
    fields = parse_event(event)
    assert fields["raw_payload"]["crm_region"] == "emea"
    assert fields["raw_payload"]["company"]["employees_exact"] == 412


def test_naive_timestamp_is_taken_as_utc():
    fields = parse_event(_event(timestamp="2026-03-01T09:30:00"))
    assert fields["lightfield_created_at"] == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_text_fields_are_stripped_and_cut_to_the_column_length():
    fields = parse_event(_event(lightfield_id="  lf-9  ", company__name="  " + "N" * 300))
    assert fields["lightfield_id"] == "lf-9"
    assert fields["company_name"] == "N" * 255


@pytest.mark.parametrize("event", [[], "lead", None, 42], ids=["list", "string", "null", "number"])
def test_event_that_is_not_an_object_is_refused(event):
    with pytest.raises(InvalidEvent, match="must be a JSON object"):
        parse_event(event)


@pytest.mark.parametrize("lightfield_id", [..., None, "", "   ", 123, "x" * 65], ids=repr)
def test_missing_or_empty_lightfield_id_is_refused(lightfield_id):
    with pytest.raises(InvalidEvent, match="lightfield_id must be 1-64 letters"):
        parse_event(_event(lightfield_id=lightfield_id))


@pytest.mark.parametrize("changes", [{"company__name": ...}, {"company__name": "  "}, {"company": ...}])
def test_missing_company_name_is_refused(changes):
    with pytest.raises(InvalidEvent, match=r"company\.name is required"):
        parse_event(_event(**changes))


def test_unknown_company_size_is_refused():
    with pytest.raises(InvalidEvent, match=r"company\.size must be one of .*\(got '42'\)"):
        parse_event(_event(company__size="42"))


def test_unknown_budget_range_is_refused():
    with pytest.raises(InvalidEvent, match=r"metadata\.budget_range must be one of .*\(got 'lots'\)"):
        parse_event(_event(metadata__budget_range="lots"))


@pytest.mark.parametrize("tech_stack", ["Salesforce", ["Salesforce", 3], {"crm": "Salesforce"}], ids=repr)
def test_tech_stack_that_is_not_a_list_of_strings_is_refused(tech_stack):
    with pytest.raises(InvalidEvent, match=r"metadata\.tech_stack must be a list of strings"):
        parse_event(_event(metadata__tech_stack=tech_stack))


@pytest.mark.parametrize("timestamp", ["yesterday", "2026-13-45T00:00:00Z", 1767225600], ids=repr)
def test_bad_timestamp_is_refused(timestamp):
    with pytest.raises(InvalidEvent, match="timestamp must be an ISO 8601 date-time"):
        parse_event(_event(timestamp=timestamp))


@pytest.mark.parametrize("section", ["company", "contact", "source", "metadata"])
def test_section_that_is_not_an_object_is_refused(section):
    with pytest.raises(InvalidEvent, match=f"{section} must be an object"):
        parse_event(_event(**{section: ["not", "an", "object"]}))


def test_text_field_that_is_an_object_is_refused():
    with pytest.raises(InvalidEvent, match=r"contact\.email must be a string"):
        parse_event(_event(contact__email={"work": "a@example.com"}))


def _seeded_fake_event(seed: int, lightfield_id: str = "lf-fake") -> dict:
    fake = Faker()
    fake.seed_instance(seed)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return fake_event(fake, random.Random(seed), lightfield_id, at=at)


def test_fake_event_is_reproducible_under_a_seed():
    assert _seeded_fake_event(5) == _seeded_fake_event(5)


def test_fake_events_differ_between_seeds():
    assert _seeded_fake_event(5) != _seeded_fake_event(6)


@pytest.mark.parametrize("seed", range(20))
def test_fake_event_parses(seed):
    fields = parse_event(_seeded_fake_event(seed, f"lf-{seed}"))
    assert fields["lightfield_id"] == f"lf-{seed}"
    assert fields["company_name"]


@pytest.mark.parametrize("lightfield_id", ["has space", "a/b", "ünï"])
def test_lightfield_id_outside_the_lookup_alphabet_is_refused(lightfield_id):
    with pytest.raises(InvalidEvent, match="lightfield_id must be 1-64 letters"):
        parse_event({"lightfield_id": lightfield_id, "company": {"name": "Acme"}})


# --- What the database could not store, and what would fail at send time ----------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"company__name": "Acme\u0000Corp"}, "company.name contains a NUL character (U+0000)"),
        ({"notes": ["fine", "not\u0000fine"]}, "notes[1] contains a NUL character (U+0000)"),
        ({"company__key\u0000": "value"}, "a key in company contains a NUL character (U+0000)"),
        ({"contact__name": "Grace \ud800"}, "contact.name contains a lone surrogate"),
        ({"extra": {"deep": [["\udfff"]]}}, "extra.deep[0][0] contains a lone surrogate"),
        ({"\udc80": 1}, "a key in the event contains a lone surrogate"),
        ({"score_hint": float("nan")}, "score_hint is not a finite number"),
        ({"score_hint": float("-inf")}, "score_hint is not a finite number"),
        ({"metadata__intent": json.loads('{"strength": 1e999}')}, "metadata.intent.strength is not a finite number"),
    ],
    ids=["nul", "nul-unknown-field", "nul-key", "surrogate", "surrogate-deep", "surrogate-key", "nan", "-inf", "1e999"],
)
def test_what_postgresql_cannot_store_is_refused_naming_where(changes, error):
    with pytest.raises(InvalidEvent) as refused:
        parse_event(_event(**changes))
    assert str(refused.value).startswith(error)


def test_non_finite_numbers_from_json_text_are_refused():
    for text in ("NaN", "Infinity", "-Infinity", "1e999", "-1e400"):
        event = json.loads(json.dumps(FULL_EVENT)[:-1] + f', "hint": {text}}}')
        with pytest.raises(InvalidEvent, match="hint is not a finite number"):
            parse_event(event)


def test_valid_text_that_looks_like_a_problem_is_kept():
    event = _event(note="the escape \\u0000 as text", company__description="emoji \U0001f600 and \u00e9")
    assert parse_event(event)["raw_payload"]["note"] == "the escape \\u0000 as text"


def test_a_problem_nested_deeper_than_the_encoder_goes_is_still_found():
    deep: Any = "not\u0000fine"
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(InvalidEvent, match=r"deep\[0\].*contains a NUL character"):
        parse_event(_event(deep=deep))


def test_storage_problem_is_none_for_a_clean_event():
    assert storage_problem(_seeded_fake_event(1)) is None


@pytest.mark.parametrize(
    ("email", "stored"),
    [
        ("wile@acme.example.com", "wile@acme.example.com"),
        ("  Wile@ACME.Example.com ", "Wile@acme.example.com"),
        ("dana@BÜCHER.example", "dana@bücher.example"),
        ("", ""),
        (None, ""),
    ],
    ids=repr,
)
def test_contact_email_is_stored_in_its_normalised_form(email, stored):
    assert parse_event(_event(contact__email=email))["contact_email"] == stored


def test_an_event_without_a_contact_email_is_accepted():
    assert parse_event(_event(contact__email=...))["contact_email"] == ""


@pytest.mark.parametrize(
    "email",
    [
        "Friend <x@acme.example.com>",
        "x@acme.example.com\r\nBcc: y@evil.example",
        "x@acme.example.com\nfoo",
        "a,b@acme.example.com",
        '"a,b"@acme.example.com',
        "two words@acme.example.com",
        "x@localhost",
        "x@acme.test",
        "josé@acme.example.com",
        "not-an-email",
    ],
    ids=repr,
)
def test_a_contact_email_we_could_not_send_to_is_refused(email):
    with pytest.raises(InvalidEvent, match=r"contact\.email is not a valid address: "):
        parse_event(_event(contact__email=email))


def test_line_breaks_in_the_fields_that_reach_mail_headers_become_spaces():
    fields = parse_event(
        _event(company__name="Acme\r\nBcc: x@evil.example", contact__name="Wile\nE.\tCoyote", contact__title="VP\u2028")
    )
    assert (fields["company_name"], fields["contact_name"], fields["contact_title"]) == (
        "Acme Bcc: x@evil.example",
        "Wile E. Coyote",
        "VP",
    )


def test_the_company_description_keeps_its_line_breaks():
    assert parse_event(_event(company__description="One\nTwo"))["company_description"] == "One\nTwo"
