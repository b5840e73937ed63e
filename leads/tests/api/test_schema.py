"""/api/schema/ (OpenAPI 3) and /api/docs/ (Swagger UI): both need an API key or a staff session."""

from __future__ import annotations

import random
import re

import pytest
import yaml
from faker import Faker

from leads.lightfield import fake_event
from leads.tests.api.support import ALL

pytestmark = pytest.mark.django_db


def _schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def test_schema_is_openapi_3_yaml_by_default(staff_client):
    response = staff_client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Pipeline Whisperer API"


def test_schema_is_available_as_json(staff_client):
    document = _schema(staff_client)
    assert document["openapi"].startswith("3.")
    assert document["info"]["version"] == "1.0.0"


def test_schema_describes_every_endpoint(staff_client):
    # The catalogue names path ids after the world fixture; the schema uses {id} and friends.
    paths = _schema(staff_client)["paths"]
    documented = {re.sub(r"\{[a-z_]+\}", "{}", path): operations for path, operations in paths.items()}
    for endpoint in ALL:
        template = re.sub(r"\{[a-z_]+\}", "{}", endpoint.path)
        assert template in documented, endpoint
        assert endpoint.method.lower() in documented[template], endpoint


def test_schema_documents_the_api_key_header(staff_client):
    document = _schema(staff_client)
    scheme = document["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert {"ApiKeyAuth": []} in document["paths"]["/api/v1/leads"]["get"]["security"]


def test_schema_documents_the_lead_filters(staff_client):
    parameters = {p["name"] for p in _schema(staff_client)["paths"]["/api/v1/leads"]["get"]["parameters"]}
    expected = {"status", "persona", "min_score", "max_score", "industry", "created_after", "created_before"}
    assert expected | {"search", "ordering", "cursor", "page_size"} <= parameters


@pytest.mark.parametrize("path", ["/api/v1/leads", "/api/v1/outreach", "/api/v1/engagements"])
def test_schema_documents_cursor_pages_without_a_count(path, staff_client):
    document = _schema(staff_client)
    reference = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"next", "previous", "results"}


def test_schema_needs_authentication(anonymous_client):
    response = anonymous_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_schema_is_served_to_a_read_only_key(read_client):
    assert _schema(read_client)["openapi"].startswith("3.")


def test_docs_render_swagger_ui_for_a_staff_session(staff_client):
    response = staff_client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert '<div id="swagger-ui">' in response.content.decode()


def test_docs_init_script_loads_the_schema_for_a_staff_session(staff_client):
    # The page loads its init script as a file (no inline script under the CSP); it names the schema.
    page = staff_client.get("/api/docs/").content.decode()
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1)
    script = staff_client.get(script_url)
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
    assert staff_client.get("/api/schema/").status_code == 200


def test_docs_send_a_caller_without_credentials_to_the_admin_login(anonymous_client):
    response = anonymous_client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/docs/"


def test_docs_are_refused_to_a_signed_in_user_who_is_not_staff(user_client):
    assert user_client.get("/api/docs/").status_code == 403


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("LeadList", "company_size"),
        ("LeadDetail", "company_size"),
        ("LeadDetail", "budget_range"),
        ("Experiment", "target_persona"),
        ("Outreach", "reward"),
    ],
)
def test_an_unset_choice_is_documented_as_blank_in_answers(staff_client, component, field):
    # DRF drops allow_blank from read-only model fields; the API still answers "" when unset.
    schema = _schema(staff_client)["components"]["schemas"][component]["properties"][field]
    assert {"$ref": "#/components/schemas/BlankEnum"} in schema["oneOf"]


@pytest.mark.parametrize("component", ["LeadList", "LeadDetail"])
def test_a_lead_without_an_email_is_documented_as_a_plain_string(staff_client, component):
    schema = _schema(staff_client)["components"]["schemas"][component]["properties"]["contact_email"]
    assert schema["type"] == "string"
    assert "format" not in schema


def _request_schema(document: dict, path: str) -> dict:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _component(document: dict, ref: str) -> dict:
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    ("path", "item"),
    [("/api/v1/leads/ingest", "LightfieldEventRequest"), ("/api/v1/engagements", "EngagementInputRequest")],
)
def test_a_body_of_one_object_or_a_list_is_documented_as_one_of_them(staff_client, path, item):
    document = _schema(staff_client)
    ref = f"#/components/schemas/{item}"
    assert _request_schema(document, path)["oneOf"] == [{"$ref": ref}, {"type": "array", "items": {"$ref": ref}}]


def test_the_ingest_event_is_a_typed_component_with_the_lightfield_fields(staff_client):
    document = _schema(staff_client)
    event = document["components"]["schemas"]["LightfieldEventRequest"]
    assert set(event["required"]) == {"lightfield_id", "company"}
    assert set(event["properties"]) == {
        "event_type", "timestamp", "lightfield_id", "company", "contact", "source", "metadata"
    }  # fmt: skip
    assert event["properties"]["timestamp"]["format"] == "date-time"
    assert event["properties"]["lightfield_id"]["pattern"] == "^[A-Za-z0-9_.:-]{1,64}$"
    assert "additionalProperties" not in event  # unknown fields are kept in the raw payload
    company = _component(document, event["properties"]["company"]["$ref"])
    assert company["required"] == ["name"]
    assert {"$ref": "#/components/schemas/CompanySizeEnum"} in company["properties"]["size"]["oneOf"]
    contact = _component(document, event["properties"]["contact"]["allOf"][0]["$ref"])
    assert {"type": "string", "format": "email"} in contact["properties"]["email"]["oneOf"]
    assert event["properties"]["contact"]["nullable"] is True
    metadata = _component(document, event["properties"]["metadata"]["allOf"][0]["$ref"])
    assert metadata["properties"]["tech_stack"]["items"]["type"] == "string"
    assert {"$ref": "#/components/schemas/BudgetRangeEnum"} in metadata["properties"]["budget_range"]["oneOf"]
    sizes = document["components"]["schemas"]["CompanySizeEnum"]["enum"]
    assert sizes == ["1-10", "11-50", "51-200", "201-1000", "1000+"]


def test_every_field_of_a_lightfield_event_is_documented(staff_client):
    document = _schema(staff_client)
    event = document["components"]["schemas"]["LightfieldEventRequest"]
    sent = fake_event(Faker(), random.Random(7), "lf-schema-1")
    assert set(sent) == set(event["properties"])
    for section in ("company", "contact", "source", "metadata"):
        documented = event["properties"][section]
        component = _component(document, documented.get("$ref") or documented["allOf"][0]["$ref"])
        assert set(sent[section]) <= set(component["properties"]), section
