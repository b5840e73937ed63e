"""Verified API keys remembered per process, and forgotten as soon as any key changes.

The process-to-process case (a key revoked while other server processes remember it) is in
tests/test_ratelimit_servers.py.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from pipeline_whisperer.models import ApiKey

pytestmark = pytest.mark.django_db
LEADS = "/api/v1/leads"


@pytest.fixture
def keyed() -> tuple[ApiKey, APIClient]:
    api_key, key = ApiKey.objects.create_key(name="remembered", scope=ApiKey.Scope.READ)
    assert isinstance(api_key, ApiKey)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get(LEADS).status_code == 200  # verified, and its last use written
    return api_key, client


def _key_queries(client: APIClient) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        status = client.get(LEADS).status_code
    return status, [query["sql"] for query in captured.captured_queries if "pipeline_whisperer_apikey" in query["sql"]]


def test_a_verified_key_is_not_looked_up_again(keyed):
    _, client = keyed
    assert _key_queries(client) == (200, [])


def test_a_key_revoked_in_the_admin_or_the_model_is_refused_at_once(keyed):
    api_key, client = keyed
    api_key.revoked = True
    api_key.save()
    status, queries = _key_queries(client)
    assert status == 401
    assert queries  # looked up again, not taken from memory


def test_a_key_revoked_with_the_command_is_refused_at_once(keyed):
    api_key, client = keyed
    call_command("apikey", "revoke", api_key.prefix, verbosity=0)
    assert client.get(LEADS).status_code == 401


def test_a_deleted_key_is_refused_at_once(keyed):
    api_key, client = keyed
    api_key.delete()
    assert client.get(LEADS).status_code == 401


def test_keys_are_looked_up_every_time_without_rate_limits(settings, keyed):
    settings.RATELIMIT_ENABLE = False  # no generation read: nothing may be taken from memory
    _, client = keyed
    status, queries = _key_queries(client)
    assert status == 200
    assert queries


def test_a_key_changed_behind_the_models_back_is_forgotten_after_the_max_age(monkeypatch, keyed):
    import time

    from pipeline_whisperer import auth

    api_key, client = keyed
    ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)  # raw: no generation renewed
    assert client.get(LEADS).status_code == 200  # still remembered, as documented
    started = time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: started + auth.VERIFIED_KEY_MAX_AGE + 1)
    assert client.get(LEADS).status_code == 401
