"""anymail's `inbound` signal: each inbound mail an email provider posts to /webhooks/<esp>/inbound/
(authenticated by anymail) becomes an `InboundMail` for `leads.services.replies.reply_receive`.

The receiver only translates: anymail has parsed the provider's format into an
AnymailInboundMessage; what the mail means is decided in the service. An error here (the database
down) becomes anymail's 500, and the provider delivers the mail again later.
"""

from __future__ import annotations

import logging
from typing import Any

from anymail.inbound import AnymailInboundMessage
from anymail.signals import AnymailInboundEvent
from django.utils.html import strip_tags

from leads.services.provider_events import provider_slug
from leads.services.replies import InboundMail, reply_receive

logger = logging.getLogger(__name__)


def inbound_received(sender: object, event: AnymailInboundEvent, esp_name: str, **_: Any) -> None:
    """Record one inbound mail (connected to anymail's `inbound` signal in LeadsConfig.ready)."""
    outcome = reply_receive(mail=inbound_mail(event, esp_name=esp_name))
    logger.info("inbound mail from %s: %s", esp_name, outcome)


def inbound_mail(event: AnymailInboundEvent, *, esp_name: str) -> InboundMail:
    message: AnymailInboundMessage = event.message
    from_email = message.from_email
    if isinstance(from_email, list):  # several From addresses: the first speaks
        from_email = from_email[0] if from_email else None
    recipients = [message.envelope_recipient or "", *(address.addr_spec for address in message.to)]
    return InboundMail(
        provider=provider_slug(esp_name),
        provider_event_id=event.event_id or "",
        message_id=str(message.get("Message-ID") or "").strip(),
        in_reply_to=str(message.get("In-Reply-To") or ""),
        references=" ".join(str(value) for value in message.get_all("References") or []),
        sender=from_email.addr_spec if from_email else "",
        recipients=tuple(address for address in recipients if address),
        subject=str(message.subject or ""),
        text=_text_of(message),
        headers=tuple((str(name), str(value)) for name, value in message.items()),
        occurred_at=event.timestamp,
    )


def _text_of(message: AnymailInboundMessage) -> str:
    """The reply as plain text: the provider's stripped reply if it gives one, else the text
    part, else the HTML part without its tags."""
    return message.stripped_text or message.text or strip_tags(message.html or "")
