"""Demo data for `make run`: templates, two experiments and a few hundred scored leads.

Idempotent: everything is found by a stable name or lightfield_id before it is created, so
running it again adds nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import transaction
from faker import Faker

from leads.caching import experiments_invalidate
from leads.lightfield import fake_event, parse_event
from leads.models import Experiment, Lead, OutreachTemplate, Persona, Variant
from leads.services.leads import lead_score

DEMO_PREFIX = "demo-"
DEMO_SEED = 2026

_TEMPLATES = {
    "Pain-led intro": (
        "{{ company.name }}: {{ lead.pain_points.0|default:'your pipeline' }}, solved",
        "Hi {{ contact.first_name|default:'there' }},\n\nTeams like {{ company.name }} tell us "
        "{{ lead.pain_points.0|default:'pipeline work' }} eats their week. We fix that.\n\n"
        "{{ sender.name }}",
    ),
    "Social proof": (
        "How {{ company.industry|default:'teams' }} leaders grow pipeline",
        "Hi {{ contact.first_name|default:'there' }},\n\n300 {{ company.industry|default:'B2B' }} "
        "teams use us to turn leads into meetings. Worth 15 minutes?\n\n{{ sender.name }}",
    ),
    "Short question": (
        "Quick question, {{ contact.first_name|default:'there' }}",
        "Is growing pipeline a priority at {{ company.name }} this quarter?\n\n{{ sender.name }}",
    ),
    "Enterprise ROI": (
        "A business case for {{ company.name }}",
        "Hi {{ contact.first_name|default:'there' }},\n\nFor a team of {{ company.size }}, our "
        "customers see payback within a quarter. I can share the model.\n\n{{ sender.name }}",
    ),
}
_EXPERIMENTS = {
    "Cold intro": ("", ["Pain-led intro", "Social proof", "Short question"]),
    "Enterprise value": (Persona.ENTERPRISE, ["Enterprise ROI", "Social proof"]),
}


@dataclass(frozen=True)
class DemoSeedResult:
    templates_created: int
    experiments_created: int
    leads_created: int


@transaction.atomic
def demo_seed(*, lead_count: int) -> DemoSeedResult:
    templates, templates_created = {}, 0
    for name, (subject, body) in _TEMPLATES.items():
        templates[name], created = OutreachTemplate.objects.get_or_create(
            name=name, defaults={"subject": subject, "body": body}
        )
        templates_created += created
    experiments_created = 0
    for name, (persona, variant_templates) in _EXPERIMENTS.items():
        experiment, created = Experiment.objects.get_or_create(name=name, defaults={"target_persona": persona})
        experiments_created += created
        for template_name in variant_templates:
            Variant.objects.get_or_create(
                experiment=experiment, name=template_name, defaults={"template": templates[template_name]}
            )
    experiments_invalidate()
    return DemoSeedResult(templates_created, experiments_created, _seed_leads(lead_count))


def _seed_leads(count: int) -> int:
    fake, rng = Faker(), random.Random(DEMO_SEED)
    fake.seed_instance(DEMO_SEED)
    wanted = [f"{DEMO_PREFIX}{number:05d}" for number in range(1, count + 1)]
    existing = set(Lead.objects.filter(lightfield_id__in=wanted).values_list("lightfield_id", flat=True))
    created = 0
    for lightfield_id in wanted:
        event = fake_event(fake, rng, lightfield_id)  # drawn for every id, so each lead is always the same
        if lightfield_id in existing:
            continue
        lead_score(lead=Lead.objects.create(**parse_event(event)))
        created += 1
    return created
