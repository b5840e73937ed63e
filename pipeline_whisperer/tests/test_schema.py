"""The error answers ProblemAutoSchema documents for every operation of the OpenAPI schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """Built by the generator, as /api/schema/ serves it, whoever may read that page."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _ref(operation: dict[str, Any], status: int) -> str | None:
    return operation["responses"].get(str(status), {}).get("$ref")


def test_every_operation_documents_503(document):
    for path, method, operation in _operations(document):
        assert _ref(operation, 503) == "#/components/responses/ServiceUnavailable", (method, path)


def test_every_operation_that_needs_a_key_documents_401_403_and_429(document):
    for path, method, operation in _operations(document):
        assert {"ApiKeyAuth": []} in operation["security"]
        for status, name in ((401, "Unauthorized"), (403, "Forbidden"), (429, "TooManyRequests")):
            assert _ref(operation, status) == f"#/components/responses/{name}", (method, path, status)


def test_every_operation_with_an_id_in_the_path_documents_404(document):
    for path, method, operation in _operations(document):
        if "{" in path:
            assert _ref(operation, 404) == "#/components/responses/NotFound", (method, path)


def test_a_numbered_list_documents_404_for_a_page_past_the_last(document):
    operation = document["paths"]["/api/v1/templates"]["get"]
    assert _ref(operation, 404) == "#/components/responses/NotFound"


def test_a_cursor_list_does_not_document_404(document):
    # A cursor page past the end is an empty page, and a bad cursor a 400.
    assert _ref(document["paths"]["/api/v1/leads"]["get"], 404) is None


def test_a_list_without_pages_or_ids_does_not_document_404(document):
    assert _ref(document["paths"]["/api/v1/leads/stats"]["get"], 404) is None


def test_every_operation_with_a_body_documents_400_413_and_415(document):
    for path, method, operation in _operations(document):
        if "requestBody" in operation:
            for status in (400, 413, 415):
                assert _ref(operation, status) is not None, (method, path, status)


def test_every_write_documents_409(document):
    for path, method, operation in _operations(document):
        if method != "get":
            assert _ref(operation, 409) == "#/components/responses/Conflict", (method, path)


def test_a_view_can_declare_another_error_without_a_body(document):
    # The draft preview names its lead in the body: an unknown lead is 404 with no id in the path.
    operation = document["paths"]["/api/v1/templates/preview"]["post"]
    assert _ref(operation, 404) == "#/components/responses/NotFound"


def test_error_answers_are_problem_json(document):
    for name, response in document["components"]["responses"].items():
        assert list(response["content"]) == ["application/problem+json"], name


def test_400_documents_the_errors_member(document):
    response = document["components"]["responses"]["BadRequest"]
    assert response["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    members = document["components"]["schemas"]["ValidationProblem"]["allOf"]
    assert {"$ref": "#/components/schemas/Problem"} in members
    assert any("errors" in member.get("properties", {}) for member in members)


def test_problem_documents_the_rfc_9457_members_and_the_correlation_id(document):
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "correlation_id"} <= set(problem["properties"])


def test_429_documents_a_required_retry_after_header(document):
    header = document["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]
    assert header["required"] is True
    assert header["schema"]["type"] == "integer"
