"""Fixtures for the cross-app tests: a Kafka-protocol broker and an SMTP server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.stand_ins import SmtpSink, TansuBroker


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A fresh in-memory tansu broker on a free loopback port."""
    started = TansuBroker().start()
    yield started
    started.stop()


@pytest.fixture
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The broker's address: KAFKA_BOOTSTRAP_SERVERS when it names one, else a fresh tansu."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or request.getfixturevalue("broker").bootstrap


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()
