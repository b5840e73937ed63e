"""/api/v1/leads: list, filters, search, ordering, detail, create, update, snooze, stats, lookup."""

from __future__ import annotations

import json
from base64 import urlsafe_b64encode
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads.models import Lead, Persona
from leads.tests.factories import LeadFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def _created(lead: Lead, ago: timedelta) -> Lead:
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - ago)
    lead.refresh_from_db()
    return lead


# --- List -------------------------------------------------------------------------------


def test_lead_list_is_an_empty_page_when_there_are_no_leads(api_client):
    response = api_client.get(LEADS)
    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_lead_list_shows_newest_leads_first(api_client):
    old = _created(LeadFactory(), timedelta(days=2))
    new = _created(LeadFactory(), timedelta(hours=1))
    middle = _created(LeadFactory(), timedelta(days=1))
    assert _ids(api_client.get(LEADS)) == [new.pk, middle.pk, old.pk]


def test_lead_list_rows_carry_the_summary_fields(api_client):
    lead = LeadFactory(company_name="Acme", status=Lead.Status.SCORED, score=0.75, persona=Persona.SMB)
    row = api_client.get(LEADS).json()["results"][0]
    assert row["id"] == lead.pk
    assert row["lightfield_id"] == lead.lightfield_id
    assert row["company_name"] == "Acme"
    assert row["status"] == "scored"
    assert row["score"] == 0.75
    assert row["persona"] == "smb"
    assert row["contact_email"] == lead.contact_email


def test_lead_list_rows_leave_out_the_raw_payload(api_client):
    LeadFactory(raw_payload={"secret": "x" * 100})
    row = api_client.get(LEADS).json()["results"][0]
    assert "raw_payload" not in row
    assert "scoring_reasons" not in row


def test_lead_list_pages_by_page_size_following_next_links(api_client):
    LeadFactory.create_batch(5)
    first = api_client.get(LEADS, {"page_size": 2}).json()
    assert (len(first["results"]), first["previous"]) == (2, None)
    second = api_client.get(first["next"]).json()
    assert len(second["results"]) == 2 and "page_size=2" in second["next"]
    assert second["previous"] is not None
    last = api_client.get(second["next"]).json()
    assert (len(last["results"]), last["next"]) == (1, None)


def test_lead_list_accepts_the_largest_page_size(api_client):
    LeadFactory.create_batch(3)
    assert len(_ids(api_client.get(LEADS, {"page_size": 200}))) == 3


def _cursor(token: object) -> str:
    return urlsafe_b64encode(json.dumps(token).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        _cursor("not a list"),
        _cursor([["created_at", "id"], ["not a time", 1], False]),
        _cursor([["created_at", "id"], ["2026-01-01T00:00:00+00:00", "one"], False]),
        _cursor([["score", "id"], [0.5, 1], False]),  # made for another ordering
    ],
)
def test_lead_list_refuses_a_cursor_it_did_not_make(cursor, api_client):
    LeadFactory()
    assert_problem(api_client.get(LEADS, {"cursor": cursor}), 400, errors=["cursor"])


@pytest.mark.parametrize("page_size", ["0", "201", "abc", "-1", "2.5", ""])
def test_lead_list_refuses_a_bad_page_size(page_size, api_client):
    body = assert_problem(api_client.get(LEADS, {"page_size": page_size}), 400, errors=["page_size"])
    assert "1 to 200" in body["errors"]["page_size"][0]


def test_lead_list_refuses_a_page_size_of_non_ascii_digits(api_client):
    # "²".isdigit() is True but int("²") fails: this must be a 400, not a 500.
    assert_problem(api_client.get(LEADS, {"page_size": "²"}), 400, errors=["page_size"])


@pytest.mark.parametrize("rows", [3, 30])
def test_lead_list_query_count_does_not_grow_with_rows(rows, api_client, django_assert_num_queries):
    LeadFactory.create_batch(rows)
    api_client.get(LEADS)  # the first call verifies the key and records its use; later ones do not
    # The page alone: a cursor page counts nothing, and the key is remembered.
    with django_assert_num_queries(1):
        response = api_client.get(LEADS)
    assert len(response.json()["results"]) == rows


# --- Filters ----------------------------------------------------------------------------


def test_the_browsable_lead_list_offers_every_filter_whatever_the_query_names(staff_client):
    page = staff_client.get(LEADS, {"status": "scored"}, HTTP_ACCEPT="text/html").content.decode()
    for name in ("status", "persona", "min_score", "max_score", "industry", "created_after", "created_before"):
        assert f'name="{name}"' in page


def test_a_filter_the_query_leaves_out_is_not_validated_but_two_asked_are_checked_together(api_client):
    assert api_client.get(LEADS, {"min_score": "0.5"}).status_code == 200
    assert_problem(api_client.get(LEADS, {"min_score": "0.9", "max_score": "0.1"}), 400, errors=["min_score"])


def test_status_filter_keeps_only_leads_in_that_status(api_client):
    scored = LeadFactory(status=Lead.Status.SCORED)
    LeadFactory(status=Lead.Status.RAW)
    assert _ids(api_client.get(LEADS, {"status": "scored"})) == [scored.pk]


def test_status_filter_repeated_keeps_leads_in_any_of_them(api_client):
    scored = LeadFactory(status=Lead.Status.SCORED)
    converted = LeadFactory(status=Lead.Status.CONVERTED)
    LeadFactory(status=Lead.Status.RAW)
    assert set(_ids(api_client.get(LEADS, {"status": ["scored", "converted"]}))) == {scored.pk, converted.pk}


def test_persona_filter_keeps_only_leads_of_that_persona(api_client):
    enterprise = LeadFactory(persona=Persona.ENTERPRISE)
    LeadFactory(persona=Persona.SMB)
    assert _ids(api_client.get(LEADS, {"persona": "enterprise"})) == [enterprise.pk]


def test_min_score_filter_keeps_leads_at_or_above_it(api_client):
    LeadFactory(score=0.3)
    exact = LeadFactory(score=0.5)
    high = LeadFactory(score=0.9)
    LeadFactory(score=None)
    assert set(_ids(api_client.get(LEADS, {"min_score": "0.5"}))) == {exact.pk, high.pk}


def test_max_score_filter_keeps_leads_at_or_below_it(api_client):
    low = LeadFactory(score=0.3)
    exact = LeadFactory(score=0.5)
    LeadFactory(score=0.9)
    LeadFactory(score=None)
    assert set(_ids(api_client.get(LEADS, {"max_score": "0.5"}))) == {low.pk, exact.pk}


def test_score_range_filter_keeps_leads_inside_it(api_client):
    LeadFactory(score=0.1)
    inside = LeadFactory(score=0.6)
    LeadFactory(score=0.95)
    assert _ids(api_client.get(LEADS, {"min_score": "0.5", "max_score": "0.9"})) == [inside.pk]


def test_industry_filter_matches_whole_name_ignoring_case(api_client):
    fintech = LeadFactory(company_industry="FinTech")
    LeadFactory(company_industry="FinTech Consulting")
    LeadFactory(company_industry="Healthcare")
    assert _ids(api_client.get(LEADS, {"industry": "fintech"})) == [fintech.pk]


def test_created_after_filter_keeps_leads_created_since(api_client):
    _created(LeadFactory(), timedelta(days=10))
    recent = _created(LeadFactory(), timedelta(days=1))
    since = (timezone.now() - timedelta(days=5)).isoformat()
    assert _ids(api_client.get(LEADS, {"created_after": since})) == [recent.pk]


def test_created_after_with_an_offset_postgresql_cannot_store_is_compared_in_utc(api_client):
    # ISO 8601 allows offsets up to 23:59; PostgreSQL refuses any beyond 15:59 (this was a 500).
    _created(LeadFactory(), timedelta(days=10))
    recent = _created(LeadFactory(), timedelta(days=1))
    since = (timezone.now() - timedelta(days=5)).astimezone(timezone.get_fixed_timezone(17 * 60 + 19))
    assert _ids(api_client.get(LEADS, {"created_after": since.isoformat()})) == [recent.pk]


def test_created_after_that_is_out_of_range_in_utc_is_refused_naming_it(api_client):
    assert_problem(api_client.get(LEADS, {"created_after": "0001-01-01T00:00:00+17:00"}), 400, ["created_after"])


def test_created_before_filter_keeps_leads_created_earlier(api_client):
    old = _created(LeadFactory(), timedelta(days=10))
    _created(LeadFactory(), timedelta(days=1))
    before = (timezone.now() - timedelta(days=5)).isoformat()
    assert _ids(api_client.get(LEADS, {"created_before": before})) == [old.pk]


def test_status_and_persona_filters_query_without_distinct(api_client):
    """Both filter the lead's own columns: DISTINCT over every column would only slow the list."""
    LeadFactory(status=Lead.Status.SCORED)
    with CaptureQueriesContext(connection) as captured:
        response = api_client.get(LEADS, {"status": ["scored", "raw"], "persona": "smb"})
    assert response.status_code == 200
    lead_queries = [query["sql"] for query in captured.captured_queries if '"leads_lead"' in query["sql"]]
    assert lead_queries
    assert not [sql for sql in lead_queries if "DISTINCT" in sql]


def test_filters_combine(api_client):
    match = LeadFactory(status=Lead.Status.SCORED, persona=Persona.SMB, score=0.8)
    LeadFactory(status=Lead.Status.SCORED, persona=Persona.SMB, score=0.2)
    LeadFactory(status=Lead.Status.SCORED, persona=Persona.ENTERPRISE, score=0.8)
    LeadFactory(status=Lead.Status.RAW, persona=Persona.SMB, score=0.8)
    response = api_client.get(LEADS, {"status": "scored", "persona": "smb", "min_score": "0.5"})
    assert _ids(response) == [match.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_score": "-0.1"}, "min_score"),
        ({"min_score": "1.5"}, "min_score"),
        ({"max_score": "-1"}, "max_score"),
        ({"max_score": "2"}, "max_score"),
        ({"min_score": "high"}, "min_score"),
        ({"status": "bogus"}, "status"),
        ({"status": ["scored", "bogus"]}, "status"),
        ({"persona": "martian"}, "persona"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
        ({"industry": "x" * 101}, "industry"),
    ],
)
def test_lead_list_refuses_a_bad_filter_value_naming_it(params, field, api_client):
    body = assert_problem(api_client.get(LEADS, params), 400, errors=[field])
    assert field in body["detail"]


def test_lead_list_accepts_min_score_equal_to_max_score(api_client):
    exact = LeadFactory(score=0.5)
    LeadFactory(score=0.6)
    assert _ids(api_client.get(LEADS, {"min_score": "0.5", "max_score": "0.5"})) == [exact.pk]


def test_lead_list_refuses_min_score_above_max_score(api_client):
    body = assert_problem(api_client.get(LEADS, {"min_score": "0.8", "max_score": "0.2"}), 400, errors=["min_score"])
    assert body["errors"]["min_score"] == ["min_score must not be greater than max_score."]


def test_lead_list_refuses_created_after_later_than_created_before(api_client):
    params = {"created_after": "2025-02-01T00:00:00Z", "created_before": "2025-01-01T00:00:00Z"}
    body = assert_problem(api_client.get(LEADS, params), 400, errors=["created_after"])
    assert body["errors"]["created_after"] == ["created_after must not be later than created_before."]


# --- Search and ordering ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "query"),
    [
        ("company_name", "Zebra Analytics", "zebra"),
        ("contact_name", "Grace Hopper", "hopper"),
        ("contact_email", "grace@navy.example", "navy.example"),
        ("lightfield_id", "lf-special-42", "special-42"),
    ],
)
def test_search_finds_leads_by_a_part_of_a_searchable_field(field, value, query, api_client):
    match = LeadFactory(**{field: value})
    LeadFactory(company_name="Other Co", contact_name="Someone Else")
    assert _ids(api_client.get(LEADS, {"search": query})) == [match.pk]


def test_search_with_no_match_is_an_empty_page(api_client):
    LeadFactory(company_name="Acme")
    assert _ids(api_client.get(LEADS, {"search": "nothing-like-this"})) == []


def test_search_does_not_look_inside_unsearchable_fields(api_client):
    LeadFactory(company_industry="Quantum")
    assert _ids(api_client.get(LEADS, {"search": "quantum"})) == []


def test_ordering_by_score_ascending(api_client):
    mid, low, high = LeadFactory(score=0.5), LeadFactory(score=0.1), LeadFactory(score=0.9)
    assert _ids(api_client.get(LEADS, {"ordering": "score"})) == [low.pk, mid.pk, high.pk]


def test_ordering_by_score_descending(api_client):
    mid, low, high = LeadFactory(score=0.5), LeadFactory(score=0.1), LeadFactory(score=0.9)
    assert _ids(api_client.get(LEADS, {"ordering": "-score"})) == [high.pk, mid.pk, low.pk]


def test_ordering_by_company_name_then_score(api_client):
    b = LeadFactory(company_name="Beta", score=0.2)
    a_low = LeadFactory(company_name="Alpha", score=0.1)
    a_high = LeadFactory(company_name="Alpha", score=0.7)
    response = api_client.get(LEADS, {"ordering": "company_name,-score"})
    assert _ids(response) == [a_high.pk, a_low.pk, b.pk]


@pytest.mark.parametrize("ordering", ["bogus", "-raw_payload", "score,contact_email", "id"])
def test_ordering_by_an_unknown_field_is_refused(ordering, api_client):
    body = assert_problem(api_client.get(LEADS, {"ordering": ordering}), 400, errors=["ordering"])
    assert "choose from" in body["errors"]["ordering"][0]


# --- Detail -----------------------------------------------------------------------------


def test_lead_detail_shows_the_full_lead(api_client):
    lead = LeadFactory(
        raw_payload={"lightfield_id": "lf-1", "extra": True},
        scoring_reasons=["budget 50k-100k"],
        tech_stack=["python"],
        status=Lead.Status.SCORED,
        score=0.66,
    )
    body = api_client.get(f"{LEADS}/{lead.pk}").json()
    assert body["id"] == lead.pk
    assert body["raw_payload"] == {"lightfield_id": "lf-1", "extra": True}
    assert body["scoring_reasons"] == ["budget 50k-100k"]
    assert body["tech_stack"] == ["python"]
    assert body["pain_points"] == ["low reply rates"]
    assert body["score"] == 0.66
    assert body["outreach_count"] == 0


@pytest.mark.parametrize("path", ["{LEADS}/{lead.pk}", "{LEADS}/lightfield/{lead.lightfield_id}"])
def test_lead_detail_answers_what_the_detail_serializer_describes(path, api_client):
    from rest_framework.renderers import JSONRenderer

    from leads.api.serializers import LeadDetailSerializer

    now = timezone.now()
    lead = LeadFactory(
        status=Lead.Status.CONTACTED, score=0.5, persona=Persona.ENTERPRISE, scored_at=now.replace(microsecond=0),
        contacted_at=now, snoozed_until=now + timedelta(days=2), raw_payload={"nested": {"a": [1, 2.5, None]}},
        company_size="", budget_range="",
    )  # fmt: skip
    lead.refresh_from_db()
    body = api_client.get(path.format(LEADS=LEADS, lead=lead)).json()
    assert body == json.loads(JSONRenderer().render(LeadDetailSerializer(lead).data))
    assert body["scored_at"].endswith("Z") and body["contacted_at"].endswith("Z")


@pytest.mark.parametrize("lead_id", ["999999", "abc"])
def test_lead_detail_of_an_unknown_lead_is_404(lead_id, api_client):
    assert_problem(api_client.get(f"{LEADS}/{lead_id}"), 404)


# --- Create -----------------------------------------------------------------------------


def test_create_lead_stores_a_raw_lead(api_client):
    payload = {
        "lightfield_id": "lf-abc.1:2",
        "company_name": "Acme",
        "company_size": "201-1000",
        "contact_email": "ceo@acme.example",
        "tech_stack": ["django", "postgres"],
        "budget_range": "100k-500k",
    }
    response = api_client.post(LEADS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    lead = Lead.objects.get(lightfield_id="lf-abc.1:2")
    assert body["id"] == lead.pk
    assert body["status"] == "raw"
    assert body["score"] is None
    assert lead.company_size == "201-1000"
    assert lead.tech_stack == ["django", "postgres"]
    assert lead.budget_range == "100k-500k"


def test_create_lead_with_an_existing_lightfield_id_is_409(api_client):
    LeadFactory(lightfield_id="lf-taken", company_name="First")
    response = api_client.post(LEADS, {"lightfield_id": "lf-taken", "company_name": "Second"}, format="json")
    body = assert_problem(response, 409)
    assert "lf-taken" in body["detail"]
    assert body["lightfield_id"] == "lf-taken"
    assert Lead.objects.get(lightfield_id="lf-taken").company_name == "First"


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, ["lightfield_id", "company_name"]),
        ({"lightfield_id": "lf-1"}, ["company_name"]),
        ({"lightfield_id": "lf-1", "company_name": ""}, ["company_name"]),
        ({"lightfield_id": "has space", "company_name": "Acme"}, ["lightfield_id"]),
        ({"lightfield_id": "x" * 65, "company_name": "Acme"}, ["lightfield_id"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "company_size": "huge"}, ["company_size"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "budget_range": "lots"}, ["budget_range"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "contact_email": "not-an-email"}, ["contact_email"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "contact_email": "Friend <x@a.example>"}, ["contact_email"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "contact_email": "x@a.example\nBcc: y"}, ["contact_email"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "contact_email": "a,b@a.example"}, ["contact_email"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "contact_email": "x@acme.test"}, ["contact_email"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "tech_stack": "python"}, ["tech_stack"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "pain_points": ["x"] * 51}, ["pain_points"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "pain_points": ["x" * 201]}, ["pain_points"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "time_zone": "Europe/Atlantis"}, ["time_zone"]),
        ({"lightfield_id": "lf-1", "company_name": "Acme", "time_zone": "../../etc/passwd"}, ["time_zone"]),
    ],
)
def test_create_lead_refuses_bad_fields_naming_them(payload, fields, api_client):
    assert_problem(api_client.post(LEADS, payload, format="json"), 400, errors=fields)
    assert not Lead.objects.exists()


def test_create_lead_stores_the_address_in_its_normalised_form_as_ingest_does(api_client):
    payload = {"lightfield_id": "lf-case", "company_name": "Acme", "contact_email": "Dana@ACME-One.Example"}
    assert api_client.post(LEADS, payload, format="json").status_code == 201
    assert Lead.objects.get().contact_email == "Dana@acme-one.example"


def test_create_lead_stores_its_time_zone(api_client):
    payload = {"lightfield_id": "lf-zone", "company_name": "Acme", "time_zone": "Asia/Tokyo"}
    assert api_client.post(LEADS, payload, format="json").status_code == 201
    assert Lead.objects.get().time_zone == "Asia/Tokyo"


def test_create_lead_makes_the_fields_that_reach_mail_headers_one_line_as_ingest_does(api_client):
    payload = {
        "lightfield_id": "lf-lines",
        "company_name": "Acme\r\nBcc: x@evil.example",
        "contact_name": "Grace\nHopper",
        "company_description": "One\nTwo",
    }
    assert api_client.post(LEADS, payload, format="json").status_code == 201
    lead = Lead.objects.get()
    assert (lead.company_name, lead.contact_name) == ("Acme Bcc: x@evil.example", "Grace Hopper")
    assert lead.company_description == "One\nTwo"


def test_create_lead_refuses_a_json_array_body(api_client):
    assert_problem(api_client.post(LEADS, [1, 2], format="json"), 400, errors=["non_field_errors"])


def test_create_lead_ignores_a_status_in_the_body(api_client):
    response = api_client.post(
        LEADS, {"lightfield_id": "lf-1", "company_name": "Acme", "status": "converted", "score": 1}, format="json"
    )
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert (lead.status, lead.score) == (Lead.Status.RAW, None)


# --- Update -----------------------------------------------------------------------------


def test_patch_lead_changes_only_the_given_fields(api_client):
    lead = LeadFactory(contact_title="Engineer", company_name="Acme")
    response = api_client.patch(f"{LEADS}/{lead.pk}", {"contact_title": "CTO"}, format="json")
    assert response.status_code == 200
    assert response.json()["contact_title"] == "CTO"
    lead.refresh_from_db()
    assert (lead.contact_title, lead.company_name) == ("CTO", "Acme")


def test_patch_lead_cannot_change_its_status_or_score(api_client):
    lead = LeadFactory(status=Lead.Status.SCORED, score=0.4)
    response = api_client.patch(f"{LEADS}/{lead.pk}", {"status": "converted", "score": 1.0}, format="json")
    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.status, lead.score) == (Lead.Status.SCORED, 0.4)


def test_patch_lead_refuses_a_blank_company_name(api_client):
    lead = LeadFactory(company_name="Acme")
    response = api_client.patch(f"{LEADS}/{lead.pk}", {"company_name": ""}, format="json")
    assert_problem(response, 400, errors=["company_name"])
    lead.refresh_from_db()
    assert lead.company_name == "Acme"


def test_patch_unknown_lead_is_404(api_client):
    assert_problem(api_client.patch(f"{LEADS}/999999", {"contact_title": "CTO"}, format="json"), 404)


def test_put_on_a_lead_is_not_allowed(api_client):
    lead = LeadFactory()
    response = api_client.put(f"{LEADS}/{lead.pk}", {"company_name": "X"}, format="json")
    assert_problem(response, 405)
    assert "PATCH" in response["Allow"]


def test_delete_on_a_lead_is_not_allowed(api_client):
    lead = LeadFactory()
    assert_problem(api_client.delete(f"{LEADS}/{lead.pk}"), 405)
    assert Lead.objects.filter(pk=lead.pk).exists()


# --- Snooze and unsnooze ----------------------------------------------------------------


def test_snooze_without_an_end_holds_the_lead_until_unsnoozed(api_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    response = api_client.post(f"{LEADS}/{lead.pk}/snooze", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "snoozed"
    assert response.json()["snoozed_until"] is None
    lead.refresh_from_db()
    assert (lead.status, lead.status_before_snooze) == (Lead.Status.SNOOZED, Lead.Status.SCORED)


def test_snooze_until_a_time_records_that_time(api_client):
    lead = LeadFactory(status=Lead.Status.CONTACTED)
    until = timezone.now() + timedelta(days=3)
    response = api_client.post(f"{LEADS}/{lead.pk}/snooze", {"until": until.isoformat()}, format="json")
    assert response.status_code == 200
    assert parse_datetime(response.json()["snoozed_until"]) == until
    lead.refresh_from_db()
    assert lead.snoozed_until == until


def test_snooze_with_an_end_in_the_past_is_400(api_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    until = (timezone.now() - timedelta(hours=1)).isoformat()
    body = assert_problem(api_client.post(f"{LEADS}/{lead.pk}/snooze", {"until": until}, format="json"), 400)
    assert body["errors"] == {"until": ["Must be in the future."]}
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SCORED


def test_snooze_with_an_unreadable_end_is_400(api_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    response = api_client.post(f"{LEADS}/{lead.pk}/snooze", {"until": "next tuesday"}, format="json")
    assert_problem(response, 400, errors=["until"])


def test_snoozing_a_converted_lead_is_409(api_client):
    lead = LeadFactory(status=Lead.Status.CONVERTED)
    body = assert_problem(api_client.post(f"{LEADS}/{lead.pk}/snooze", {}, format="json"), 409)
    assert "converted" in body["detail"]
    assert body["lead_status"] == "converted"
    lead.refresh_from_db()
    assert lead.status == Lead.Status.CONVERTED


def test_snoozing_a_snoozed_lead_is_409(api_client):
    lead = LeadFactory(status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.SCORED)
    assert_problem(api_client.post(f"{LEADS}/{lead.pk}/snooze", {}, format="json"), 409)
    lead.refresh_from_db()
    assert lead.status_before_snooze == Lead.Status.SCORED


def test_snoozing_an_unknown_lead_is_404(api_client):
    assert_problem(api_client.post(f"{LEADS}/999999/snooze", {}, format="json"), 404)


def test_read_only_key_cannot_snooze_a_lead(read_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    assert_problem(read_client.post(f"{LEADS}/{lead.pk}/snooze", {}, format="json"), 403)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SCORED


def test_unsnooze_returns_the_lead_to_its_status_before_the_snooze(api_client):
    lead = LeadFactory(status=Lead.Status.RESPONDED)
    api_client.post(f"{LEADS}/{lead.pk}/snooze", {"until": (timezone.now() + timedelta(days=1)).isoformat()})
    response = api_client.post(f"{LEADS}/{lead.pk}/unsnooze")
    assert response.status_code == 200
    assert response.json()["status"] == "responded"
    assert response.json()["snoozed_until"] is None
    lead.refresh_from_db()
    assert (lead.status, lead.status_before_snooze, lead.snoozed_until) == (Lead.Status.RESPONDED, "", None)


def test_unsnoozing_a_lead_that_is_not_snoozed_is_409(api_client):
    lead = LeadFactory(status=Lead.Status.SCORED)
    body = assert_problem(api_client.post(f"{LEADS}/{lead.pk}/unsnooze"), 409)
    assert "not snoozed" in body["detail"]
    assert body["lead_status"] == "scored"


def test_read_only_key_cannot_unsnooze_a_lead(read_client):
    lead = LeadFactory(status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.SCORED)
    assert_problem(read_client.post(f"{LEADS}/{lead.pk}/unsnooze"), 403)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SNOOZED


# --- Stats ------------------------------------------------------------------------------


def test_stats_of_no_leads_are_zero_with_no_rates(api_client):
    body = api_client.get(f"{LEADS}/stats").json()
    assert body["total"] == 0
    assert body["average_score"] is None
    assert body["conversion_rate"] is None
    assert set(body["by_status"]) == set(Lead.Status.values)
    assert set(body["by_status"].values()) == {0}
    assert set(body["by_persona"]) == set(Persona.values)


def test_stats_count_leads_by_status_and_persona(api_client):
    now = timezone.now()
    LeadFactory(status=Lead.Status.SCORED, persona=Persona.SMB, score=0.2)
    LeadFactory(status=Lead.Status.CONTACTED, persona=Persona.SMB, score=0.6, contacted_at=now)
    LeadFactory(status=Lead.Status.CONVERTED, persona=Persona.ENTERPRISE, score=1.0, contacted_at=now, converted_at=now)
    LeadFactory(status=Lead.Status.CONTACTED, persona=Persona.ENTERPRISE, score=0.8, contacted_at=now)
    body = api_client.get(f"{LEADS}/stats").json()
    assert body["total"] == 4
    assert body["by_status"]["scored"] == 1
    assert body["by_status"]["contacted"] == 2
    assert body["by_status"]["converted"] == 1
    assert body["by_status"]["raw"] == 0
    assert body["by_persona"]["smb"] == 2
    assert body["by_persona"]["enterprise"] == 2
    assert body["average_score"] == pytest.approx(0.65)
    assert body["contacted"] == 3
    assert body["converted"] == 1
    assert body["conversion_rate"] == pytest.approx(0.3333)


def test_stats_ignore_list_filters(api_client):
    LeadFactory(status=Lead.Status.SCORED)
    LeadFactory(status=Lead.Status.RAW)
    body = api_client.get(f"{LEADS}/stats", {"status": "scored", "ordering": "bogus"}).json()
    assert body["total"] == 2


# --- Lookup by lightfield_id ------------------------------------------------------------


def test_lookup_by_lightfield_id_finds_the_lead(api_client):
    lead = LeadFactory(lightfield_id="LF_01.a:b-c")
    LeadFactory()
    response = api_client.get(f"{LEADS}/lightfield/LF_01.a:b-c")
    assert response.status_code == 200
    assert response.json()["id"] == lead.pk
    assert response.json()["raw_payload"] == {}


def test_lookup_by_an_unknown_lightfield_id_is_404(api_client):
    LeadFactory(lightfield_id="lf-1")
    assert_problem(api_client.get(f"{LEADS}/lightfield/lf-2"), 404)


def test_lookup_is_exact_not_a_prefix_match(api_client):
    LeadFactory(lightfield_id="lf-100")
    assert_problem(api_client.get(f"{LEADS}/lightfield/lf-10"), 404)


@pytest.mark.parametrize("lightfield_id", ["has%20space", "x" * 65, "a%2Fb"])
def test_lookup_by_a_malformed_lightfield_id_is_404(lightfield_id, api_client):
    assert_problem(api_client.get(f"{LEADS}/lightfield/{lightfield_id}"), 404)
