"""Contract fuzzing: every operation of the OpenAPI schema, called in-process with a write key.

Schemathesis generates requests from the schema (valid and invalid ones), sends them to the WSGI
app and checks that the server never answers 5xx and that every answer is documented: its status
code, its content type, its headers and its body. The example count per operation is bounded and
generation is derandomized, so a run is repeatable and takes about a minute. One of each resource
is seeded, so list answers have items to check; two plain tests add what random ids rarely reach:
every read of a real resource, and every operation without a key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

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

from leads.models import Lead
from leads.services.suppression import suppression_add
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
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


@dataclass(frozen=True)
class Seeded:
    """One of each resource; `path_parameters` names them in any operation's path."""

    ids: dict[str, int]
    lightfield_id: str

    def path_parameters(self, path: str) -> dict[str, object]:
        parts = path.split("/")
        values: dict[str, object] = {"lightfield_id": self.lightfield_id, "experiment_pk": self.ids["experiments"]}
        if "{id}" in parts:
            # {id} names the resource whose collection comes just before it.
            values["id"] = self.ids[parts[parts.index("{id}") - 1]]
        return {name: value for name, value in values.items() if "{" + name + "}" in parts}


@pytest.fixture
def seeded(db: None) -> Seeded:
    lead = LeadFactory(status=Lead.Status.SCORED, score=0.8, company_size="", budget_range="", contact_email="")
    template = OutreachTemplateFactory()
    experiment = ExperimentFactory(target_persona="")
    variant = VariantFactory(experiment=experiment, template=template)
    VariantFactory(experiment=experiment, template=template)
    outreach = OutreachFactory(lead=LeadFactory(), variant=variant)
    EngagementEventFactory(outreach=outreach)
    ids = {
        "leads": lead.pk,
        "templates": template.pk,
        "experiments": experiment.pk,
        "variants": variant.pk,
        "outreach": outreach.pk,
        "suppressions": suppression_add(kind="domain", value="globex.example", reason="staff")[0].pk,
    }
    return Seeded(ids=ids, lightfield_id=lead.lightfield_id)


# schemathesis' WSGI transport hands over bodies as sent, and larger answers are gzipped for
# callers that accept it; ask for them plain.
PLAIN = {"Accept-Encoding": "identity"}

# Loaded at collection, not from a fixture: schemathesis' lazy `from_fixture` schemas fail under
# pytest 9.2 (they rename the test node through an attribute pytest no longer has).
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
schema.app = get_wsgi_application()
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@schema.parametrize()
# One key serves every example of an operation; that is the point, not a leak between examples.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.usefixtures("_connection_kept_open", "seeded")
def test_api_answers_as_documented(case: schemathesis.Case, write_key: str) -> None:
    case.call_and_validate(headers={**PLAIN, API_KEY_HEADER: write_key}, checks=CHECKS)


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if op.method == "get"], ids=lambda op: op.label)
@pytest.mark.usefixtures("_connection_kept_open")
def test_every_read_of_a_seeded_resource_answers_200_as_documented(
    operation: schemathesis.APIOperation, seeded: Seeded, write_key: str
) -> None:
    case = operation.Case(path_parameters=seeded.path_parameters(operation.path))
    response = case.call_and_validate(headers={**PLAIN, API_KEY_HEADER: write_key}, checks=CHECKS)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
@pytest.mark.usefixtures("_connection_kept_open")
def test_every_operation_without_a_key_answers_401_as_documented(
    operation: schemathesis.APIOperation, seeded: Seeded
) -> None:
    case = operation.Case(path_parameters=seeded.path_parameters(operation.path))
    response = case.call_and_validate(headers=PLAIN, checks=CHECKS)
    assert response.status_code == 401, response.text
