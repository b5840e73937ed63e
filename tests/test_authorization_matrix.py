"""The authorisation matrix of the whole HTTP surface, beyond the API's own
(leads/tests/api/test_permissions.py): probes, metrics, schema, docs and the staff console, each
against every kind of caller; and a sweep of every route proving that nothing answers an
anonymous caller except the probes and the admin's login page.
"""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from rest_framework.test import APIClient

from pipeline_whisperer.models import ApiKey
from pipeline_whisperer.tests.support import concrete_routes

pytestmark = pytest.mark.django_db

CALLERS = ("anonymous", "revoked key", "read key", "write key", "staff session", "non-staff session")
LOGIN = 302  # the admin sends whoever is not staff to its login page
# Expected status per caller, in the order of CALLERS. /metrics is asked from outside
# METRICS_ALLOWED_NETWORKS without its token: API keys and sessions do not open it.
MATRIX = {
    "/health/liveness": (200, 200, 200, 200, 200, 200),
    "/health/readiness": (200, 200, 200, 200, 200, 200),
    "/health/startup": (200, 200, 200, 200, 200, 200),
    "/health/detailed": (401, 401, 200, 200, 200, 403),
    "/metrics": (401, 401, 401, 401, 401, 401),
    "/api/schema/": (401, 401, 200, 200, 200, 403),
    "/api/docs/": (LOGIN, 401, 200, 200, 200, 403),  # a browser without a session signs in first
    "/admin/": (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN),
    "/admin/console/": (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN),
    "/admin/console/panels/": (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN),
    "/admin/leads/lead/": (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN),
    "/admin/lockouts/": (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN),
}
# Routes an anonymous caller may reach: the three probes (kubelets carry no credentials; each
# says only up or down) and the pages that sign staff in.
OPEN_TO_ANONYMOUS = {"/health/liveness", "/health/readiness", "/health/startup", "/admin/login/"}


def _caller(name: str, django_user_model: type, admin_user: object) -> APIClient:
    client = APIClient()
    if name.endswith("key"):
        api_key, key = ApiKey.objects.create_key(name=name, scope=ApiKey.Scope.READ)
        if name == "write key":
            api_key.scope = ApiKey.Scope.WRITE
        api_key.revoked = name == "revoked key"
        api_key.save()
        client.credentials(HTTP_X_API_KEY=key)
    elif name == "staff session":
        client.force_login(admin_user)
    elif name == "non-staff session":
        client.force_login(django_user_model.objects.create_user(username="plain", password="not-staff-0"))
    return client


@pytest.fixture(autouse=True)
def _metrics_only_from_elsewhere(settings: object) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["192.0.2.0/24"]  # type: ignore[attr-defined]
    settings.METRICS_TOKEN = "metrics-token-for-the-matrix"  # type: ignore[attr-defined]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", MATRIX)
def test_each_caller_gets_the_documented_status(path, caller, django_user_model, admin_user):
    response = _caller(caller, django_user_model, admin_user).get(path)
    expected = MATRIX[path][CALLERS.index(caller)]
    assert response.status_code == expected, (path, caller, response.content[:300])
    if expected == LOGIN:
        assert response["Location"].startswith("/admin/login/")


def test_nothing_answers_an_anonymous_caller_but_the_probes_and_the_login_page(client):
    answered = {}
    for path in sorted({path for path, _ in concrete_routes(get_resolver())}):
        for method in ("get", "post"):
            status = getattr(client, method)(path).status_code
            if status < 300 and path not in OPEN_TO_ANONYMOUS:
                answered[f"{method.upper()} {path}"] = status
    assert answered == {}
