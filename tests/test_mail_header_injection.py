"""Header injection: CR/LF in every text field of a lead ingested through the API never reaches
a header of the mail rendered from it and captured by a real SMTP server on loopback."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.mail import get_connection

from leads.models import Lead, Outreach
from leads.services.mail import outreach_message
from leads.services.templates import template_compile
from leads.tests.factories import OutreachFactory
from tests.stand_ins import SmtpSink

pytestmark = pytest.mark.django_db(transaction=True)  # the in-process bus delivers after commit

INJECTION = "\r\nBcc: victim@evil.example\r\nX-Injected: yes\r\n\r\nforged body"
# A subject that uses every text value of the context, and a body that does too.
EVERYTHING = (
    "{{ company.name }} {{ company.website }} {{ company.industry }} {{ contact.name }} "
    "{{ contact.first_name }} {{ contact.title }} {{ lead.timeline }} {{ lead.budget_range }} "
    "{{ lead.pain_points|join:' ' }} {{ lead.tech_stack|join:' ' }} {{ lead.lightfield_id }}"
)
# The headers of every outreach mail, and the ones the SMTP sink adds on receipt.
MESSAGE_HEADERS = frozenset(
    {
        "Content-Type",
        "MIME-Version",
        "Content-Transfer-Encoding",
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "X-Outreach-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    }
)
EXPECTED_HEADERS = MESSAGE_HEADERS | {"X-Peer", "X-MailFrom", "X-RcptTo"}


def _hostile_event() -> dict[str, Any]:
    bad = f"Acme{INJECTION}"
    return {
        "event_type": "lead.created",
        "lightfield_id": "lf-hostile",
        "company": {
            "name": bad,
            "website": f"https://acme.example.com/{INJECTION}",
            "industry": bad,
            "size": "51-200",
            "description": bad,
        },
        "contact": {"name": f"Ada{INJECTION}", "email": "ada@acme.example.com", "title": bad, "linkedin": bad},
        "source": {"channel": bad, "campaign": bad, "referrer": bad},
        "metadata": {"pain_points": [bad], "tech_stack": [bad], "budget_range": "10k-50k", "timeline": bad},
    }


def test_cr_lf_in_every_lead_field_adds_no_header_to_the_captured_mail(api_client, settings, smtp_sink: SmtpSink):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    response = api_client.post("/api/v1/leads/ingest", [_hostile_event()], format="json")
    assert response.status_code == 202, response.content
    lead = Lead.objects.get(lightfield_id="lf-hostile")
    message = template_compile(subject=EVERYTHING, body=EVERYTHING, html_body=f"<p>{EVERYTHING}</p>").render(lead)
    outreach: Outreach = OutreachFactory(
        lead=lead, subject=message.subject, body=message.body, html_body=message.html_body, message_id="<h@x.example>"
    )
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=smtp_sink.port)
    outreach_message(outreach, connection=connection).send()

    [mail] = smtp_sink.received()
    assert set(mail.keys()) <= EXPECTED_HEADERS, set(mail.keys()) - EXPECTED_HEADERS
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert mail.get_all("To") == ["ada@acme.example.com"]
    # A long subject is folded (a line break followed by a space continues the header); unfolded,
    # it holds no line break of its own.
    subject = re.sub(r"\r?\n[ \t]", " ", str(mail["Subject"]))
    assert "\r" not in subject and "\n" not in subject
    assert "Bcc: victim@evil.example X-Injected: yes forged body" in " ".join(subject.split())
    assert mail.get_content_type() == "multipart/alternative"  # the forged blank line began no body


def test_a_contact_email_with_cr_lf_is_refused_at_ingest_and_nothing_is_stored(api_client, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    event = {
        "lightfield_id": "lf-bad-email",
        "company": {"name": "Acme"},
        "contact": {"email": f"a@b.example{INJECTION}"},
    }
    response = api_client.post("/api/v1/leads/ingest", [event], format="json")
    assert response.status_code == 400, response.content
    assert "contact.email" in str(response.json()["errors"])
    assert not Lead.objects.exists()
