"""Taking one person's identifiers out of text and JSON, for privacy erasure.

A `Redactor` knows what identifies the person (their addresses, name, LinkedIn URL: replaced by
ERASED wherever they occur, ignoring case; each word of their name: replaced where it stands as a
word) and the pseudonyms their CRM ids are renamed to. It is pure: the erasure service decides
which rows it is applied to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

ERASED = "[erased]"
# What an erased engagement or provider payload becomes: valid JSON that says what happened.
ERASED_PAYLOAD: dict[str, Any] = {"erased": True}
# Characters a lightfield_id may hold (see leads.lightfield.LIGHTFIELD_ID): an id is renamed only
# where it stands whole, so renaming "lf-1" leaves "lf-10" alone.
_ID_CHARS = r"A-Za-z0-9_.:\-"


class Redactor:
    """Replaces one person's identifiers in strings and, recursively, in JSON values."""

    def __init__(self, *, phrases: Iterable[str], words: Iterable[str], renames: Mapping[str, str]) -> None:
        self.renames = dict(renames)
        # Longest first, so a name is replaced whole before any word of it.
        patterns = [re.escape(phrase) for phrase in sorted({p for p in phrases if p}, key=len, reverse=True)]
        patterns += [rf"\b{re.escape(w)}\b" for w in sorted({w for w in words if len(w) > 1}, key=len, reverse=True)]
        self._personal = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None
        self._ids = (
            re.compile(rf"(?<![{_ID_CHARS}])(?:{'|'.join(re.escape(old) for old in self.renames)})(?![{_ID_CHARS}])")
            if self.renames
            else None
        )

    def text(self, text: str) -> str:
        if self._ids is not None:
            text = self._ids.sub(lambda match: self.renames[match.group(0)], text)
        if self._personal is not None:
            text = self._personal.sub(ERASED, text)
        return text

    def json(self, value: Any) -> Any:
        """`value` with every string (dict keys included) redacted; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(key)): self.json(item) for key, item in value.items()}
        return value

    def lead_event(self, event: Any) -> Any:
        """A Lightfield lead event (a lead's raw payload, a `lead.created` row) without its contact:
        still a valid event (the contact section may be empty), so a stage that reads it later
        stores an erased lead rather than failing on it."""
        redacted = self.json(event)
        if isinstance(redacted, dict):
            redacted["contact"] = {}
        return redacted

    def outbox_payload(self, event_type: str, payload: Any) -> Any:
        """An event's payload, redacted so that the stage that consumes it still can: a lead
        event loses its contact, an engagement its provider payload (the reward still applies)."""
        if event_type == "lead.created":
            return self.lead_event(payload)
        redacted = self.json(payload)
        if event_type.startswith("engagement.") and isinstance(redacted, dict) and "payload" in redacted:
            redacted["payload"] = dict(ERASED_PAYLOAD)
        return redacted


def name_words(name: str) -> set[str]:
    """The words of a person's name, each matched on its own ("Hi Ada," names Ada Lovelace)."""
    return {word for word in re.split(r"[\s,]+", name) if len(word) > 1}
