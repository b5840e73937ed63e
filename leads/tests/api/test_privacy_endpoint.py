"""POST /api/v1/privacy/export and /api/v1/privacy/erase: the same services as the command, behind
a write key; a malformed address is a 400 problem. (Every caller kind and every body error is in
the catalogue tests: test_permissions.py, test_errors.py.)"""

from __future__ import annotations

import pytest

from leads.models import Lead, PrivacyRequest, Suppression
from leads.services.suppression import value_hash
from leads.tests.privacy_support import ADDRESS, NEEDLES, holders, person_everywhere
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db


def test_export_answers_everything_held_about_the_person(api_client):
    person = person_everywhere()
    response = api_client.post("/api/v1/privacy/export", {"email": ADDRESS.upper()}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == ADDRESS
    assert {lead["id"] for lead in body["leads"]} == {lead.pk for lead in person.leads}
    assert PrivacyRequest.objects.get(kind="export").requested_by.startswith("api:")


def test_erase_answers_the_counts_and_leaves_nothing_behind(api_client):
    person_everywhere()
    response = api_client.post("/api/v1/privacy/erase", {"email": ADDRESS}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject_hash"] == value_hash(ADDRESS)
    assert body["counts"]["leads"] == 3
    assert PrivacyRequest.objects.filter(pk=body["request_id"], kind="erase").exists()
    for needle in NEEDLES:
        assert holders(needle) == [], needle


@pytest.mark.parametrize("path", ["/api/v1/privacy/export", "/api/v1/privacy/erase"])
@pytest.mark.parametrize("email", ["philippa at northwind", "a@b@c.com", "x@localhost", ""])
def test_malformed_address_is_a_400_problem_naming_the_field(api_client, path, email):
    response = api_client.post(path, {"email": email}, format="json")
    body = assert_problem(response, 400, ["email"])
    assert body["type"].endswith("/invalid")
    assert not PrivacyRequest.objects.exists()
    assert not Suppression.objects.exists()


def test_header_injection_in_the_address_is_refused(api_client):
    response = api_client.post("/api/v1/privacy/erase", {"email": f"{ADDRESS}\r\nBcc: all@example.com"}, format="json")
    assert_problem(response, 400, ["email"])
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/privacy/export", "/api/v1/privacy/erase"])
def test_read_key_may_neither_export_nor_erase(read_client, path):
    person = person_everywhere()
    assert_problem(read_client.post(path, {"email": ADDRESS}, format="json"), 403)
    assert Lead.objects.get(pk=person.leads[0].pk).contact_email.lower() == ADDRESS
    assert not PrivacyRequest.objects.exists()


def test_anonymous_caller_may_not_erase(anonymous_client):
    person_everywhere()
    assert_problem(anonymous_client.post("/api/v1/privacy/erase", {"email": ADDRESS}, format="json"), 401)
    assert holders(ADDRESS) != []


def test_staff_session_erases_and_is_named_in_the_audit(staff_client, admin_user):
    response = staff_client.post("/api/v1/privacy/erase", {"email": ADDRESS}, format="json")
    assert response.status_code == 200, response.content
    assert PrivacyRequest.objects.get().requested_by == f"staff:{admin_user.username}"


def test_schema_documents_the_privacy_requests(staff_client):
    paths = staff_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    erase = paths["/api/v1/privacy/erase"]["post"]
    assert "200" in erase["responses"] and "400" in erase["responses"]
    assert "/api/v1/privacy/export" in paths
