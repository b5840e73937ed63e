"""Who may be written to, which variant they get, scheduling and expiry (leads.services.outreach)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from leads.models import Experiment, Lead, OutboxEvent, Outreach, Suppression, Variant
from leads.services.outreach import (
    OutreachRequest,
    outreach_expire_stale,
    outreach_force,
    outreach_refusal,
    outreach_schedule_batch,
    variant_choose,
)
from leads.services.suppression import suppression_add
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory
from leads.topics import LEADS_SCORED
from pipeline_whisperer.exceptions import Conflict

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def outreach_settings(settings: Any) -> Any:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OUTREACH_MIN_SCORE = 0.5
    settings.ATTRIBUTION_WINDOW_DAYS = 14
    mail.outbox = []
    return settings


def _scored_lead(**fields: Any) -> Lead:
    return LeadFactory(**{"status": Lead.Status.SCORED, "score": 0.69, "persona": "mid_market", **fields})


# --- outreach_refusal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, ""),
        ({"unsubscribed_at": timezone.now()}, "the lead unsubscribed"),
        ({"bounced_at": timezone.now()}, "mail to the lead bounced"),
        ({"contact_email": ""}, "the lead has no email address we could send to"),
        ({"status": Lead.Status.SNOOZED}, "the lead is snoozed"),
        ({"status": Lead.Status.DISQUALIFIED}, "the lead is disqualified"),
        ({"status": Lead.Status.CONTACTED}, "the lead is contacted"),
        ({"score": 0.49}, "the score is below OUTREACH_MIN_SCORE"),
        ({"score": None}, "the score is below OUTREACH_MIN_SCORE"),
        ({"outreach_count": 1}, "the lead was contacted already"),
    ],
)
def test_outreach_refusal_names_the_reason(fields, reason):
    assert outreach_refusal(_scored_lead(**fields)) == reason


def test_a_score_exactly_at_the_threshold_may_be_written_to():
    assert outreach_refusal(_scored_lead(score=0.5)) == ""


def test_an_earlier_outreach_row_refuses_even_when_the_count_says_none():
    lead = _scored_lead()
    OutreachFactory(lead=lead, status=Outreach.Status.FAILED)
    assert outreach_refusal(lead) == "the lead was contacted already"


@pytest.mark.parametrize(
    "fields",
    [{"status": Lead.Status.DISQUALIFIED, "score": 0.1}, {"status": Lead.Status.CONVERTED}, {"outreach_count": 3}],
)
def test_force_lifts_score_status_and_earlier_outreach_refusals(fields):
    assert outreach_refusal(_scored_lead(**fields), force=True) == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"unsubscribed_at": timezone.now()},
        {"bounced_at": timezone.now()},
        {"contact_email": ""},
        {"status": Lead.Status.SNOOZED},
    ],
)
def test_force_does_not_lift_unsubscribe_bounce_missing_address_or_snooze(fields):
    assert outreach_refusal(_scored_lead(**fields), force=True) != ""


def test_outreach_refusal_applies_the_suppression_list_even_when_forced():
    lead = _scored_lead(contact_email="Wile@Acme.example")
    suppression_add(kind=Suppression.Kind.ADDRESS, value="wile@acme.example", reason=Suppression.Reason.STAFF)
    assert outreach_refusal(lead) == "the address is suppressed (staff)"
    assert outreach_refusal(lead, force=True) == "the address is suppressed (staff)"


def test_outreach_refusal_refuses_an_address_written_to_under_another_lead():
    OutreachFactory(lead=_scored_lead(), recipient_key="grace@acme.example", recipient_domain="acme.example")
    lead = _scored_lead(contact_email="grace@acme.example")
    assert outreach_refusal(lead).startswith("the address was written to within 90 days")


# --- outreach_force -------------------------------------------------------------------------


def test_outreach_force_queues_the_lead_on_leads_scored_with_force():
    lead = _scored_lead(status=Lead.Status.CONTACTED, outreach_count=1)
    outreach_force(lead=lead)
    row = OutboxEvent.objects.get()
    assert (row.topic, row.key, row.event_type) == (LEADS_SCORED, lead.lightfield_id, "lead.scored")
    assert (row.payload["lead_id"], row.payload["force"]) == (lead.pk, True)


def test_outreach_force_for_an_unsubscribed_lead_is_a_conflict_and_queues_nothing():
    with pytest.raises(Conflict, match="the lead unsubscribed"):
        outreach_force(lead=_scored_lead(unsubscribed_at=timezone.now()))
    assert not OutboxEvent.objects.exists()


def test_outreach_force_for_a_suppressed_domain_is_a_conflict_and_queues_nothing():
    suppression_add(kind=Suppression.Kind.DOMAIN, value="acme.example", reason=Suppression.Reason.COMPLAINT)
    with pytest.raises(Conflict, match=r"the domain acme\.example is suppressed \(complaint\)"):
        outreach_force(lead=_scored_lead(contact_email="road@acme.example"))
    assert not OutboxEvent.objects.exists()


# --- variant_choose -------------------------------------------------------------------------


def test_variant_choose_without_an_active_experiment_is_none():
    ExperimentFactory(status=Experiment.Status.PAUSED)
    VariantFactory.create_batch(2, experiment=Experiment.objects.get())
    assert variant_choose(lead=_scored_lead(), rng=random.Random(1)) is None


def test_variant_choose_is_reproducible_under_a_seed():
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, alpha=3.0, beta=5.0)
    VariantFactory(experiment=experiment, alpha=4.0, beta=4.0)
    VariantFactory(experiment=experiment, alpha=2.0, beta=2.0)
    lead = _scored_lead()
    first, second = random.Random(99), random.Random(99)
    picks = [variant_choose(lead=lead, rng=first).pk for _ in range(30)]
    assert picks == [variant_choose(lead=lead, rng=second).pk for _ in range(30)]
    assert len(set(picks)) > 1  # equal-ish posteriors are all explored


def test_variant_choose_draws_only_from_active_variants_of_experiments_for_the_persona():
    mine = ExperimentFactory(target_persona="mid_market")
    chosen_from = {VariantFactory(experiment=mine).pk, VariantFactory(experiment=mine).pk}
    VariantFactory(experiment=mine, is_active=False, alpha=1000.0)
    VariantFactory(experiment=ExperimentFactory(target_persona="smb"), alpha=1000.0)
    VariantFactory(experiment=ExperimentFactory(status=Experiment.Status.PAUSED), alpha=1000.0)
    lead, rng = _scored_lead(persona="mid_market"), random.Random(4)
    assert {variant_choose(lead=lead, rng=rng).pk for _ in range(50)} == chosen_from


# --- outreach_schedule_batch --------------------------------------------------------------


def _schedule(*lead_ids: int, force: bool = False):
    requests = [OutreachRequest(lead_id=lead_id, force=force) for lead_id in lead_ids]
    return outreach_schedule_batch(requests=requests, rng=random.Random(1), now=timezone.now())


def test_one_batch_schedules_each_lead_and_sends_nothing():
    variant = VariantFactory()
    leads = [_scored_lead() for _ in range(5)]
    results = _schedule(*(lead.pk for lead in leads))
    assert [result.outreach.lead_id for result in results] == [lead.pk for lead in leads]
    assert set(Outreach.objects.values_list("status", flat=True)) == {Outreach.Status.SCHEDULED}
    assert mail.outbox == []
    variant.refresh_from_db()
    assert variant.sends == 0  # counted when the mail goes out
    assert not OutboxEvent.objects.filter(event_type="outreach.sent").exists()


def test_a_second_request_for_a_lead_in_the_same_batch_schedules_nothing_more():
    VariantFactory()
    lead = _scored_lead()
    results = _schedule(lead.pk, lead.pk)
    assert [bool(r.outreach) for r in results] == [True, False]
    assert results[1].refusal == "the lead was contacted already"
    assert Outreach.objects.count() == 1


def test_a_scheduled_outreach_is_rendered_and_keyed_by_its_recipient():
    lead = _scored_lead(company_name="Globex", contact_name="Hank Scorpio", contact_email="Hank@Globex.example")
    variant = VariantFactory()
    [result] = _schedule(lead.pk)
    stored = Outreach.objects.get()
    assert result.outreach == stored and stored.variant == variant
    assert (stored.status, stored.subject) == (Outreach.Status.SCHEDULED, "Hello Globex")
    assert stored.body.startswith("Hi Hank,")
    assert stored.message_id.endswith("@localhost>")
    assert (stored.to_email, stored.recipient_key, stored.recipient_domain) == (
        "Hank@Globex.example",
        "hank@globex.example",
        "globex.example",
    )


def test_a_refused_lead_gets_no_outreach_and_its_reason():
    lead = _scored_lead(score=0.1)
    VariantFactory()
    [result] = _schedule(lead.pk)
    assert (result.outreach, result.refusal) == (None, "the score is below OUTREACH_MIN_SCORE")
    assert Lead.objects.get(pk=lead.pk).not_contacted_reason == "the score is below OUTREACH_MIN_SCORE"
    assert not Outreach.objects.exists()


def test_a_forced_outreach_to_a_contacted_lead_is_scheduled_and_keeps_the_lead_as_it_is():
    lead = _scored_lead(status=Lead.Status.CONTACTED, outreach_count=1, contacted_at=timezone.now() - timedelta(days=3))
    VariantFactory()
    [result] = _schedule(lead.pk, force=True)
    assert result.outreach.status == Outreach.Status.SCHEDULED
    refreshed = Lead.objects.get(pk=lead.pk)
    assert (refreshed.status, refreshed.outreach_count, refreshed.contacted_at) == (
        Lead.Status.CONTACTED,
        1,
        lead.contacted_at,
    )


def test_the_reasons_of_a_batch_are_written_once_per_distinct_reason(django_assert_max_num_queries):
    VariantFactory()
    low = [_scored_lead(score=0.1) for _ in range(3)]
    snoozed = [_scored_lead(status=Lead.Status.SNOOZED) for _ in range(3)]
    fine = [_scored_lead() for _ in range(3)]
    lead_ids = [lead.pk for lead in low + snoozed + fine]
    _schedule(*lead_ids)  # warm: the variants, the templates
    Outreach.objects.all().delete()
    Lead.objects.update(not_contacted_reason="stale")
    # Lock, leads, outreach, suppressions, conversations, companies, variants, the pending sends and
    # the success delays (adjusted posteriors), two pacing counts, the insert, two reason updates,
    # the clearing update, the variant's recorded posterior, and the transaction's savepoints.
    with django_assert_max_num_queries(19):
        _schedule(*lead_ids)
    reasons = dict(Lead.objects.values_list("pk", "not_contacted_reason"))
    assert {reasons[lead.pk] for lead in low} == {"the score is below OUTREACH_MIN_SCORE"}
    assert {reasons[lead.pk] for lead in snoozed} == {"the lead is snoozed"}
    assert {reasons[lead.pk] for lead in fine} == {""}


# --- outreach_expire_stale ------------------------------------------------------------------


def _outreach(variant: Variant | None, *, days_ago: float | None, **fields: Any) -> Outreach:
    sent_at = None if days_ago is None else timezone.now() - timedelta(days=days_ago)
    return OutreachFactory(
        variant=variant, status=fields.pop("status", Outreach.Status.SENT), sent_at=sent_at, **fields
    )


def test_outreach_expire_stale_expires_only_unrewarded_outreach_past_the_window():
    now = timezone.now()
    first, second = VariantFactory(sends=10), VariantFactory(sends=10)
    stale = [
        _outreach(first, days_ago=15),
        _outreach(first, days_ago=30, status=Outreach.Status.OPENED),
        _outreach(first, days_ago=20, status=Outreach.Status.REPLIED),
        _outreach(second, days_ago=14.5, status=Outreach.Status.DELIVERED),
        _outreach(None, days_ago=40),
    ]
    untouched = [
        _outreach(first, days_ago=13),
        _outreach(second, days_ago=None, status=Outreach.Status.PENDING),
        _outreach(second, days_ago=None, status=Outreach.Status.FAILED),
        _outreach(
            first,
            days_ago=20,
            status=Outreach.Status.CONVERTED,
            converted_at=now,
            reward=Outreach.Reward.SUCCESS,
            rewarded_at=now,
        ),
        _outreach(second, days_ago=20, status=Outreach.Status.BOUNCED, reward="failure", rewarded_at=now),
        _outreach(second, days_ago=20, status=Outreach.Status.UNSUBSCRIBED),
    ]
    Variant.objects.filter(pk=first.pk).update(alpha=2.0, successes=1)
    Variant.objects.filter(pk=second.pk).update(beta=2.0, failures=1)
    before = {o.pk: (o.status, o.reward) for o in untouched}

    assert outreach_expire_stale(now=now, batch_size=2) == len(stale)

    for outreach in stale:
        outreach.refresh_from_db()
        assert (outreach.status, outreach.reward) == (Outreach.Status.EXPIRED, Outreach.Reward.FAILURE)
        assert outreach.expired_at == outreach.rewarded_at == now
    assert {o.pk: (o.status, o.reward) for o in Outreach.objects.filter(pk__in=before)} == before
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.alpha, first.beta, first.successes, first.failures) == (2.0, 1.0 + 3, 1, 3)
    assert (second.alpha, second.beta, second.successes, second.failures) == (1.0, 2.0 + 1, 0, 1 + 1)


def test_outreach_expire_stale_a_second_time_expires_nothing_more():
    variant = VariantFactory(sends=2)
    _outreach(variant, days_ago=15)
    _outreach(variant, days_ago=16)
    assert outreach_expire_stale() == 2
    assert outreach_expire_stale() == 0
    variant.refresh_from_db()
    assert (variant.beta, variant.failures) == (3.0, 2)


def test_outreach_expire_stale_follows_the_attribution_window_setting(settings):
    settings.ATTRIBUTION_WINDOW_DAYS = 30
    variant = VariantFactory(sends=2)
    recent, old = _outreach(variant, days_ago=20), _outreach(variant, days_ago=31)
    assert outreach_expire_stale() == 1
    assert Outreach.objects.get(pk=recent.pk).status == Outreach.Status.SENT
    assert Outreach.objects.get(pk=old.pk).status == Outreach.Status.EXPIRED
