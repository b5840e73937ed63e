"""/api/v1/templates: list, detail, create, update, delete, preview of saved and draft templates."""

from __future__ import annotations

import pytest

from leads.models import OutreachTemplate
from leads.tests.factories import LeadFactory, OutreachTemplateFactory, VariantFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

TEMPLATES = "/api/v1/templates"


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


# --- List and detail --------------------------------------------------------------------


def test_template_list_is_sorted_by_name(api_client):
    for name in ("Charlie", "Alpha", "Bravo"):
        OutreachTemplateFactory(name=name)
    assert _names(api_client.get(TEMPLATES)) == ["Alpha", "Bravo", "Charlie"]


def test_template_list_rows_carry_subject_and_body(api_client):
    template = OutreachTemplateFactory(name="Intro", subject="Hi {{ company.name }}", body="Body")
    row = api_client.get(TEMPLATES).json()["results"][0]
    assert row["id"] == template.pk
    assert (row["name"], row["subject"], row["body"]) == ("Intro", "Hi {{ company.name }}", "Body")
    assert row["created_at"]


def test_template_list_orders_by_name_descending(api_client):
    for name in ("Alpha", "Charlie", "Bravo"):
        OutreachTemplateFactory(name=name)
    assert _names(api_client.get(TEMPLATES, {"ordering": "-name"})) == ["Charlie", "Bravo", "Alpha"]


def test_template_search_matches_name_or_subject(api_client):
    OutreachTemplateFactory(name="Pricing follow-up", subject="Hello")
    OutreachTemplateFactory(name="Intro", subject="About pricing")
    OutreachTemplateFactory(name="Other", subject="Hello")
    assert _names(api_client.get(TEMPLATES, {"search": "pricing"})) == ["Intro", "Pricing follow-up"]


def test_template_search_does_not_look_in_the_body(api_client):
    OutreachTemplateFactory(name="Intro", body="pricing is in the body only")
    assert _names(api_client.get(TEMPLATES, {"search": "pricing"})) == []


def test_template_list_refuses_an_unknown_ordering_field(api_client):
    assert_problem(api_client.get(TEMPLATES, {"ordering": "body"}), 400, errors=["ordering"])


@pytest.mark.parametrize("page_size", ["0", "201", "abc"])
def test_template_list_refuses_a_bad_page_size(page_size, api_client):
    assert_problem(api_client.get(TEMPLATES, {"page_size": page_size}), 400, errors=["page_size"])


def test_template_detail_shows_the_template(api_client):
    template = OutreachTemplateFactory(name="Intro")
    body = api_client.get(f"{TEMPLATES}/{template.pk}").json()
    assert body["id"] == template.pk
    assert body["name"] == "Intro"
    assert body["subject"] == template.subject


def test_template_detail_of_an_unknown_template_is_404(api_client):
    assert_problem(api_client.get(f"{TEMPLATES}/999999"), 404)


# --- Create -----------------------------------------------------------------------------


def test_create_template_stores_it(api_client):
    payload = {"name": "Intro", "subject": "Hi {{ company.name }}", "body": "{% if contact.name %}Hi{% endif %}"}
    response = api_client.post(TEMPLATES, payload, format="json")
    assert response.status_code == 201, response.content
    template = OutreachTemplate.objects.get()
    assert response.json()["id"] == template.pk
    assert (template.name, template.subject, template.body) == (payload["name"], payload["subject"], payload["body"])


def test_create_template_with_a_subject_that_does_not_compile_is_400_naming_the_error(api_client):
    payload = {"name": "Broken", "subject": "{% if %}", "body": "Fine"}
    body = assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["subject"])
    assert "does not compile" in body["detail"]
    assert "Unexpected end of expression in if tag" in body["detail"]
    assert body["errors"]["subject"][0].startswith("Template syntax error:")
    assert not OutreachTemplate.objects.exists()


def test_create_template_with_a_body_that_does_not_compile_is_400_naming_the_error(api_client):
    payload = {"name": "Broken", "subject": "Fine", "body": "{% for x in %}{% endfor %}"}
    body = assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["body"])
    assert "body: Template syntax error" in body["detail"]
    assert not OutreachTemplate.objects.exists()


def test_create_template_reports_both_parts_when_both_fail(api_client):
    payload = {"name": "Broken", "subject": "{{ x|nosuchfilter }}", "body": "{% nosuchtag %}"}
    body = assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["subject", "body"])
    assert "nosuchfilter" in body["errors"]["subject"][0]
    assert "nosuchtag" in body["errors"]["body"][0]


def test_create_template_refuses_loading_tag_libraries(api_client):
    payload = {"name": "Loads", "subject": "Hi", "body": "{% load i18n %}{% trans 'x' %}"}
    assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["body"])


@pytest.mark.parametrize(
    "source",
    [
        '{% include "secrets.txt" %}',
        '{% extends "base.html" %}',
        '{% url "admin:index" %}',
        '{% if 1 %}{% url "x" %}{% endif %}',
    ],
)
def test_create_template_refuses_tags_that_reach_outside_the_context(source, api_client):
    payload = {"name": "Reaches out", "subject": "Hi", "body": source}
    body = assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["body"])
    assert "may not use" in body["errors"]["body"][0]
    assert not OutreachTemplate.objects.exists()


def test_create_template_with_a_taken_name_is_400(api_client):
    OutreachTemplateFactory(name="Intro")
    payload = {"name": "Intro", "subject": "Hi", "body": "Hello"}
    assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["name"])
    assert OutreachTemplate.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, ["name", "subject", "body"]),
        ({"name": "", "subject": "Hi", "body": "Hello"}, ["name"]),
        ({"name": "x" * 101, "subject": "Hi", "body": "Hello"}, ["name"]),
        ({"name": "Intro", "subject": "x" * 501, "body": "Hello"}, ["subject"]),
    ],
)
def test_create_template_refuses_missing_or_oversized_fields(payload, fields, api_client):
    assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=fields)


# --- Update and delete ------------------------------------------------------------------


def test_patch_template_changes_the_given_parts(api_client):
    template = OutreachTemplateFactory(subject="Old", body="Body")
    response = api_client.patch(f"{TEMPLATES}/{template.pk}", {"subject": "New {{ company.name }}"}, format="json")
    assert response.status_code == 200
    assert response.json()["subject"] == "New {{ company.name }}"
    template.refresh_from_db()
    assert (template.subject, template.body) == ("New {{ company.name }}", "Body")


def test_patch_template_to_one_that_does_not_compile_is_400_and_changes_nothing(api_client):
    template = OutreachTemplateFactory(body="Fine")
    response = api_client.patch(f"{TEMPLATES}/{template.pk}", {"body": "{% if %}"}, format="json")
    body = assert_problem(response, 400, errors=["body"])
    assert "Unexpected end of expression in if tag" in body["detail"]
    template.refresh_from_db()
    assert template.body == "Fine"


def test_patch_template_to_a_taken_name_is_400(api_client):
    OutreachTemplateFactory(name="Taken")
    template = OutreachTemplateFactory(name="Mine")
    assert_problem(
        api_client.patch(f"{TEMPLATES}/{template.pk}", {"name": "Taken"}, format="json"), 400, errors=["name"]
    )


def test_patch_template_keeping_its_own_name_is_allowed(api_client):
    template = OutreachTemplateFactory(name="Mine")
    response = api_client.patch(f"{TEMPLATES}/{template.pk}", {"name": "Mine", "body": "New"}, format="json")
    assert response.status_code == 200
    assert response.json()["body"] == "New"


def test_delete_template_removes_it(api_client):
    template = OutreachTemplateFactory()
    response = api_client.delete(f"{TEMPLATES}/{template.pk}")
    assert response.status_code == 204
    assert not OutreachTemplate.objects.filter(pk=template.pk).exists()


def test_deleting_a_template_that_a_variant_uses_is_409(api_client):
    variant = VariantFactory()
    body = assert_problem(api_client.delete(f"{TEMPLATES}/{variant.template_id}"), 409)
    assert "variant" in body["detail"]
    assert OutreachTemplate.objects.filter(pk=variant.template_id).exists()


def test_delete_unknown_template_is_404(api_client):
    assert_problem(api_client.delete(f"{TEMPLATES}/999999"), 404)


# --- Preview ----------------------------------------------------------------------------


def test_preview_renders_the_saved_template_for_a_lead(api_client, settings):
    settings.OUTREACH_SENDER_NAME = "The Pipeline Whisperer team"
    lead = LeadFactory(company_name="Acme & Sons", contact_name="Grace Hopper")
    template = OutreachTemplateFactory(
        subject="Hello {{ company.name }}", body="Hi {{ contact.first_name }}, from {{ sender.name }}."
    )
    response = api_client.post(f"{TEMPLATES}/{template.pk}/preview", {"lead_id": lead.pk}, format="json")
    assert response.status_code == 200
    # Plain-text mail: no HTML escaping of "&".
    assert response.json() == {
        "subject": "Hello Acme & Sons",
        "body": "Hi Grace, from The Pipeline Whisperer team.",
        "html_body": "",
    }


def test_preview_puts_the_subject_on_one_line(api_client):
    lead = LeadFactory(company_name="Acme")
    template = OutreachTemplateFactory(subject="Hello\n  {{ company.name }}\r\n!", body="x")
    response = api_client.post(f"{TEMPLATES}/{template.pk}/preview", {"lead_id": lead.pk}, format="json")
    assert response.json()["subject"] == "Hello Acme !"


def test_preview_for_an_unknown_lead_is_404(api_client):
    template = OutreachTemplateFactory()
    assert_problem(api_client.post(f"{TEMPLATES}/{template.pk}/preview", {"lead_id": 999999}, format="json"), 404)


@pytest.mark.parametrize("payload", [{}, {"lead_id": 0}, {"lead_id": "abc"}])
def test_preview_refuses_a_missing_or_bad_lead_id(payload, api_client):
    template = OutreachTemplateFactory()
    assert_problem(api_client.post(f"{TEMPLATES}/{template.pk}/preview", payload, format="json"), 400, ["lead_id"])


def test_preview_of_an_unknown_template_is_404(api_client):
    lead = LeadFactory()
    assert_problem(api_client.post(f"{TEMPLATES}/999999/preview", {"lead_id": lead.pk}, format="json"), 404)


def test_draft_preview_renders_an_unsaved_template(api_client):
    lead = LeadFactory(company_name="Acme", contact_name="Ada Lovelace", score=0.7)
    payload = {
        "lead_id": lead.pk,
        "subject": "For {{ contact.name }}",
        "body": "{{ company.name }} scores {{ lead.score }}",
    }
    response = api_client.post(f"{TEMPLATES}/preview", payload, format="json")
    assert response.status_code == 200
    assert response.json() == {"subject": "For Ada Lovelace", "body": "Acme scores 0.7", "html_body": ""}
    assert not OutreachTemplate.objects.exists()


def test_draft_preview_of_a_template_that_does_not_compile_is_400(api_client):
    lead = LeadFactory()
    payload = {"lead_id": lead.pk, "subject": "Hi", "body": "{% if %}"}
    body = assert_problem(api_client.post(f"{TEMPLATES}/preview", payload, format="json"), 400, errors=["body"])
    assert "Unexpected end of expression in if tag" in body["detail"]


def test_draft_preview_refuses_missing_parts(api_client):
    lead = LeadFactory()
    response = api_client.post(f"{TEMPLATES}/preview", {"lead_id": lead.pk}, format="json")
    assert_problem(response, 400, errors=["subject", "body"])


def test_draft_preview_of_an_include_is_400_not_a_server_error(api_client):
    lead = LeadFactory()
    payload = {"lead_id": lead.pk, "subject": "Hi", "body": '{% include "/etc/passwd" %}'}
    assert_problem(api_client.post(f"{TEMPLATES}/preview", payload, format="json"), 400, errors=["body"])


def test_template_context_offers_no_model_methods(api_client):
    lead = LeadFactory(company_name="Acme")
    payload = {"lead_id": lead.pk, "subject": "{{ lead.pk }}{{ lead.delete }}", "body": "{{ lead.outreach.all }}"}
    response = api_client.post(f"{TEMPLATES}/preview", payload, format="json")
    assert response.json() == {"subject": "", "body": "", "html_body": ""}


# --- HTML bodies --------------------------------------------------------------------------


def test_create_template_stores_an_html_body_and_shows_it(api_client):
    payload = {"name": "Rich", "subject": "Hi", "body": "Text", "html_body": "<p>Hi {{ company.name }}</p>"}
    response = api_client.post(TEMPLATES, payload, format="json")
    assert response.status_code == 201, response.content
    assert OutreachTemplate.objects.get().html_body == payload["html_body"]
    assert api_client.get(f"{TEMPLATES}/{response.json()['id']}").json()["html_body"] == payload["html_body"]


def test_create_template_with_an_html_body_that_does_not_compile_is_400_naming_it(api_client):
    payload = {"name": "Broken", "subject": "Hi", "body": "Text", "html_body": "<p>{% if %}</p>"}
    assert_problem(api_client.post(TEMPLATES, payload, format="json"), 400, errors=["html_body"])
    assert not OutreachTemplate.objects.exists()


def test_patch_template_to_an_html_body_with_an_include_is_400_and_changes_nothing(api_client):
    template = OutreachTemplateFactory(html_body="<p>Fine</p>")
    response = api_client.patch(f"{TEMPLATES}/{template.pk}", {"html_body": '{% include "x" %}'}, format="json")
    assert_problem(response, 400, errors=["html_body"])
    template.refresh_from_db()
    assert template.html_body == "<p>Fine</p>"


def test_preview_renders_the_html_body_escaping_lead_fields(api_client):
    lead = LeadFactory(company_name="Acme <script>alert(1)</script> & Sons")
    template = OutreachTemplateFactory(
        subject="For {{ company.name }}", body="{{ company.name }}", html_body="<b>{{ company.name }}</b>"
    )
    response = api_client.post(f"{TEMPLATES}/{template.pk}/preview", {"lead_id": lead.pk}, format="json")
    assert response.json() == {
        "subject": "For Acme <script>alert(1)</script> & Sons",
        "body": "Acme <script>alert(1)</script> & Sons",
        "html_body": "<b>Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons</b>",
    }


def test_draft_preview_renders_an_unsaved_html_body(api_client):
    lead = LeadFactory(contact_name="Ada Lovelace")
    payload = {"lead_id": lead.pk, "subject": "Hi", "body": "x", "html_body": "<p>{{ contact.first_name }}</p>"}
    response = api_client.post(f"{TEMPLATES}/preview", payload, format="json")
    assert response.json()["html_body"] == "<p>Ada</p>"
