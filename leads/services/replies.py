"""Inbound replies: matching a reply to the outreach it answers, and what arrives at the
unsubscribe mailto address.

A reply threads to its outreach through In-Reply-To and References: every id in them is
compared with our Message-ID, and with the provider's id for the message (providers such as
Amazon SES rewrite the Message-ID to their own id, `<ses-id@region.amazonses.com>`), in one
query. A matched reply queues one `engagement.replied` on `outreach.events` through the outbox;
its event id comes from the reply's own Message-ID, so a redelivered webhook changes nothing.
The feedback stage classifies it (`leads.services.reply_classes`) and applies it. The sender's
address is never stored with the reply: the lead has it.

Mail to OUTREACH_UNSUBSCRIBE_MAILTO is an unsubscribe request: the sender's address is
suppressed, and the outreach it names (by the signed token in the mailto subject, or by
threading) is unsubscribed as by the one-click link. Anything else that names no outreach of
ours is kept as an `UnmatchedProviderEvent` with the sender only as a hash.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from leads.addresses import InvalidAddress
from leads.models import EngagementEvent, Outreach, Suppression, UnmatchedProviderEvent
from leads.outbox import Emission, outbox_emit_many
from leads.services.redaction import ERASED
from leads.services.reply_classes import is_auto_reply
from leads.services.suppression import address_key, suppression_add, value_hash
from leads.services.unsubscribe import InvalidUnsubscribeToken, unsubscribe_outreach, unsubscribe_record
from leads.topics import OUTREACH_EVENTS

logger = logging.getLogger(__name__)

REPLIED = "engagement.replied"
# The longest reply text kept: enough for any human answer, not for a forwarded archive.
MAX_REPLY_CHARS = 10_000
# The nearest ids of a thread that are looked up: a long thread's oldest ids are not ours anyway.
MAX_THREAD_IDS = 50
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_TOKEN_IN_SUBJECT = re.compile(r"unsubscribe\s+(\S+)", re.IGNORECASE)
# "On Tue, 1 Dec 2026 at 10:00, Ada <ada@example.com> wrote:" (may wrap onto a second line),
# and the "-----Original Message-----" divider of Outlook: the quoted original follows.
_QUOTE_HEADER = re.compile(r"^\s*(On\b.{0,300}?\bwrote:|-{2,}\s*Original Message\s*-{2,})", re.I | re.M | re.S)


@dataclass(frozen=True)
class InboundMail:
    """What the inbound webhook received, in the provider's terms already normalised by anymail."""

    provider: str  # anymail's esp_name, lower case
    provider_event_id: str  # the provider's id for this delivery (may be empty)
    message_id: str  # the reply's own Message-ID header, as sent
    in_reply_to: str
    references: str
    sender: str  # the From address (addr-spec)
    recipients: tuple[str, ...]  # the envelope recipient and the To addresses
    subject: str
    text: str  # the plain text (the provider's stripped reply when it gives one)
    headers: tuple[tuple[str, str], ...] = field(default=())
    occurred_at: datetime | None = None


class InboundOutcome(enum.StrEnum):
    REPLIED = "replied"  # a reply to an outreach of ours: queued for the feedback stage
    UNSUBSCRIBED = "unsubscribed"  # mail to the unsubscribe address: the sender is suppressed
    UNMATCHED = "unmatched"  # names no outreach of ours: recorded, nothing else


def reply_receive(*, mail: InboundMail) -> InboundOutcome:
    """Record one inbound mail (see the module docstring); one transaction. Idempotent: the same
    mail delivered again queues nothing new (the feedback stage applies an event id once, and
    the unmatched row and the suppression are unique)."""
    with transaction.atomic():
        if _is_unsubscribe_address(mail.recipients):
            _unsubscribe_sender(mail)
            return InboundOutcome.UNSUBSCRIBED
        outreach = outreach_for_thread(thread_ids(mail.in_reply_to, mail.references))
        if outreach is None or outreach.to_email == ERASED:  # an erased person's reply is not kept
            _record_unmatched(mail)
            return InboundOutcome.UNMATCHED
        if not EngagementEvent.objects.filter(event_id=reply_event_id(mail)).exists():  # else: applied already
            outbox_emit_many([_replied_emission(mail, outreach)])
        return InboundOutcome.REPLIED


def thread_ids(in_reply_to: str, references: str) -> list[str]:
    """The message ids a reply answers, nearest first: In-Reply-To, then References from the last
    (the message replied to) back to the first; without angle brackets, each once, at most
    MAX_THREAD_IDS."""
    found = _ids_in(in_reply_to) + list(reversed(_ids_in(references)))
    return list(dict.fromkeys(found))[:MAX_THREAD_IDS]


def outreach_for_thread(ids: Sequence[str]) -> Outreach | None:
    """The outreach the nearest of `ids` names, by our Message-ID or the provider's id; one query."""
    if not ids:
        return None
    ours = {f"<{bare}>": bare for bare in ids}
    theirs = {shape: bare for bare in ids for shape in _provider_shapes(bare)}
    rows = Outreach.objects.select_related("lead").filter(
        Q(message_id__in=list(ours)) | Outreach.with_provider_id(theirs)
    )
    by_thread_id: dict[str, Outreach] = {}
    for row in rows:
        for bare in (ours.get(row.message_id or ""), theirs.get(row.provider_message_id)):
            if bare is not None:
                by_thread_id.setdefault(bare, row)
    return next((by_thread_id[bare] for bare in ids if bare in by_thread_id), None)


def reply_text(text: str) -> str:
    """The reply without the quoted original (lines starting with ">", and everything after an
    "On ... wrote:" header), trimmed and cut to MAX_REPLY_CHARS."""
    header = _QUOTE_HEADER.search(text)
    if header:
        text = text[: header.start()]
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()[:MAX_REPLY_CHARS]


def reply_event_id(mail: InboundMail) -> str:
    """A stable id for this reply, whichever way it arrives again: from its own Message-ID, else
    the provider's delivery id, else its content. At most 72 characters (the applied-event column)."""
    basis = mail.message_id or mail.provider_event_id or "\n".join((mail.sender, mail.subject, mail.text))
    return f"{mail.provider[:32]}:reply:{hashlib.sha256(basis.encode()).hexdigest()[:32]}"


def _ids_in(header: str) -> list[str]:
    bracketed = _MESSAGE_ID.findall(header or "")
    return bracketed or (header or "").split()


def _provider_shapes(bare: str) -> Iterable[str]:
    """How a provider may have stored its id for the message this id names: as is, in angle
    brackets (Mailgun), or only the local part (SES and Postmark put their id before an @)."""
    yield bare
    yield f"<{bare}>"
    local = bare.split("@", 1)[0]
    if local != bare:
        yield local


def _is_unsubscribe_address(recipients: Iterable[str]) -> bool:
    mailto = settings.OUTREACH_UNSUBSCRIBE_MAILTO.strip().lower()
    return bool(mailto) and any(address.strip().lower() == mailto for address in recipients)


def _unsubscribe_sender(mail: InboundMail) -> None:
    """Suppress the sender, and unsubscribe the outreach the mail names as the one-click link does."""
    try:
        suppression_add(
            kind=Suppression.Kind.ADDRESS, value=mail.sender, reason=Suppression.Reason.UNSUBSCRIBED, source="mailto"
        )
    except InvalidAddress:
        logger.warning("an unsubscribe request by mail from an unusable address was not suppressed")
    outreach = _outreach_named_in_subject(mail.subject) or outreach_for_thread(
        thread_ids(mail.in_reply_to, mail.references)
    )
    if outreach is not None:
        unsubscribe_record(outreach=outreach, source="mailto")


def _outreach_named_in_subject(subject: str) -> Outreach | None:
    """The outreach whose signed token the mailto subject carries ("unsubscribe <token>")."""
    found = _TOKEN_IN_SUBJECT.search(subject or "")
    if found is None:
        return None
    try:
        return unsubscribe_outreach(token=found.group(1))
    except InvalidUnsubscribeToken:
        return None


def _record_unmatched(mail: InboundMail) -> None:
    ids = thread_ids(mail.in_reply_to, mail.references)
    row = UnmatchedProviderEvent(
        provider=mail.provider[:32],
        event_id=reply_event_id(mail),
        event_type="inbound",
        provider_message_id=(ids[0] if ids else "")[:255],
        recipient_hash=_sender_hash(mail.sender),
        metadata={"thread_ids": ids[:10]},
        occurred_at=mail.occurred_at,
    )
    UnmatchedProviderEvent.objects.bulk_create([row], ignore_conflicts=True)  # a redelivery: already kept


def _sender_hash(sender: str) -> str:
    """The sender as the suppression list hashes an address (so staff can compare), else as given."""
    try:
        return value_hash(address_key(sender))
    except InvalidAddress:
        return value_hash(sender.strip().lower()) if sender.strip() else ""


def _replied_emission(mail: InboundMail, outreach: Outreach) -> Emission:
    """The same shape as `engagement_submit` queues, with the provider and the reply's text."""
    occurred_at = mail.occurred_at or timezone.now()
    return Emission(
        OUTREACH_EVENTS,
        outreach.lead.lightfield_id,
        REPLIED,
        {
            "event_id": reply_event_id(mail),
            "event_type": EngagementEvent.Type.REPLIED,
            "outreach_id": outreach.pk,
            "occurred_at": occurred_at.isoformat(),
            "provider": mail.provider,
            "payload": {
                "provider": mail.provider,
                "subject": mail.subject[:998],  # the longest line RFC 5322 allows
                "text": reply_text(mail.text),
                "auto_reply": is_auto_reply(mail.headers, subject=mail.subject),
            },
        },
    )
