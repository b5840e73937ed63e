"""/metrics: Prometheus text that parses, the pool's gauges, and who may read it (the pipeline's
own gauges, registered by leads, are tested in leads/tests/test_monitoring.py)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from health import gunicorn_hooks
from health.tests.support import metric_samples

pytestmark = pytest.mark.django_db


def test_metrics_parse_as_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {name for name, _ in metric_samples(response)}
    assert {"django_http_requests_total_by_method_total", "pipeline_database_up", "pipeline_leads"} <= names


def test_metrics_show_the_database_pool(client):
    samples = metric_samples(client.get("/metrics"))
    assert samples[("pipeline_db_pool_max", ())] >= 1


def test_metrics_refuse_an_address_outside_the_allowed_networks(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


@override_settings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"])
def test_metrics_answer_an_address_in_a_configured_network(client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@override_settings(METRICS_TOKEN="scrape-secret")
def test_metrics_answer_the_token_from_anywhere(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200


@override_settings(METRICS_TOKEN="scrape-secret")
def test_metrics_refuse_a_wrong_token_with_401(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@override_settings(METRICS_TOKEN="scrape-secret")
def test_metrics_ask_an_outside_caller_without_a_token_for_one(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 401


def test_gunicorn_start_empties_the_multiprocess_directory(tmp_path, monkeypatch):
    (tmp_path / "counter_123.db").write_bytes(b"old samples")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_hooks.on_starting(server=None)
    assert list(tmp_path.iterdir()) == []
