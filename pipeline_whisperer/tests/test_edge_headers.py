"""Security headers, secure cookies, CORS and gzip on API, admin and docs responses."""

from __future__ import annotations

import gzip
import re

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from pipeline_whisperer.compression import GZipAbove1KBMiddleware

pytestmark = pytest.mark.django_db
ALLOWED_ORIGIN = "https://app.example.com"


@pytest.fixture
def staff_browser(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _assert_security_headers(response: HttpResponse) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    directives = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


def test_api_responses_carry_the_security_headers(read_client):
    response = read_client.get("/api/v1/leads")
    assert response.status_code == 200
    _assert_security_headers(response)


def test_api_error_responses_carry_the_security_headers(anonymous_client):
    response = anonymous_client.get("/api/v1/leads")
    assert response.status_code == 401
    _assert_security_headers(response)


def test_admin_pages_carry_the_security_headers(staff_browser):
    response = staff_browser.get("/admin/")
    assert response.status_code == 200
    _assert_security_headers(response)


def test_docs_page_carries_the_security_headers(staff_browser):
    response = staff_browser.get("/api/docs/")
    assert response.status_code == 200
    _assert_security_headers(response)


def test_https_responses_carry_hsts(read_client):
    response = read_client.get("/api/v1/leads", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def _referenced_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("path", ["/api/docs/", "/admin/", "/admin/leads/lead/", "/admin/auth/user/add/"])
def test_pages_reference_only_same_origin_resources(staff_browser, path):
    urls = _referenced_urls(staff_browser.get(path).content.decode())
    assert urls
    assert [url for url in urls if not url.startswith(("/", "#", "?")) or url.startswith("//")] == []


def test_docs_page_has_no_inline_script(staff_browser):
    html = staff_browser.get("/api/docs/").content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []


def test_session_and_csrf_cookies_are_secure_and_the_session_http_only(admin_user):
    client = Client()
    login_page = client.get("/admin/login/")
    assert login_page.cookies["csrftoken"]["secure"]
    signed_in = client.post("/admin/login/", {"username": "admin", "password": "password", "next": "/admin/"})
    assert signed_in.status_code == 302
    session = signed_in.cookies["sessionid"]
    assert session["secure"]
    assert session["httponly"]


# --- CORS -----------------------------------------------------------------------------------


@pytest.fixture
def cors_origin(settings) -> str:
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED_ORIGIN]
    return ALLOWED_ORIGIN


def test_configured_origin_gets_cors_headers_on_the_api(cors_origin, read_client):
    response = read_client.get("/api/v1/leads", HTTP_ORIGIN=cors_origin)
    assert response["Access-Control-Allow-Origin"] == cors_origin
    assert "X-RateLimit-Remaining" in response["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response


def test_other_origin_gets_no_cors_headers(cors_origin, read_client):
    response = read_client.get("/api/v1/leads", HTTP_ORIGIN="https://evil.example.net")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_no_origin_gets_cors_headers_when_none_is_configured(read_client):
    response = read_client.get("/api/v1/leads", HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


def test_paths_outside_the_api_get_no_cors_headers(cors_origin, staff_browser):
    response = staff_browser.get("/admin/", HTTP_ORIGIN=cors_origin)
    assert "Access-Control-Allow-Origin" not in response


def test_preflight_from_a_configured_origin_allows_the_api_key_header(cors_origin, client):
    response = client.options(
        "/api/v1/leads",
        HTTP_ORIGIN=cors_origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-api-key, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == cors_origin
    assert "x-api-key" in response["Access-Control-Allow-Headers"]


# --- gzip -----------------------------------------------------------------------------------


def _through_gzip(body: bytes) -> HttpResponse:
    middleware = GZipAbove1KBMiddleware(lambda request: HttpResponse(body))
    response = middleware(RequestFactory().get("/", HTTP_ACCEPT_ENCODING="gzip"))
    assert isinstance(response, HttpResponse)  # a sync middleware answers directly, not awaitably
    return response


def test_body_of_one_kilobyte_is_gzipped():
    response = _through_gzip(b"a" * 1024)
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == b"a" * 1024


def test_body_under_one_kilobyte_is_left_alone():
    response = _through_gzip(b"a" * 1023)
    assert not response.has_header("Content-Encoding")
    assert response.content == b"a" * 1023


def test_large_api_answer_is_gzipped_for_a_client_that_accepts_it(read_client):
    response = read_client.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content).startswith(b"{")


def test_small_api_answer_is_not_gzipped(anonymous_client):
    response = anonymous_client.get("/api/v1/leads", HTTP_ACCEPT_ENCODING="gzip")
    assert 200 < len(response.content) < 1024  # Django's own threshold is 200 bytes
    assert not response.has_header("Content-Encoding")
