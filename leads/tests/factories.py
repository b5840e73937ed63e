"""factory_boy factories for the lead domain."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import factory
from django.db.models import Model
from django.utils import timezone

from leads.models import EngagementEvent, Experiment, Lead, Outreach, OutreachTemplate, Variant

ModelT = TypeVar("ModelT", bound=Model)


class ModelFactory(factory.django.DjangoModelFactory[ModelT]):
    """A DjangoModelFactory whose direct call (`LeadFactory(...)`) is typed as the model it creates.

    factory_boy's metaclass makes the call return `create()`'s model, but its `__call__` is
    unannotated and mypy ignores a metaclass `__call__` anyway, so it types the call as the factory.
    """

    class Meta:
        abstract = True

    if TYPE_CHECKING:
        # Typing-only: describes FactoryMetaClass.__call__; never defined at runtime.
        def __new__(cls, **kwargs: Any) -> ModelT: ...  # type: ignore[misc]  # returns the model


class LeadFactory(ModelFactory[Lead]):
    class Meta:
        model = Lead

    lightfield_id = factory.Sequence(lambda n: f"lf-{n:06d}")
    company_name = factory.Sequence(lambda n: f"Company {n}")
    company_industry = "Software"
    company_size = "51-200"
    contact_name = "Ada Lovelace"
    # A company domain each: one person per company, so no company's cap refuses a factory lead.
    contact_email = factory.Sequence(lambda n: f"contact{n}@company{n}.example.com")
    contact_title = "VP Engineering"
    budget_range = "50k-100k"
    timeline = "3 months"
    pain_points = factory.LazyFunction(lambda: ["low reply rates"])


class OutreachTemplateFactory(ModelFactory[OutreachTemplate]):
    class Meta:
        model = OutreachTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Hello {{ company.name }}"
    body = "Hi {{ contact.first_name }}, from {{ sender.name }}."


class ExperimentFactory(ModelFactory[Experiment]):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"Experiment {n}")


class VariantFactory(ModelFactory[Variant]):
    class Meta:
        model = Variant

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"Variant {n}")
    template = factory.SubFactory(OutreachTemplateFactory)


class OutreachFactory(ModelFactory[Outreach]):
    class Meta:
        model = Outreach

    lead = factory.SubFactory(LeadFactory)
    variant = factory.SubFactory(VariantFactory)
    to_email = factory.LazyAttribute(lambda o: o.lead.contact_email)
    subject = "Hello"
    body = "Hi there."


class EngagementEventFactory(ModelFactory[EngagementEvent]):
    class Meta:
        model = EngagementEvent

    event_id = factory.Sequence(lambda n: f"evt-{n:06d}")
    outreach = factory.SubFactory(OutreachFactory)
    event_type = EngagementEvent.Type.OPENED
    occurred_at = factory.Faker("date_time_this_month", tzinfo=__import__("datetime").UTC)


def complaint_history(*, sent: int, prefix: str = "m") -> None:
    """`sent` mails sent two hours ago, one of them complained about: 1 in 100 trips the brake at
    the default OUTREACH_MAX_COMPLAINT_RATE once OUTREACH_BRAKE_MIN_SAMPLE <= `sent`."""
    lead = LeadFactory()
    sent_at = timezone.now() - timedelta(hours=2)
    Outreach.objects.bulk_create(
        Outreach(lead=lead, to_email=f"{prefix}{n}@example.com", subject="s", body="b", sent_at=sent_at, status="sent")
        for n in range(sent - 1)
    )
    Outreach.objects.create(
        lead=lead,
        to_email="angry@example.com",
        subject="s",
        body="b",
        sent_at=sent_at,
        status=Outreach.Status.COMPLAINED,
        complained_at=timezone.now(),
    )
