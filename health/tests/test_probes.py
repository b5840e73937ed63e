"""The probes in-process: liveness, readiness, startup and the detailed report's access rules."""

from __future__ import annotations

import json
import wsgiref.util
from typing import Any

import pytest
from django.db.migrations.recorder import MigrationRecorder

from health import checks


def test_liveness_answers_ok_without_touching_the_database(client):
    # No db fixture: any database access here would raise.
    response = client.get("/health/liveness")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readiness_is_ok_when_database_cache_and_migrations_are(client):
    response = client.get("/health/readiness")
    body = response.json()
    assert response.status_code == 200
    statuses = {name: check["status"] for name, check in body["checks"].items()}
    assert {name: statuses[name] for name in ("database", "migrations", "cache")} == {
        "database": "ok",
        "migrations": "ok",
        "cache": "ok",
    }
    assert set(statuses.values()) == {"ok"}  # and the checks the apps register


@pytest.mark.django_db
def test_readiness_reports_the_cache_down_when_redis_stops(client, throwaway_redis, settings):
    settings.HEALTH_PROBE_CACHE_SECONDS = 0
    assert client.get("/health/readiness").status_code == 200
    throwaway_redis.stop()
    response = client.get("/health/readiness")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["status"] == "unavailable"
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_startup_fails_while_a_migration_is_unapplied(client, monkeypatch):
    monkeypatch.setattr(checks, "_migrations_seen_applied", False)  # a fresh process
    latest = MigrationRecorder.Migration.objects.filter(app="leads").latest("id")
    latest.delete()
    try:
        response = client.get("/health/startup")
    finally:
        MigrationRecorder.Migration.objects.create(app=latest.app, name=latest.name)
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"]["unapplied"] == [f"leads.{latest.name}"]


def test_detailed_refuses_anonymous_callers(anonymous_client, db):
    response = anonymous_client.get("/health/detailed")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_detailed_refuses_signed_in_users_who_are_not_staff(user_client):
    assert user_client.get("/health/detailed").status_code == 403


def test_detailed_answers_an_api_key(read_client):
    response = read_client.get("/health/detailed")
    assert response.status_code == 200
    body = response.json()
    assert {"database", "cache", "migrations", "outbox_backlog", "database_pool"} <= set(body["checks"])
    assert body["checks"]["outbox_backlog"]["pending"] == 0
    assert body["checks"]["database_pool"]["pooled"] is True
    assert "latency_ms" in body["checks"]["database"]
    assert body["versions"]["django"].startswith("5.2")


def test_detailed_answers_staff(staff_client):
    assert staff_client.get("/health/detailed").status_code == 200


def test_detailed_reports_no_consumer_lag_without_kafka(staff_client):
    assert staff_client.get("/health/detailed").json()["consumer_lag"] == {}


@pytest.mark.django_db
def test_readiness_answer_is_reused_for_the_probe_cache_seconds(client, throwaway_redis, settings):
    settings.HEALTH_PROBE_CACHE_SECONDS = 60
    assert client.get("/health/readiness").status_code == 200
    throwaway_redis.stop()
    assert client.get("/health/readiness").status_code == 200  # the answer of a moment ago
    settings.HEALTH_PROBE_CACHE_SECONDS = 0
    assert client.get("/health/readiness").status_code == 503


def _served(path: str, host: str) -> tuple[str, dict[str, str], bytes]:
    """What the application gunicorn and runserver serve answers to a GET of `path`."""
    from pipeline_whisperer.wsgi import application

    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_HOST": host}
    wsgiref.util.setup_testing_defaults(environ)
    answered: list[Any] = []
    body = b"".join(application(environ, lambda status, headers: answered.extend((status, dict(headers)))))
    return answered[0], answered[1], body


def test_liveness_is_answered_before_django_whatever_the_host():
    # A kubelet's pod address, which is not an allowed host; no db fixture: a query would raise.
    status, headers, body = _served("/health/liveness", host="10.1.2.3:8000")
    assert (status, headers["Content-Type"], json.loads(body)) == ("200 OK", "application/json", {"status": "ok"})


def test_every_other_path_goes_on_to_django(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    assert _served("/health/liveness/", host="10.1.2.3:8000")[0].startswith("400")  # Django's host check
