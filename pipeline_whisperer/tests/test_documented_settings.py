"""Every environment variable the code reads is documented where operators look for it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_READ = re.compile(r"""env_(?:str|bool|int|float|list)\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def _variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for source in ROOT.glob("*/**/*.py"):
        if ".venv" not in source.parts:
            names.update(_READ.findall(source.read_text()))
    return names


def test_the_scan_finds_the_settings_the_code_reads():
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= _variables_read_by_code()


def test_every_variable_the_code_reads_is_in_the_configuration_reference():
    documented = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert sorted(name for name in _variables_read_by_code() if f"`{name}`" not in documented) == []


def test_every_variable_the_code_reads_is_in_the_production_example():
    example = (ROOT / ".env.production.example").read_text()
    present = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert sorted(_variables_read_by_code() - present) == []
