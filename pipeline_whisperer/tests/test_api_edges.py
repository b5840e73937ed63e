"""The API's edges: every route answers with either trailing slash, other paths are problem+json
404s (under debug too), and the docs page sends a browser without a session to the login and back."""

from __future__ import annotations

import pytest
from django.urls import get_resolver

from pipeline_whisperer.tests.support import assert_problem, concrete_routes

pytestmark = pytest.mark.django_db

EVENT = {"lightfield_id": "lf-slash-1", "company": {"name": "Slash Ltd"}}


ROUTES = sorted(
    {path for path, pattern in concrete_routes(get_resolver()) if path.startswith("/api/")}
    - {"/api/"}  # the fallback's own route
)


def test_the_walk_finds_the_routes_of_the_api():
    assert {"/api/v1/leads", "/api/v1/leads/1", "/api/v1/experiments/1/variants/1/pause", "/api/docs/"} <= set(ROUTES)


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_asked_with_the_other_trailing_slash_is_redirected_to_it_with_308(route, anonymous_client):
    other = route.rstrip("/") if route.endswith("/") else route + "/"
    response = anonymous_client.get(other)
    assert response.status_code == 308, (other, response.content[:200])
    assert response["Location"] == route


def test_the_redirect_keeps_the_query_string(api_client):
    response = api_client.get("/api/v1/leads/", {"status": "scored", "ordering": "-score"})
    assert response["Location"] == "/api/v1/leads?status=scored&ordering=-score"


def test_a_post_with_a_trailing_slash_keeps_its_method_and_body_through_the_redirect(api_client):
    response = api_client.post("/api/v1/leads/ingest/", EVENT, format="json", follow=True)
    assert response.redirect_chain == [("/api/v1/leads/ingest", 308)]
    assert response.status_code == 202, response.content
    assert response.json()["items"][0]["lightfield_id"] == "lf-slash-1"


def test_a_list_asked_with_a_trailing_slash_answers_like_the_route(api_client):
    response = api_client.get("/api/v1/leads/", follow=True)
    assert response.status_code == 200
    assert response.json() == api_client.get("/api/v1/leads").json()


@pytest.mark.parametrize("path", ["/api/", "/api/v1/nothing-here/", "/api/v1/leads/1/nothing", "/api/v2/leads"])
def test_a_path_under_api_that_no_route_takes_is_a_problem_404(path, api_client):
    assert_problem(api_client.get(path), 404)
    assert_problem(api_client.post(path, {}, format="json"), 404)


# --- Under debug, errors under /api/ are still problem+json ------------------------------


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


@pytest.mark.usefixtures("debug")
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/leads/999999", "/api/nothing"])
def test_under_debug_a_404_under_api_is_a_problem_not_the_debug_page(path, api_client):
    assert_problem(api_client.get(path, HTTP_ACCEPT="text/html,*/*"), 404)


@pytest.mark.usefixtures("debug")
def test_under_debug_a_405_under_api_is_a_problem(api_client):
    body = assert_problem(api_client.delete("/api/v1/leads", HTTP_ACCEPT="text/html,*/*"), 405)
    assert body["type"].endswith("/method-not-allowed")


@pytest.mark.usefixtures("debug")
@pytest.mark.urls("pipeline_whisperer.tests.urls")
def test_under_debug_a_500_under_api_is_a_problem_without_the_traceback(api_client):
    api_client.raise_request_exception = False
    response = api_client.get("/api/v1/test/fail", HTTP_ACCEPT="text/html,*/*")
    assert_problem(response, 500)
    assert "Traceback" not in response.content.decode()


# --- /api/docs/ in a browser ----------------------------------------------------------------


def test_docs_without_a_session_redirect_to_the_admin_login_and_back(anonymous_client):
    response = anonymous_client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/docs/"


def test_signing_in_from_the_docs_redirect_lands_on_the_docs(client, admin_user):
    login = client.get("/api/docs/", follow=True)
    assert login.redirect_chain == [("/admin/login/?next=/api/docs/", 302)]
    signed_in = client.post(
        "/admin/login/?next=/api/docs/",
        {"username": admin_user.username, "password": "password", "next": "/api/docs/"},
        follow=True,
    )
    assert signed_in.redirect_chain == [("/api/docs/", 302)]
    assert signed_in.status_code == 200
    assert '<div id="swagger-ui">' in signed_in.content.decode()


def test_docs_with_a_wrong_key_are_still_401(anonymous_client):
    response = anonymous_client.get("/api/docs/", HTTP_X_API_KEY="AbCdEfGh.0123456789abcdefghijklmnopqrstuv")
    assert response.status_code == 401


def test_docs_for_a_user_who_is_not_staff_are_still_403(user_client):
    assert user_client.get("/api/docs/").status_code == 403
