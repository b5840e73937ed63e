"""Outreach templates: compile checks that name the field, and rendering over the safe context."""

from __future__ import annotations

import pytest
from django.utils.safestring import SafeData

from leads.models import OutreachTemplate
from leads.services.templates import (
    outreach_context,
    template_check,
    template_create,
    template_delete,
    template_render,
    template_update,
)
from leads.tests.factories import LeadFactory, OutreachTemplateFactory, VariantFactory
from pipeline_whisperer.exceptions import Conflict, InvalidInput

pytestmark = pytest.mark.django_db

BROKEN = "{% if %}"


def test_template_check_accepts_a_valid_template():
    template_check(subject="Hi {{ company.name }}", body="{% if contact.first_name %}Hi{% endif %}")


def test_template_check_error_names_the_body():
    with pytest.raises(InvalidInput, match="body: Template syntax error") as caught:
        template_check(subject="Hello", body=BROKEN)
    assert list(caught.value.extra["errors"]) == ["body"]


def test_template_check_error_names_the_subject():
    with pytest.raises(InvalidInput, match="subject: Template syntax error") as caught:
        template_check(subject="{{ company.name|nosuchfilter }}", body="Hi")
    assert list(caught.value.extra["errors"]) == ["subject"]


def test_template_check_names_both_fields_when_both_fail():
    with pytest.raises(InvalidInput) as caught:
        template_check(subject="{% for %}", body=BROKEN)
    assert sorted(caught.value.extra["errors"]) == ["body", "subject"]


def test_template_check_refuses_tag_libraries():
    with pytest.raises(InvalidInput, match="body: Template syntax error"):
        template_check(subject="Hi", body="{% load static %}{% static 'x.css' %}")


def test_template_create_saves_a_valid_template():
    template = template_create(name="Intro", subject="Hi {{ company.name }}", body="Body")
    assert OutreachTemplate.objects.get(pk=template.pk).subject == "Hi {{ company.name }}"


def test_template_create_refuses_a_broken_template():
    with pytest.raises(InvalidInput):
        template_create(name="Broken", subject="Hi", body=BROKEN)
    assert not OutreachTemplate.objects.filter(name="Broken").exists()


def test_template_update_checks_the_change_against_the_unchanged_part():
    template = OutreachTemplateFactory(subject="Hi", body="Body")
    with pytest.raises(InvalidInput, match="body"):
        template_update(template=template, body=BROKEN)
    assert OutreachTemplate.objects.get(pk=template.pk).body == "Body"


def test_template_update_saves_a_valid_change():
    template = OutreachTemplateFactory(subject="Hi", body="Body")
    template_update(template=template, subject="Hello {{ contact.first_name }}")
    assert OutreachTemplate.objects.get(pk=template.pk).subject == "Hello {{ contact.first_name }}"


def test_template_render_fills_in_the_safe_context(settings):
    settings.OUTREACH_SENDER_NAME = "Sam Sender"
    lead = LeadFactory(company_name="Acme", contact_name="Ada Lovelace", pain_points=["slow CRM"], tech_stack=["AWS"])
    rendered = template_render(
        subject="{{ company.name }} x {{ contact.first_name }}",
        body="{{ lead.pain_points.0 }} / {{ lead.tech_stack|join:',' }} / {{ company.size }} / {{ sender.name }}",
        lead=lead,
    )
    assert rendered.subject == "Acme x Ada"
    assert rendered.body == "slow CRM / AWS / 51-200 / Sam Sender"


def test_template_render_does_not_escape_plain_text_mail():
    lead = LeadFactory(company_name="Smith & Sons <UK>")
    assert template_render(subject="s", body="{{ company.name }}", lead=lead).body == "Smith & Sons <UK>"


@pytest.mark.parametrize(
    "body", ["{{ lead.save }}", "{{ lead.pk }}", "{{ lead.outreach.all }}", "{{ settings.SECRET_KEY }}", "{{ user }}"]
)
def test_template_render_reaches_no_model_or_setting(body):
    assert template_render(subject="s", body=body, lead=LeadFactory()).body == ""


def test_outreach_context_holds_plain_values_only():
    context = outreach_context(LeadFactory(contact_name=""))
    assert set(context) == {"lead", "company", "contact", "sender"}
    assert context["contact"]["first_name"] == ""
    assert all(isinstance(section, dict) for section in context.values())


@pytest.mark.parametrize("tag", ["include", "extends"])
def test_template_render_cannot_load_a_file(tag, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret file")
    with pytest.raises(InvalidInput, match="body: Templates may not use") as caught:
        template_render(subject="Hi", body=f'{{% {tag} "{secret}" %}}', lead=LeadFactory())
    assert "the secret file" not in str(caught.value.extra)


def test_template_check_refuses_an_include_by_variable_nested_in_a_block():
    with pytest.raises(InvalidInput, match="subject: Templates may not use"):
        template_check(subject="{% if company.name %}{% include company.website %}{% endif %}", body="Hi")


def test_subject_with_newlines_becomes_one_line():
    lead = LeadFactory(company_name="Acme")
    rendered = template_render(subject="Hello\n {{ company.name }}\r\n\tsoon ", body="Body", lead=lead)
    assert rendered.subject == "Hello Acme soon"


def test_newline_in_a_lead_value_cannot_add_a_mail_header():
    lead = LeadFactory(company_name="Acme\nBcc: victim@example.com")
    rendered = template_render(subject="Hi {{ company.name }}", body="Body", lead=lead)
    assert rendered.subject == "Hi Acme Bcc: victim@example.com"


def test_body_keeps_its_line_breaks():
    assert template_render(subject="s", body="Line one\n\nLine two", lead=LeadFactory()).body == "Line one\n\nLine two"


def test_template_check_refuses_url_tags():
    with pytest.raises(InvalidInput, match=r"body: Templates may not use \{% url %\}"):
        template_check(subject="Hi", body="{% url 'admin:index' %}")


def test_template_delete_removes_an_unused_template():
    template = OutreachTemplateFactory()
    template_delete(template=template)
    assert not OutreachTemplate.objects.filter(pk=template.pk).exists()


def test_template_delete_of_a_template_a_variant_uses_is_a_conflict():
    variant = VariantFactory()
    with pytest.raises(Conflict, match="A variant uses this template"):
        template_delete(template=variant.template)
    assert OutreachTemplate.objects.filter(pk=variant.template_id).exists()


# --- HTML bodies --------------------------------------------------------------------------


def test_a_template_without_an_html_body_renders_none():
    rendered = template_render(subject="Hi", body="Text", lead=LeadFactory())
    assert rendered.html_body == ""


def test_the_html_body_renders_over_the_same_context_escaping_lead_values():
    lead = LeadFactory(company_name='Acme "<b>" & Sons', contact_name="Ada Lovelace")
    rendered = template_render(
        subject="{{ company.name }}",
        body="{{ company.name }}",
        html_body="<p>Hi {{ contact.first_name }} at {{ company.name }}</p>",
        lead=lead,
    )
    assert rendered.html_body == "<p>Hi Ada at Acme &quot;&lt;b&gt;&quot; &amp; Sons</p>"
    assert (rendered.subject, rendered.body) == ('Acme "<b>" & Sons', 'Acme "<b>" & Sons')


def test_the_html_body_reaches_no_model_or_setting():
    rendered = template_render(
        subject="x", body="x", html_body="{{ lead.delete }}{{ settings.SECRET_KEY }}", lead=LeadFactory()
    )
    assert rendered.html_body == ""


@pytest.mark.parametrize("source", [BROKEN, '{% include "x.html" %}', '{% url "admin:index" %}'])
def test_template_check_names_the_html_body_when_it_fails(source):
    with pytest.raises(InvalidInput) as caught:
        template_check(subject="Hi", body="Text", html_body=source)
    assert list(caught.value.extra["errors"]) == ["html_body"]


def test_template_create_and_update_keep_the_html_body():
    template = template_create(name="Rich", subject="Hi", body="Text", html_body="<p>Hi</p>")
    template_update(template=template, html_body="<p>Hello</p>")
    assert OutreachTemplate.objects.get().html_body == "<p>Hello</p>"


def test_template_update_refuses_a_broken_html_body_and_keeps_the_old_one():
    template = OutreachTemplateFactory(html_body="<p>Hi</p>")
    with pytest.raises(InvalidInput):
        template_update(template=template, html_body=BROKEN)
    template.refresh_from_db()
    assert template.html_body == "<p>Hi</p>"


def test_a_subject_made_long_by_lead_values_is_cut_to_what_an_outreach_stores():
    lead = LeadFactory(company_name="A" * 255, contact_title="T" * 255)
    rendered = template_render(subject="{{ company.name }} {{ contact.title }}", body="x", lead=lead)
    assert rendered.subject == ("A" * 255 + " " + "T" * 255)[:500]


def test_rendered_parts_are_not_marked_safe_for_html_pages():
    lead = LeadFactory(company_name="<script>x</script>")
    rendered = template_render(subject="{{ company.name }}", body="{{ company.name }}", html_body="<p>x</p>", lead=lead)
    # A page that shows a preview escapes it: it is mail content, not markup for our pages.
    assert not any(isinstance(part, SafeData) for part in (rendered.subject, rendered.body, rendered.html_body))
