"""The Lead admin's privacy actions, as staff through the test client: export downloads JSON,
erase asks on an intermediate page and erases only once confirmed; the audit is read-only."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from leads.models import Lead, PrivacyRequest
from leads.tests.privacy_support import ADDRESS, NEEDLES, holders, person_everywhere

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:leads_lead_changelist")


def _act(client, action: str, leads: list[Lead], **extra: str):
    return client.post(CHANGELIST, {"action": action, ACTION_CHECKBOX_NAME: [lead.pk for lead in leads], **extra})


def test_export_action_downloads_the_persons_data_as_json(admin_client):
    person = person_everywhere()
    response = _act(admin_client, "export_personal_data", person.leads[:1])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    exported = json.loads(response.content)
    # One lead selected, the whole person exported: every lead with the address.
    assert exported["email"] == ADDRESS
    assert len(exported["leads"]) == 3
    assert PrivacyRequest.objects.get().requested_by == "admin:admin"


def test_export_of_two_people_is_a_list(admin_client):
    person = person_everywhere()
    response = _act(admin_client, "export_personal_data", [person.leads[0], person.other])
    assert sorted(entry["email"] for entry in json.loads(response.content)) == ["ada@example.com", ADDRESS]


def test_erase_action_shows_a_confirmation_page_and_changes_nothing(admin_client):
    person = person_everywhere()
    response = _act(admin_client, "erase_personal_data", person.leads[:1])
    assert response.status_code == 200
    assert "admin/leads/lead/erase_personal_data.html" in [t.name for t in response.templates]
    assert b"Yes, erase" in response.content
    assert response.context["addresses"] == [ADDRESS]
    assert holders(ADDRESS) != []
    assert not PrivacyRequest.objects.exists()


def test_erase_action_once_confirmed_erases_the_person_everywhere(admin_client):
    person = person_everywhere()
    response = _act(admin_client, "erase_personal_data", person.leads[:1], confirm="yes")
    assert response.status_code == 302
    logged = LogEntry.objects.get(object_id=str(person.leads[0].pk))
    assert logged.object_repr.startswith("Northwind Traders (erased-")
    for needle in NEEDLES:
        assert holders(needle) == [], needle
    assert Lead.objects.get(pk=person.other.pk).contact_email == "ada@example.com"
    audit = PrivacyRequest.objects.get()
    assert (audit.kind, audit.requested_by) == ("erase", "admin:admin")


def test_erase_action_needs_the_delete_permission(client, django_user_model):
    person = person_everywhere()
    clerk = django_user_model.objects.create_user(username="clerk", password="pw-0123456789", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "change_lead"]))
    client.force_login(clerk)
    offered = [name for name, _ in client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "export_personal_data" in offered
    assert "erase_personal_data" not in offered
    response = _act(client, "erase_personal_data", person.leads[:1], confirm="yes")
    assert response.status_code == 302  # back to the changelist: no such action for this user
    assert holders(ADDRESS) != []
    assert not PrivacyRequest.objects.exists()


def test_privacy_audit_is_listed_and_read_only(admin_client):
    person = person_everywhere()
    _act(admin_client, "erase_personal_data", person.leads[:1], confirm="yes")
    response = admin_client.get(reverse("admin:leads_privacyrequest_changelist"))
    assert response.status_code == 200
    assert ADDRESS.encode() not in response.content
    assert admin_client.get(reverse("admin:leads_privacyrequest_add")).status_code == 403
