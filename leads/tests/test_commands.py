"""The lead domain's management commands, run as an operator would through call_command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from leads.models import Experiment, Lead, OutreachTemplate, Variant

pytestmark = pytest.mark.django_db


def _seed(leads: int) -> str:
    out = StringIO()
    call_command("seed_demo", leads=leads, stdout=out)
    return out.getvalue()


def _counts() -> tuple[int, int, int, int]:
    return (
        OutreachTemplate.objects.count(),
        Experiment.objects.count(),
        Variant.objects.count(),
        Lead.objects.count(),
    )


def test_seed_demo_creates_templates_experiments_and_scored_leads():
    output = _seed(20)
    assert _counts() == (4, 2, 5, 20)
    assert "4 template(s), 2 experiment(s) and 20 lead(s) added" in output
    assert not Lead.objects.filter(score__isnull=True).exists()
    assert set(Lead.objects.values_list("status", flat=True)) <= {Lead.Status.SCORED, Lead.Status.DISQUALIFIED}


def test_seed_demo_run_twice_adds_nothing_the_second_time():
    _seed(20)
    output = _seed(20)
    assert _counts() == (4, 2, 5, 20)
    assert "0 template(s), 0 experiment(s) and 0 lead(s) added" in output


def test_seed_demo_with_more_leads_adds_only_the_missing_ones():
    _seed(10)
    first_ten = dict(Lead.objects.values_list("lightfield_id", "company_name"))
    output = _seed(15)
    assert Lead.objects.count() == 15
    assert "and 5 lead(s) added" in output
    assert dict(Lead.objects.filter(lightfield_id__in=first_ten).values_list("lightfield_id", "company_name")) == (
        first_ten
    )


def test_seed_demo_makes_the_same_leads_in_a_fresh_database():
    _seed(5)
    first = list(Lead.objects.order_by("lightfield_id").values_list("lightfield_id", "company_name", "score"))
    Lead.objects.all().delete()
    _seed(5)
    assert list(Lead.objects.order_by("lightfield_id").values_list("lightfield_id", "company_name", "score")) == first


def test_seed_demo_keeps_templates_that_staff_edited():
    _seed(0)
    OutreachTemplate.objects.filter(name="Short question").update(subject="Edited")
    _seed(0)
    assert OutreachTemplate.objects.get(name="Short question").subject == "Edited"


def test_seed_demo_is_quiet_at_verbosity_zero():
    out = StringIO()
    call_command("seed_demo", leads=1, verbosity=0, stdout=out)
    assert out.getvalue() == ""
    assert Lead.objects.count() == 1


def test_simulate_leads_refuses_a_url_that_is_not_http():
    with pytest.raises(CommandError, match="--url must be an http"):
        call_command("simulate_leads", "--to", "api", "--api-key", "key", "--url", "file:///etc/passwd", "--count", "1")
