"""Typed environment readers: each value parses, and each bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_whisperer.env import (
    DatabaseUrl,
    SettingsError,
    check_redis_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

VAR = "PW_TEST_VALUE"


@pytest.fixture
def setenv(monkeypatch):
    def _set(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(VAR, raising=False)
        else:
            monkeypatch.setenv(VAR, value)

    return _set


# --- str --------------------------------------------------------------------------------


def test_env_str_reads_the_value(setenv):
    setenv("hello")
    assert env_str(VAR, "default") == "hello"


@pytest.mark.parametrize("value", [None, ""])
def test_env_str_falls_back_to_the_default_when_unset_or_empty(setenv, value):
    setenv(value)
    assert env_str(VAR, "default") == "default"


def test_env_str_required_and_unset_names_the_variable(setenv):
    setenv(None)
    with pytest.raises(SettingsError, match=f"^{VAR} is required but not set$"):
        env_str(VAR, required=True)


# --- bool -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_env_bool_reads_true(setenv, value):
    setenv(value)
    assert env_bool(VAR, False) is True


@pytest.mark.parametrize("value", ["0", "false", "No", "off", ""])
def test_env_bool_reads_false(setenv, value):
    setenv(value)
    assert env_bool(VAR, True) is False


def test_env_bool_unset_is_the_default(setenv):
    setenv(None)
    assert env_bool(VAR, True) is True


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_env_bool_malformed_names_the_variable_and_the_value(setenv, value):
    setenv(value)
    with pytest.raises(SettingsError, match=f"^{VAR} must be 1 or 0 \\(got '{value}'\\)$"):
        env_bool(VAR, False)


# --- int and float ----------------------------------------------------------------------


def test_env_int_reads_a_whole_number(setenv):
    setenv("42")
    assert env_int(VAR, 7) == 42


@pytest.mark.parametrize("value", [None, "", "  "])
def test_env_int_unset_or_blank_is_the_default(setenv, value):
    setenv(value)
    assert env_int(VAR, 7) == 7


@pytest.mark.parametrize("value", ["4.5", "ten", "1e3"])
def test_env_int_malformed_names_the_variable(setenv, value):
    setenv(value)
    with pytest.raises(SettingsError, match=f"^{VAR} must be a whole number"):
        env_int(VAR, 7)


def test_env_int_below_the_minimum_names_the_variable(setenv):
    setenv("0")
    with pytest.raises(SettingsError, match=f"^{VAR} must be at least 1 \\(got 0\\)$"):
        env_int(VAR, 7, minimum=1)


def test_env_int_at_the_minimum_is_accepted(setenv):
    setenv("1")
    assert env_int(VAR, 7, minimum=1) == 1


def test_env_float_reads_a_number(setenv):
    setenv("0.25")
    assert env_float(VAR, 1.0) == 0.25


def test_env_float_malformed_names_the_variable(setenv):
    setenv("half")
    with pytest.raises(SettingsError, match=f"^{VAR} must be a number"):
        env_float(VAR, 1.0)


# --- list -------------------------------------------------------------------------------


def test_env_list_splits_on_commas_and_drops_blanks(setenv):
    setenv(" a.example.com, b.example.com ,, ")
    assert env_list(VAR, ["default"]) == ["a.example.com", "b.example.com"]


def test_env_list_unset_is_the_default(setenv):
    setenv(None)
    assert env_list(VAR, ["default"]) == ["default"]


def test_env_list_set_but_empty_is_an_empty_list(setenv):
    setenv("")
    assert env_list(VAR, ["default"]) == []


# --- DATABASE_URL -----------------------------------------------------------------------


def test_sqlite_relative_path_is_taken_from_the_base_dir(tmp_path):
    parsed = parse_database_url("DATABASE_URL", "sqlite:///var/db.sqlite3", base_dir=tmp_path)
    assert parsed == DatabaseUrl(engine="django.db.backends.sqlite3", name=str(tmp_path / "var" / "db.sqlite3"))


def test_sqlite_absolute_path_is_kept(tmp_path):
    parsed = parse_database_url("DATABASE_URL", "sqlite:////srv/data/db.sqlite3", base_dir=tmp_path)
    assert parsed.name == str(Path("/srv/data/db.sqlite3"))


def test_postgres_url_with_port_and_options_is_parsed(tmp_path):
    url = "postgres://app:s%40cret@db.example.com:6543/pipeline?sslmode=require&connect_timeout=5"
    assert parse_database_url("DATABASE_URL", url, base_dir=tmp_path) == DatabaseUrl(
        engine="django.db.backends.postgresql",
        name="pipeline",
        user="app",
        password="s@cret",
        host="db.example.com",
        port="6543",
        options={"sslmode": "require", "connect_timeout": "5"},
    )


def test_postgresql_scheme_without_port_or_credentials_is_parsed(tmp_path):
    parsed = parse_database_url("DATABASE_URL", "postgresql://db/pipeline", base_dir=tmp_path)
    assert (parsed.host, parsed.port, parsed.user, parsed.password, parsed.options) == ("db", "", "", "", {})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "must start with postgres:// or sqlite:/// \\(got 'mysql'\\)"),
        ("db.example.com/pipeline", "must start with postgres:// or sqlite:///"),
        ("postgres://db.example.com", "names no database"),
        ("postgres://db.example.com:port/pipeline", "has a malformed port"),
        ("postgres://db.example.com:99999/pipeline", "has a malformed port"),
        ("sqlite://", "names no SQLite file"),
        ("sqlite:///", "names no SQLite file"),
    ],
)
def test_malformed_database_url_names_the_variable(tmp_path, url, message):
    with pytest.raises(SettingsError, match=f"^DATABASE_URL {message}"):
        parse_database_url("DATABASE_URL", url, base_dir=tmp_path)


# --- REDIS_URL --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache:6380/1", "unix:///run/redis.sock"])
def test_redis_url_with_a_known_scheme_is_accepted(url):
    assert check_redis_url("REDIS_URL", url) == url


def test_redis_url_with_another_scheme_names_the_variable():
    with pytest.raises(SettingsError, match=r"^REDIS_URL must start with redis://"):
        check_redis_url("REDIS_URL", "memcached://cache:11211")
