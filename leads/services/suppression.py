"""The suppression list: addresses and whole domains that are never mailed.

Values are matched in their normalised, lower-cased form (email-validator: IDN domains in
Unicode) through their SHA-256, so an erased person's entry still matches with its value blanked.
Entries come from unsubscribes, hard bounces and complaints (feedback), staff, the API and
privacy erasure; adding one that exists changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from leads.addresses import InvalidAddress, email_normalize, single_line
from leads.models import Suppression
from pipeline_whisperer.exceptions import Conflict

logger = logging.getLogger(__name__)


def address_key(address: str) -> str:
    """The form an address is matched in; InvalidAddress if it is not an address."""
    return email_normalize(address.strip()).lower()


def domain_key(domain: str) -> str:
    """The form a domain is matched in (IDN in Unicode, lower-cased); InvalidAddress if it is not one."""
    domain = domain.strip().lstrip("@")
    if not domain or "@" in domain:
        raise InvalidAddress(f"{domain!r} is not a domain name")
    return address_key(f"postmaster@{domain}").rpartition("@")[2]


def value_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def suppression_key(kind: str, value: str) -> str:
    """`value` normalised for its kind; InvalidAddress when it is not an address (or domain)."""
    return domain_key(value) if kind == Suppression.Kind.DOMAIN else address_key(value)


@dataclass(frozen=True)
class SuppressionEntry:
    kind: str
    value: str
    reason: str
    source: str = ""
    note: str = ""


def suppression_add(
    *, kind: str, value: str, reason: str, source: str = "", note: str = ""
) -> tuple[Suppression, bool]:
    """Suppress an address or domain; the entry, and whether it is new. An existing entry keeps its
    reason (the first reason stands). InvalidAddress for a value that is not one."""
    key = suppression_key(kind, value)
    digest = value_hash(key)
    existing = Suppression.objects.filter(kind=kind, value_hash=digest).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Suppression.objects.create(
                kind=kind, value=key, value_hash=digest, reason=reason, source=source, note=note
            ), True
    except IntegrityError:  # a concurrent add won
        return Suppression.objects.get(kind=kind, value_hash=digest), False


def suppression_add_hashed(*, kind: str, digest: str, reason: str, source: str = "") -> Suppression:
    """Suppress by hash only (an erased person: the value itself is not kept)."""
    entry, _ = Suppression.objects.update_or_create(
        kind=kind, value_hash=digest, defaults={"value": "", "reason": reason, "source": source}
    )
    return entry


def suppressions_matching(addresses: Iterable[str]) -> dict[str, str]:
    """Of `addresses` (already address keys), those suppressed, each with the reason (its own
    entry's, else its domain's). One query for the lot."""
    keys = set(addresses)
    if not keys:
        return {}
    domains = {key: key.rpartition("@")[2] for key in keys}
    by_hash = {value_hash(key): ("address", key) for key in keys}
    by_hash.update({value_hash(domain): ("domain", domain) for domain in domains.values()})
    rows = Suppression.objects.filter(value_hash__in=by_hash).values_list("kind", "value_hash", "reason")
    address_reasons: dict[str, str] = {}
    domain_reasons: dict[str, str] = {}
    for kind, digest, reason in rows:
        matched_kind, matched = by_hash[digest]
        if kind == matched_kind:
            (address_reasons if kind == "address" else domain_reasons)[matched] = reason
    matching = {}
    for key in keys:
        if key in address_reasons:
            matching[key] = f"the address is suppressed ({address_reasons[key]})"
        elif domains[key] in domain_reasons:
            matching[key] = f"the domain {domains[key]} is suppressed ({domain_reasons[domains[key]]})"
    return matching


# --- What staff and the API add, remove, import and export --------------------------------

# Reasons a door may give; `erased` comes only from a privacy erasure (the value is not kept).
ADDABLE_REASONS = [reason for reason in Suppression.Reason.values if reason != Suppression.Reason.ERASED]
NOTE_MAX_LENGTH = 500


@dataclass(frozen=True)
class SuppressionResult:
    """What happened to one entry of a batch: added or found (with the entry) or refused (with why).
    `created` is False for an entry that was already suppressed (its first reason stands)."""

    index: int
    id: int | None = None
    kind: str | None = None
    value: str | None = None
    reason: str | None = None
    created: bool | None = None
    error: str | None = None  # "field: why"
    field: str | None = None  # the field the error is about


def _entry_problem(entry: Any) -> tuple[str, str, str, str] | tuple[str, str]:
    """(kind, key, reason, note) of a raw entry, or (field, why) it is refused."""
    if not isinstance(entry, Mapping):
        return "non_field_errors", "An entry must be an object with a value."
    value, kind = entry.get("value"), entry.get("kind") or ""
    reason, note = entry.get("reason") or Suppression.Reason.STAFF, entry.get("note") or ""
    if not isinstance(value, str) or not value.strip():
        return "value", "Give an address or a domain."
    for field, text in (("kind", kind), ("reason", reason), ("note", note)):
        if not isinstance(text, str):
            return field, "Must be a string."
    value = value.strip()
    if _CONTROL_CHARACTER.search(value):
        return "value", "Must be one line; it holds a line break or another control character."
    kind = kind.strip().lower() or suppression_kind_of(value)
    if kind not in Suppression.Kind.values:
        return "kind", f"{kind!r} is not one of {', '.join(Suppression.Kind.values)}."
    if reason not in ADDABLE_REASONS:
        return "reason", f"{reason!r} is not one of {', '.join(ADDABLE_REASONS)} (erased comes from a privacy erasure)."
    if len(note) > NOTE_MAX_LENGTH:
        return "note", f"At most {NOTE_MAX_LENGTH} characters."
    try:
        key = suppression_key(kind, value)
    except InvalidAddress as error:
        noun = "domain" if kind == Suppression.Kind.DOMAIN else "address"
        return "value", f"{value!r} is not a valid {noun}: {_plain(str(error), kind)}"
    return kind, key, reason, single_line(note)


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _plain(message: str, kind: str) -> str:
    # A domain is checked as postmaster@domain; the library's wording names the @-sign.
    return message.replace("The part after the @-sign", "The domain") if kind == Suppression.Kind.DOMAIN else message


def suppression_kind_of(value: str) -> str:
    """The kind a value without one is taken as: an address if it has a local part, else a domain
    (`@acme.example` is the domain)."""
    return Suppression.Kind.ADDRESS if "@" in value.strip().lstrip("@") else Suppression.Kind.DOMAIN


def suppression_add_many(*, entries: Sequence[Any], source: str) -> list[SuppressionResult]:
    """Validate each raw entry ({"value", "kind"?, "reason"?, "note"?}) and suppress the valid ones
    in one transaction; a refused entry is reported by index and does not stop the others. An
    entry already suppressed (or given twice) is found, not added again: its first reason stands."""
    results: list[SuppressionResult] = []
    valid: dict[int, tuple[str, str, str, str]] = {}
    for index, entry in enumerate(entries):
        checked = _entry_problem(entry)
        if len(checked) == 2:
            field, why = checked
            results.append(SuppressionResult(index=index, error=f"{field}: {why}", field=field))
        else:
            valid[index] = checked
    if valid:
        rows = _add_rows(valid.values(), source=source[:100])
        seen: set[tuple[str, str]] = set()
        for index, (kind, key, _, _) in valid.items():
            row, created = rows[(kind, value_hash(key))]
            results.append(
                SuppressionResult(
                    index=index,
                    id=row.pk,
                    kind=row.kind,
                    value=row.value,
                    reason=row.reason,
                    created=created and (kind, key) not in seen,
                )
            )
            seen.add((kind, key))
    return sorted(results, key=lambda result: result.index)


def _add_rows(
    checked: Iterable[tuple[str, str, str, str]], *, source: str
) -> dict[tuple[str, str], tuple[Suppression, bool]]:
    """(kind, hash) -> (entry, whether it was new). One insert for the lot; a concurrent add of
    the same value is skipped by the unique constraint, not an error (both calls may then call
    the entry new)."""
    new = {(kind, value_hash(key)): (kind, key, reason, note) for kind, key, reason, note in reversed(list(checked))}
    digests = {digest for _, digest in new}
    with transaction.atomic():
        before = {(row.kind, row.value_hash) for row in Suppression.objects.filter(value_hash__in=digests)}
        Suppression.objects.bulk_create(
            [
                Suppression(kind=kind, value=key, value_hash=digest, reason=reason, source=source, note=note)
                for (kind, digest), (_, key, reason, note) in new.items()
                if (kind, digest) not in before
            ],
            ignore_conflicts=True,
        )
        rows = Suppression.objects.filter(value_hash__in=digests)
        return {
            (row.kind, row.value_hash): (row, (row.kind, row.value_hash) not in before)
            for row in rows
            if (row.kind, row.value_hash) in new
        }


def suppression_remove(*, suppression: Suppression) -> None:
    """Lift a suppression, so the address or domain may be mailed again. Conflict for an erased
    person's entry: they must never be mailed again, so it is never removed."""
    # The reason is checked in the DELETE itself too: an erasure since the entry was read wins.
    if suppression.reason != Suppression.Reason.ERASED:
        Suppression.objects.filter(pk=suppression.pk).exclude(reason=Suppression.Reason.ERASED).delete()
    if Suppression.objects.filter(pk=suppression.pk).exists():
        raise Conflict(
            "This entry records a privacy erasure; it is kept so the person is never mailed again.",
            suppression_id=suppression.pk,
        )
    logger.info("suppression removed", extra={"suppression_id": suppression.pk, "kind": suppression.kind})
