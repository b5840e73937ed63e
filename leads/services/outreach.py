"""Outreach: who may be written to, which variant they get, scheduling, and expiry.

The outreach stage schedules and sends nothing: one transaction per batch applies the rules
(`leads.services.eligibility`), picks each lead's variant, renders the mail and stores it
SCHEDULED with its Message-ID and the slot pacing chose (`leads.services.pacing`). The
dispatcher sends what is due under that Message-ID, so a retried send is recognisable as the
same mail (`leads.services.dispatch`).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from leads import bandit, selectors
from leads.caching import experiments_invalidate
from leads.models import Experiment, Lead, Outreach, Variant
from leads.services.dispatch import message_id_new
from leads.services.eligibility import Eligibility
from leads.services.leads import lead_emit_scored
from leads.services.pacing import pacing_configured, recipient_zone, scheduling_lock, slot_allocator_load
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
    """Why this lead may not be written to now, or "" if it may: the outreach stage's rules
    (`Eligibility`) for one lead. `has_outreach` saves the query when the caller knows whether the
    lead has outreach already."""
    if has_outreach is None:
        has_outreach = lead.outreach.exists()
    return Eligibility([lead], now=timezone.now()).refusal(lead, force=force, has_outreach=has_outreach)


def outreach_force(*, lead: Lead) -> Lead:
    """Staff or API: queue outreach for a lead regardless of score, status or earlier outreach;
    Conflict when a rule force does not lift (a suppression, a snooze, no address) refuses it."""
    refusal = outreach_refusal(lead, force=True, has_outreach=True)
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


def variant_pick(
    variants: Sequence[Variant],
    *,
    persona: str,
    rng: random.Random,
    arms: dict[int, bandit.AdjustedArm],
    burning_in: Collection[int] = (),
) -> Variant | None:
    """Thompson sampling over those of `variants` whose experiment targets `persona` (or everyone),
    drawing from their adjusted `arms` (`selectors.variant_adjusted_arms`); when the pick's
    experiment is in `burning_in` (`experiments_burning_in`), a uniform pick among that
    experiment's eligible variants instead."""
    eligible = [v for v in variants if v.experiment.target_persona in ("", persona)]
    if not eligible:
        return None
    chosen = bandit.choose([arms[v.pk].arm for v in eligible], rng)
    picked = next(v for v in eligible if v.pk == chosen.key)
    if picked.experiment_id in burning_in:
        return rng.choice([v for v in eligible if v.experiment_id == picked.experiment_id])
    return picked


def experiments_burning_in(variants: Sequence[Variant]) -> frozenset[int]:
    """The experiments of `variants` whose variants (paused ones too) have sent fewer than its
    `burn_in_sends`: their arms are allocated uniformly. Sends are counted when dispatched, so a
    batch scheduled near the end of a burn-in may overshoot it by up to its size. One query, and
    none while no experiment has a burn-in."""
    burn_ins = {v.experiment_id: v.experiment.burn_in_sends for v in variants if v.experiment.burn_in_sends}
    if not burn_ins:
        return frozenset()
    sent = dict(
        Variant.objects.filter(experiment_id__in=burn_ins)
        .order_by()
        .values_list("experiment_id")
        .annotate(n=Sum("sends"))
    )
    return frozenset(experiment for experiment, sends in burn_ins.items() if sent.get(experiment, 0) < sends)


def variant_choose(*, lead: Lead, rng: random.Random) -> Variant | None:
    """Thompson sampling over the active variants of the active experiments for the lead's persona,
    on their adjusted posteriors (uniform over an experiment's variants during its burn-in). A
    choice outside a batch: it records nothing on the variants (the outreach stage's batches do,
    see `outreach_schedule_batch`)."""
    variants = variants_active()
    arms = selectors.variant_adjusted_arms(variants, now=timezone.now())
    return variant_pick(variants, persona=lead.persona, rng=rng, arms=arms, burning_in=experiments_burning_in(variants))


def _record_posteriors(arms: dict[int, bandit.AdjustedArm], at: datetime) -> None:
    """Store on each variant the adjusted posterior the choice drew from, for the API and console.
    In id order, as the feedback stage moves counters, so the two cannot deadlock; only these
    fields are written, so counters moved meanwhile are kept."""
    for variant_id in sorted(arms):
        adjusted = arms[variant_id]
        Variant.objects.filter(pk=variant_id).update(
            posterior_alpha=adjusted.arm.alpha,
            posterior_beta=adjusted.arm.beta,
            pending_weight=adjusted.pending_weight,
            posterior_at=at,
        )
    if arms:
        experiments_invalidate()


@dataclass(frozen=True)
class OutreachRequest:
    """A lead.scored event as the outreach stage reads it."""

    lead_id: int
    force: bool = False
    correlation_id: str | None = None  # carried by the outreach.sent it causes


@dataclass
class ScheduleResult:
    """What became of one request: its scheduled outreach, or none (`refusal` says why)."""

    request: OutreachRequest
    outreach: Outreach | None = None
    refusal: str = ""


def outreach_schedule_batch(
    *, requests: Sequence[OutreachRequest], rng: random.Random, now: datetime
) -> list[ScheduleResult]:
    """Schedule outreach for every lead of the batch that may be written to, sending nothing: one
    transaction (the caller's, when it has one) takes the scheduling lock, locks the leads,
    applies `Eligibility`, picks each variant, renders, and stores SCHEDULED rows with their
    Message-IDs and the earliest slot pacing allows from `now`. Refused leads get their
    `not_contacted_reason` (one UPDATE per distinct reason); scheduled ones get it cleared. Safe
    under concurrent stage processes (see `scheduling_lock`)."""
    if not requests:
        return []  # a redelivered batch, all applied before: no need to take the lock
    with transaction.atomic():
        scheduling_lock()
        lead_ids = [request.lead_id for request in requests]
        locked = Lead.objects.select_for_update().filter(pk__in=lead_ids).order_by("pk").only(*_LEAD_FIELDS_READ)
        leads = {lead.pk: lead for lead in locked}
        contacted, queued = _outreach_of(lead_ids)
        contacted_before = set(contacted)
        eligibility = Eligibility(list(leads.values()), now=now)
        variants = variants_active()
        burning_in = experiments_burning_in(variants)
        arms = selectors.variant_adjusted_arms(variants, now=now)  # once for every choice of the batch
        results = [ScheduleResult(request) for request in requests]
        admitted: list[_Admitted] = []
        for result in results:
            lead = leads.get(result.request.lead_id)
            if lead is None:
                result.refusal = "the lead does not exist"
                continue
            result.refusal = eligibility.refusal(lead, force=result.request.force, has_outreach=lead.pk in contacted)
            if not result.refusal and lead.pk in queued:
                result.refusal = "outreach to the lead is scheduled already"
            variant = (
                None
                if result.refusal
                else variant_pick(variants, persona=lead.persona, rng=rng, arms=arms, burning_in=burning_in)
            )
            if variant is None:
                result.refusal = result.refusal or "no active experiment targets the lead's persona"
                continue
            key, domain = eligibility.admit(lead)
            contacted.add(lead.pk)
            queued.add(lead.pk)
            admitted.append(_Admitted(result, lead, variant, key, domain))
        _schedule(admitted, now)
        _note_reasons(results, leads, contacted_before)
        if admitted:  # last, so the variants' rows stay locked only until the commit
            _record_posteriors(arms, now)
    return results


def _outreach_of(lead_ids: Sequence[int]) -> tuple[set[int], set[int]]:
    """Of `lead_ids`, those with any outreach, and those with outreach still to be sent."""
    contacted: set[int] = set()
    queued: set[int] = set()
    for lead_id, status in Outreach.objects.filter(lead_id__in=lead_ids).values_list("lead_id", "status"):
        contacted.add(lead_id)
        if status in (Outreach.Status.SCHEDULED, Outreach.Status.PENDING):
            queued.add(lead_id)
    return contacted, queued


@dataclass(frozen=True)
class _Admitted:
    """A lead the batch writes to, with its variant and recipient key and domain."""

    result: ScheduleResult
    lead: Lead
    variant: Variant
    key: str
    domain: str


def _schedule(admitted: Sequence[_Admitted], now: datetime) -> None:
    """Render and store the admitted rows, each at the earliest slot pacing gives it."""
    pacing = pacing_configured()
    allocator = slot_allocator_load(domains={row.domain for row in admitted}, now=now, caps=pacing.caps)
    compiled: dict[int, CompiledTemplate] = {}
    created: list[Outreach] = []
    for row in admitted:
        lead, template = row.lead, row.variant.template
        if template.pk not in compiled:
            compiled[template.pk] = template_compile(
                subject=template.subject, body=template.body, html_body=template.html_body
            )
        message = compiled[template.pk].render(lead)
        zone = recipient_zone(lead.time_zone, default=pacing.default_zone)
        row.result.outreach = Outreach(
            lead=lead,
            variant=row.variant,
            status=Outreach.Status.SCHEDULED,
            to_email=lead.contact_email,
            recipient_key=row.key,
            recipient_domain=row.domain,
            subject=message.subject,
            body=message.body,
            html_body=message.html_body,
            message_id=message_id_new(),
            scheduled_for=allocator.allocate(domain=row.domain, window=pacing.window, zone=zone, earliest=now),
        )
        created.append(row.result.outreach)
    bulk_insert(created, key_field="message_id")


def _note_reasons(results: Sequence[ScheduleResult], leads: dict[int, Lead], contacted_before: set[int]) -> None:
    """Say on each lead never written to why the stage declined it; clear it on those scheduled."""
    scheduled = {r.request.lead_id for r in results if r.outreach is not None}
    declined: defaultdict[str, set[int]] = defaultdict(set)
    for result in results:
        lead_id = result.request.lead_id
        lead = leads.get(lead_id)
        written_to = lead is None or lead.outreach_count or lead_id in contacted_before or lead_id in scheduled
        if result.refusal and not written_to:
            declined[result.refusal[:_REASON_LENGTH]].add(lead_id)
            logger.info("no outreach for lead %s: %s", lead_id, result.refusal)
    updated_at = timezone.now()
    for reason, lead_ids in declined.items():
        Lead.objects.filter(pk__in=lead_ids).exclude(not_contacted_reason=reason).update(
            not_contacted_reason=reason, updated_at=updated_at
        )
    if scheduled:
        Lead.objects.filter(pk__in=scheduled).exclude(not_contacted_reason="").update(
            not_contacted_reason="", updated_at=updated_at
        )


_REASON_LENGTH = Lead._meta.get_field("not_contacted_reason").max_length or 255
# What eligibility and the template context read of a lead (not the raw event, the largest part).
_LEAD_FIELDS_READ = (
    "lightfield_id", "status", "score", "persona", "outreach_count", "unsubscribed_at", "bounced_at", "time_zone",
    "company_name", "company_website", "company_industry", "company_size",
    "contact_name", "contact_email", "contact_title",
    "pain_points", "tech_stack", "budget_range", "timeline",
)  # fmt: skip


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
                # A failed outreach (the provider rejected it) never reached anyone: no reward.
                .exclude(status__in=(*FINAL_STATUSES, Outreach.Status.FAILED))
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
            experiments_invalidate()
            expired += len(ids)
