"""Contract fuzzing: every operation of the OpenAPI schema, called in-process with a write key.

Schemathesis generates requests from the schema (valid and invalid ones), sends them to the WSGI
app and checks that the server never answers 5xx and that every answer is documented: its status
code, its content type, its headers and its body. The example count per operation is bounded and
generation is derandomized, so a run is repeatable and takes about a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline_whisperer.auth import API_KEY_HEADER
from pipeline_whisperer.models import ApiKey

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONFIG = schemathesis.Config.from_dict(
    {
        # The stateful phase chains operations through links our schema does not declare.
        "phases": {"stateful": {"enabled": False}},
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none"},
    }
)


def _document() -> dict:
    """The schema as /api/schema/ serves it, built without a request so serving rules do not matter."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


@pytest.fixture
def _connection_kept_open() -> Iterator[None]:
    """Keep the test's connection (and its transaction) across requests, as Django's test client does.

    The WSGI handler closes the connection after each request; inside the test transaction that
    would end the transaction, so the next request could not open a connection at all.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def write_key(db: None) -> str:
    _, key = ApiKey.objects.create_key(name="contract fuzzing", scope=ApiKey.Scope.WRITE)
    return key


# Loaded at collection, not from a fixture: schemathesis' lazy `from_fixture` schemas fail under
# pytest 9.2 (they rename the test node through an attribute pytest no longer has).
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app = get_wsgi_application()


@schema.parametrize()
# One key serves every example of an operation; that is the point, not a leak between examples.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.usefixtures("_connection_kept_open")
def test_api_answers_as_documented(case: schemathesis.Case, write_key: str) -> None:
    case.call_and_validate(headers={API_KEY_HEADER: write_key}, checks=CHECKS)
