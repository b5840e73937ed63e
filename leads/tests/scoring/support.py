"""What the model-scorer and factory tests share: the lead they score and the server's settings."""

from __future__ import annotations

from leads.scoring.types import LeadFacts

API_KEY = "sk-test-secret-0123456789abcdef"
MODEL = "test-model"
LEAD = LeadFacts(
    company_name="Acme",
    company_size="201-1000",
    company_industry="Software",
    contact_title="VP Sales",
    budget_range="100k-500k",
    timeline="next quarter",
    pain_points=("manual reporting", "slow onboarding"),
)
