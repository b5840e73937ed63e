"""Sending claimed outreach over reused mail connections, outside any transaction.

`dispatch_send` spreads a claimed batch over OUTREACH_SEND_CONNECTIONS connections (SMTP or an
email provider's API through django-anymail), each kept open for its share. Each message the
server or provider accepts is recorded at once, on its own (autocommit, from the sending thread):
`handed_over_at`, and the provider's message id (anymail's `anymail_status.message_id`; empty over
SMTP), so a dispatcher that dies before recording the batch never sends it again. A server or
provider that is down (no answer, a timeout, SMTP 4xx, HTTP 5xx or 429) leaves the rest of the
share unsent, to be retried; an error of one message alone fails only it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import smtplib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, connections
from django.utils import timezone

from leads.models import Outreach
from leads.services.mail import outreach_message
from pipeline_whisperer.outages import dependency_down
from pipeline_whisperer.resilience import retry_call

logger = logging.getLogger(__name__)

SEND_ATTEMPTS = 3


@dataclass
class Delivery:
    """One outreach on its way out: sent, refused by the recipient's server (`refused`), or not
    sent (`error`: a mail server that is down, to retry; anything else fails the row).
    `handed_over`: accepted by the server in an earlier, interrupted dispatch; not sent again."""

    outreach: Outreach
    correlation_id: str | None = None  # carried by the outreach.sent it causes
    refused: str = ""
    error: Exception | None = None
    handed_over: bool = False

    @property
    def sent(self) -> bool:
        return not self.refused and self.error is None


def dispatch_send(deliveries: Sequence[Delivery]) -> None:
    """Send over OUTREACH_SEND_CONNECTIONS mail connections at once (each its share, in order),
    recording on each delivery what happened and on each row the hand-over. A mail server answers
    each command before the next: parallel connections keep it and us busy instead of waiting on
    each other. Deliveries handed over already are not sent again."""
    unsent = [delivery for delivery in deliveries if not delivery.handed_over]
    for delivery in deliveries:
        if delivery.handed_over:
            logger.info("outreach %s was handed over in an interrupted dispatch: not sent again", delivery.outreach.pk)
    if not unsent:
        return
    count = min(settings.OUTREACH_SEND_CONNECTIONS, len(unsent))
    shares = [unsent[start::count] for start in range(count)]
    if count == 1:
        _send_share(shares[0])
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="outreach-send") as pool:
        list(pool.map(_send_share_in_thread, shares))


def _send_share_in_thread(deliveries: Sequence[Delivery]) -> None:
    try:
        _send_share(deliveries)
    finally:
        connections.close_all()  # this thread's own: they would outlive it otherwise


def _send_share(deliveries: Sequence[Delivery]) -> None:
    """Send over one connection, recording each hand-over as it happens; once the server stays
    unreachable (or the database cannot record a hand-over), the rest are not tried: they get the
    same error, to be retried. An error of one message alone fails only it."""
    connection = get_connection()
    try:
        for position, delivery in enumerate(deliveries):
            try:
                message = _message(delivery.outreach, connection)
                _send(connection, message)
            except (smtplib.SMTPRecipientsRefused, AnymailRecipientsRefused) as error:
                delivery.refused = _refusal(error)
                continue
            except Exception as error:
                if not dependency_down(error):
                    delivery.error = error
                    continue
                _leave_unsent(deliveries[position:], error)
                return
            try:
                _record_hand_over(delivery.outreach, message)
            except DatabaseError as error:  # sent, but unrecorded: send no more until it is back
                _leave_unsent(deliveries[position + 1 :], error)
                return
    finally:
        _close_quietly(connection)


def _leave_unsent(deliveries: Sequence[Delivery], error: Exception) -> None:
    for delivery in deliveries:
        delivery.error = error


def _refusal(error: smtplib.SMTPRecipientsRefused | AnymailRecipientsRefused) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"recipient refused: {error.recipients}"
    status = getattr(error.email_message, "anymail_status", None)
    recipients = {address: each.status for address, each in status.recipients.items()} if status else {}
    return f"recipient refused by {error.esp_name}: {recipients}"


def _record_hand_over(outreach: Outreach, message: EmailMessage) -> None:
    """Note at once, outside any transaction, that the server accepted `message`: a dispatcher
    that dies before recording the send must not send it again."""
    status = getattr(message, "anymail_status", None)  # set by anymail's backends only
    provider_id = status.message_id if status is not None and isinstance(status.message_id, str) else ""
    outreach.handed_over_at, outreach.provider_message_id = timezone.now(), provider_id
    Outreach.objects.filter(pk=outreach.pk).update(
        handed_over_at=outreach.handed_over_at, provider_message_id=provider_id, updated_at=outreach.handed_over_at
    )


def _message(outreach: Outreach, connection: BaseEmailBackend) -> EmailMessage:
    return outreach_message(outreach, connection=connection)


def _send(connection: BaseEmailBackend, message: EmailMessage) -> None:
    def attempt() -> None:
        try:
            # Opened here, send_messages keeps it open for the next message (it closes only a
            # connection it opened itself); after a failure this reconnects.
            connection.open()
            connection.send_messages([message])
        except Exception:
            _close_quietly(connection)  # the next attempt opens a fresh one
            raise

    retry_call(
        attempt,
        attempts=SEND_ATTEMPTS,
        base_delay=0.2,
        max_delay=2.0,
        retry_on=(
            smtplib.SMTPServerDisconnected,
            smtplib.SMTPConnectError,
            smtplib.SMTPDataError,
            smtplib.SMTPHeloError,
            ConnectionError,
            TimeoutError,
            AnymailAPIError,
        ),
        retry_if=_worth_retrying,
        rng=random.Random(),  # noqa: S311  (jitter, not cryptography)
    )


def _worth_retrying(error: BaseException) -> bool:
    """A provider's API error is retried only when the provider is down (its 4xx would recur)."""
    return not isinstance(error, AnymailAPIError) or dependency_down(error)


def _close_quietly(connection: BaseEmailBackend) -> None:
    """Close a mail connection that may be broken already; closing it cannot fail the send."""
    with contextlib.suppress(Exception):
        connection.close()
