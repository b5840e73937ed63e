"""Creating, editing, scoring and snoozing leads.

Snooze and unsnooze are single conditional UPDATEs, and scoring runs on a row its caller has
locked (`select_for_update`), so two workers or staff members acting on the same lead at once
cannot both succeed from a stale state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from leads.caching import lead_metrics_invalidate
from leads.models import Lead
from leads.outbox import Emission, outbox_emit_many
from leads.scoring.factory import configured_scorer
from leads.scoring.rules import score_by_rules
from leads.scoring.types import LeadFacts, ScoreResult
from leads.topics import LEADS_SCORED
from pipeline_whisperer.exceptions import Conflict, InvalidInput

# A lead in one of these may be snoozed; converted leads are done and stay as they are.
SNOOZABLE = (
    Lead.Status.RAW,
    Lead.Status.SCORED,
    Lead.Status.CONTACTED,
    Lead.Status.RESPONDED,
    Lead.Status.DISQUALIFIED,
    Lead.Status.FAILED,
)


def lead_create(*, lightfield_id: str, company_name: str, **fields: Any) -> Lead:
    """Create a raw lead; a lightfield_id that exists already is a Conflict."""
    try:
        with transaction.atomic():
            lead = Lead.objects.create(lightfield_id=lightfield_id, company_name=company_name, **fields)
            lead_metrics_invalidate()
            return lead
    except IntegrityError:
        if Lead.objects.filter(lightfield_id=lightfield_id).exists():
            raise Conflict(
                f"A lead with lightfield_id {lightfield_id!r} exists already.", lightfield_id=lightfield_id
            ) from None
        raise


def lead_update(*, lead: Lead, **changes: Any) -> Lead:
    for field, value in changes.items():
        setattr(lead, field, value)
    lead.save(update_fields=[*changes, "updated_at"])
    lead_metrics_invalidate()
    return lead


def lead_facts(lead: Lead) -> LeadFacts:
    return LeadFacts(
        company_name=lead.company_name,
        company_size=lead.company_size,
        company_industry=lead.company_industry,
        contact_title=lead.contact_title,
        budget_range=lead.budget_range,
        timeline=lead.timeline,
        pain_points=tuple(str(pain) for pain in lead.pain_points or ()),
    )


def lead_apply_score(*, lead: Lead, result: ScoreResult) -> Lead:
    """Store a score; below OUTREACH_MIN_SCORE the lead is disqualified, otherwise scored.

    A snoozed lead keeps its snooze and returns to the new status when unsnoozed.
    """
    changes = lead_score_changes(status=lead.status, result=result)
    for name, value in changes.items():
        setattr(lead, name, value)
    lead.save(update_fields=[*changes, "updated_at"])
    lead_metrics_invalidate()
    return lead


def lead_score_changes(*, status: str, result: ScoreResult) -> dict[str, Any]:
    """The fields a score sets on a lead that is in `status` (`lead_apply_score`'s rule, for
    callers that write many leads at once)."""
    qualified = result.score >= settings.OUTREACH_MIN_SCORE
    new_status = Lead.Status.SCORED if qualified else Lead.Status.DISQUALIFIED
    reasons = list(result.reasons) + ([f"fallback: {result.fallback_reason}"] if result.fallback_reason else [])
    changes: dict[str, Any] = {
        "score": result.score,
        "persona": result.persona,
        "scoring_model": result.model,
        "scoring_reasons": reasons,
        "scored_at": timezone.now(),
        "failure_reason": "",
    }
    if status == Lead.Status.SNOOZED:
        changes["status_before_snooze"] = new_status
    elif status in (Lead.Status.RAW, Lead.Status.SCORED, Lead.Status.DISQUALIFIED, Lead.Status.FAILED):
        changes["status"] = new_status
    return changes


def lead_score(*, lead: Lead) -> Lead:
    """Score a lead with the rule-based scorer (demo data, tests); the pipeline uses lead_rescore."""
    return lead_apply_score(lead=lead, result=score_by_rules(lead_facts(lead)))


def lead_rescore(*, lead: Lead) -> Lead:
    """Score a lead again with the configured scorer and put it back on `leads.scored`.

    The scorer may call a model over the network, so it runs before the transaction opens.
    """
    result = configured_scorer()(lead_facts(lead))
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        lead = lead_apply_score(lead=lead, result=result)
        lead_emit_scored(lead)
    return lead


def lead_emit_scored(lead: Lead, *, force: bool = False) -> None:
    """Put a scored lead on `leads.scored`, where the outreach stage decides whether to write."""
    outbox_emit_many([lead_scored_emission(lead, force=force)])


def lead_scored_emission(lead: Lead, *, force: bool = False) -> Emission:
    """The `lead.scored` event of a lead as it stands now."""
    return lead_scored_emission_of(
        lead_id=lead.pk,
        lightfield_id=lead.lightfield_id,
        score=lead.score,
        persona=lead.persona,
        status=lead.status,
        force=force,
    )


def lead_scored_emission_of(
    *,
    lead_id: int,
    lightfield_id: str,
    score: float | None,
    persona: str,
    status: str,
    force: bool = False,
    correlation_id: str | None = None,
) -> Emission:
    """The `lead.scored` event of a lead in the given state (a batch knows it without the model)."""
    payload = {
        "lead_id": lead_id,
        "lightfield_id": lightfield_id,
        "score": score,
        "persona": persona,
        "status": status,
        "force": force,
    }
    return Emission(LEADS_SCORED, lightfield_id, "lead.scored", payload, correlation_id)


def lead_snooze(*, lead: Lead, until: datetime | None = None) -> Lead:
    """Keep a lead out of outreach, until a time or until unsnoozed."""
    if until is not None and until <= timezone.now():
        raise InvalidInput("A snooze must end in the future.", errors={"until": ["Must be in the future."]})
    updated = Lead.objects.filter(pk=lead.pk, status__in=SNOOZABLE).update(
        # SQL evaluates F("status") against the row before this UPDATE.
        status_before_snooze=F("status"),
        status=Lead.Status.SNOOZED,
        snoozed_until=until,
        updated_at=timezone.now(),
    )
    lead.refresh_from_db()
    if not updated:
        raise Conflict(f"A lead that is {lead.status} cannot be snoozed.", lead_status=lead.status)
    lead_metrics_invalidate()
    return lead


def lead_unsnooze(*, lead: Lead) -> Lead:
    """Return a snoozed lead to the status it had before."""
    updated = Lead.objects.filter(pk=lead.pk, status=Lead.Status.SNOOZED).update(
        status=Coalesce(NullIf(F("status_before_snooze"), Value("")), Value(Lead.Status.RAW)),
        status_before_snooze="",
        snoozed_until=None,
        updated_at=timezone.now(),
    )
    lead.refresh_from_db()
    if not updated:
        raise Conflict(f"The lead is {lead.status}, not snoozed.", lead_status=lead.status)
    lead_metrics_invalidate()
    return lead
