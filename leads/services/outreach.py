"""Outreach: who may be written to, which variant they get, sending, and expiry.

Sending is two transactions around the SMTP call, never one open across it: the first picks
the variant and stores a pending Outreach with its Message-ID; the second, after the mail
went, marks it sent. A stage that dies in between finds the pending row on redelivery and
sends it again under the same Message-ID, so a retried send is recognisable as the same mail.
"""

from __future__ import annotations

import logging
import random
import smtplib
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from leads import bandit
from leads.caching import lead_metrics_invalidate
from leads.events import OUTREACH_EVENTS
from leads.models import Experiment, Lead, Outreach, Variant
from leads.services.leads import lead_emit_scored
from leads.services.outbox import exactly_once, outbox_emit
from leads.services.templates import template_render
from pipeline_whisperer.exceptions import Conflict
from pipeline_whisperer.resilience import retry_call

logger = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
# A lead in one of these becomes contacted when mail goes out.
PRE_CONTACT_STATUSES = (Lead.Status.RAW, Lead.Status.SCORED, Lead.Status.DISQUALIFIED, Lead.Status.FAILED)
# Outreach in these states has had its say: no later event changes its status.
FINAL_STATUSES = (Outreach.Status.CONVERTED, Outreach.Status.BOUNCED, Outreach.Status.UNSUBSCRIBED)


def outreach_refusal(lead: Lead, *, force: bool = False) -> str:
    """Why this lead may not be written to now, or "" if it may.

    `force` (staff's decision) overrides the score, the status and an earlier outreach, never
    an unsubscribe, a bounce, a snooze or a missing address.
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
    if lead.outreach_count or lead.outreach.exists():
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


def variant_choose(*, lead: Lead, rng: random.Random) -> Variant | None:
    """Thompson sampling over the active variants of the active experiments for the lead's persona."""
    variants = list(
        Variant.objects.select_related("template", "experiment")
        .filter(is_active=True, experiment__status=Experiment.Status.ACTIVE)
        .filter(Q(experiment__target_persona="") | Q(experiment__target_persona=lead.persona))
        .order_by("pk")
    )
    if not variants:
        return None
    chosen = bandit.choose([bandit.Arm(key=v.pk, alpha=v.alpha, beta=v.beta) for v in variants], rng)
    return next(v for v in variants if v.pk == chosen.key)


def outreach_attempt(
    *, lead_id: int, stage: str, event_id: str, rng: random.Random, force: bool = False
) -> Outreach | None:
    """Write to a lead if it may be written to: choose, render, send, record. Safe to redeliver."""
    outreach, refusal = _prepare(lead_id=lead_id, rng=rng, force=force)
    if outreach is None:
        with exactly_once(stage=stage, event_id=event_id):
            logger.info("no outreach for lead %s: %s", lead_id, refusal)
        return None
    try:
        _send(outreach)
    except smtplib.SMTPRecipientsRefused as error:
        with exactly_once(stage=stage, event_id=event_id):
            _mark_refused(outreach, f"recipient refused: {error.recipients}")
        return outreach
    with exactly_once(stage=stage, event_id=event_id):
        _mark_sent(outreach)
    return outreach


def _prepare(*, lead_id: int, rng: random.Random, force: bool) -> tuple[Outreach | None, str]:
    with transaction.atomic():
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None:
            return None, "the lead does not exist"
        pending = lead.outreach.filter(status=Outreach.Status.PENDING).select_related("lead").first()
        if pending is not None:
            # A send that a crash interrupted; still never to a lead who since unsubscribed or was snoozed.
            refusal = outreach_refusal(lead, force=True)
            if not refusal:
                return pending, ""
            _cancel(pending, refusal)
            return None, refusal
        refusal = outreach_refusal(lead, force=force)
        if refusal:
            return None, refusal
        variant = variant_choose(lead=lead, rng=rng)
        if variant is None:
            return None, "no active experiment targets the lead's persona"
        message = template_render(subject=variant.template.subject, body=variant.template.body, lead=lead)
        domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">") or "localhost"
        outreach = Outreach.objects.create(
            lead=lead,
            variant=variant,
            to_email=lead.contact_email,
            subject=message.subject,
            body=message.body,
            message_id=f"<{uuid.uuid4().hex}@{domain}>",
        )
        return outreach, ""


def _send(outreach: Outreach) -> None:
    message = EmailMessage(
        subject=outreach.subject,
        body=outreach.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[outreach.to_email],
        headers=_headers(outreach),
    )
    retry_call(
        lambda: message.send(fail_silently=False),
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


def _headers(outreach: Outreach) -> dict[str, str]:
    headers = {"X-Outreach-ID": str(outreach.pk)}
    # A row without one (message_id is nullable) gets Django's own, never the text "None".
    if outreach.message_id:
        headers["Message-ID"] = outreach.message_id
    return headers


def _mark_sent(outreach: Outreach) -> None:
    now = timezone.now()
    Outreach.objects.filter(pk=outreach.pk).update(status=Outreach.Status.SENT, sent_at=now, error="", updated_at=now)
    lead = Lead.objects.filter(pk=outreach.lead_id)
    lead.update(contacted_at=Coalesce(F("contacted_at"), now), outreach_count=F("outreach_count") + 1, updated_at=now)
    # A forced send to a lead who already answered or converted leaves that status as it is.
    lead.filter(status__in=PRE_CONTACT_STATUSES).update(status=Lead.Status.CONTACTED)
    lead_metrics_invalidate()
    if outreach.variant_id is not None:
        Variant.objects.filter(pk=outreach.variant_id).update(sends=F("sends") + 1, updated_at=now)
    outbox_emit(
        topic=OUTREACH_EVENTS,
        key=outreach.lead.lightfield_id,
        event_type="outreach.sent",
        payload={
            "outreach_id": outreach.pk,
            "lead_id": outreach.lead_id,
            "variant_id": outreach.variant_id,
            "message_id": outreach.message_id,
            "sent_at": now.isoformat(),
        },
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
