"""/api/v1/suppressions: list with filters, add one or a batch, remove; erased entries stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Suppression
from leads.services.suppression import suppression_add, suppression_add_hashed, value_hash
from leads.tests.api.support import query_count
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

URL = "/api/v1/suppressions"
YESTERDAY = (timezone.now() - timedelta(days=1)).isoformat()


def _values(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["value"] for row in response.json()["results"]]


def test_creating_one_entry_normalises_it_and_records_the_key_as_its_source(api_client):
    response = api_client.post(URL, {"value": "DANA@Acme-One.Example", "note": "asked by phone"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in ("kind", "value", "reason", "note")} == {
        "kind": "address",
        "value": "dana@acme-one.example",
        "reason": "staff",
        "note": "asked by phone",
    }
    assert body["source"] == "api:test write"
    assert "value_hash" not in body


def test_creating_an_entry_that_exists_answers_200_with_the_entry_as_it_was(api_client):
    first = api_client.post(URL, {"value": "dana@acme-one.example", "reason": "unsubscribed"}, format="json")
    again = api_client.post(URL, {"value": "Dana@ACME-ONE.example", "reason": "complaint"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["reason"] == "unsubscribed"
    assert Suppression.objects.count() == 1


def test_creating_a_domain_entry_in_unicode(api_client):
    response = api_client.post(URL, {"value": "BÜCHER.example", "kind": "domain"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["kind"], response.json()["value"]) == ("domain", "bücher.example")


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"value": "not-an-address", "kind": "address"}, "value"),
        ({"value": "a@b"}, "value"),
        ({"value": "ada@acme.example\r\nBcc: all@acme.example"}, "value"),
        ({"value": "ada@acme.example", "reason": "erased"}, "reason"),
        ({"value": "ada@acme.example", "kind": "mailbox"}, "kind"),
        ({}, "value"),
    ],
)
def test_creating_a_malformed_entry_is_a_400_naming_the_field(api_client, entry, field):
    body = assert_problem(api_client.post(URL, entry, format="json"), 400, [field])
    assert body["detail"].startswith(f"The request is not valid: {field}: ")
    assert not Suppression.objects.exists()


def test_a_batch_keeps_the_good_entries_and_reports_the_broken_ones_by_index(api_client):
    entries = [
        {"value": "ada@acme.example"},
        {"value": "a@b"},
        {"value": "initech.example", "reason": "hard_bounce"},
        "not an object",
        {"value": "ADA@acme.example"},
    ]
    response = api_client.post(URL, {"entries": entries}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (3, 2)
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert [item["created"] for item in items] == [True, None, True, None, False]
    assert items[1]["error"].startswith("value: 'a@b' is not a valid address")
    assert items[3]["error"] == "non_field_errors: An entry must be an object with a value."
    assert items[4]["id"] == items[0]["id"]
    assert sorted(Suppression.objects.values_list("value", flat=True)) == ["ada@acme.example", "initech.example"]


def test_a_batch_with_no_valid_entry_is_a_400_by_index(api_client):
    response = api_client.post(URL, {"entries": [{"value": "a@b"}, {"value": "x\n@y.example"}]}, format="json")
    assert_problem(response, 400, ["0", "1"])
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("entries", [[], "ada@acme.example", {"value": "ada@acme.example"}])
def test_a_batch_must_be_a_non_empty_list(api_client, entries):
    body = assert_problem(api_client.post(URL, {"entries": entries}, format="json"), 400)
    assert body["detail"] == "entries must be a non-empty list of entries."


def test_a_batch_over_the_limit_is_413(api_client, settings):
    settings.INGEST_MAX_BATCH = 2
    entries = [{"value": f"p{n}@acme.example"} for n in range(3)]
    assert_problem(api_client.post(URL, {"entries": entries}, format="json"), 413)
    assert not Suppression.objects.exists()


@pytest.fixture
def listed() -> dict[str, Suppression]:
    entries = {
        "ada": suppression_add(kind="address", value="ada@acme.example", reason="unsubscribed", source="one-click")[0],
        "acme": suppression_add(kind="domain", value="acme.example", reason="staff", source="admin:kim")[0],
        "bob": suppression_add(kind="address", value="bob@globex.example", reason="hard_bounce", source="feedback")[0],
        "gone": suppression_add_hashed(kind="address", digest=value_hash("gone@acme.example"), reason="erased"),
    }
    Suppression.objects.filter(pk=entries["bob"].pk).update(created_at=timezone.now() - timedelta(days=10))
    return entries


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "domain"}, ["acme.example"]),
        ({"reason": ["unsubscribed", "hard_bounce"]}, ["ada@acme.example", "bob@globex.example"]),
        ({"source": "feedback"}, ["bob@globex.example"]),
        ({"value": "ADA@Acme.Example"}, ["ada@acme.example"]),
        ({"value": "ACME.example"}, ["acme.example"]),
        ({"value": "gone@acme.example"}, [""]),  # an erased person is still found by their address
        ({"search": "acme"}, ["ada@acme.example", "acme.example"]),
        ({"created_before": YESTERDAY}, ["bob@globex.example"]),
        ({"created_after": YESTERDAY, "kind": "address"}, ["", "ada@acme.example"]),
    ],
)
def test_list_filters(read_client, listed, query, expected):
    assert sorted(_values(read_client.get(URL, query))) == sorted(expected)


@pytest.mark.parametrize(
    ("query", "field"),
    [({"value": "neither"}, "value"), ({"kind": "person"}, "kind"), ({"created_after": "yesterday"}, "created_after")],
)
def test_a_bad_filter_is_a_400_naming_it(read_client, query, field):
    assert_problem(read_client.get(URL, query), 400, [field])


def test_list_is_paginated_newest_first_in_a_constant_number_of_queries(read_client, listed):
    body = read_client.get(URL, {"page_size": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    for n in range(20):
        suppression_add(kind="address", value=f"p{n}@initech.example", reason="staff")
    few = query_count(lambda: read_client.get(URL, {"page_size": 2}))
    many = query_count(lambda: read_client.get(URL, {"page_size": 20}))
    assert few == many


def test_deleting_an_entry_lifts_it(api_client, listed):
    response = api_client.delete(f"{URL}/{listed['ada'].pk}")
    assert response.status_code == 204
    assert not Suppression.objects.filter(pk=listed["ada"].pk).exists()


def test_deleting_an_erased_entry_is_a_409_and_it_stays(api_client, listed):
    body = assert_problem(api_client.delete(f"{URL}/{listed['gone'].pk}"), 409)
    assert "never mailed again" in body["detail"]
    assert Suppression.objects.filter(pk=listed["gone"].pk).exists()


def test_a_read_key_can_list_but_not_add_or_delete(read_client, listed):
    assert read_client.get(URL).status_code == 200
    assert_problem(read_client.post(URL, {"value": "eve@acme.example"}, format="json"), 403)
    assert_problem(read_client.delete(f"{URL}/{listed['ada'].pk}"), 403)
    assert Suppression.objects.count() == 4


def test_no_key_gets_401(anonymous_client, listed):
    assert_problem(anonymous_client.get(URL), 401)
    assert_problem(anonymous_client.post(URL, {"value": "eve@acme.example"}, format="json"), 401)
    assert Suppression.objects.count() == 4


def test_a_staff_session_records_the_username_as_source(staff_client):
    response = staff_client.post(URL, {"entries": [{"value": "eve@acme.example"}]}, format="json")
    assert response.status_code == 201, response.content
    assert Suppression.objects.get().source == "api:admin"


def test_the_schema_documents_the_suppression_filters(staff_client):
    document = staff_client.get("/api/schema/", {"format": "json"}).json()
    parameters = {p["name"] for p in document["paths"]["/api/v1/suppressions"]["get"]["parameters"]}
    assert {"kind", "reason", "source", "value", "search", "created_after", "created_before", "page"} <= parameters
    assert "delete" in document["paths"]["/api/v1/suppressions/{id}"]
