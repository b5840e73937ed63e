"""A trip of the deliverability brake reaches Sentry (through sentry-sdk's logging integration),
received by a real HTTP endpoint on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sentry_sdk
from django.utils import timezone

from leads.services.brake import brake_check
from leads.tests.factories import complaint_history
from pipeline_whisperer.sentry import sentry_init
from tests.sentry_receiver import SentryReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def sentry() -> Iterator[SentryReceiver]:
    """sentry-sdk started as settings start it, sending to a receiver on loopback; off afterwards."""
    with SentryReceiver() as receiver:
        sentry_init(dsn=receiver.dsn, environment="test", release="pw@test", sample_rate=1.0, traces_sample_rate=0.0)
        yield receiver
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_the_brake_tripping_is_an_error_event_in_sentry_naming_the_rate(sentry, settings):
    settings.OUTREACH_BRAKE_MIN_SAMPLE = 100
    complaint_history(sent=100, prefix="s")
    assert brake_check(now=timezone.now()) is not None
    sentry_sdk.flush(timeout=10)
    [event] = [e for e in sentry.events() if e.get("logger") == "leads.services.brake"]
    assert event["level"] == "error"
    message = event["logentry"].get("formatted") or event["logentry"]["message"] % tuple(event["logentry"]["params"])
    assert "sending paused by the deliverability brake: complaint rate 1.00% (1 of 100 sent" in message
    assert "OUTREACH_MAX_COMPLAINT_RATE 0.30%" in message
