"""Outreach templates: compile-checking and rendering over a fixed, safe context.

Templates use Django's template language on an engine of their own: no loaders (so
`{% include %}` and `{% extends %}` reach nothing), and a context of plain strings and numbers,
never model instances, so a template cannot call methods or walk relations. The subject and the
text body render without autoescape (plain-text mail); the optional HTML body renders with it,
so a lead's `<script>` arrives as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import ProtectedError
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.defaulttags import URLNode
from django.template.loader_tags import ExtendsNode, IncludeNode

from leads.addresses import single_line
from leads.caching import experiments_invalidate
from leads.models import Lead, Outreach, OutreachTemplate
from pipeline_whisperer.exceptions import Conflict, InvalidInput

_ENGINE = Engine(loaders=[], autoescape=False, debug=False)
SUBJECT_MAX_LENGTH = Outreach._meta.get_field("subject").max_length or 500


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str
    html_body: str = ""  # "" when the template has no HTML body: the mail is text only


def _compile(*, subject: str, body: str, html_body: str = "") -> tuple[Template, Template, Template | None]:
    """The parts compiled (no HTML body: None), or InvalidInput naming each part that fails and why."""
    compiled, errors = [], {}
    parts = [("subject", subject), ("body", body)] + ([("html_body", html_body)] if html_body.strip() else [])
    for field, source in parts:
        try:
            template = _ENGINE.from_string(source)
        except TemplateSyntaxError as error:
            errors[field] = [f"Template syntax error: {error}"]
            continue
        # They compile, then fail on every render: there is nothing for them to load.
        if template.nodelist.get_nodes_by_type(IncludeNode) or template.nodelist.get_nodes_by_type(ExtendsNode):
            errors[field] = ["Templates may not use {% include %} or {% extends %}."]
        # {% url %} fails on render for a name that does not resolve, and reveals routes for one that does.
        elif template.nodelist.get_nodes_by_type(URLNode):
            errors[field] = ["Templates may not use {% url %}."]
        compiled.append(template)
    if errors:
        summary = "; ".join(f"{field}: {messages[0]}" for field, messages in errors.items())
        raise InvalidInput(f"The template does not compile: {summary}", errors=errors)
    return compiled[0], compiled[1], compiled[2] if len(compiled) > 2 else None


def template_check(*, subject: str, body: str, html_body: str = "") -> None:
    _compile(subject=subject, body=body, html_body=html_body)


def template_create(*, name: str, subject: str, body: str, html_body: str = "") -> OutreachTemplate:
    template_check(subject=subject, body=body, html_body=html_body)
    return OutreachTemplate.objects.create(name=name, subject=subject, body=body, html_body=html_body)


def template_update(*, template: OutreachTemplate, **changes: str) -> OutreachTemplate:
    subject = changes.get("subject", template.subject)
    body = changes.get("body", template.body)
    html_body = changes.get("html_body", template.html_body)
    template_check(subject=subject, body=body, html_body=html_body)
    for field, value in changes.items():
        setattr(template, field, value)
    template.save(update_fields=[*changes, "updated_at"])
    experiments_invalidate()  # variants show their template's name
    return template


def template_delete(*, template: OutreachTemplate) -> None:
    """Delete a template; one that a variant uses is a Conflict (variants protect their template)."""
    try:
        template.delete()
    except ProtectedError:
        raise Conflict("A variant uses this template; give the variant another template first.") from None


def outreach_context(lead: Lead) -> dict[str, Any]:
    """Everything a template may use, as plain values."""
    contact_name = lead.contact_name or ""
    return {
        "lead": {
            "lightfield_id": lead.lightfield_id,
            "score": lead.score,
            "persona": lead.persona,
            "pain_points": list(lead.pain_points or []),
            "tech_stack": list(lead.tech_stack or []),
            "budget_range": lead.budget_range,
            "timeline": lead.timeline,
        },
        "company": {
            "name": lead.company_name,
            "website": lead.company_website,
            "industry": lead.company_industry,
            "size": lead.company_size,
        },
        "contact": {
            "name": contact_name,
            "first_name": contact_name.split(" ")[0] if contact_name else "",
            "email": lead.contact_email,
            "title": lead.contact_title,
        },
        "sender": {"name": settings.OUTREACH_SENDER_NAME, "email": settings.DEFAULT_FROM_EMAIL},
    }


@dataclass(frozen=True)
class CompiledTemplate:
    """A template's parts compiled once, to render for many leads (a batch compiles each once)."""

    subject: Template
    body: Template
    html_body: Template | None = None

    def render(self, lead: Lead) -> RenderedMessage:
        values = outreach_context(lead)
        # Context escapes HTML by default whatever the engine says; the text parts are plain text.
        context = Context(values, autoescape=_ENGINE.autoescape)
        # A subject is one line: a header with a newline in it would be refused by the mailer. Long
        # lead values cannot make it longer than an Outreach stores (that would fail the whole batch).
        subject_line = single_line(" ".join(self.subject.render(context).split()))[:SUBJECT_MAX_LENGTH]
        html = "" if self.html_body is None else self.html_body.render(Context(values, autoescape=True))
        return RenderedMessage(
            subject=_unmarked(subject_line), body=_unmarked(self.body.render(context)), html_body=_unmarked(html)
        )


def _unmarked(text: str) -> str:
    """`text` as a plain str. Django marks what a template renders as safe to put in a page; mail
    content is not (a preview in the admin must show it as text), so the mark is dropped."""
    return str.__str__(text)


def template_compile(*, subject: str, body: str, html_body: str = "") -> CompiledTemplate:
    """The parts compiled (an empty `html_body`: none); raises InvalidInput if one does not compile."""
    subject_template, body_template, html_template = _compile(subject=subject, body=body, html_body=html_body)
    return CompiledTemplate(subject=subject_template, body=body_template, html_body=html_template)


def template_render(*, subject: str, body: str, lead: Lead, html_body: str = "") -> RenderedMessage:
    """Render a template's parts for one lead; raises InvalidInput if one does not compile."""
    return template_compile(subject=subject, body=body, html_body=html_body).render(lead)
