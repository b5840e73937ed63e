"""Admin login lockouts (django-axes on the shared Redis cache): through the admin's login form,
the service that lists and lifts them, `manage.py unlock_login` and the staff page."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from pipeline_whisperer.exceptions import InvalidInput, NotFound
from pipeline_whisperer.lockouts import login_lockout_lift, login_lockout_list
from pipeline_whisperer.models import ApiKey

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.5"
PASSWORD = "the-right-password-0"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    """Each login checks a password; the production hasher's cost would dominate the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(username="alice", password=PASSWORD, email="a@example.com")


def _login(password: str, *, username: str = "alice", address: str = ADDRESS, **headers: Any) -> int:
    response = Client().post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )
    return response.status_code


def _lock_out(username: str = "alice", address: str = ADDRESS, **headers: Any) -> list[int]:
    return [_login(f"wrong-{n}", username=username, address=address, **headers) for n in range(5)]


def test_wrong_passwords_below_the_limit_show_the_login_form_again(staff):
    assert [_login(f"wrong-{n}") for n in range(4)] == [200] * 4
    assert _login(PASSWORD) == 302


def test_the_fifth_wrong_password_locks_the_pair_out(staff):
    assert _lock_out() == [200, 200, 200, 200, 429]


def test_the_right_password_is_refused_with_429_and_when_to_retry(staff):
    _lock_out()
    response = Client().post("/admin/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 429
    assert b"Account locked: too many failed logins." in response.content
    assert b"UTC</strong> (about 15 minutes)" in response.content
    assert 890 <= int(response["Retry-After"]) <= 900
    assert "_auth_user_id" not in response.wsgi_request.session


def test_attempts_during_a_lockout_do_not_extend_it(staff):
    _lock_out()
    [before] = login_lockout_list()
    assert [_login("wrong-again") for _ in range(3)] == [429] * 3
    assert login_lockout_list() == [before]


def test_the_lockout_holds_for_that_username_from_that_address_only(staff, django_user_model):
    django_user_model.objects.create_superuser(username="bob", password=PASSWORD, email="b@example.com")
    _lock_out()
    assert _login(PASSWORD, address="203.0.113.6") == 302
    assert _login(PASSWORD, username="bob") == 302


def test_the_lockout_ends_after_the_cool_off(staff, settings):
    # Long enough that five logins and the check fit in it on a loaded machine (the cache's TTL
    # runs in real time); then the right password is tried until the lockout has expired.
    settings.AXES_COOLOFF_TIME = timedelta(seconds=3)
    locked_at = time.monotonic()
    assert _lock_out()[-1] == 429
    assert _login(PASSWORD) == 429
    while _login(PASSWORD) != 302:
        assert time.monotonic() - locked_at < 30, "still locked out 30 s after a 3 s cool-off"
        time.sleep(0.25)
    assert time.monotonic() - locked_at >= 2.5  # a lockout that ends, not one that never held
    assert login_lockout_list() == []


def test_behind_trusted_proxies_the_forwarded_client_is_counted(staff, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    _lock_out(address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert _login(PASSWORD, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == 429
    assert _login(PASSWORD, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.8") == 302
    assert [lockout.ip_address for lockout in login_lockout_list()] == ["198.51.100.7"]


def test_an_ipv6_client_is_counted_by_its_64(staff):
    _lock_out(address="2001:db8:1:2::1")
    assert _login(PASSWORD, address="2001:db8:1:2::ff") == 429
    assert _login(PASSWORD, address="2001:db8:1:3::1") == 302
    assert [lockout.ip_address for lockout in login_lockout_list()] == ["2001:db8:1:2::"]


def test_an_api_key_from_a_locked_out_address_still_works(staff):
    _lock_out()
    _, key = ApiKey.objects.create_key(name="crm", scope=ApiKey.Scope.READ)
    assert APIClient().get("/api/v1/leads", HTTP_X_API_KEY=key, REMOTE_ADDR=ADDRESS).status_code == 200


def test_the_list_shows_current_lockouts_most_recent_first(staff):
    _lock_out(address="203.0.113.1")
    _lock_out(address="203.0.113.2")
    [newer, older] = login_lockout_list()
    assert (newer.username, newer.ip_address, older.ip_address) == ("alice", "203.0.113.2", "203.0.113.1")
    assert newer.expires_at - newer.locked_at == timedelta(minutes=15)


def test_lifting_a_lockout_lets_the_right_password_in(staff):
    _lock_out()
    [lifted] = login_lockout_lift(username="alice", ip_address=ADDRESS)
    assert lifted.ip_address == ADDRESS
    assert login_lockout_list() == []
    assert _login(PASSWORD) == 302


def test_lifting_without_an_address_lifts_every_address_of_that_user(staff, django_user_model):
    django_user_model.objects.create_superuser(username="bob", password=PASSWORD, email="b@example.com")
    _lock_out(address="203.0.113.1")
    _lock_out(address="203.0.113.2")
    _lock_out(username="bob")
    assert {lockout.ip_address for lockout in login_lockout_lift(username="alice")} == {"203.0.113.1", "203.0.113.2"}
    assert [lockout.username for lockout in login_lockout_list()] == ["bob"]


def test_lifting_an_ipv6_address_lifts_its_64(staff):
    _lock_out(address="2001:db8:1:2::1")
    login_lockout_lift(username="alice", ip_address="2001:db8:1:2::abcd")
    assert _login(PASSWORD, address="2001:db8:1:2::1") == 302


def test_lifting_what_is_not_locked_is_not_found(staff):
    with pytest.raises(NotFound, match=re.escape("no current login lockout for 'alice' from 203.0.113.5")):
        login_lockout_lift(username="alice", ip_address=ADDRESS)


def test_lifting_needs_a_valid_address(staff):
    with pytest.raises(InvalidInput, match=re.escape("'300.1.1.1' is not an IP address")):
        login_lockout_lift(username="alice", ip_address="300.1.1.1")


def test_axes_own_reset_command_lifts_it_too(staff):
    _lock_out()
    call_command("axes_reset_ip_username", ADDRESS, "alice", stdout=StringIO())
    assert login_lockout_list() == []
    assert _login(PASSWORD) == 302


def test_unlock_login_lifts_the_lockout_and_says_so(staff):
    _lock_out()
    out = StringIO()
    call_command("unlock_login", "--username", "alice", "--ip", ADDRESS, stdout=out)
    assert out.getvalue() == f"Lifted the lockout of 'alice' from {ADDRESS}.\n"
    assert _login(PASSWORD) == 302


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--username", "alice"], "no current login lockout for 'alice'"),
        (["--username", "alice", "--ip", "not-an-ip"], "'not-an-ip' is not an IP address"),
        (["--username", "", "--ip", ADDRESS], "a username is required"),
    ],
)
def test_unlock_login_refuses_bad_input_with_one_line(staff, arguments, message):
    with pytest.raises(CommandError) as raised:
        call_command("unlock_login", *arguments)
    assert str(raised.value) == message


def _page_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_page_lists_a_lockout_with_a_lift_button(staff):
    _lock_out()
    response = _page_client(staff).get("/admin/lockouts/")
    assert response.status_code == 200
    [row] = response.context["lockouts"]
    assert (row.username, row.ip_address) == ("alice", ADDRESS)
    assert b'<button type="submit" class="button">Lift</button>' in response.content


def test_the_admin_page_lifts_a_lockout(staff):
    _lock_out()
    response = _page_client(staff).post("/admin/lockouts/", {"username": "alice", "ip_address": ADDRESS}, follow=True)
    assert response.redirect_chain == [("/admin/lockouts/", 302)]
    assert f"Lifted the login lockout of &#x27;alice&#x27; from {ADDRESS}." in response.content.decode()
    assert b"No login is locked out." in response.content
    assert _login(PASSWORD) == 302


def test_the_admin_page_says_when_there_was_nothing_to_lift(staff):
    response = _page_client(staff).post("/admin/lockouts/", {"username": "alice", "ip_address": ADDRESS}, follow=True)
    # The admin's message list capitalises the service's message.
    assert b"No current login lockout for &#x27;alice&#x27; from 203.0.113.5" in response.content


def test_staff_without_the_view_permission_get_403(django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", password=PASSWORD, is_staff=True)
    assert _page_client(clerk).get("/admin/lockouts/").status_code == 403


def test_staff_who_may_only_view_cannot_lift(staff, django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", password=PASSWORD, is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    _lock_out()
    client = _page_client(clerk)
    response = client.get("/admin/lockouts/")
    assert response.status_code == 200
    assert len(response.context["lockouts"]) == 1
    assert b"Lift</button>" not in response.content
    assert client.post("/admin/lockouts/", {"username": "alice", "ip_address": ADDRESS}).status_code == 403
    assert _login(PASSWORD) == 429


def test_the_admin_index_links_to_the_lockouts(staff):
    assert b'href="/admin/lockouts/"' in _page_client(staff).get("/admin/").content
