"""The inbound contract: Lightfield `lead.created` events, and realistic fakes of them.

`parse_event` turns one event into the Lead fields it carries, or raises InvalidEvent with
the reason; `fake_event` makes one for demos, simulators and benchmarks.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime
from faker import Faker

from leads.models import BudgetRange, CompanySize

# The same rule as the API's create and lookup routes, so every stored lead can be looked up.
LIGHTFIELD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class InvalidEvent(ValueError):
    """The event breaks the contract; the message says where."""


_TEXT_LIMITS = {  # Lead field: (path in the event, longest value kept)
    "company_name": (("company", "name"), 255),
    "company_website": (("company", "website"), 500),
    "company_industry": (("company", "industry"), 100),
    "company_description": (("company", "description"), 10_000),
    "contact_name": (("contact", "name"), 255),
    "contact_email": (("contact", "email"), 254),
    "contact_title": (("contact", "title"), 255),
    "contact_linkedin": (("contact", "linkedin"), 500),
    "source_channel": (("source", "channel"), 100),
    "source_campaign": (("source", "campaign"), 255),
    "source_referrer": (("source", "referrer"), 500),
    "timeline": (("metadata", "timeline"), 100),
}


# Read once: an enum's `values` is computed afresh on every access.
_COMPANY_SIZES, _BUDGET_RANGES = tuple(CompanySize.values), tuple(BudgetRange.values)


def parse_event(event: Any) -> dict[str, Any]:
    """The Lead fields of one event; any field but lightfield_id and company.name may be missing."""
    if not isinstance(event, dict):
        raise InvalidEvent("the event must be a JSON object")
    if contains_nul(event):  # PostgreSQL text and jsonb cannot hold U+0000
        raise InvalidEvent("the event contains a NUL character (U+0000)")
    lightfield_id = event.get("lightfield_id")
    if not isinstance(lightfield_id, str) or not LIGHTFIELD_ID.fullmatch(lightfield_id.strip()):
        raise InvalidEvent("lightfield_id must be 1-64 letters, digits, or _ . : -")
    fields: dict[str, Any] = {"lightfield_id": lightfield_id.strip(), "raw_payload": event}
    for field, (path, limit) in _TEXT_LIMITS.items():
        fields[field] = _text(event, path)[:limit]
    if not fields["company_name"]:
        raise InvalidEvent("company.name is required")
    fields["company_size"] = _choice(event, ("company", "size"), _COMPANY_SIZES)
    fields["budget_range"] = _choice(event, ("metadata", "budget_range"), _BUDGET_RANGES)
    fields["tech_stack"] = _string_list(event, ("metadata", "tech_stack"))
    fields["pain_points"] = _string_list(event, ("metadata", "pain_points"))
    fields["lightfield_created_at"] = _timestamp(event.get("timestamp"))
    return fields


def contains_nul(value: Any) -> bool:
    """Whether any key or string anywhere in a decoded JSON value holds U+0000, which PostgreSQL
    text and jsonb cannot store (iterative, so any depth is safe)."""
    # json writes U+0000 as the escape \u0000: without that text anywhere, there is none (the
    # C encoder answers that for most events far faster than a walk could).
    try:
        if "\\u0000" not in json.dumps(value):
            return False
    except RecursionError:  # nested deeper than the encoder goes: the walk below decides
        pass
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


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
    domain = company.lower().replace(",", "").replace(" ", "-").replace(".", "")[:40] + ".example.com"
    name = fake.name()
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
            "email": f"{name.split()[0].lower()}.{rng.randint(1, 9999)}@{domain}",
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
