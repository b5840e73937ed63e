"""/api/v1/outreach: a read-only list and detail of every message sent, with filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Outreach
from leads.tests.factories import ExperimentFactory, LeadFactory, OutreachFactory, VariantFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

OUTREACH = "/api/v1/outreach"


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def _created(outreach: Outreach, ago: timedelta) -> Outreach:
    Outreach.objects.filter(pk=outreach.pk).update(created_at=timezone.now() - ago)
    return outreach


def test_outreach_list_shows_newest_first(api_client):
    old = _created(OutreachFactory(), timedelta(days=2))
    new = _created(OutreachFactory(), timedelta(hours=1))
    middle = _created(OutreachFactory(), timedelta(days=1))
    assert _ids(api_client.get(OUTREACH)) == [new.pk, middle.pk, old.pk]


def test_outreach_rows_name_the_lead_variant_and_experiment(api_client):
    sent_at = timezone.now() - timedelta(hours=2)
    outreach = OutreachFactory(status=Outreach.Status.SENT, sent_at=sent_at, subject="Hi Acme", message_id="<m1@x>")
    row = api_client.get(OUTREACH).json()["results"][0]
    assert row["id"] == outreach.pk
    assert (row["lead"], row["lightfield_id"]) == (outreach.lead_id, outreach.lead.lightfield_id)
    assert (row["variant"], row["experiment"]) == (outreach.variant_id, outreach.variant.experiment_id)
    assert (row["status"], row["subject"], row["message_id"]) == ("sent", "Hi Acme", "<m1@x>")
    assert row["to_email"] == outreach.lead.contact_email
    assert row["sent_at"] is not None
    assert row["reward"] == ""


def test_outreach_without_a_variant_shows_no_experiment(api_client):
    OutreachFactory(variant=None)
    row = api_client.get(OUTREACH).json()["results"][0]
    assert (row["variant"], row["experiment"]) == (None, None)


def test_outreach_detail_shows_one_message(api_client):
    outreach = OutreachFactory(body="The whole body.")
    body = api_client.get(f"{OUTREACH}/{outreach.pk}").json()
    assert (body["id"], body["body"]) == (outreach.pk, "The whole body.")


def test_outreach_detail_of_unknown_outreach_is_404(api_client):
    assert_problem(api_client.get(f"{OUTREACH}/999999"), 404)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_outreach_cannot_be_written_through_the_api(method, api_client):
    outreach = OutreachFactory()
    url = OUTREACH if method == "post" else f"{OUTREACH}/{outreach.pk}"
    response = getattr(api_client, method)(url, {"subject": "x"}, format="json")
    assert_problem(response, 405)
    assert response["Allow"]
    outreach.refresh_from_db()
    assert outreach.subject == "Hello"


@pytest.mark.parametrize("rows", [3, 30])
def test_outreach_list_query_count_does_not_grow_with_rows(rows, api_client, django_assert_num_queries):
    experiment = ExperimentFactory()
    variant = VariantFactory(experiment=experiment)
    OutreachFactory.create_batch(rows, variant=variant)
    api_client.get(OUTREACH)  # the first call verifies the key and records its use
    # The page with lead and variant joined alone: a cursor page counts nothing, and the key is remembered.
    with django_assert_num_queries(1):
        response = api_client.get(OUTREACH)
    assert len(response.json()["results"]) == rows


# --- Filters ----------------------------------------------------------------------------


def test_status_filter_keeps_outreach_in_the_given_statuses(api_client):
    opened = OutreachFactory(status=Outreach.Status.OPENED)
    bounced = OutreachFactory(status=Outreach.Status.BOUNCED)
    OutreachFactory(status=Outreach.Status.SENT)
    assert set(_ids(api_client.get(OUTREACH, {"status": ["opened", "bounced"]}))) == {opened.pk, bounced.pk}


def test_lead_filter_keeps_the_leads_outreach(api_client):
    lead = LeadFactory()
    mine = OutreachFactory(lead=lead)
    OutreachFactory()
    assert _ids(api_client.get(OUTREACH, {"lead": lead.pk})) == [mine.pk]


def test_lightfield_id_filter_keeps_that_leads_outreach(api_client):
    mine = OutreachFactory(lead=LeadFactory(lightfield_id="lf-mine"))
    OutreachFactory(lead=LeadFactory(lightfield_id="lf-mine-too"))
    assert _ids(api_client.get(OUTREACH, {"lightfield_id": "lf-mine"})) == [mine.pk]


def test_variant_filter_keeps_the_variants_outreach(api_client):
    mine = OutreachFactory()
    OutreachFactory()
    assert _ids(api_client.get(OUTREACH, {"variant": mine.variant_id})) == [mine.pk]


def test_experiment_filter_keeps_outreach_of_any_of_its_variants(api_client):
    experiment = ExperimentFactory()
    first = OutreachFactory(variant=VariantFactory(experiment=experiment, name="A"))
    second = OutreachFactory(variant=VariantFactory(experiment=experiment, name="B"))
    OutreachFactory()
    OutreachFactory(variant=None)
    assert set(_ids(api_client.get(OUTREACH, {"experiment": experiment.pk}))) == {first.pk, second.pk}


def test_sent_window_filters_keep_outreach_sent_inside_it(api_client):
    now = timezone.now()
    OutreachFactory(sent_at=now - timedelta(days=10))
    inside = OutreachFactory(sent_at=now - timedelta(days=3))
    OutreachFactory(sent_at=now - timedelta(hours=1))
    OutreachFactory(sent_at=None)
    params = {"sent_after": (now - timedelta(days=5)).isoformat(), "sent_before": (now - timedelta(days=1)).isoformat()}
    assert _ids(api_client.get(OUTREACH, params)) == [inside.pk]


def test_sent_after_with_an_offset_postgresql_cannot_store_is_compared_in_utc(api_client):
    now = timezone.now()
    OutreachFactory(sent_at=now - timedelta(days=10))
    recent = OutreachFactory(sent_at=now - timedelta(days=1))
    since = (now - timedelta(days=5)).astimezone(timezone.get_fixed_timezone(-(17 * 60 + 19)))
    assert _ids(api_client.get(OUTREACH, {"sent_after": since.isoformat()})) == [recent.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"lead": "abc"}, "lead"),
        ({"lead": "0"}, "lead"),
        ({"lead": "3.5"}, "lead"),
        ({"lead": "3.0"}, "lead"),
        ({"lead": "1e3"}, "lead"),
        ({"lead": "+3"}, "lead"),
        ({"lead": "\u0663"}, "lead"),  # ARABIC-INDIC DIGIT THREE: int() takes it, an id does not
        ({"lead": "9" * 20}, "lead"),
        ({"variant": "2.5"}, "variant"),
        ({"experiment": "1.5"}, "experiment"),
        ({"variant": "-3"}, "variant"),
        ({"experiment": "x"}, "experiment"),
        ({"sent_after": "soon"}, "sent_after"),
        ({"sent_before": "9999-12-31T23:00:00-17:00"}, "sent_before"),
        ({"lightfield_id": "x" * 65}, "lightfield_id"),
    ],
)
def test_outreach_list_refuses_a_bad_filter_value_naming_it(params, field, api_client):
    assert_problem(api_client.get(OUTREACH, params), 400, [field])


# --- Search, ordering and pages ---------------------------------------------------------


def test_search_matches_recipient_subject_or_company(api_client):
    by_email = OutreachFactory(to_email="cto@globex.example")
    by_subject = OutreachFactory(subject="A note for Globex")
    by_company = OutreachFactory(lead=LeadFactory(company_name="Globex Corp"))
    OutreachFactory(subject="Unrelated")
    assert set(_ids(api_client.get(OUTREACH, {"search": "globex"}))) == {by_email.pk, by_subject.pk, by_company.pk}


def test_ordering_by_sent_at(api_client):
    now = timezone.now()
    late = OutreachFactory(sent_at=now)
    early = OutreachFactory(sent_at=now - timedelta(days=2))
    middle = OutreachFactory(sent_at=now - timedelta(days=1))
    assert _ids(api_client.get(OUTREACH, {"ordering": "sent_at"})) == [early.pk, middle.pk, late.pk]


def test_outreach_list_refuses_an_unknown_ordering_field(api_client):
    assert_problem(api_client.get(OUTREACH, {"ordering": "to_email"}), 400, ["ordering"])


@pytest.mark.parametrize("page_size", ["0", "201", "abc"])
def test_outreach_list_refuses_a_bad_page_size(page_size, api_client):
    assert_problem(api_client.get(OUTREACH, {"page_size": page_size}), 400, ["page_size"])


def test_outreach_list_pages(api_client):
    OutreachFactory.create_batch(3)
    body = api_client.get(OUTREACH, {"page_size": 2}).json()
    assert len(body["results"]) == 2
    assert len(api_client.get(body["next"]).json()["results"]) == 1
