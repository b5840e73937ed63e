"""Who may call each endpoint: every route of the API against every kind of caller."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from leads.models import Lead
from leads.tests.api.support import ALL, READS, WRITES, Endpoint
from pipeline_whisperer.models import ApiKey
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

each_endpoint = pytest.mark.parametrize("endpoint", ALL, ids=str)
each_read = pytest.mark.parametrize("endpoint", READS, ids=str)
each_write = pytest.mark.parametrize("endpoint", WRITES, ids=str)


@each_endpoint
def test_anonymous_caller_gets_401_with_an_api_key_challenge(endpoint: Endpoint, anonymous_client, world):
    response = endpoint.call(anonymous_client, world.ids())
    body = assert_problem(response, 401)
    assert response["WWW-Authenticate"] == "X-API-Key"
    assert "X-API-Key" in body["detail"]


@each_endpoint
def test_unknown_key_gets_401(endpoint: Endpoint, unknown_key_client, world):
    response = endpoint.call(unknown_key_client, world.ids())
    body = assert_problem(response, 401)
    assert response["WWW-Authenticate"] == "X-API-Key"
    assert body["detail"] == "The API key is unknown or revoked."


@each_endpoint
def test_key_with_a_wrong_secret_gets_401(endpoint: Endpoint, wrong_secret_client, world):
    assert_problem(endpoint.call(wrong_secret_client, world.ids()), 401)


@each_endpoint
def test_revoked_key_gets_401(endpoint: Endpoint, revoked_key_client, world):
    body = assert_problem(endpoint.call(revoked_key_client, world.ids()), 401)
    assert body["detail"] == "The API key is unknown or revoked."


@each_endpoint
def test_expired_key_gets_401(endpoint: Endpoint, expired_key_client, world):
    body = assert_problem(endpoint.call(expired_key_client, world.ids()), 401)
    assert body["detail"] == "The API key has expired."


@each_endpoint
def test_signed_in_user_who_is_not_staff_gets_403(endpoint: Endpoint, user_client, world):
    body = assert_problem(endpoint.call(user_client, world.ids()), 403)
    assert body["detail"] == "Only staff may use the API with a session."


@each_read
def test_read_only_key_may_read(endpoint: Endpoint, read_client, world):
    response = endpoint.call(read_client, world.ids())
    assert response.status_code == 200, response.content
    assert response.json()


@each_write
def test_read_only_key_cannot_write(endpoint: Endpoint, read_client, world):
    body = assert_problem(endpoint.call(read_client, world.ids()), 403)
    assert body["detail"] == "This API key may only read; writing needs a key with the write scope."


@each_endpoint
def test_write_key_may_call(endpoint: Endpoint, api_client, world):
    response = endpoint.call(api_client, world.ids())
    assert response.status_code == endpoint.ok, response.content
    if endpoint.ok == 204:
        assert response.content == b""
    else:
        assert response.json()


@each_endpoint
def test_staff_session_may_call(endpoint: Endpoint, staff_client, world):
    response = endpoint.call(staff_client, world.ids())
    assert response.status_code == endpoint.ok, response.content
    if endpoint.ok == 204:
        assert response.content == b""
    else:
        assert response.json()


def test_key_use_is_recorded_on_the_key(api_client):
    assert ApiKey.objects.get().last_used_at is None
    api_client.get("/api/v1/leads")
    assert ApiKey.objects.get().last_used_at is not None


def test_api_key_header_wins_over_a_non_staff_session(user_client, world):
    _, key = ApiKey.objects.create_key(name="reader", scope=ApiKey.Scope.READ)
    user_client.credentials(HTTP_X_API_KEY=key)
    response = user_client.get("/api/v1/leads")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_staff_session_write_without_a_csrf_token_is_403(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/v1/leads", {"lightfield_id": "lf-1", "company_name": "Acme"}, format="json")
    body = assert_problem(response, 403)
    assert "CSRF" in body["detail"]
    assert not Lead.objects.exists()


def test_staff_session_may_read_without_a_csrf_token(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get("/api/v1/leads").status_code == 200


def test_api_key_write_needs_no_csrf_token():
    _, key = ApiKey.objects.create_key(name="writer", scope=ApiKey.Scope.WRITE)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_X_API_KEY=key)
    response = client.post("/api/v1/leads", {"lightfield_id": "lf-1", "company_name": "Acme"}, format="json")
    assert response.status_code == 201
    assert Lead.objects.filter(lightfield_id="lf-1").exists()
