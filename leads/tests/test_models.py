"""Every invariant of the lead domain holds in the database itself, whatever code path writes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from leads.models import EngagementEvent, Lead, Outreach, OutreachTemplate, Variant
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


# --- Lead -------------------------------------------------------------------------------


def test_duplicate_lightfield_id_is_rejected_by_the_database():
    LeadFactory(lightfield_id="lf-dup")
    with pytest.raises(IntegrityError, match="lightfield_id"), transaction.atomic():
        Lead.objects.bulk_create([Lead(lightfield_id="lf-dup", company_name="Other")])


@pytest.mark.parametrize("score", [-0.01, 1.01])
def test_score_outside_unit_range_is_rejected_by_the_database(score):
    lead = LeadFactory()
    with pytest.raises(IntegrityError, match="lead_score_in_unit_range"), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(score=score)


@pytest.mark.parametrize("score", [None, 0.0, 1.0])
def test_score_at_the_unit_range_bounds_or_null_is_accepted(score):
    lead = LeadFactory()
    Lead.objects.filter(pk=lead.pk).update(score=score)
    lead.refresh_from_db()
    assert lead.score == score


def test_unknown_lead_status_is_rejected_by_the_database():
    lead = LeadFactory()
    with pytest.raises(IntegrityError, match="lead_status_valid"), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(status="archived")


def test_unknown_lead_persona_is_rejected_by_the_database():
    lead = LeadFactory()
    with pytest.raises(IntegrityError, match="lead_persona_valid"), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(persona="whale")


def test_empty_company_name_is_rejected_by_the_database():
    lead = LeadFactory()
    with pytest.raises(IntegrityError, match="lead_company_name_not_empty"), transaction.atomic():
        Lead.objects.filter(pk=lead.pk).update(company_name="")


def test_empty_lightfield_id_is_rejected_by_the_database():
    with pytest.raises(IntegrityError, match="lead_lightfield_id_not_empty"), transaction.atomic():
        Lead.objects.bulk_create([Lead(lightfield_id="", company_name="Acme")])


# --- Variant ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["alpha", "beta"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_posterior_parameter_is_rejected_by_the_database(field, value):
    variant = VariantFactory()
    with pytest.raises(IntegrityError, match="variant_posterior_positive"), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(**{field: value})


def test_duplicate_variant_name_in_one_experiment_is_rejected_by_the_database():
    variant = VariantFactory(name="A")
    with pytest.raises(IntegrityError, match="variant_name_unique_in_experiment"), transaction.atomic():
        Variant.objects.bulk_create(
            [Variant(experiment=variant.experiment, name="A", template=OutreachTemplateFactory())]
        )


def test_same_variant_name_in_two_experiments_is_accepted():
    first = VariantFactory(name="A")
    second = VariantFactory(name="A", experiment=ExperimentFactory())
    assert first.experiment_id != second.experiment_id


def test_more_successes_than_sends_is_rejected_by_the_database():
    variant = VariantFactory(sends=3)
    with pytest.raises(IntegrityError, match="variant_rewards_within_sends"), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(successes=4)


def test_more_rewards_than_sends_is_rejected_by_the_database():
    variant = VariantFactory(sends=3, successes=2)
    with pytest.raises(IntegrityError, match="variant_rewards_within_sends"), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(failures=2)


def test_rewards_that_exactly_use_up_the_sends_are_accepted():
    variant = VariantFactory(sends=3)
    Variant.objects.filter(pk=variant.pk).update(successes=1, failures=2)
    variant.refresh_from_db()
    assert (variant.successes, variant.failures) == (1, 2)


def test_template_used_by_a_variant_cannot_be_deleted():
    variant = VariantFactory()
    with pytest.raises(ProtectedError):
        variant.template.delete()
    assert OutreachTemplate.objects.filter(pk=variant.template_id).exists()


# --- Outreach ---------------------------------------------------------------------------


def test_reward_without_rewarded_at_is_rejected_by_the_database():
    outreach = OutreachFactory()
    with pytest.raises(IntegrityError, match="outreach_reward_has_time"), transaction.atomic():
        Outreach.objects.filter(pk=outreach.pk).update(reward=Outreach.Reward.FAILURE)


def test_rewarded_at_without_reward_is_rejected_by_the_database():
    outreach = OutreachFactory()
    with pytest.raises(IntegrityError, match="outreach_reward_has_time"), transaction.atomic():
        Outreach.objects.filter(pk=outreach.pk).update(rewarded_at=timezone.now())


def test_unknown_reward_is_rejected_by_the_database():
    outreach = OutreachFactory()
    with pytest.raises(IntegrityError, match="outreach_reward_has_time"), transaction.atomic():
        Outreach.objects.filter(pk=outreach.pk).update(reward="maybe", rewarded_at=timezone.now())


def test_success_reward_without_its_event_is_rejected_by_the_database():
    outreach = OutreachFactory()
    with pytest.raises(IntegrityError, match="outreach_success_has_its_event"), transaction.atomic():
        Outreach.objects.filter(pk=outreach.pk).update(reward=Outreach.Reward.SUCCESS, rewarded_at=timezone.now())


def test_success_reward_with_converted_at_is_accepted():
    outreach = OutreachFactory()
    now = timezone.now()
    Outreach.objects.filter(pk=outreach.pk).update(reward=Outreach.Reward.SUCCESS, rewarded_at=now, converted_at=now)
    outreach.refresh_from_db()
    assert outreach.reward == Outreach.Reward.SUCCESS


def test_unknown_outreach_status_is_rejected_by_the_database():
    outreach = OutreachFactory()
    with pytest.raises(IntegrityError, match="outreach_status_valid"), transaction.atomic():
        Outreach.objects.filter(pk=outreach.pk).update(status="lost")


def test_duplicate_outreach_message_id_is_rejected_by_the_database():
    OutreachFactory(message_id="<m1@example.com>")
    other = OutreachFactory()
    with pytest.raises(IntegrityError, match="message_id"), transaction.atomic():
        Outreach.objects.filter(pk=other.pk).update(message_id="<m1@example.com>")


def test_many_outreach_rows_without_message_id_are_accepted():
    OutreachFactory(message_id=None)
    OutreachFactory(message_id=None)
    assert Outreach.objects.filter(message_id__isnull=True).count() == 2


# --- EngagementEvent --------------------------------------------------------------------


def test_duplicate_engagement_event_id_is_rejected_by_the_database():
    event = EngagementEventFactory(event_id="evt-dup")
    with pytest.raises(IntegrityError, match="event_id"), transaction.atomic():
        EngagementEvent.objects.bulk_create(
            [
                EngagementEvent(
                    event_id="evt-dup", outreach=event.outreach, event_type="opened", occurred_at=timezone.now()
                )
            ]
        )


def test_unknown_engagement_type_is_rejected_by_the_database():
    event = EngagementEventFactory()
    with pytest.raises(IntegrityError, match="engagement_type_valid"), transaction.atomic():
        EngagementEvent.objects.filter(pk=event.pk).update(event_type="forwarded")


def test_engagement_event_cannot_be_saved_twice():
    event = EngagementEventFactory(event_type=EngagementEvent.Type.OPENED)
    event.event_type = EngagementEvent.Type.CLICKED
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    event.refresh_from_db()
    assert event.event_type == EngagementEvent.Type.OPENED
