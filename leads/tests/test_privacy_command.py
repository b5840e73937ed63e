"""`manage.py privacy export|erase|reapply`: the command's own behaviour (what erasure does is
leads/tests/services/test_privacy_service.py's)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leads.models import Lead, PrivacyRequest, Suppression
from leads.tests.privacy_support import ADDRESS, holders, person_everywhere

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_export_writes_the_json_to_stdout():
    person_everywhere()
    out = io.StringIO()
    call_command("privacy", "export", "--email", ADDRESS.upper(), stdout=out)
    exported = json.loads(out.getvalue())
    assert exported["email"] == ADDRESS
    assert len(exported["leads"]) == 3


def test_export_to_a_file_is_readable_by_the_operator_only(tmp_path):
    person_everywhere()
    target = tmp_path / "export.json"
    out = io.StringIO()
    call_command("privacy", "export", "--email", ADDRESS, "--output", str(target), stdout=out)
    assert len(json.loads(target.read_text())["outreach"]) == 3
    assert target.stat().st_mode & 0o777 == 0o600
    assert ADDRESS not in out.getvalue()


def test_erase_asks_first_and_an_answer_other_than_yes_changes_nothing(monkeypatch):
    person_everywhere()
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("privacy", "erase", "--email", ADDRESS, stdout=io.StringIO())
    assert Lead.objects.filter(contact_email__iexact=ADDRESS).count() == 3
    assert not PrivacyRequest.objects.exists()


def test_erase_goes_on_when_the_operator_answers_yes(monkeypatch):
    person_everywhere()
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    out = io.StringIO()
    call_command("privacy", "erase", "--email", ADDRESS, stdout=out)
    assert holders(ADDRESS) == []
    assert "Erased (leads 3" in out.getvalue()
    assert ADDRESS not in out.getvalue()


def test_malformed_address_is_a_command_error():
    with pytest.raises(CommandError, match="is not a valid email address"):
        call_command("privacy", "export", "--email", "nobody-at-all")
    assert not PrivacyRequest.objects.exists()


def test_malformed_address_exits_non_zero_with_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "privacy", "erase", "--email", "philippa at northwind", "--yes"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: 'philippa at northwind' is not a valid email address: An email address must have an @-sign."
    ]
    assert not Suppression.objects.exists()


def test_reapply_erases_a_person_a_restore_brought_back():
    person_everywhere()
    call_command("privacy", "erase", "--email", ADDRESS, "--yes", verbosity=0)
    Lead.objects.create(lightfield_id="lf-restored", company_name="Northwind Traders", contact_email=ADDRESS)
    out = io.StringIO()
    call_command("privacy", "reapply", "--yes", stdout=out)
    assert "Re-applied 1 erasure(s)" in out.getvalue()
    assert holders(ADDRESS) == []
