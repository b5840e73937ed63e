"""API keys in the admin: listed without their secret, and shown exactly once when created."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pipeline_whisperer.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_key() -> ApiKey:
    key, _ = ApiKey.objects.create_key(name="CRM sync", scope=ApiKey.Scope.WRITE)
    assert isinstance(key, ApiKey)  # the library's manager is typed for its abstract model
    return key


def test_api_key_changelist_renders_for_staff(admin_client, api_key):
    response = admin_client.get(reverse("admin:pipeline_whisperer_apikey_changelist"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [api_key]


def test_api_key_change_page_renders_for_staff(admin_client, api_key):
    response = admin_client.get(reverse("admin:pipeline_whisperer_apikey_change", args=[api_key.pk]))
    assert response.status_code == 200
    assert api_key.hashed_key not in response.content.decode()


def test_revoked_api_key_change_page_renders_for_staff(admin_client, api_key):
    ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)
    response = admin_client.get(reverse("admin:pipeline_whisperer_apikey_change", args=[api_key.pk]))
    assert response.status_code == 200


def test_api_key_add_page_renders_for_staff(admin_client):
    assert admin_client.get(reverse("admin:pipeline_whisperer_apikey_add")).status_code == 200


def test_adding_an_api_key_shows_the_key_once_in_a_message(admin_client):
    response = admin_client.post(
        reverse("admin:pipeline_whisperer_apikey_add"), {"name": "Billing", "scope": "read"}, follow=True
    )
    (message,) = [str(m) for m in response.context["messages"] if "The API key for" in str(m)]
    api_key = ApiKey.objects.get(name="Billing")
    key = message.split("The API key for Billing is: ")[1].split(". Please store it")[0]
    assert key.startswith(f"{api_key.prefix}.")
    assert ApiKey.objects.get_from_key(key) == api_key
    assert api_key.scope == ApiKey.Scope.READ
    later = admin_client.get(reverse("admin:pipeline_whisperer_apikey_change", args=[api_key.pk]))
    assert key not in later.content.decode()
    assert not list(later.context["messages"])


def test_library_api_key_model_is_not_in_the_admin(admin_client):
    response = admin_client.get(reverse("admin:index"))
    models = [model["object_name"] for app in response.context["app_list"] for model in app["models"]]
    assert models.count("APIKey") == 0
    assert "ApiKey" in models


def test_non_staff_user_is_sent_to_the_login_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="plain", password="not-staff-0"))
    response = client.get(reverse("admin:pipeline_whisperer_apikey_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
