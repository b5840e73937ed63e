import pytest

pytestmark = pytest.mark.django_db


def test_lead_list_answers_with_a_page(api_client):
    response = api_client.get("/api/v1/leads")
    assert response.status_code == 200
    assert response.json()["results"] == []
