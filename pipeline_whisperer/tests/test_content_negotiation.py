"""Content negotiation: what DRF itself would choose, with the usual JSON client answered at once."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

STATS = "/api/v1/leads/stats"


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_a_client_accepting_json_or_anything_gets_json(accept, api_client):
    response = api_client.get(STATS, **({"HTTP_ACCEPT": accept} if accept else {}))
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")


def test_a_browser_gets_the_browsable_api(staff_client):
    response = staff_client.get(STATS, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response["Content-Type"].startswith("text/html")


def test_the_format_override_is_still_honoured(staff_client):
    response = staff_client.get(STATS, {"format": "api"}, HTTP_ACCEPT="*/*")
    assert response["Content-Type"].startswith("text/html")


def test_json_with_parameters_is_negotiated_by_drf(api_client):
    response = api_client.get(STATS, HTTP_ACCEPT="application/json; indent=2")
    assert response["Content-Type"] == "application/json"


def test_an_accept_nothing_can_render_is_a_406(api_client):
    assert api_client.get(STATS, HTTP_ACCEPT="application/xml").status_code == 406
