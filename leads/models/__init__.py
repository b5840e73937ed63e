"""The lead domain's models (domain.py) and the pipeline's bookkeeping (pipeline.py)."""

from leads.models.domain import (
    BudgetRange,
    CompanySize,
    EngagementEvent,
    EngagementType,
    Experiment,
    ExperimentStatus,
    Lead,
    LeadStatus,
    Outreach,
    OutreachReward,
    OutreachStatus,
    OutreachTemplate,
    Persona,
    Variant,
)
from leads.models.pipeline import DeadLetter, OutboxEvent, ProcessedEvent

__all__ = [
    "BudgetRange",
    "CompanySize",
    "DeadLetter",
    "EngagementEvent",
    "EngagementType",
    "Experiment",
    "ExperimentStatus",
    "Lead",
    "LeadStatus",
    "OutboxEvent",
    "Outreach",
    "OutreachReward",
    "OutreachStatus",
    "OutreachTemplate",
    "Persona",
    "ProcessedEvent",
    "Variant",
]
