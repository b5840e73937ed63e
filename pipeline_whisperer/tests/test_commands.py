"""`manage.py apikey`: create prints a working key once, list never shows keys, revoke stops one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from pipeline_whisperer.models import ApiKey

pytestmark = pytest.mark.django_db

LEADS_URL = "/api/v1/leads"


def _apikey(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _create(name: str = "CRM sync", scope: str = "read") -> str:
    out, _ = _apikey("create", name, "--scope", scope)
    return out.strip()


def _get_leads(key: str) -> int:
    client = APIClient()
    return client.get(LEADS_URL, HTTP_X_API_KEY=key).status_code


def test_apikey_create_prints_a_key_that_authenticates():
    key = _create()
    assert _get_leads(key) == 200


def test_apikey_create_prints_only_the_key_on_stdout_and_the_advice_on_stderr():
    out, err = _apikey("create", "CRM sync", "--scope", "write")
    api_key = ApiKey.objects.get(name="CRM sync")
    assert out.count("\n") == 1
    assert out.startswith(f"{api_key.prefix}.")
    assert f"Created write key {api_key.prefix} for 'CRM sync'" in err
    assert api_key.scope == ApiKey.Scope.WRITE


def test_apikey_create_defaults_to_read_scope():
    _create(name="Reader")
    assert ApiKey.objects.get(name="Reader").scope == ApiKey.Scope.READ


@pytest.mark.parametrize("name", ["   ", "x" * 51])
def test_apikey_create_refuses_a_blank_or_long_name(name):
    with pytest.raises(CommandError, match="1 to 50 characters"):
        _apikey("create", name)
    assert not ApiKey.objects.exists()


def test_apikey_create_refuses_an_unknown_scope():
    with pytest.raises(CommandError, match="invalid choice: 'admin'"):
        _apikey("create", "CRM sync", "--scope", "admin")


def test_apikey_list_shows_each_key_without_the_key_itself():
    key = _create(name="CRM sync")
    prefix, secret = key.split(".", 1)
    out, _ = _apikey("list")
    assert key not in out
    assert secret not in out
    assert out.splitlines() == [f"{prefix}\tread\tactive\tlast used never\tCRM sync"]


def test_apikey_list_shows_revoked_keys_and_last_use():
    key = _create()
    _get_leads(key)
    _apikey("revoke", key.split(".")[0])
    out, _ = _apikey("list")
    (line,) = out.splitlines()
    assert "\trevoked\t" in line
    assert "last used never" not in line


def test_apikey_revoke_makes_the_key_fail_with_401():
    key = _create()
    out, _ = _apikey("revoke", key.split(".")[0])
    assert f"Revoked key {key.split('.')[0]}." in out
    assert _get_leads(key) == 401


def test_apikey_revoke_leaves_other_keys_working():
    revoked, kept = _create(name="Old"), _create(name="New")
    _apikey("revoke", revoked.split(".")[0])
    assert _get_leads(kept) == 200


def test_revoking_an_unknown_prefix_raises_one_clear_line():
    with pytest.raises(CommandError) as caught:
        _apikey("revoke", "NoSuch00")
    assert str(caught.value) == "no active API key has the prefix 'NoSuch00'"


def test_revoking_a_key_twice_is_refused_the_second_time():
    prefix = _create().split(".")[0]
    _apikey("revoke", prefix)
    with pytest.raises(CommandError, match="no active API key"):
        _apikey("revoke", prefix)
