"""`make run`'s demo login: made on the first run against the embedded default, printed, reused
later (and repaired if the password was changed), and refused under any other settings.

The end-to-end tests run the manage.py commands that `make -n run` lists before the server, in a
temporary folder's SQLite file, then sign in with what they printed on a real runserver.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

BASE_DIR = Path(settings.BASE_DIR)
PRINTED = re.compile(r"user (?P<username>\S+)\s+password (?P<password>\S+).*API key\s+(?P<api_key>\S+)", re.DOTALL)


@pytest.mark.django_db
def test_the_demo_login_is_refused_with_debug_off():
    with pytest.raises(CommandError, match=r"only for the embedded default \(DJANGO_DEBUG=1\)"):
        call_command("demo_login")
    assert not get_user_model().objects.filter(username="demo").exists()


@pytest.mark.django_db
def test_the_demo_login_is_refused_on_a_database_that_is_not_the_embedded_sqlite_file(settings):
    settings.DEBUG = True  # the tests' database is PostgreSQL
    with pytest.raises(CommandError, match="only for the embedded default's SQLite file"):
        call_command("demo_login")
    assert not get_user_model().objects.filter(username="demo").exists()


# --- End to end: the commands of `make run`, then a real server ------------------------------


def _make_run_setup_commands() -> list[str]:
    """The manage.py commands `make run` runs before it serves (not the server, not the simulators)."""
    make = ["make", "-n", "run"]  # prints the recipe, runs nothing
    listed = subprocess.run(make, cwd=BASE_DIR, capture_output=True, text=True, check=True).stdout  # noqa: S603
    # The simulators' lines end in a backslash: they are one shell line with the server's.
    commands = [line for line in listed.splitlines() if " manage.py " in line and not line.rstrip().endswith("\\")]
    commands = [line for line in commands if "runserver" not in line]
    names = [re.search(r"manage\.py (\w+)", line).group(1) for line in commands]
    assert names == ["migrate", "seed_demo", "demo_login"]
    return commands


@dataclass
class Embedded:
    directory: Path
    env: dict[str, str]

    def run(self, command: str) -> str:
        done = subprocess.run(command, shell=True, cwd=BASE_DIR, env=self.env, capture_output=True, text=True)  # noqa: S602  # make's own lines
        assert done.returncode == 0, done.stderr
        return done.stdout

    def demo_login(self) -> dict[str, str]:
        printed = self.run(f"{sys.executable} manage.py demo_login")
        return PRINTED.search(printed).groupdict()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    """A fresh machine's first `make run` up to the server: a new SQLite file, demo data, the login."""
    directory = tmp_path_factory.mktemp("embedded")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(directory),
        "DATABASE_URL": f"sqlite:///{directory}/db.sqlite3",
        "DJANGO_DEBUG": "1",  # as make run's own lines set it, for the commands these tests add
        "LOG_FORMAT": "console",
    }
    return Embedded(directory=directory, env=env)


@pytest.fixture(scope="module")
def first_run(embedded: Embedded) -> dict[str, str]:
    outputs = [embedded.run(command) for command in _make_run_setup_commands()]
    return PRINTED.search(outputs[-1]).groupdict() | {"output": outputs[-1]}


@pytest.fixture(scope="module")
def server(embedded: Embedded, first_run: dict[str, str]) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=embedded.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "runserver exited"
        try:
            urllib.request.urlopen(f"{url}/health/liveness", timeout=2)  # noqa: S310  # loopback
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"runserver did not answer on {url} within 30 s")


class Browser:
    """A cookie-keeping HTTP client, as a browser signing in to the admin would be."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        request = urllib.request.Request(self.url + path, headers=headers or {})  # noqa: S310  # loopback http only
        with self.opener.open(request, timeout=10) as response:
            return response.status, response.url, response.read().decode()

    def sign_in(self, username: str, password: str, next_path: str) -> tuple[int, str, str]:
        login_path = "/admin/login/?" + urllib.parse.urlencode({"next": next_path})
        _, _, form = self.get(login_path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        fields = {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": next_path}
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.url + login_path, data=body)  # noqa: S310  # loopback http only
        with self.opener.open(request, timeout=10) as response:
            return response.status, response.url, response.read().decode()


def test_the_first_run_prints_the_addresses_and_keeps_the_login_private(embedded, first_run):
    for address in ("/admin/", "/admin/console/", "/api/docs/", "/api/v1/leads"):
        assert f"http://127.0.0.1:8000{address}" in first_run["output"]
    kept = embedded.directory / "demo-login.txt"
    assert str(kept) in first_run["output"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first_run["password"] in kept.read_text()
    assert first_run["api_key"] in kept.read_text()


def test_the_printed_login_opens_the_admin_the_console_and_the_docs(server, first_run):
    browser = Browser(server)
    status, landed, page = browser.sign_in(first_run["username"], first_run["password"], "/admin/")
    assert (status, landed) == (200, f"{server}/admin/")
    assert "Site administration" in page
    assert browser.get("/admin/console/")[0] == 200
    status, _, docs = browser.get("/api/docs/")
    assert status == 200
    assert '<div id="swagger-ui">' in docs


def test_the_docs_send_a_browser_to_the_printed_login_and_back(server, first_run):
    browser = Browser(server)
    _, landed, _ = browser.get("/api/docs/")
    assert landed == f"{server}/admin/login/?next=/api/docs/"
    status, landed, docs = browser.sign_in(first_run["username"], first_run["password"], "/api/docs/")
    assert (status, landed) == (200, f"{server}/api/docs/")
    assert '<div id="swagger-ui">' in docs


def test_the_printed_api_key_reads_the_demo_data(server, first_run):
    status, _, body = Browser(server).get("/api/v1/leads/stats", headers={"X-API-Key": first_run["api_key"]})
    assert status == 200
    assert json.loads(body)["total"] == 200  # the demo data seed_demo loaded


def test_a_later_run_prints_the_same_login(embedded, first_run):
    again = embedded.demo_login()
    assert (again["password"], again["api_key"]) == (first_run["password"], first_run["api_key"])


def test_a_later_run_sets_the_kept_password_again_after_it_was_changed(embedded, server, first_run):
    change = "from django.contrib.auth.models import User; u = User.objects.get(username='demo'); "
    change += "u.set_password('changed-elsewhere-1'); u.save()"
    embedded.run(f'{sys.executable} manage.py shell -c "{change}"')
    again = embedded.demo_login()
    assert again["password"] == first_run["password"]
    _, landed, _ = Browser(server).sign_in(again["username"], again["password"], "/admin/")
    assert landed == f"{server}/admin/"


def test_a_later_run_makes_a_new_key_when_the_kept_one_was_revoked(embedded, server, first_run):
    embedded.run(f"{sys.executable} manage.py apikey revoke {first_run['api_key'].split('.')[0]}")
    again = embedded.demo_login()
    assert again["api_key"] != first_run["api_key"]
    assert again["password"] == first_run["password"]
    status, _, _ = Browser(server).get("/api/v1/leads", headers={"X-API-Key": again["api_key"]})
    assert status == 200
