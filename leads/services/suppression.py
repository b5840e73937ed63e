"""The suppression list: addresses and whole domains that are never mailed.

Values are matched in their normalised, lower-cased form (email-validator: IDN domains in
Unicode) through their SHA-256, so an erased person's entry still matches with its value blanked.
Entries come from unsubscribes, hard bounces and complaints (feedback), staff, the API and
privacy erasure; adding one that exists changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from leads.addresses import InvalidAddress, email_normalize
from leads.models import Suppression


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
