"""Every error answer is RFC 9457 problem+json carrying the request's correlation id."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pipeline_whisperer.tests.support import assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("pipeline_whisperer.tests.urls")]
REQUEST_ID = "req-problem-1"


def _with_id(client: APIClient) -> APIClient:
    # Keeps the fixture's key; APIClient holds it in a private dict the stubs do not declare.
    client.credentials(**client._credentials, HTTP_X_REQUEST_ID=REQUEST_ID)  # type: ignore[attr-defined]
    client.raise_request_exception = False
    return client


# A chunked body its server did not de-chunk: no Content-Length, so Django would read it as empty.
_UNREAD_CHUNKED = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
CASES = {
    400: ("api_client", lambda c: c.post("/api/v1/leads", {}, format="json")),
    401: ("anonymous_client", lambda c: c.get("/api/v1/leads")),
    403: ("read_client", lambda c: c.post("/api/v1/leads", {}, format="json")),
    404: ("api_client", lambda c: c.get("/api/v1/nothing-here")),
    405: ("api_client", lambda c: c.delete("/api/v1/leads")),
    411: ("api_client", lambda c: c.post("/api/v1/leads", "{}", content_type="application/json", **_UNREAD_CHUNKED)),
    413: ("api_client", lambda c: c.post("/api/v1/leads", "x" * 2048, content_type="application/json")),
    414: ("api_client", lambda c: c.get("/api/v1/leads/" + "x" * 5_000)),
    415: ("api_client", lambda c: c.post("/api/v1/leads", "name=x", content_type="text/plain")),
}


@pytest.mark.parametrize("status", CASES)
def test_an_error_is_a_problem_with_the_correlation_id(status, request, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    fixture, call = CASES[status]
    response = call(_with_id(request.getfixturevalue(fixture)))
    body = assert_problem(response, status)
    assert body["correlation_id"] == REQUEST_ID == response["X-Request-ID"]


@pytest.mark.parametrize("path", ["/api/v1/test/fail", "/test/fail"], ids=["api view", "plain view"])
def test_an_unexpected_error_is_a_500_problem_without_internals(path, api_client):
    response = _with_id(api_client).get(path, HTTP_ACCEPT="application/json")
    body = assert_problem(response, 500)
    assert body["correlation_id"] == REQUEST_ID
    assert body["detail"] == "The server could not complete the request."
    assert "RuntimeError" not in response.content.decode()


def test_a_path_of_the_longest_length_allowed_is_routed_as_usual(api_client, settings):
    settings.MAX_REQUEST_PATH_LENGTH = 300
    path = "/api/v1/" + "x" * (300 - len("/api/v1/"))
    assert_problem(api_client.get(path), 404)
    body = assert_problem(api_client.get(path + "x"), 414)
    assert (body["type"], body["max_path_length"]) == ("https://pipeline-whisperer.dev/problems/uri-too-long", 300)
