"""Start-up configuration: a bad setting stops manage.py with one line and exit status 2;
production settings pass Django's deployment checklist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# 60 varied characters: a secret that Django's deployment check accepts.
PRODUCTION_SECRET = "k7Qz-2vLx9_Rm4Pw8Ts1Yb6Nc3Hd5Jf0Ga_Ue7Io2Kl9Wq4Er8Ty1Zx6Cv3B"
# The variables a subprocess inherits; everything the settings read is left out and set per test.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


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
        OUTREACH_SENDER_NAME="Example Sales",
        OUTREACH_POSTAL_ADDRESS="Example Inc., 1 Example Street, Example City",
        PUBLIC_BASE_URL="https://pipeline.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
