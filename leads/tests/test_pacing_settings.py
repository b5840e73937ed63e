"""A malformed pacing setting stops start-up with one line naming it (manage.py check in a
subprocess, as an operator would meet it), and the well-formed ones start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def _check(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**clean, "DJANGO_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("OUTREACH_SEND_WINDOW", "weekdays 9-5", 'is not of the form "mon-fri 09:00-17:00"'),
        ("OUTREACH_SEND_WINDOW", "mon-fri 17:00-09:00", "must start before it ends"),
        ("OUTREACH_DEFAULT_TIME_ZONE", "Mars/Olympus", "is not an IANA time zone"),
        ("OUTREACH_WARMUP_START", "next monday", "is not a date of the form YYYY-MM-DD"),
    ],
)
def test_a_malformed_pacing_setting_stops_check_with_one_line(variable, value, complaint):
    result = _check(**{variable: value})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"configuration error: {variable}: ")
    assert complaint in line


def test_well_formed_pacing_settings_pass_check():
    result = _check(
        OUTREACH_SEND_WINDOW="mon,wed,fri 08:30-12:00",
        OUTREACH_DEFAULT_TIME_ZONE="Europe/Berlin",
        OUTREACH_WARMUP_START="2026-12-01",
    )
    assert result.returncode == 0, result.stderr
