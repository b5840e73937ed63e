"""Start-up configuration: a bad setting stops manage.py with one line and exit status 2;
production settings pass Django's deployment checklist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# 60 varied characters: a secret that Django's deployment check accepts.
PRODUCTION_SECRET = "k7Qz-2vLx9_Rm4Pw8Ts1Yb6Nc3Hd5Jf0Ga_Ue7Io2Kl9Wq4Er8Ty1Zx6Cv3B"
# The variables a subprocess inherits; everything the settings read is left out and set per test.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
# What production needs while outreach is enabled: who the mail is from, and where its links point.
SENDER_IDENTITY = {
    "OUTREACH_SENDER_NAME": "Acme Sales",
    "OUTREACH_POSTAL_ADDRESS": "1 Main Street, Springfield",
    "PUBLIC_BASE_URL": "https://pipeline.acme.example.com",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    return subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert variable in lines[0]


def test_missing_secret_key_with_debug_off_stops_check_with_one_line():
    _assert_one_line_naming(_manage("check", DJANGO_DEBUG="0"), "DJANGO_SECRET_KEY")


def test_short_secret_key_with_debug_off_stops_check_with_one_line():
    _assert_one_line_naming(_manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY="short"), "DJANGO_SECRET_KEY")


def test_unsupported_database_url_stops_check_with_one_line():
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=PRODUCTION_SECRET, DATABASE_URL="mysql://x")
    _assert_one_line_naming(result, "DATABASE_URL")


def test_malformed_debug_flag_stops_check_with_one_line():
    _assert_one_line_naming(_manage("check", DJANGO_DEBUG="maybe"), "DJANGO_DEBUG")


def test_malformed_redis_url_stops_check_with_one_line():
    result = _manage("check", DJANGO_SECRET_KEY=PRODUCTION_SECRET, REDIS_URL="memcached://cache")
    _assert_one_line_naming(result, "REDIS_URL")


def test_embedded_default_with_debug_on_needs_no_variables():
    result = _manage("check", DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_pass_the_deployment_checklist():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=PRODUCTION_SECRET,
        DJANGO_SECURE_SSL_REDIRECT="1",
        DATABASE_URL=os.environ["DATABASE_URL"],
        DJANGO_ALLOWED_HOSTS="pipeline.acme.example.com",
        **SENDER_IDENTITY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", ["OUTREACH_POSTAL_ADDRESS", "OUTREACH_SENDER_NAME", "PUBLIC_BASE_URL"])
def test_missing_sender_identity_with_debug_off_stops_check_with_one_line(missing):
    identity = {name: value for name, value in SENDER_IDENTITY.items() if name != missing}
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=PRODUCTION_SECRET, **identity)
    _assert_one_line_naming(result, missing)


def test_a_plain_http_public_base_url_with_debug_off_stops_check_with_one_line():
    identity = {**SENDER_IDENTITY, "PUBLIC_BASE_URL": "http://pipeline.acme.example.com"}
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=PRODUCTION_SECRET, **identity)
    _assert_one_line_naming(result, "PUBLIC_BASE_URL")


def test_with_outreach_disabled_production_needs_no_sender_identity():
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=PRODUCTION_SECRET, OUTREACH_ENABLED="0")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_deployment_check_fails_when_the_unsubscribe_links_host_is_not_allowed():
    result = _manage(
        "check",
        "--deploy",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=PRODUCTION_SECRET,
        DJANGO_ALLOWED_HOSTS="other.example.com",
        **SENDER_IDENTITY,
    )
    assert result.returncode != 0
    assert "pipeline_whisperer.E001" in result.stderr
    assert "PUBLIC_BASE_URL's host pipeline.acme.example.com is not in DJANGO_ALLOWED_HOSTS" in result.stderr
