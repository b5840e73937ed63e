"""One-click unsubscribe (RFC 8058): the signed token in every mail's List-Unsubscribe URL, and
what an unsubscribe does.

A token is the outreach id signed with Django's signing under a salt of our own: nothing is
stored to issue one, nothing can be looked up to forge one, and it does not expire (an
unsubscribe must work for as long as the mail can be read, well past the attribution window).
An unsubscribe suppresses the address at once and queues one `engagement.unsubscribed` on
`outreach.events`, so the feedback stage applies it as every other engagement: exactly one
failure reward to the variant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from leads.addresses import InvalidAddress
from leads.models import Outreach, Suppression
from leads.outbox import Emission, outbox_emit_many
from leads.services.suppression import suppression_add
from leads.topics import OUTREACH_EVENTS

logger = logging.getLogger(__name__)

_SALT = "leads.unsubscribe.v1"
UNSUBSCRIBED = "engagement.unsubscribed"


class InvalidUnsubscribeToken(ValueError):
    """The token was not signed by us (tampered, truncated, made up) or names no outreach."""


def unsubscribe_token(*, outreach_id: int) -> str:
    """The URL-safe signed token for one outreach: base64 JSON, a colon, the signature."""
    return signing.Signer(salt=_SALT).sign_object({"outreach": outreach_id})


def unsubscribe_url(*, outreach_id: int) -> str:
    """The https URL a recipient (or their mail client, by POST) unsubscribes at."""
    path = reverse("unsubscribe", kwargs={"token": unsubscribe_token(outreach_id=outreach_id)})
    return f"{settings.PUBLIC_BASE_URL}{path}"


def unsubscribe_mailto(*, outreach_id: int) -> str:
    """The mailto: alternative of List-Unsubscribe, the token in its subject."""
    subject = quote(f"unsubscribe {unsubscribe_token(outreach_id=outreach_id)}")
    return f"mailto:{settings.OUTREACH_UNSUBSCRIBE_MAILTO}?subject={subject}"


def unsubscribe_outreach(*, token: str) -> Outreach:
    """The outreach a token names; InvalidUnsubscribeToken if it is not ours or names none."""
    try:
        value = signing.Signer(salt=_SALT).unsign_object(token)
        outreach_id = int(value["outreach"])
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        raise InvalidUnsubscribeToken("not a valid unsubscribe token") from None
    outreach = Outreach.objects.select_related("lead").filter(pk=outreach_id).first()
    if outreach is None:
        raise InvalidUnsubscribeToken("the token names no outreach")
    return outreach


@dataclass(frozen=True)
class UnsubscribeResult:
    suppressed: bool  # a new suppression entry was added
    emitted: bool  # an engagement.unsubscribed was queued (False: one was recorded or queued already)


def unsubscribe_record(*, outreach: Outreach, source: str) -> UnsubscribeResult:
    """Unsubscribe the outreach's recipient: suppress the address and queue one
    `engagement.unsubscribed` (event id `unsubscribe-<outreach id>`). Idempotent, and safe under
    concurrent requests: the event is queued only by the request whose conditional UPDATE stamps
    the outreach's `unsubscribed_at` (the feedback stage keeps an existing stamp), so a repeat, or
    an unsubscribe that arrived another way first, queues nothing."""
    now = timezone.now()
    with transaction.atomic():
        suppressed = _suppress(outreach, source)
        claimed = Outreach.objects.filter(pk=outreach.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now, updated_at=now
        )
        if claimed:
            outbox_emit_many([_emission(outreach, now, source)])
    return UnsubscribeResult(suppressed=suppressed, emitted=bool(claimed))


def _suppress(outreach: Outreach, source: str) -> bool:
    try:
        _, created = suppression_add(
            kind=Suppression.Kind.ADDRESS,
            value=outreach.to_email,
            reason=Suppression.Reason.UNSUBSCRIBED,
            source=source,
            note=f"outreach {outreach.pk}",
        )
    except InvalidAddress:  # erased, or never sendable (so never mailed); the value stays out of the log
        logger.warning("outreach %s: its address cannot be suppressed (not an address)", outreach.pk)
        return False
    return created


def _emission(outreach: Outreach, at: datetime, source: str) -> Emission:
    """The same shape as `engagement_submit` queues, so the feedback stage cannot tell them apart."""
    return Emission(
        OUTREACH_EVENTS,
        outreach.lead.lightfield_id,
        UNSUBSCRIBED,
        {
            "event_id": f"unsubscribe-{outreach.pk}",
            "event_type": "unsubscribed",
            "outreach_id": outreach.pk,
            "occurred_at": at.isoformat(),
            "payload": {"source": source},
        },
    )
