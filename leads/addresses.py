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

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """Not an address we could send to; the message says why."""


def email_normalize(address: str) -> str:
    """`address` in its normalised form; InvalidAddress if it is not one we could send to."""
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None


# Line breaks and other control characters; any of them in a header value is a header injection.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def single_line(text: str) -> str:
    """`text` with each run of line breaks or other control characters made one space, and
    stripped: the form of a field that may reach a mail header (name, company, title)."""
    if text.isprintable():  # the common case, answered in C without touching the regex
        return text
    return _CONTROL.sub(" ", text).strip()
