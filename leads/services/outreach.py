"""Outreach: who may be written to, which variant they get, sending, and expiry.

Sending is two transactions around the SMTP calls, never one open across them: the first picks
each lead's variant and stores its pending Outreach with its Message-ID, for a whole batch; the
second, after the mail went over one connection, marks the batch sent. A stage that dies in
between finds the pending rows on redelivery and sends them again under the same Message-IDs, so
a retried send is recognisable as the same mail. The sending and its record are
`leads.services.dispatch`'s, which also sends what is scheduled for later.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from leads import bandit
from leads.models import Experiment, Lead, Outreach, Variant
from leads.services.dispatch import Delivery, dispatch_record, dispatch_send
from leads.services.leads import lead_emit_scored
from leads.services.templates import CompiledTemplate, template_compile
from pipeline_whisperer.bulk import bulk_insert
from pipeline_whisperer.exceptions import Conflict

logger = logging.getLogger(__name__)

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
    # Until outreach is scheduled for the dispatcher, the stage sends at once, through its send.
    deliveries = {id(r): Delivery(r.outreach, r.request.correlation_id) for r in results if r.outreach is not None}
    dispatch_send(list(deliveries.values()))
    for result in results:
        if (delivery := deliveries.get(id(result))) is not None:
            result.refused, result.error = delivery.refused, delivery.error
    return results


def outreach_record_batch(*, results: Sequence[SendResult]) -> None:
    """After the sends: record them (`dispatch_record`) and log the refusals. Call inside the
    stage's transaction."""
    for result in results:
        if result.refusal:
            logger.info("no outreach for lead %s: %s", result.request.lead_id, result.refusal)
    dispatch_record(
        deliveries=[
            Delivery(r.outreach, r.request.correlation_id, refused=r.refused, error=r.error)
            for r in results
            if r.outreach is not None
        ]
    )


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


def _cancel(outreach: Outreach, reason: str) -> None:
    now = timezone.now()
    Outreach.objects.filter(pk=outreach.pk).update(
        status=Outreach.Status.FAILED, failed_at=now, error=f"cancelled before sending: {reason}", updated_at=now
    )


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
