"""Typed readers for settings taken from the environment.

Every deployment value passes through one of these, so a missing or malformed value stops
start-up with one line that names the variable (`SettingsError`), never a traceback deep in
a library.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ImproperlyConfigured):
    """A setting is missing or malformed; the message names the variable."""


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise SettingsError(f"{name} is required but not set")
        return default if default is not None else ""
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be 1 or 0 (got {value!r})")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (got {value!r})") from None
    if minimum is not None and number < minimum:
        raise SettingsError(f"{name} must be at least {minimum} (got {number})")
    return number


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number (got {value!r})") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_prefixed(prefix: str) -> dict[str, object]:
    """Every variable named `<prefix>KEY`, as {KEY: value}: for a library with many
    per-provider options (anymail). A value that is JSON (an object, a list, true, false or a
    number) is decoded, so `{"region_name": "eu-west-1"}` arrives as a dict; others stay text."""
    options: dict[str, object] = {}
    for name, value in os.environ.items():
        if not name.startswith(prefix) or name == prefix or value == "":
            continue
        text = value.strip()
        if text[:1] in "{[" or text in ("true", "false") or text.lstrip("-").replace(".", "", 1).isdigit():
            try:
                options[name[len(prefix) :]] = json.loads(text)
            except ValueError:
                raise SettingsError(f"{name} is not valid JSON (got {value!r})") from None
        else:
            options[name[len(prefix) :]] = value
    return options


@dataclass(frozen=True)
class DatabaseUrl:
    """The parts of `DATABASE_URL` that Django's DATABASES needs."""

    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: dict[str, str] | None = None


def parse_database_url(name: str, url: str, *, base_dir: Path) -> DatabaseUrl:
    """Parse `postgres://user:pass@host:port/db?opt=v` or `sqlite:///path`.

    A relative SQLite path is taken relative to `base_dir`.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if not path or path == "/":
            raise SettingsError(f"{name} names no SQLite file (got {url!r})")
        # sqlite:///relative.db has path "/relative.db"; sqlite:////abs.db has "//abs.db".
        file = Path(path[1:])
        if not file.is_absolute():
            file = base_dir / file
        return DatabaseUrl(engine="django.db.backends.sqlite3", name=str(file))
    if parts.scheme in {"postgres", "postgresql"}:
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise SettingsError(f"{name} names no database (got a URL without a path)")
        try:
            port = str(parts.port or "")
        except ValueError:
            raise SettingsError(f"{name} has a malformed port") from None
        return DatabaseUrl(
            engine="django.db.backends.postgresql",
            name=database,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=unquote(parts.hostname or ""),
            port=port,
            options={key: values[-1] for key, values in parse_qs(parts.query).items()},
        )
    raise SettingsError(f"{name} must start with postgres:// or sqlite:/// (got {parts.scheme!r})")


def check_redis_url(name: str, url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise SettingsError(f"{name} must start with redis://, rediss:// or unix:// (got {scheme!r})")
    return url
