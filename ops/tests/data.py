"""Data for backup tests and the benchmark: many leads with their outreach, made fast.

ops works on whatever tables the project has and imports no app, its tests included: they fill
the domain's tables through models looked up by app label at run time, as a data migration does.
"""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.utils import timezone


def leads_with_outreach_create(*, count: int) -> None:
    """`count` leads of varied content (JSON, nulls, unicode), each with one outreach."""
    Lead, Outreach = apps.get_model("leads", "Lead"), apps.get_model("leads", "Outreach")
    OutreachTemplate, Experiment = apps.get_model("leads", "OutreachTemplate"), apps.get_model("leads", "Experiment")
    Variant = apps.get_model("leads", "Variant")
    template = OutreachTemplate.objects.create(name="Backup test", subject="Hi {{ company.name }}", body="Hello")
    experiment = Experiment.objects.create(name="Backup test")
    variant = Variant.objects.create(experiment=experiment, name="A", template=template, alpha=2.5, sends=count)
    now = timezone.now()
    leads = Lead.objects.bulk_create(
        [
            Lead(
                lightfield_id=f"lf-{number:07d}",
                status=Lead.Status.CONTACTED,
                company_name=f"Société {number} — ünïcode",
                company_description="line one\nline two\ttabbed \\ backslash" if number % 3 else "",
                contact_email=f"contact{number}@example.com",
                tech_stack=["python", {"nested": number}],
                raw_payload={"lightfield_id": f"lf-{number:07d}", "extra": [1, None, "x"]},
                score=(number % 100) / 100 if number % 7 else None,
                lightfield_created_at=now - timedelta(minutes=number),
                contacted_at=now,
            )
            for number in range(count)
        ],
        batch_size=2000,
    )
    Outreach.objects.bulk_create(
        [
            Outreach(lead=lead, variant=variant if i % 2 else None, to_email=lead.contact_email, subject="s", body="b")
            for i, lead in enumerate(leads)
        ],
        batch_size=2000,
    )
