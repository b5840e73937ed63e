"""One-click unsubscribe end to end on the embedded shape: a mail captured by a real SMTP server
on loopback carries the RFC 8058 headers and the footer; a plain HTTP client with no cookies
POSTs to its URL on a live server; the in-process bus hands the engagement to the feedback
stage after commit. Real PostgreSQL and Redis (the rate-limit counters)."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

import pytest
import requests
from django.core.mail import get_connection
from django.test import Client
from django.utils import timezone

from leads.models import EngagementEvent, Lead, OutboxEvent, Outreach, Suppression, Variant
from leads.services.mail import outreach_message
from leads.services.templates import template_compile
from leads.services.unsubscribe import unsubscribe_url
from leads.tests.factories import LeadFactory, OutreachFactory, OutreachTemplateFactory, VariantFactory
from tests.stand_ins import SmtpSink
from tests.test_pipeline_inprocess import lightfield_event

pytestmark = pytest.mark.django_db(transaction=True)  # the live server sees only committed rows

SENDER, POSTAL = "Whisperer Sales", "9 Harbour Road, Portsmouth PO1 2AB"


@pytest.fixture
def shape(settings, live_server) -> Any:
    """No broker (the outbox is delivered in process after commit); links point at the live server."""
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.DEFAULT_FROM_EMAIL = f"{SENDER} <outreach@whisperer.example>"
    settings.OUTREACH_SENDER_NAME = SENDER
    settings.OUTREACH_POSTAL_ADDRESS = POSTAL
    settings.OUTREACH_UNSUBSCRIBE_MAILTO = "unsubscribe@whisperer.example"
    settings.PUBLIC_BASE_URL = live_server.url
    return settings


def _sent_outreach(**fields: Any) -> Outreach:
    """An outreach as the pipeline leaves it after a send (the send path is another stage's)."""
    lead = LeadFactory(status=Lead.Status.CONTACTED, contacted_at=timezone.now(), outreach_count=1)
    variant = VariantFactory(sends=1)
    return OutreachFactory(
        lead=lead,
        variant=variant,
        status=Outreach.Status.SENT,
        sent_at=timezone.now(),
        message_id=f"<{lead.lightfield_id}@whisperer.example>",
        **fields,
    )


def _mail(outreach: Outreach, sink: SmtpSink) -> Message:
    """Send the outreach's mail over SMTP to the sink and return it as received."""
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=sink.port)
    assert outreach_message(outreach, connection=connection).send() == 1
    [mail] = [m for m in sink.received() if m["X-Outreach-ID"] == str(outreach.pk)]
    return mail


def _one_click_url(mail: Message) -> str:
    urls = re.findall(r"<([^>]+)>", mail["List-Unsubscribe"])
    [url] = [u for u in urls if u.startswith("http")]
    return url


def _text(mail: Message, content_type: str) -> str:
    [part] = [p for p in mail.walk() if p.get_content_type() == content_type]
    return part.get_payload(decode=True).decode().replace("\r\n", "\n")


def _one_click(url: str) -> requests.Response:
    """What a mail client sends (RFC 8058): a form POST with no cookies, from a fresh session."""
    return requests.post(url, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10)


def _state(outreach: Outreach) -> tuple[int, int, int, int]:
    variant = Variant.objects.get(pk=outreach.variant_id)
    return variant.alpha, variant.beta, OutboxEvent.objects.count(), Suppression.objects.count()


# --- The mail ---------------------------------------------------------------------------------


def test_the_captured_mail_carries_both_list_unsubscribe_headers(shape, smtp_sink):
    outreach = _sent_outreach()
    mail = _mail(outreach, smtp_sink)
    url = _one_click_url(mail)
    assert url == unsubscribe_url(outreach_id=outreach.pk)
    assert url.startswith(f"{shape.PUBLIC_BASE_URL}/unsubscribe/")
    assert "<mailto:unsubscribe@whisperer.example?subject=unsubscribe%20" in mail["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == outreach.message_id


def test_the_captured_text_mail_ends_with_the_sender_the_postal_address_and_the_link(shape, smtp_sink):
    outreach = _sent_outreach(body="Hi Ada,\nshall we talk?")
    mail = _mail(outreach, smtp_sink)
    assert mail.get_content_type() == "text/plain"
    assert _text(mail, "text/plain") == (
        f"Hi Ada,\nshall we talk?\n\n-- \n{SENDER}, {POSTAL}\nUnsubscribe: {_one_click_url(mail)}\n"
    )


def test_a_template_with_html_gives_a_multipart_alternative_mail_with_the_footer_in_both(shape, smtp_sink):
    template = OutreachTemplateFactory(
        subject="Hi {{ company.name }}", body="Hi {{ contact.first_name }}", html_body="<p>Hi {{ company.name }}</p>"
    )
    lead = LeadFactory(company_name="Acme <Labs>", contact_name="Ada Lovelace")
    message = template_compile(subject=template.subject, body=template.body, html_body=template.html_body).render(lead)
    outreach = _sent_outreach(subject=message.subject, body=message.body, html_body=message.html_body)
    mail = _mail(outreach, smtp_sink)
    url = _one_click_url(mail)
    assert mail.get_content_type() == "multipart/alternative"
    assert _text(mail, "text/plain").startswith(f"Hi Ada\n\n-- \n{SENDER}, {POSTAL}\nUnsubscribe: {url}")
    html = _text(mail, "text/html")
    assert html.startswith("<p>Hi Acme &lt;Labs&gt;</p><hr>")
    assert f"{SENDER}<br>{POSTAL}<br>" in html
    assert f'<a href="{url}">Unsubscribe</a>' in html


# --- POST: one click ----------------------------------------------------------------------------


def test_a_one_click_post_without_cookies_suppresses_the_address_and_fails_the_variant_once(shape, smtp_sink):
    outreach = _sent_outreach()
    alpha, beta, _, _ = _state(outreach)
    response = _one_click(_one_click_url(_mail(outreach, smtp_sink)))
    assert response.status_code == 200, response.text
    assert "You are unsubscribed" in response.text
    assert "Set-Cookie" not in response.headers
    entry = Suppression.objects.get()
    assert (entry.value, entry.reason, entry.source) == (outreach.to_email, "unsubscribed", "one-click")
    variant = Variant.objects.get(pk=outreach.variant_id)
    assert (variant.alpha, variant.beta, variant.failures) == (alpha, beta + 1, 1)
    outreach.refresh_from_db()
    assert (outreach.status, outreach.reward) == (Outreach.Status.UNSUBSCRIBED, Outreach.Reward.FAILURE)
    assert Lead.objects.get(pk=outreach.lead_id).unsubscribed_at is not None
    assert not OutboxEvent.objects.pending().exists()  # the feedback stage had it before the answer


def test_a_second_post_changes_nothing(shape, smtp_sink):
    outreach = _sent_outreach()
    url = _one_click_url(_mail(outreach, smtp_sink))
    assert _one_click(url).status_code == 200
    after_first = _state(outreach)
    second = _one_click(url)
    assert second.status_code == 200
    assert "You are unsubscribed" in second.text
    assert _state(outreach) == after_first
    assert EngagementEvent.objects.filter(outreach=outreach).count() == 1


def test_the_pages_confirm_button_unsubscribes_too(shape, smtp_sink):
    outreach = _sent_outreach()
    response = requests.post(_one_click_url(_mail(outreach, smtp_sink)), allow_redirects=False, timeout=10)
    assert response.status_code == 200
    assert Suppression.objects.get().source == "unsubscribe-page"


def test_a_post_is_accepted_by_a_client_that_enforces_csrf_and_has_no_cookies(shape):
    outreach = _sent_outreach()
    client = Client(enforce_csrf_checks=True)
    path = unsubscribe_url(outreach_id=outreach.pk).removeprefix(shape.PUBLIC_BASE_URL)
    response = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Suppression.objects.filter(value=outreach.to_email).exists()


# --- GET: looks, changes nothing ---------------------------------------------------------------


def test_a_get_shows_a_confirm_form_and_changes_nothing(shape, smtp_sink):
    outreach = _sent_outreach()
    url = _one_click_url(_mail(outreach, smtp_sink))
    before = _state(outreach)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert re.search(r'<form method="post">\s*<button type="submit">Unsubscribe</button>', response.text)
    assert "<script" not in response.text and "style=" not in response.text  # CSP: no inline code
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "no-store" in response.headers["Cache-Control"]
    assert "Set-Cookie" not in response.headers
    assert _state(outreach) == before
    outreach.refresh_from_db()
    assert (outreach.status, outreach.unsubscribed_at) == (Outreach.Status.SENT, None)


# --- Bad tokens, other methods, rate limits ---------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_is_a_plain_400_page_and_changes_nothing(method, shape, smtp_sink):
    outreach = _sent_outreach()
    url = _one_click_url(_mail(outreach, smtp_sink))
    tampered = url.replace("/unsubscribe/", "/unsubscribe/x", 1)
    before = _state(outreach)
    response = getattr(requests, method)(tampered, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "This unsubscribe link is not valid" in response.text
    assert _state(outreach) == before


def test_a_token_for_an_outreach_that_is_gone_is_400(shape):
    outreach = _sent_outreach()
    url = unsubscribe_url(outreach_id=outreach.pk)
    Outreach.objects.filter(pk=outreach.pk).delete()
    assert _one_click(url).status_code == 400


def test_other_methods_are_refused(shape):
    url = unsubscribe_url(outreach_id=_sent_outreach().pk)
    assert requests.put(url, timeout=10).status_code == 405


def test_the_unsubscribe_pages_are_rate_limited_per_ip_apart_from_the_api(shape, api_client):
    shape.RATE_LIMIT_PER_MINUTE = 2
    client = Client()
    answers = [client.post("/unsubscribe/not-a-token/").status_code for _ in range(3)]
    assert answers == [400, 400, 429]
    # The API's counters are its own: the same address may still use it.
    assert api_client.get("/api/v1/templates").status_code == 200


# --- The whole loop: ingest, mail, one click, reward ------------------------------------------


def test_a_lead_ingested_through_the_api_gets_a_mail_whose_one_click_post_fails_its_variant_once(
    shape, smtp_sink, api_client
):
    shape.OPENAI_API_KEY = ""
    shape.OUTREACH_MIN_SCORE = 0.5
    shape.OUTREACH_SEND_WINDOW = "mon-sun 00:00-24:00"  # whatever day the test runs on
    shape.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    shape.EMAIL_HOST, shape.EMAIL_PORT = "127.0.0.1", smtp_sink.port
    variant = VariantFactory(
        template=OutreachTemplateFactory(
            subject="Hi {{ company.name }}",
            body="Hi {{ contact.first_name }}",
            html_body="<p>Hi {{ company.name }}</p>",
        )
    )
    response = api_client.post("/api/v1/leads/ingest", [lightfield_event("lf-loop")], format="json")
    assert response.status_code == 202, response.content
    [mail] = smtp_sink.received()
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"{SENDER}, {POSTAL}" in _text(mail, "text/plain")
    assert POSTAL in _text(mail, "text/html")
    outreach = Outreach.objects.get(lead__lightfield_id="lf-loop")
    assert (outreach.status, outreach.html_body) == (Outreach.Status.SENT, "<p>Hi Acme Analytics</p>")

    assert _one_click(_one_click_url(mail)).status_code == 200
    assert _one_click(_one_click_url(mail)).status_code == 200
    variant.refresh_from_db()
    assert (variant.sends, variant.alpha, variant.beta) == (1, 1, 2)
    assert Suppression.objects.get().value == "lf-loop@acme.example.com"
