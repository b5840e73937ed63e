"""/api/schema/ (OpenAPI 3) and /api/docs/ (Swagger UI): both need an API key or a staff session."""

from __future__ import annotations

import re

import pytest
import yaml

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


def test_docs_need_authentication(anonymous_client):
    response = anonymous_client.get("/api/docs/")
    assert response.status_code == 401


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
