"""Request framing under a real gunicorn (deploy/gunicorn.conf.py): a chunked body is read like
any other, and an over-long path is a 414 problem+json rather than gunicorn's HTML page."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from leads.models import Lead
from pipeline_whisperer.models import ApiKey
from tests.test_gunicorn_config import Gunicorn, start_gunicorn

__all__ = ["start_gunicorn"]  # the fixture, shared with the gunicorn config tests

pytestmark = pytest.mark.django_db(transaction=True)  # the server sees only committed rows


def _event(lightfield_id: str) -> dict[str, Any]:
    return {"lightfield_id": lightfield_id, "company": {"name": "Chunked Co"}, "contact": {"email": "a@chunk.example"}}


def _request(server: Gunicorn, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    """An iterable body: http.client sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def write_key() -> str:
    _, key = ApiKey.objects.create_key(name="chunked writer", scope=ApiKey.Scope.WRITE)
    return key


def _ingest_chunked(server: Gunicorn, key: str, events: list[dict[str, Any]]) -> tuple[int, dict, bytes]:
    body = json.dumps(events).encode()
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    return _request(server, "POST", "/api/v1/leads/ingest", _chunks(body, 50), **headers)


def test_a_chunked_ingest_body_is_read_and_its_events_stored(start_gunicorn, write_key):
    server = start_gunicorn()
    status, _, answer = _ingest_chunked(server, write_key, [_event("lf-chunk-1"), _event("lf-chunk-2")])
    assert status == 202, answer
    assert json.loads(answer)["accepted"] == 2
    assert set(Lead.objects.values_list("lightfield_id", flat=True)) == {"lf-chunk-1", "lf-chunk-2"}


def test_a_chunked_body_over_the_limit_is_413_problem(start_gunicorn, write_key):
    server = start_gunicorn(MAX_REQUEST_BODY_BYTES="2048")
    status, headers, answer = _ingest_chunked(server, write_key, [_event(f"lf-big-{n}") for n in range(100)])
    assert (status, headers["Content-Type"]) == (413, "application/problem+json")
    assert json.loads(answer)["status"] == 413
    assert not Lead.objects.exists()


@pytest.mark.parametrize("length", [5_000, 8_000])
def test_an_over_long_path_is_414_problem_json(start_gunicorn, length):
    server = start_gunicorn()
    path = "/api/v1/leads/" + "x" * (length - len("/api/v1/leads/"))
    status, headers, answer = _request(server, "GET", path, **{"X-Request-ID": "req-long"})
    assert (status, headers["Content-Type"]) == (414, "application/problem+json")
    body = json.loads(answer)
    assert (body["status"], body["correlation_id"]) == (414, "req-long")
    assert body["type"].endswith("/uri-too-long")
