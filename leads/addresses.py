"""Contact addresses and the text that may reach a mail header, checked the same way wherever
a lead comes from (the ingest API, `leads.raw`, `POST /api/v1/leads`, `PATCH`).

An address is checked by email-validator without a DNS lookup (offline, that lookup refuses
even gmail.com) and stored in its normalised form (the domain lower-cased, IDN in Unicode).
It refuses what would fail at send time: a display name (`Friend <x@y.example>`), CR/LF,
commas, spaces, quoted local parts, special-use domains such as `.test` and `.local`, and a
non-ASCII local part (`josé@…` needs SMTPUTF8, which Django's SMTP backend does not speak).
"""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    DNS_LABEL_LENGTH_LIMIT,
    DOMAIN_MAX_LENGTH,
    DOMAIN_NAME_REGEX,
    DOT_ATOM_TEXT,
    DOT_ATOM_TEXT_HOSTNAME,
    EMAIL_MAX_LENGTH,
    LOCAL_PART_MAX_LENGTH,
)


class InvalidAddress(ValueError):
    """Not an address we could send to; the message says why."""


def email_normalize(address: str) -> str:
    """`address` in its normalised form; InvalidAddress if it is not one we could send to."""
    plain = _plain_ascii(address)
    if plain is not None:
        return plain
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None


def _plain_ascii(address: str) -> str | None:
    """The normalised form email-validator gives a plain ASCII address (dot-atom local part,
    hostname domain with a letter at its end, within the lengths, no special-use or IDNA label),
    checked with the library's own patterns and limits; None for anything else, which the library
    itself then decides. The scorer checks thousands of addresses a second: the full validation
    costs about 45 µs each, this about 3."""
    local, at, domain = address.rpartition("@")
    domain = domain.lower()
    if not (at and address.isascii() and len(address) <= EMAIL_MAX_LENGTH and len(local) <= LOCAL_PART_MAX_LENGTH):
        return None
    if "." not in domain or "xn--" in domain or len(domain) > DOMAIN_MAX_LENGTH:
        return None
    if not (DOT_ATOM_TEXT.match(local) and DOT_ATOM_TEXT_HOSTNAME.match(domain) and DOMAIN_NAME_REGEX.search(domain)):
        return None
    if any(len(label) > DNS_LABEL_LENGTH_LIMIT for label in domain.split(".")):
        return None
    if any(domain == special or domain.endswith("." + special) for special in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return f"{local}@{domain}"


# Line breaks and other control characters; any of them in a header value is a header injection.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def single_line(text: str) -> str:
    """`text` with each run of line breaks or other control characters made one space, and
    stripped: the form of a field that may reach a mail header (name, company, title)."""
    if text.isprintable():  # the common case, answered in C without touching the regex
        return text
    return _CONTROL.sub(" ", text).strip()
