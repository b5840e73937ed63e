"""factory_boy factories for the lead domain."""

from __future__ import annotations

import factory

from leads.models import EngagementEvent, Experiment, Lead, Outreach, OutreachTemplate, Variant


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    lightfield_id = factory.Sequence(lambda n: f"lf-{n:06d}")
    company_name = factory.Sequence(lambda n: f"Company {n}")
    company_industry = "Software"
    company_size = "51-200"
    contact_name = "Ada Lovelace"
    contact_email = factory.Sequence(lambda n: f"contact{n}@example.com")
    contact_title = "VP Engineering"
    budget_range = "50k-100k"
    timeline = "3 months"
    pain_points = factory.LazyFunction(lambda: ["low reply rates"])


class OutreachTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutreachTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Hello {{ company.name }}"
    body = "Hi {{ contact.first_name }}, from {{ sender.name }}."


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"Experiment {n}")


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"Variant {n}")
    template = factory.SubFactory(OutreachTemplateFactory)


class OutreachFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Outreach

    lead = factory.SubFactory(LeadFactory)
    variant = factory.SubFactory(VariantFactory)
    to_email = factory.LazyAttribute(lambda o: o.lead.contact_email)
    subject = "Hello"
    body = "Hi there."


class EngagementEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EngagementEvent

    event_id = factory.Sequence(lambda n: f"evt-{n:06d}")
    outreach = factory.SubFactory(OutreachFactory)
    event_type = EngagementEvent.Type.OPENED
    occurred_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)
