"""Outreach: who may be written to, which variant they get, sending, and expiry.

Sending is two transactions around the SMTP calls, never one open across them: the first picks
each lead's variant and stores its pending Outreach with its Message-ID, for a whole batch; the
second, after the mail went over one connection, marks the batch sent. A stage that dies in
between finds the pending rows on redelivery and sends them again under the same Message-IDs, so
a retried send is recognisable as the same mail.
"""

from __future__ import annotations

import contextlib
import logging
import random
import smtplib
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from leads import bandit
from leads.caching import lead_metrics_invalidate
from leads.models import Experiment, Lead, Outreach, Variant
from leads.outbox import Emission, outbox_emit_many
from leads.services.leads import lead_emit_scored
from leads.services.templates import CompiledTemplate, template_compile
from leads.topics import OUTREACH_EVENTS
from pipeline_whisperer.bulk import bulk_insert
from pipeline_whisperer.exceptions import Conflict
from pipeline_whisperer.resilience import retry_call

logger = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
# A lead in one of these becomes contacted when mail goes out.
PRE_CONTACT_STATUSES = (Lead.Status.RAW, Lead.Status.SCORED, Lead.Status.DISQUALIFIED, Lead.Status.FAILED)
# Outreach in these states has had its say: no later event changes its status.
FINAL_STATUSES = (
    Outreach.Status.CONVERTED,
    Outreach.Status.BOUNCED,
    Outreach.Status.COMPLAINED,
    Outreach.Status.UNSUBSCRIBED,
)


def outreach_refusal(lead: Lead, *, force: bool = False, has_outreach: bool | None = None) -> str:
    """Why this lead may not be written to now, or "" if it may.

    `force` (staff's decision) overrides the score, the status and an earlier outreach, never
    an unsubscribe, a bounce, a snooze or a missing address. `has_outreach` saves the query when
    the caller knows whether the lead has outreach already.
    """
    if lead.unsubscribed_at:
        return "the lead unsubscribed"
    if lead.bounced_at:
        return "mail to the lead bounced"
    if not lead.contact_email:
        return "the lead has no email address"
    if lead.status == Lead.Status.SNOOZED:
        return "the lead is snoozed"
    if force:
        return ""
    if lead.status != Lead.Status.SCORED:
        return f"the lead is {lead.status}"
    if lead.score is None or lead.score < settings.OUTREACH_MIN_SCORE:
        return "the score is below OUTREACH_MIN_SCORE"
    if lead.outreach_count or (lead.outreach.exists() if has_outreach is None else has_outreach):
        return "the lead was contacted already"
    return ""


def outreach_force(*, lead: Lead) -> Lead:
    """Staff or API: queue outreach for a lead regardless of score, status or earlier outreach."""
    refusal = outreach_refusal(lead, force=True)
    if refusal:
        raise Conflict(f"Cannot write to this lead: {refusal}.")
    with transaction.atomic():
        lead_emit_scored(lead, force=True)
    return lead


def variants_active() -> list[Variant]:
    """The bandit's arms: active variants of active experiments, with template and experiment."""
    return list(
        Variant.objects.select_related("template", "experiment")
        .filter(is_active=True, experiment__status=Experiment.Status.ACTIVE)
        .order_by("pk")
    )


def variant_pick(variants: Sequence[Variant], *, persona: str, rng: random.Random) -> Variant | None:
    """Thompson sampling over those of `variants` whose experiment targets `persona` (or everyone)."""
    eligible = [v for v in variants if v.experiment.target_persona in ("", persona)]
    if not eligible:
        return None
    chosen = bandit.choose([bandit.Arm(key=v.pk, alpha=v.alpha, beta=v.beta) for v in eligible], rng)
    return next(v for v in eligible if v.pk == chosen.key)


def variant_choose(*, lead: Lead, rng: random.Random) -> Variant | None:
    """Thompson sampling over the active variants of the active experiments for the lead's persona."""
    return variant_pick(variants_active(), persona=lead.persona, rng=rng)


@dataclass(frozen=True)
class OutreachRequest:
    """A lead.scored event as the outreach stage reads it."""

    lead_id: int
    force: bool = False
    correlation_id: str | None = None  # carried by the outreach.sent it causes


@dataclass
class SendResult:
    """What became of one request: no outreach (`refusal` says why), or its outreach, which was
    sent, refused by the recipient's server (`refused`), or not sent (`error`, to retry)."""

    request: OutreachRequest
    outreach: Outreach | None = None
    refusal: str = ""
    refused: str = ""
    error: Exception | None = None


def outreach_send_batch(*, requests: Sequence[OutreachRequest], rng: random.Random) -> list[SendResult]:
    """Write to every lead of the batch that may be written to: one transaction chooses, renders
    and stores the pending rows with their Message-IDs; then the mail goes over one connection.
    Safe to redeliver: a pending row is sent again under its Message-ID."""
    results = _claim_batch(requests, rng)
    to_send = [result for result in results if result.outreach is not None]
    if to_send:
        _send_all(to_send)
    return results


def _claim_batch(requests: Sequence[OutreachRequest], rng: random.Random) -> list[SendResult]:
    lead_ids = [request.lead_id for request in requests]
    with transaction.atomic():
        locked = Lead.objects.select_for_update().filter(pk__in=lead_ids).order_by("pk").only(*_LEAD_FIELDS_READ)
        leads = {lead.pk: lead for lead in locked}
        pending = {o.lead_id: o for o in Outreach.objects.filter(lead_id__in=lead_ids, status=Outreach.Status.PENDING)}
        contacted = set(Outreach.objects.filter(lead_id__in=lead_ids).values_list("lead_id", flat=True))
        variants = variants_active()
        compiled: dict[int, CompiledTemplate] = {}
        results: list[SendResult] = []
        created: list[Outreach] = []
        for request in requests:
            lead = leads.get(request.lead_id)
            if lead is None:
                results.append(SendResult(request, refusal="the lead does not exist"))
                continue
            interrupted = pending.pop(lead.pk, None)
            if interrupted is not None:
                # A send that a crash interrupted; still never to a lead who since unsubscribed or was snoozed.
                interrupted.lead = lead
                refusal = outreach_refusal(lead, force=True)
                if refusal:
                    _cancel(interrupted, refusal)
                results.append(
                    SendResult(request, refusal=refusal) if refusal else SendResult(request, outreach=interrupted)
                )
                continue
            refusal = outreach_refusal(lead, force=request.force, has_outreach=lead.pk in contacted)
            variant = None if refusal else variant_pick(variants, persona=lead.persona, rng=rng)
            if variant is None:
                results.append(
                    SendResult(request, refusal=refusal or "no active experiment targets the lead's persona")
                )
                continue
            template = variant.template
            if template.pk not in compiled:
                compiled[template.pk] = template_compile(subject=template.subject, body=template.body)
            message = compiled[template.pk].render(lead)
            outreach = Outreach(
                lead=lead,
                variant=variant,
                to_email=lead.contact_email,
                subject=message.subject,
                body=message.body,
                message_id=_new_message_id(),
            )
            created.append(outreach)
            contacted.add(lead.pk)
            results.append(SendResult(request, outreach=outreach))
        bulk_insert(created, key_field="message_id")
    return results


# What eligibility and the template context read of a lead (not the raw event, the largest part).
_LEAD_FIELDS_READ = (
    "lightfield_id", "status", "score", "persona", "outreach_count", "unsubscribed_at", "bounced_at",
    "company_name", "company_website", "company_industry", "company_size",
    "contact_name", "contact_email", "contact_title",
    "pain_points", "tech_stack", "budget_range", "timeline",
)  # fmt: skip


def _new_message_id() -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">") or "localhost"
    return f"<{uuid.uuid4().hex}@{domain}>"


def _send_all(results: Sequence[SendResult]) -> None:
    """Send the results' outreach over OUTREACH_SEND_CONNECTIONS mail connections at once (each
    its share, in order), recording per result what happened. A mail server answers each command
    before the next: parallel connections keep it and us busy instead of waiting on each other."""
    connections = min(settings.OUTREACH_SEND_CONNECTIONS, len(results))
    shares = [results[start::connections] for start in range(connections)]
    if connections == 1:
        _send_share(shares[0])
        return
    with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="outreach-send") as pool:
        list(pool.map(_send_share, shares))


def _send_share(results: Sequence[SendResult]) -> None:
    """Send over one connection; once the server stays unreachable, the rest are not tried:
    they fail with the same error, to be retried."""
    connection = get_connection()
    try:
        for position, result in enumerate(results):
            assert result.outreach is not None  # noqa: S101  # nosec B101  (only results with outreach are sent)
            try:
                _send(connection, _message(result.outreach, connection))
            except smtplib.SMTPRecipientsRefused as error:
                result.refused = f"recipient refused: {error.recipients}"
            except Exception as error:
                for unsent in results[position:]:
                    unsent.error = error
                return
    finally:
        _close_quietly(connection)


def _message(outreach: Outreach, connection: BaseEmailBackend) -> EmailMessage:
    return EmailMessage(
        subject=outreach.subject,
        body=outreach.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[outreach.to_email],
        headers=_headers(outreach),
        connection=connection,
    )


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
        ),
        rng=random.Random(),  # noqa: S311  (jitter, not cryptography)
    )


def _close_quietly(connection: BaseEmailBackend) -> None:
    """Close a mail connection that may be broken already; closing it cannot fail the send."""
    with contextlib.suppress(Exception):
        connection.close()


def _headers(outreach: Outreach) -> dict[str, str]:
    headers = {"X-Outreach-ID": str(outreach.pk)}
    # A row without one (message_id is nullable) gets Django's own, never the text "None".
    if outreach.message_id:
        headers["Message-ID"] = outreach.message_id
    return headers


def outreach_record_batch(*, results: Sequence[SendResult]) -> None:
    """After the sends: mark what went out as sent (leads contacted, variants' sends counted once per
    variant, `outreach.sent` emitted in one insert) and what was refused as failed. Call inside the
    stage's transaction."""
    sent = [r for r in results if r.outreach is not None and not r.refused and r.error is None]
    for result in results:
        if result.refusal:
            logger.info("no outreach for lead %s: %s", result.request.lead_id, result.refusal)
        elif result.outreach is not None and result.refused:
            _mark_refused(result.outreach, result.refused)
    if sent:
        _mark_sent(sent)


def _mark_sent(results: Sequence[SendResult]) -> None:
    sent = [result.outreach for result in results if result.outreach is not None]
    now = timezone.now()
    Outreach.objects.filter(pk__in=[o.pk for o in sent]).update(
        status=Outreach.Status.SENT, sent_at=now, error="", updated_at=now
    )
    sends_per_lead = Counter(o.lead_id for o in sent)
    for count in set(sends_per_lead.values()):
        Lead.objects.filter(pk__in=[pk for pk, n in sends_per_lead.items() if n == count]).update(
            contacted_at=Coalesce(F("contacted_at"), now),
            outreach_count=F("outreach_count") + count,
            # A forced send to a lead who already answered or converted leaves that status as it is.
            status=Case(When(status__in=PRE_CONTACT_STATUSES, then=Value(Lead.Status.CONTACTED)), default=F("status")),
            updated_at=now,
        )
    lead_metrics_invalidate()
    for variant_id, count in Counter(o.variant_id for o in sent if o.variant_id is not None).items():
        Variant.objects.filter(pk=variant_id).update(sends=F("sends") + count, updated_at=now)
    outbox_emit_many(
        [
            Emission(
                OUTREACH_EVENTS,
                outreach.lead.lightfield_id,
                "outreach.sent",
                {
                    "outreach_id": outreach.pk,
                    "lead_id": outreach.lead_id,
                    "variant_id": outreach.variant_id,
                    "message_id": outreach.message_id,
                    "sent_at": now.isoformat(),
                },
                result.request.correlation_id,
            )
            for result in results
            if (outreach := result.outreach) is not None
        ]
    )


def _cancel(outreach: Outreach, reason: str) -> None:
    now = timezone.now()
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.FAILED, failed_at=now, error=f"cancelled before sending: {reason}", updated_at=now
    )


def _mark_refused(outreach: Outreach, reason: str) -> None:
    now = timezone.now()
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.FAILED, failed_at=now, error=reason, updated_at=now
    )
    Lead.objects.filter(pk=outreach.lead_id).update(status=Lead.Status.FAILED, failure_reason=reason, updated_at=now)
    lead_metrics_invalidate()


def outreach_expire_stale(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Close outreach that passed the attribution window without converting: a failure reward
    for its variant, exactly once. Safe under concurrent runs (rows are claimed with SKIP LOCKED)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.ATTRIBUTION_WINDOW_DAYS)
    expired = 0
    while True:
        with transaction.atomic():
            stale = (
                Outreach.objects.select_for_update(skip_locked=True)
                .filter(reward="", sent_at__lt=cutoff)
                .exclude(status__in=FINAL_STATUSES)
                .values_list("pk", flat=True)[:batch_size]
            )
            ids = list(stale)
            if not ids:
                return expired
            Outreach.objects.filter(pk__in=ids).update(
                status=Outreach.Status.EXPIRED,
                expired_at=now,
                reward=Outreach.Reward.FAILURE,
                rewarded_at=now,
                updated_at=now,
            )
            per_variant = (
                Outreach.objects.filter(pk__in=ids, variant__isnull=False)
                .order_by()
                .values_list("variant_id")
                .annotate(n=Count("pk"))
            )
            for variant_id, count in per_variant:
                Variant.objects.filter(pk=variant_id).update(
                    beta=F("beta") + count, failures=F("failures") + count, updated_at=now
                )
            expired += len(ids)
