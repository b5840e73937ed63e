"""The demo login of the embedded default: one staff user and one API key, kept beside its database.

`make run` prints them, so a newcomer can open the admin, the console and the API docs at once.
The password and the key are made on the first run and kept in `demo-login.txt` (mode 0600) in
the SQLite database's folder (`var/`), so they belong to that database; later runs reuse them,
setting the kept password on the user again (and making a new key) if either was changed or
revoked, so the printed login always works. Refused unless debug is on and the database is
SQLite: production settings never get a demo user.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from pipeline_whisperer.exceptions import PermissionDenied
from pipeline_whisperer.models import ApiKey

DEMO_USERNAME = "demo"
DEMO_KEY_NAME = "demo (make run)"
LOGIN_FILE_NAME = "demo-login.txt"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    api_key: str
    path: Path


def demo_login_path() -> Path:
    """Where the embedded default keeps its demo login; PermissionDenied under any other settings."""
    database = settings.DATABASES["default"]
    if not settings.DEBUG:
        raise PermissionDenied("a demo login is only for the embedded default (DJANGO_DEBUG=1); refused")
    if database["ENGINE"] != "django.db.backends.sqlite3" or str(database["NAME"]).startswith(":memory:"):
        raise PermissionDenied("a demo login is only for the embedded default's SQLite file; refused")
    return Path(database["NAME"]).parent / LOGIN_FILE_NAME


@transaction.atomic
def demo_login_ensure() -> DemoLogin:
    """The demo staff user and write key, made or repaired so that the kept login works."""
    path = demo_login_path()
    kept = _read(path)
    password = kept.get("password") or secrets.token_urlsafe(12)
    _ensure_staff_user(password)
    api_key = kept.get("api_key", "")
    if not ApiKey.objects.is_valid(api_key):
        _, api_key = ApiKey.objects.create_key(name=DEMO_KEY_NAME, scope=ApiKey.Scope.WRITE)
    login = DemoLogin(username=DEMO_USERNAME, password=password, api_key=api_key, path=path)
    if kept != {"username": login.username, "password": login.password, "api_key": login.api_key}:
        _write(login)
    return login


def _ensure_staff_user(password: str) -> None:
    user_model = get_user_model()
    user = user_model.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user_model.objects.create_superuser(username=DEMO_USERNAME, email="", password=password)
        return
    if not (user.check_password(password) and user.is_active and user.is_staff and user.is_superuser):
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save(update_fields=["password", "is_active", "is_staff", "is_superuser"])


def _read(path: Path) -> dict[str, str]:
    """`name=value` lines; a missing or unreadable file is an empty login (made afresh)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    pairs = (line.partition("=") for line in lines)
    return {name: value for name, separator, value in pairs if separator}


def _write(login: DemoLogin) -> None:
    # Created 0600 from the start (and narrowed if it existed), so the password is never world-readable.
    descriptor = os.open(login.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(f"username={login.username}\npassword={login.password}\napi_key={login.api_key}\n")
