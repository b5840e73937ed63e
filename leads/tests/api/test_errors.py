"""How the API answers requests it cannot serve: every error is RFC 9457 problem+json."""

from __future__ import annotations

import json

import pytest

from leads.models import Lead
from leads.tests.api.support import BATCHES, WITH_BODY, WRITES, Endpoint
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

each_body_endpoint = pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
each_write = pytest.mark.parametrize("endpoint", WRITES, ids=str)


# --- Bodies -----------------------------------------------------------------------------


@each_body_endpoint
def test_malformed_json_body_is_400(endpoint: Endpoint, api_client, world):
    response = endpoint.call(
        api_client, world.ids(), data='{"name": "unfinished', format=None, content_type="application/json"
    )
    body = assert_problem(response, 400)
    assert "JSON parse error" in body["detail"]


@each_body_endpoint
def test_json_body_that_is_not_an_object_is_400(endpoint: Endpoint, api_client, world):
    response = endpoint.call(api_client, world.ids(), data="[1, 2]", format=None, content_type="application/json")
    # Batch endpoints take a list and report each bad item by its index.
    assert_problem(response, 400, ["0", "1"] if endpoint in BATCHES else ["non_field_errors"])


@each_body_endpoint
def test_json_body_nested_too_deeply_to_parse_is_400(endpoint: Endpoint, api_client, world):
    response = endpoint.call(api_client, world.ids(), data="[" * 100_000, format=None, content_type="application/json")
    body = assert_problem(response, 400)
    assert body["detail"] == "JSON parse error - the body is nested too deeply."


@each_body_endpoint
def test_json_body_with_nan_is_400(endpoint: Endpoint, api_client, world):
    response = endpoint.call(api_client, world.ids(), data='{"x": NaN}', format=None, content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", "name=x"),
        ("application/x-www-form-urlencoded", "name=x&subject=y"),
        ("application/xml", "<lead/>"),
    ],
)
@each_body_endpoint
def test_body_of_an_unsupported_content_type_is_415(endpoint: Endpoint, content_type, data, api_client, world):
    response = endpoint.call(api_client, world.ids(), data=data, format=None, content_type=content_type)
    body = assert_problem(response, 415)
    assert content_type in body["detail"]


def test_multipart_body_is_415(api_client):
    response = api_client.post("/api/v1/leads", {"lightfield_id": "lf-1", "company_name": "Acme"}, format="multipart")
    assert_problem(response, 415)
    assert not Lead.objects.exists()


@each_write
def test_body_larger_than_the_upload_limit_is_413(endpoint: Endpoint, api_client, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = json.dumps({"company_name": "x" * 2000})
    response = endpoint.call(api_client, world.ids(), data=data, format=None, content_type="application/json")
    body = assert_problem(response, 413)
    assert body["detail"] == f"The request body is {len(data)} bytes; the limit is 1024."


def test_oversized_body_creates_nothing(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = {"lightfield_id": "lf-big", "company_name": "Acme", "company_description": "x" * 2000}
    assert_problem(api_client.post("/api/v1/leads", payload, format="json"), 413)
    assert not Lead.objects.exists()


def test_body_exactly_at_the_upload_limit_is_accepted(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = {"lightfield_id": "lf-edge", "company_name": "Acme", "company_description": ""}
    payload["company_description"] = "x" * (1024 - len(json.dumps(payload)))
    data = json.dumps(payload)
    assert len(data) == 1024
    response = api_client.post("/api/v1/leads", data, content_type="application/json")
    assert response.status_code == 201, response.content


def test_oversized_body_is_refused_before_authentication(anonymous_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = anonymous_client.post("/api/v1/leads", "x" * 2000, content_type="application/json")
    assert_problem(response, 413)


def test_content_length_that_is_not_a_number_is_400(api_client):
    response = api_client.post("/api/v1/leads", "{}", content_type="application/json", CONTENT_LENGTH="lots")
    body = assert_problem(response, 400)
    assert body["detail"] == "Content-Length is not a number."


# --- Routes and methods -----------------------------------------------------------------


# /api/v1/leads/ is no longer one: a trailing slash is redirected (pipeline_whisperer/tests/test_api_edges.py).
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/none/", "/api/v2/leads", "/api/v1/leads/1/delete"])
def test_unknown_api_address_is_a_404_problem(path, api_client):
    body = assert_problem(api_client.get(path), 404)
    assert body["type"].endswith("/not-found")


def test_unknown_api_address_is_a_problem_even_for_a_browser(api_client):
    response = api_client.get("/api/v1/nothing-here", HTTP_ACCEPT="text/html")
    assert_problem(response, 404)


def test_unknown_page_outside_the_api_is_html_for_a_browser(anonymous_client):
    response = anonymous_client.get("/nothing-here", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_method_not_allowed_is_a_405_problem_naming_the_allowed_methods(api_client):
    response = api_client.delete("/api/v1/leads")
    body = assert_problem(response, 405)
    assert body["detail"] == 'Method "DELETE" not allowed.'
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "HEAD", "OPTIONS"}


def test_problem_type_title_and_status_agree_for_a_conflict(api_client):
    lead = Lead.objects.create(lightfield_id="lf-1", company_name="Acme", status=Lead.Status.CONVERTED)
    body = assert_problem(api_client.post(f"/api/v1/leads/{lead.pk}/snooze", {}, format="json"), 409)
    assert body["type"] == "https://pipeline-whisperer.dev/problems/conflict"
    assert body["title"] == "Conflict"


def test_validation_problem_sums_up_every_field_in_detail(api_client):
    body = assert_problem(api_client.post("/api/v1/leads", {}, format="json"), 400, ["lightfield_id", "company_name"])
    assert body["type"] == "https://pipeline-whisperer.dev/problems/invalid"
    assert body["detail"].startswith("The request is not valid: ")
    assert "lightfield_id: This field is required." in body["detail"]
    assert "company_name: This field is required." in body["detail"]
    assert body["errors"] == {
        "lightfield_id": ["This field is required."],
        "company_name": ["This field is required."],
    }


def test_authentication_problem_names_its_type(anonymous_client):
    body = assert_problem(anonymous_client.get("/api/v1/leads"), 401)
    assert body["type"] == "https://pipeline-whisperer.dev/problems/not-authenticated"
    assert body["title"] == "Authentication required"


def test_permission_problem_names_its_type(read_client):
    body = assert_problem(read_client.post("/api/v1/leads", {}, format="json"), 403)
    assert body["type"] == "https://pipeline-whisperer.dev/problems/permission-denied"
