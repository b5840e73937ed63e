"""Only staff reach the console: the dashboard, its refresh endpoint and the actions."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from leads.models import Experiment, Lead
from leads.tests.factories import ExperimentFactory, LeadFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["console:dashboard", "console:panels"])
def test_non_staff_users_are_sent_to_the_admin_login(plain_client, name):
    response = plain_client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("name", ["console:dashboard", "console:panels"])
def test_anonymous_visitors_are_sent_to_the_admin_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_permission_to_view_leads_are_refused(client, django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", password="x-staff-0", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse("console:dashboard")).status_code == 403


def test_non_staff_users_cannot_run_a_lead_action(plain_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    plain_client.post(reverse("admin:leads_lead_changelist"), {"action": "snooze_leads", "_selected_action": [lead.pk]})
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.SCORED
    assert not LogEntry.objects.exists()


def test_non_staff_users_cannot_pause_an_experiment(plain_client):
    experiment = ExperimentFactory()
    plain_client.post(
        reverse("admin:leads_experiment_changelist"),
        {"action": "pause_experiments", "_selected_action": [experiment.pk]},
    )
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.ACTIVE
