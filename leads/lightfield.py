"""The inbound contract: Lightfield `lead.created` events, and realistic fakes of them.

`parse_event` turns one event into the Lead fields it carries, or raises InvalidEvent with
the reason; `fake_event` makes one for demos, simulators and benchmarks.
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from leads.addresses import InvalidAddress, email_normalize, single_line
from leads.models import BudgetRange, CompanySize
from leads.zones import UnknownTimeZone, time_zone_check

if TYPE_CHECKING:  # only the demo and simulation commands make events; faker costs start-up ~0.07 s
    from faker import Faker

# The same rule as the API's create and lookup routes, so every stored lead can be looked up.
LIGHTFIELD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class InvalidEvent(ValueError):
    """The event breaks the contract; the message says where."""


_TEXT_LIMITS = {  # Lead field: (path in the event, longest value kept); contact_email is _email's
    "company_name": (("company", "name"), 255),
    "company_website": (("company", "website"), 500),
    "company_industry": (("company", "industry"), 100),
    "company_description": (("company", "description"), 10_000),
    "contact_name": (("contact", "name"), 255),
    "contact_title": (("contact", "title"), 255),
    "contact_linkedin": (("contact", "linkedin"), 500),
    "source_channel": (("source", "channel"), 100),
    "source_campaign": (("source", "campaign"), 255),
    "source_referrer": (("source", "referrer"), 500),
    "timeline": (("metadata", "timeline"), 100),
}


# Kept as sent, line breaks included; every other text field is made one line (single_line).
_MULTI_LINE = {"company_description"}

# Read once: an enum's `values` is computed afresh on every access.
_COMPANY_SIZES, _BUDGET_RANGES = tuple(CompanySize.values), tuple(BudgetRange.values)


def parse_event(event: Any) -> dict[str, Any]:
    """The Lead fields of one event; any field but lightfield_id and company.name may be missing.

    Refused (InvalidEvent, naming the field): anything PostgreSQL cannot store, anywhere in the
    event (see `storage_problem`), and a contact.email we could not send to. Text fields but
    company.description are made one line, so none can inject a mail header."""
    if not isinstance(event, dict):
        raise InvalidEvent("the event must be a JSON object")
    problem = storage_problem(event)
    if problem:
        raise InvalidEvent(problem)
    lightfield_id = event.get("lightfield_id")
    if not isinstance(lightfield_id, str) or not LIGHTFIELD_ID.fullmatch(lightfield_id.strip()):
        raise InvalidEvent("lightfield_id must be 1-64 letters, digits, or _ . : -")
    fields: dict[str, Any] = {"lightfield_id": lightfield_id.strip(), "raw_payload": event}
    for field, (path, limit) in _TEXT_LIMITS.items():
        text = _text(event, path)
        fields[field] = (text if field in _MULTI_LINE else single_line(text))[:limit]
    if not fields["company_name"]:
        raise InvalidEvent("company.name is required")
    fields["contact_email"] = _email(_text(event, ("contact", "email")))
    fields["company_size"] = _choice(event, ("company", "size"), _COMPANY_SIZES)
    fields["budget_range"] = _choice(event, ("metadata", "budget_range"), _BUDGET_RANGES)
    fields["tech_stack"] = _string_list(event, ("metadata", "tech_stack"))
    fields["pain_points"] = _string_list(event, ("metadata", "pain_points"))
    fields["lightfield_created_at"] = _timestamp(event.get("timestamp"))
    fields["time_zone"] = _time_zone(_text(event, ("contact", "time_zone")))
    return fields


def _time_zone(name: str) -> str:
    """contact.time_zone (where the send window applies), an IANA name; "" when not given."""
    try:
        return time_zone_check(name)
    except UnknownTimeZone as error:
        raise InvalidEvent(f"contact.time_zone: {error}") from None


# The C encoder refuses NaN and +-Infinity (1e999 decodes to Infinity) with a ValueError; with
# ensure_ascii off it writes a lone surrogate as it is, so encoding its output to UTF-8 finds one.
_STRICT_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def storage_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored in PostgreSQL text or jsonb, naming where
    (`company.name contains a NUL character (U+0000)`); None when it can. Refused: U+0000, a
    lone surrogate such as "\\ud800" (not Unicode text), NaN, Infinity and numbers out of
    range, in any key or value at any depth; and a value larger, as JSON, than the largest event
    the pipeline carries (PIPELINE_MAX_EVENT_BYTES).

    One pass of the C encoder answers for a clean value (a few microseconds for an event); only
    a value it flags is walked in Python to find the place."""
    try:
        text = _STRICT_JSON.encode(value)
    except (ValueError, RecursionError):  # not finite, or nested deeper than the encoder goes
        return _storage_problem_at(value)
    if "\\u0000" in text:  # U+0000, or the literal text \u0000 (the walk tells them apart)
        return _storage_problem_at(value)
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return _storage_problem_at(value)
    if size > settings.PIPELINE_MAX_EVENT_BYTES:
        return f"the event is {size:,} bytes as JSON; at most {settings.PIPELINE_MAX_EVENT_BYTES:,} are accepted"
    return None


def _storage_problem_at(value: Any) -> str | None:
    """The walk behind `storage_problem`: iterative, so any depth is safe."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return f"{path or 'the value'} {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path or 'the value'} is not a finite number (NaN, Infinity or out of range)"
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = _text_problem(str(key))
                if problem:
                    return f"a key in {path or 'the event'} {problem}"
                name = str(key)[:64]
                pending.append((child, f"{path}.{name}" if path else name))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains a lone surrogate (such as \\ud800), which is not Unicode text"
    return None


def _email(address: str) -> str:
    """contact.email in its normalised form; empty stays empty (such a lead is never contacted)."""
    if not address:
        return ""
    try:
        return email_normalize(address)
    except InvalidAddress as error:
        raise InvalidEvent(f"contact.email is not a valid address: {error}") from None


def _section(event: dict[str, Any], name: str) -> dict[str, Any]:
    section = event.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InvalidEvent(f"{name} must be an object")
    return section


def _text(event: dict[str, Any], path: tuple[str, str]) -> str:
    value = _section(event, path[0]).get(path[1])
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise InvalidEvent(f"{'.'.join(path)} must be a string")
    return str(value).strip()


def _choice(event: dict[str, Any], path: tuple[str, str], allowed: tuple[str, ...]) -> str:
    value = _text(event, path)
    if value and value not in allowed:
        raise InvalidEvent(f"{'.'.join(path)} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _string_list(event: dict[str, Any], path: tuple[str, str]) -> list[str]:
    value = _section(event, path[0]).get(path[1])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidEvent(f"{'.'.join(path)} must be a list of strings")
    return [item[:200] for item in value[:50]]


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, such as month 13
        parsed = None
    if parsed is None:
        raise InvalidEvent("timestamp must be an ISO 8601 date-time")
    if not parsed.tzinfo:
        return parsed.replace(tzinfo=UTC)
    # ISO 8601 allows UTC offsets up to 23:59 and PostgreSQL refuses any beyond 15:59: keep UTC.
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent("timestamp must fall between the years 1 and 9999 in UTC") from None


# --- Fakes ------------------------------------------------------------------------------

_INDUSTRIES = [
    "Software",
    "SaaS",
    "Fintech",
    "Healthcare",
    "E-commerce",
    "Manufacturing",
    "Education",
    "Logistics",
    "Marketing",
    "Retail",
    "Government",
    "Non-profit",
]
_TITLES = [
    "CEO",
    "CTO",
    "Founder",
    "VP of Sales",
    "VP Engineering",
    "Head of Growth",
    "Director of Marketing",
    "Sales Manager",
    "Engineering Manager",
    "Software Engineer",
    "Data Analyst",
    "Consultant",
]
_PAINS = [
    "manual data entry",
    "low reply rates",
    "slow lead response",
    "poor CRM hygiene",
    "no attribution",
    "scaling outbound",
    "pipeline visibility",
    "tool sprawl",
]
_STACK = ["Salesforce", "HubSpot", "Slack", "Snowflake", "Segment", "Zapier", "Postgres", "AWS", "Outreach"]
_TIMELINES = ["immediate", "1 month", "3 months", "this quarter", "6 months", "next year", None]
_CHANNELS = ["website", "webinar", "referral", "paid_search", "linkedin", "event"]


def fake_event(fake: Faker, rng: random.Random, lightfield_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """A realistic Lightfield lead.created event; reproducible for a seeded `fake` and `rng`."""
    company = fake.company()
    # Only letters, digits and inner hyphens, so every address passes the rules of contact.email.
    domain = re.sub(r"[^a-z0-9]+", "-", company.lower())[:40].strip("-") + ".example.com"
    name = fake.name()
    local_part = re.sub(r"[^a-z0-9]", "", name.split()[0].lower())  # "Dr." is a title, not an address
    at = at or datetime.now(UTC) - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
    return {
        "event_type": "lead.created",
        "timestamp": at.isoformat(),
        "lightfield_id": lightfield_id,
        "company": {
            "name": company,
            "website": f"https://{domain}",
            "industry": rng.choice(_INDUSTRIES),
            "size": rng.choice(CompanySize.values),
            "description": fake.catch_phrase(),
        },
        "contact": {
            "name": name,
            "email": f"{local_part}.{rng.randint(1, 9999)}@{domain}",
            "title": rng.choice(_TITLES),
            "linkedin": f"https://linkedin.example.com/in/{rng.randint(1, 10**8)}",
        },
        "source": {"channel": rng.choice(_CHANNELS), "campaign": f"campaign-{rng.randint(1, 12)}", "referrer": None},
        "metadata": {
            "tech_stack": rng.sample(_STACK, rng.randint(0, 4)),
            "pain_points": rng.sample(_PAINS, rng.randint(0, 3)),
            "budget_range": rng.choice([*BudgetRange.values, None]),
            "timeline": rng.choice(_TIMELINES),
        },
    }
