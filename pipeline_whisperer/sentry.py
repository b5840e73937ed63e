"""Error tracking with sentry-sdk, on when SENTRY_DSN is set (settings call `sentry_init`).

Events carry the correlation id as a tag and pass two scrubbers before they leave the process:
sentry-sdk's EventScrubber (denylisted keys anywhere in the event) and the same redaction as the
log lines (secrets inside strings: query strings, messages, exception values, breadcrumbs).
"""

from __future__ import annotations

import logging

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.types import Event, Hint

from pipeline_whisperer.correlation import get_correlation_id
from pipeline_whisperer.logging import ACCESS_LOGGER, redact_data

# Our header and setting names on top of sentry-sdk's list (matched whole, case-insensitively).
DENYLIST = [
    *DEFAULT_DENYLIST,
    "x-api-key",
    "http_x_api_key",
    "api-key",
    "access_token",
    "refresh_token",
    "secret_key",
    "dsn",
    "database_url",
    "email_host_password",
    "openai_api_key",
    "kafka_sasl_password",
    "metrics_token",
]


def sentry_init(*, dsn: str, environment: str, release: str, sample_rate: float, traces_sample_rate: float) -> None:
    """Start sentry-sdk for this process: Django and logging integrations, no personal data
    (no user details, cookies or sensitive headers)."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        sample_rate=sample_rate,
        traces_sample_rate=traces_sample_rate,
        integrations=[DjangoIntegration(), LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        # send_default_pii is left unset, which means off: sentry-sdk 2.75 deprecates passing it,
        # and its replacement (data_collection) would disable the EventScrubber below.
        # Frame locals hold request data and keys under arbitrary names: too easy to leak.
        include_local_variables=False,
        event_scrubber=EventScrubber(denylist=list(DENYLIST), recursive=True),
        before_send=before_send,
        before_send_transaction=before_send,
    )
    # One access line per request; its 5xx lines would only repeat the exception's own event.
    ignore_logger(ACCESS_LOGGER)


def before_send(event: Event, hint: Hint) -> Event:
    """Tag the event with the correlation id of the work that raised it, then redact it.

    Runs in the thread that captured the event, so the id bound there is the right one.
    """
    correlation_id = get_correlation_id()
    if correlation_id:
        event.setdefault("tags", {})["correlation_id"] = correlation_id
    return redact_data(event)
