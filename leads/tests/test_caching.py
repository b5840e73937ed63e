"""leads.caching: every write that changes lead metrics makes the cached ones fresh at commit."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from leads import caching, selectors
from leads.models import Experiment, Lead, Outreach, Variant
from leads.services import experiments as experiment_services
from leads.services.dispatch import dispatch_record
from leads.services.feedback import engagement_apply
from leads.services.ingest import lead_ingest_batch
from leads.services.leads import lead_create, lead_rescore, lead_score, lead_snooze, lead_unsnooze, lead_update
from leads.services.outreach import OutreachRequest, outreach_expire_stale, outreach_schedule_batch
from leads.services.sending import Delivery
from leads.services.templates import template_update
from leads.tests.factories import (
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
)
from pipeline_whisperer.cache import cache_guard_reset

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_guard() -> Iterator[None]:
    cache_guard_reset()
    yield
    cache_guard_reset()


def _scored_lead() -> Lead:
    return LeadFactory(status=Lead.Status.SCORED, score=0.8, scored_at=timezone.now())


def _engage(event_type: str) -> Callable[[], object]:
    def write() -> object:
        outreach = OutreachFactory(
            lead=LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now()),
            variant=VariantFactory(sends=1),
            status=Outreach.Status.SENT,
            sent_at=timezone.now(),
        )
        event = {"event_id": f"e-{event_type}", "event_type": event_type, "outreach_id": outreach.pk}
        return engagement_apply(event=event)

    return write


def _send() -> object:
    VariantFactory()
    request = OutreachRequest(lead_id=_scored_lead().pk)
    [scheduled] = outreach_schedule_batch(requests=[request], rng=random.Random(1), now=timezone.now())
    assert scheduled.outreach is not None
    # What dispatch records once the mail went out (the mail itself is not what is measured).
    dispatch_record(deliveries=[Delivery(scheduled.outreach)])
    return scheduled.outreach


WRITES: dict[str, Callable[[], object]] = {
    "create": lambda: lead_create(lightfield_id="lf-created", company_name="Created"),
    "update": lambda: lead_update(lead=LeadFactory(), company_name="Renamed"),
    "ingest": lambda: lead_ingest_batch(events=[{"lightfield_id": "lf-ingested", "company": {"name": "Initech"}}]),
    "score": lambda: lead_score(lead=LeadFactory()),
    "rescore": lambda: lead_rescore(lead=LeadFactory()),
    "snooze": lambda: lead_snooze(lead=_scored_lead()),
    "unsnooze": lambda: lead_unsnooze(lead=LeadFactory(status=Lead.Status.SNOOZED)),
    "outreach sent": _send,
    "engagement clicked": _engage("clicked"),
    "engagement converted": _engage("converted"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_cached_lead_stats_are_fresh_once_a_write_commits(write, django_capture_on_commit_callbacks):
    LeadFactory.create_batch(2)
    primed = caching.lead_stats_cached(present=dict)
    LeadFactory()  # a change the cache hears nothing about: only the write's invalidation can reveal it
    with django_capture_on_commit_callbacks(execute=True):
        write()
    fresh = caching.lead_stats_cached(present=dict)
    assert fresh != primed
    assert fresh == selectors.lead_stats()


def test_cached_funnel_is_fresh_once_a_lead_is_created(django_capture_on_commit_callbacks):
    caching.dashboard_funnel_cached(period="30d", present=dict)
    with django_capture_on_commit_callbacks(execute=True):
        lead_create(lightfield_id="lf-new", company_name="New")
    assert caching.dashboard_funnel_cached(period="30d", present=dict)["counts"]["ingested"] == 1


def test_cached_timeline_is_fresh_once_a_lead_is_created(django_capture_on_commit_callbacks):
    caching.dashboard_timeline_cached(days=7, present=list)
    with django_capture_on_commit_callbacks(execute=True):
        lead_create(lightfield_id="lf-new", company_name="New")
    assert caching.dashboard_timeline_cached(days=7, present=list)[-1]["leads"] == 1


def test_an_engagement_that_moves_no_lead_through_the_funnel_keeps_the_cache(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        _engage("opened")()
    assert callbacks == []


def test_cached_posteriors_follow_a_changed_counter_without_invalidation():
    experiment = ExperimentFactory()  # variants compete for probability_best within their experiment
    variants = [VariantFactory(experiment=experiment, name=name) for name in ("A", "B")]
    before = caching.experiment_posteriors_cached(variants)
    variants[0].alpha = 30.0
    after = caching.experiment_posteriors_cached(variants)
    assert after == selectors.experiment_posteriors(variants)
    assert after[variants[0].pk].probability_best > before[variants[0].pk].probability_best


# --- The experiments API's whole answers ---------------------------------------------------


def _arms(count: int = 2) -> list[Variant]:
    experiment = ExperimentFactory()
    return [VariantFactory(experiment=experiment) for _ in range(count)]


def _create_experiment() -> Experiment:
    template = OutreachTemplateFactory()
    specs = [experiment_services.VariantSpec(name=name, template=template) for name in ("A", "B")]
    return experiment_services.experiment_create(name="Created", variants=specs)


def _ship() -> Experiment:
    shipped = _arms()[0]
    return experiment_services.experiment_ship(experiment=shipped.experiment, variant=shipped, by="test")


def _expire() -> int:
    OutreachFactory(
        variant=VariantFactory(sends=1), status=Outreach.Status.SENT, sent_at=timezone.now() - timedelta(days=30)
    )
    return outreach_expire_stale()


EXPERIMENT_WRITES: dict[str, Callable[[], object]] = {
    "experiment created": _create_experiment,
    "experiment updated": lambda: experiment_services.experiment_update(experiment=ExperimentFactory(), name="New"),
    "experiment paused": lambda: experiment_services.experiment_set_status(
        experiment=ExperimentFactory(), status=Experiment.Status.PAUSED
    ),
    "experiment deleted": lambda: experiment_services.experiment_delete(experiment=ExperimentFactory()),
    "variant created": lambda: experiment_services.variant_create(
        experiment=ExperimentFactory(), name="C", template=OutreachTemplateFactory()
    ),
    "variant paused": lambda: experiment_services.variant_update(variant=VariantFactory(), is_active=False),
    "variant deleted": lambda: experiment_services.variant_delete(variant=_arms(3)[0]),
    "winner shipped": _ship,
    "template renamed": lambda: template_update(template=VariantFactory().template, name="Renamed"),
    "variant chosen and sent": _send,
    "reward": _engage("converted"),
    "attribution window passed": _expire,
}


@pytest.mark.parametrize("write", EXPERIMENT_WRITES.values(), ids=EXPERIMENT_WRITES.keys())
def test_cached_experiment_answers_are_fresh_once_a_write_commits(write, django_capture_on_commit_callbacks):
    assert caching.experiments_answer_cached(parts=("page",), compute=lambda: "before") == "before"
    with django_capture_on_commit_callbacks(execute=True):
        write()
    assert caching.experiments_answer_cached(parts=("page",), compute=lambda: "after") == "after"


def test_a_cached_experiment_answer_is_kept_until_a_write():
    caching.experiments_answer_cached(parts=("page",), compute=lambda: "before")
    assert caching.experiments_answer_cached(parts=("page",), compute=lambda: "after") == "before"
