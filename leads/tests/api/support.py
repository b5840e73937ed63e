"""Shared helpers and the catalogue of every API endpoint, for the API tests (the problem+json
assertion is the core's: `pipeline_whisperer.tests.support.assert_problem`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient


def query_count(call: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries)


@dataclass(frozen=True)
class Endpoint:
    """One method on one route; `path` and `body` use the ids of the `world` fixture."""

    method: str
    path: str
    body: Callable[[dict[str, Any]], Any] | None = None  # a JSON object or, for batch routes, a list
    writes: bool = False
    ok: int = 200

    def call(self, client: APIClient, ids: dict[str, Any], **kwargs: Any) -> Any:
        send = getattr(client, self.method.lower())
        path = self.path.format(**ids)
        if self.body is None:
            return send(path, **kwargs)
        return send(path, kwargs.pop("data", self.body(ids)), format=kwargs.pop("format", "json"), **kwargs)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


READS = [
    Endpoint("GET", "/api/v1/leads"),
    Endpoint("GET", "/api/v1/leads/{lead}"),
    Endpoint("GET", "/api/v1/leads/stats"),
    Endpoint("GET", "/api/v1/leads/lightfield/{lightfield_id}"),
    Endpoint("GET", "/api/v1/templates"),
    Endpoint("GET", "/api/v1/templates/{template}"),
    Endpoint("GET", "/api/v1/experiments"),
    Endpoint("GET", "/api/v1/experiments/{experiment}"),
    Endpoint("GET", "/api/v1/experiments/{experiment}/variants"),
    Endpoint("GET", "/api/v1/experiments/{experiment}/variants/{variant}"),
    Endpoint("GET", "/api/v1/outreach"),
    Endpoint("GET", "/api/v1/outreach/{outreach}"),
    Endpoint("GET", "/api/v1/dashboard/funnel"),
    Endpoint("GET", "/api/v1/dashboard/timeline"),
    Endpoint("GET", "/api/v1/dashboard/activity"),
    Endpoint("GET", "/api/v1/engagements"),
    Endpoint("GET", "/api/v1/suppressions"),
    Endpoint("GET", "/api/v1/suppressions/{suppression}"),
]

WRITES = [
    Endpoint("POST", "/api/v1/leads", lambda ids: {"lightfield_id": "lf-new", "company_name": "New Co"}, True, 201),
    Endpoint("PATCH", "/api/v1/leads/{lead}", lambda ids: {"contact_title": "CTO"}, True),
    Endpoint("POST", "/api/v1/leads/{lead}/snooze", lambda ids: {}, True),
    Endpoint("POST", "/api/v1/leads/{snoozed_lead}/unsnooze", writes=True),
    Endpoint("POST", "/api/v1/leads/{lead}/rescore", writes=True, ok=202),
    Endpoint("POST", "/api/v1/leads/{lead}/force-outreach", writes=True, ok=202),
    Endpoint(
        "POST",
        "/api/v1/leads/ingest",
        lambda ids: [{"lightfield_id": "lf-ingested", "company": {"name": "Ingested Co"}}],
        True,
        202,
    ),
    Endpoint(
        "POST",
        "/api/v1/engagements",
        lambda ids: [{"event_id": "evt-matrix", "event_type": "opened", "outreach_id": ids["outreach"]}],
        True,
        202,
    ),
    Endpoint(
        "POST",
        "/api/v1/templates",
        lambda ids: {"name": "Follow-up", "subject": "Hi {{ company.name }}", "body": "Hello."},
        True,
        201,
    ),
    Endpoint("PATCH", "/api/v1/templates/{template}", lambda ids: {"subject": "New subject"}, True),
    Endpoint("DELETE", "/api/v1/templates/{spare_template}", writes=True, ok=204),
    Endpoint("POST", "/api/v1/templates/{template}/preview", lambda ids: {"lead_id": ids["lead"]}, True),
    Endpoint(
        "POST",
        "/api/v1/templates/preview",
        lambda ids: {"lead_id": ids["lead"], "subject": "Hi", "body": "Hello {{ company.name }}"},
        True,
    ),
    Endpoint(
        "POST",
        "/api/v1/experiments",
        lambda ids: {
            "name": "Openers",
            "variants": [{"name": "X", "template": ids["template"]}, {"name": "Y", "template": ids["template"]}],
        },
        True,
        201,
    ),
    Endpoint("PATCH", "/api/v1/experiments/{experiment}", lambda ids: {"description": "Which opener works"}, True),
    Endpoint("DELETE", "/api/v1/experiments/{experiment}", writes=True, ok=204),
    Endpoint("POST", "/api/v1/experiments/{experiment}/pause", writes=True),
    Endpoint("POST", "/api/v1/experiments/{experiment}/resume", writes=True),
    Endpoint("POST", "/api/v1/experiments/{experiment}/ship", lambda ids: {"variant": ids["variant"]}, True),
    Endpoint(
        "POST",
        "/api/v1/experiments/{experiment}/variants",
        lambda ids: {"name": "D", "template": ids["template"]},
        True,
        201,
    ),
    Endpoint("PATCH", "/api/v1/experiments/{experiment}/variants/{variant}", lambda ids: {"name": "A2"}, True),
    Endpoint("DELETE", "/api/v1/experiments/{experiment}/variants/{spare_variant}", writes=True, ok=204),
    Endpoint("POST", "/api/v1/experiments/{experiment}/variants/{variant}/pause", writes=True),
    Endpoint("POST", "/api/v1/experiments/{experiment}/variants/{variant}/resume", writes=True),
    Endpoint("POST", "/api/v1/suppressions", lambda ids: {"value": "new@acme.example"}, True, 201),
    Endpoint("DELETE", "/api/v1/suppressions/{spare_suppression}", writes=True, ok=204),
    Endpoint("POST", "/api/v1/privacy/export", lambda ids: {"email": "someone@example.com"}, True),
    Endpoint("POST", "/api/v1/privacy/erase", lambda ids: {"email": "someone@example.com"}, True),
]

ALL = READS + WRITES
BATCHES = [endpoint for endpoint in WRITES if endpoint.path in ("/api/v1/leads/ingest", "/api/v1/engagements")]
WITH_BODY = [endpoint for endpoint in WRITES if endpoint.body is not None]
