"""Request metrics: django-prometheus's, counted on every request though their children are remembered."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

STATS = "/api/v1/leads/stats"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_request_is_counted_by_view_transport_and_method(api_client):
    labels = {"view": "lead-stats", "transport": "http", "method": "GET"}
    before = _sample("django_http_requests_total_by_view_transport_method_total", **labels)
    api_client.get(STATS)
    api_client.get(STATS)
    assert _sample("django_http_requests_total_by_view_transport_method_total", **labels) == before + 2


def test_each_response_is_counted_by_status(api_client, anonymous_client):
    ok, refused = (_sample("django_http_responses_total_by_status_total", status=s) for s in ("200", "401"))
    api_client.get(STATS)
    anonymous_client.get(STATS)
    api_client.get(STATS)
    assert _sample("django_http_responses_total_by_status_total", status="200") == ok + 2
    assert _sample("django_http_responses_total_by_status_total", status="401") == refused + 1


def test_https_requests_are_counted_under_their_own_transport(api_client):
    before = _sample("django_http_requests_total_by_transport_total", transport="https")
    api_client.get(STATS, secure=True)
    assert _sample("django_http_requests_total_by_transport_total", transport="https") == before + 1
