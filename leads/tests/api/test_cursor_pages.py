"""Cursor pages of the large collections (leads, outreach, engagements): no count, and following
`next` visits every row exactly once, whatever arrives meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.models import Lead
from leads.tests.factories import EngagementEventFactory, LeadFactory, OutreachFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def _walk(client, url: str, params: dict, between: Callable[[], object] = lambda: None) -> list[int]:
    """The ids of every page, following `next` from the first; `between` runs before each page."""
    ids: list[int] = []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [row["id"] for row in body["results"]]
        if body["next"] is None:
            return ids
        between()
        response = client.get(body["next"])


@pytest.mark.parametrize(
    ("url", "make"),
    [
        (LEADS, lambda: LeadFactory.create_batch(3)),
        ("/api/v1/outreach", lambda: OutreachFactory.create_batch(3)),
        ("/api/v1/engagements", lambda: EngagementEventFactory.create_batch(3)),
    ],
)
def test_a_page_and_the_next_count_nothing(url, make, api_client):
    make()
    first = api_client.get(url, {"page_size": 2}).json()
    with CaptureQueriesContext(connection) as captured:
        assert len(api_client.get(first["next"]).json()["results"]) == 1
    assert not [query["sql"] for query in captured.captured_queries if "COUNT(" in query["sql"].upper()]


def test_following_next_visits_every_lead_once_while_leads_arrive(api_client):
    same_time = timezone.now() - timedelta(hours=1)
    leads = LeadFactory.create_batch(8)
    # Ties on the ordering field: the id breaks them, so none is skipped or repeated at a page edge.
    Lead.objects.filter(pk__in=[lead.pk for lead in leads[:5]]).update(created_at=same_time)
    ids = _walk(api_client, LEADS, {"page_size": 3}, between=LeadFactory)
    assert sorted(ids) == sorted(lead.pk for lead in leads)


def test_following_next_by_score_visits_every_lead_once_with_nulls_last(api_client):
    scores = [0.5, None, 0.9, 0.5, None, 0.1, 0.5]
    leads = [LeadFactory(score=score) for score in scores]
    ids = _walk(api_client, LEADS, {"page_size": 2, "ordering": "-score"}, between=lambda: LeadFactory(score=0.5))
    assert len(ids) == len(set(ids))
    visited = [lead for lead in leads if lead.pk in ids]
    assert len(visited) == len(leads)  # and the leads created meanwhile at 0.5 may appear once each
    shown = {lead.pk: lead.score for lead in Lead.objects.filter(pk__in=ids)}
    in_order = [shown[pk] for pk in ids]
    assert in_order == sorted((s for s in in_order if s is not None), reverse=True) + [None] * in_order.count(None)


def test_following_next_by_two_fields_keeps_their_order(api_client):
    for name, score in [("Beta", 0.2), ("Alpha", 0.1), ("Alpha", 0.7), ("Gamma", None), ("Alpha", None)]:
        LeadFactory(company_name=name, score=score)
    ids = _walk(api_client, LEADS, {"page_size": 2, "ordering": "company_name,-score"})
    rows = {lead.pk: (lead.company_name, lead.score) for lead in Lead.objects.all()}
    assert [rows[pk] for pk in ids] == [("Alpha", 0.7), ("Alpha", 0.1), ("Alpha", None), ("Beta", 0.2), ("Gamma", None)]


def test_a_previous_link_returns_the_page_before(api_client):
    LeadFactory.create_batch(5)
    first = api_client.get(LEADS, {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()
    back = api_client.get(second["previous"]).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]
    assert back["previous"] is None or api_client.get(back["previous"]).json()["results"] == []
    assert api_client.get(back["next"]).json()["results"] == second["results"]


def test_filters_apply_on_every_page(api_client):
    scored = LeadFactory.create_batch(3, status=Lead.Status.SCORED)
    LeadFactory.create_batch(3, status=Lead.Status.RAW)
    ids = _walk(api_client, LEADS, {"page_size": 2, "status": "scored"})
    assert sorted(ids) == sorted(lead.pk for lead in scored)


def test_a_cursor_made_for_another_ordering_is_refused(api_client):
    LeadFactory.create_batch(3)
    next_link = api_client.get(LEADS, {"page_size": 2}).json()["next"]
    response = api_client.get(next_link + "&ordering=score")
    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]
