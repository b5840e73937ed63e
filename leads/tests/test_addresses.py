"""Contact addresses: the fast path for plain ASCII addresses gives exactly what email-validator
gives (the same normalised form, or a refusal), and the library decides everything else."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email
from faker import Faker

from leads.addresses import InvalidAddress, _plain_ascii, email_normalize
from leads.lightfield import fake_event

EDGE_CASES = [
    "grace@acme.example.com",
    "DANA@Acme-One.Example",
    "first.last+tag@sub.domain.example.org",
    "o'brien@example.co.uk",
    "x@y.com",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@example",
    "a@example.123",
    "a@localhost",
    "a@printer.local",
    "a@host.test",
    "a@10.in-addr.arpa",
    "a@xn--bcher-kva.example",
    "a@xn--zz.example",
    "josé@example.com",
    "dana@BÜCHER.example",
    "Friend <x@y.com>",
    "a,b@example.com",
    "a b@example.com",
    "x@y.com\n",
    '"quoted"@example.com',
    "a@" + "b" * 64 + ".com",
    "a" * 65 + "@example.com",
    "a@" + ".".join(["c" * 60] * 5) + ".com",
    "@example.com",
    "a@",
    "",
]


def _library(address: str) -> str:
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        return "refused"


def _ours(address: str) -> str:
    try:
        return email_normalize(address)
    except InvalidAddress:
        return "refused"


@pytest.mark.parametrize("address", EDGE_CASES)
def test_an_address_is_normalised_or_refused_exactly_as_email_validator_does(address):
    assert _ours(address) == _library(address)


def test_the_fast_path_agrees_with_email_validator_on_every_simulated_address_it_takes():
    Faker.seed(7)
    fake, rng = Faker(), random.Random(7)
    addresses = [fake_event(fake, rng, f"lf-{n}")["contact"]["email"] for n in range(2_000)]
    taken = [address for address in addresses if _plain_ascii(address) is not None]
    assert len(taken) > 1_900  # the common case is the fast one
    assert [_plain_ascii(address) for address in taken] == [_library(address) for address in taken]
