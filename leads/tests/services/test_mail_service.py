"""The outreach mail as built by leads.services.mail: headers, footer, text and HTML parts."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message

import pytest
from django.core.mail import EmailMessage

from leads.services.mail import outreach_message
from leads.services.unsubscribe import unsubscribe_mailto, unsubscribe_url
from leads.tests.factories import OutreachFactory
from tests.test_mail_header_injection import MESSAGE_HEADERS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sender(settings) -> None:
    settings.DEFAULT_FROM_EMAIL = "Acme Sales <sales@acme.example.com>"
    settings.OUTREACH_SENDER_NAME = "Acme & Co"
    settings.OUTREACH_POSTAL_ADDRESS = "1 Main Street <Suite 2>, Springfield"
    settings.PUBLIC_BASE_URL = "https://mail.acme.example.com"
    settings.OUTREACH_UNSUBSCRIBE_MAILTO = "unsubscribe@acme.example.com"


def _wire(message: EmailMessage) -> Message:
    """The message as it would go over SMTP, parsed back."""
    return message_from_bytes(message.message().as_bytes())


def _parts(mail: Message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in mail.walk()
        if not part.is_multipart()
    }


def test_the_mail_carries_both_one_click_unsubscribe_headers():
    outreach = OutreachFactory(message_id="<abc@acme.example.com>")
    mail = _wire(outreach_message(outreach))
    url, mailto = unsubscribe_url(outreach_id=outreach.pk), unsubscribe_mailto(outreach_id=outreach.pk)
    assert url.startswith("https://mail.acme.example.com/unsubscribe/")
    assert " ".join(mail["List-Unsubscribe"].split()) == f"<{url}>, <{mailto}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_mail_is_from_the_sender_to_the_outreach_address_under_its_message_id():
    outreach = OutreachFactory(message_id="<abc@acme.example.com>", subject="Hello Acme")
    mail = _wire(outreach_message(outreach))
    assert (mail["From"], mail["To"], mail["Subject"]) == (
        "Acme Sales <sales@acme.example.com>",
        outreach.to_email,
        "Hello Acme",
    )
    assert (mail["Message-ID"], mail["X-Outreach-ID"]) == ("<abc@acme.example.com>", str(outreach.pk))


def test_an_outreach_without_a_message_id_gets_one_of_djangos():
    mail = _wire(outreach_message(OutreachFactory(message_id=None)))
    assert mail["Message-ID"].startswith("<") and "None" not in mail["Message-ID"]


def test_a_text_only_outreach_is_one_text_part_ending_in_the_footer():
    outreach = OutreachFactory(body="Hi Ada.")
    mail = _wire(outreach_message(outreach))
    assert mail.get_content_type() == "text/plain"
    assert _parts(mail)["text/plain"] == (
        "Hi Ada.\n\n-- \nAcme & Co, 1 Main Street <Suite 2>, Springfield\n"
        f"Unsubscribe: {unsubscribe_url(outreach_id=outreach.pk)}\n"
    )


def test_an_outreach_with_html_is_multipart_alternative_with_the_footer_in_both_parts():
    outreach = OutreachFactory(body="Hi Ada.", html_body="<p>Hi Ada.</p>")
    mail = _wire(outreach_message(outreach))
    assert mail.get_content_type() == "multipart/alternative"
    parts = _parts(mail)
    url = unsubscribe_url(outreach_id=outreach.pk)
    assert parts["text/plain"].startswith("Hi Ada.\n\n-- \nAcme & Co")
    assert parts["text/html"] == (
        '<p>Hi Ada.</p><hr><p style="font-size:12px;color:#666666">Acme &amp; Co<br>'
        f'1 Main Street &lt;Suite 2&gt;, Springfield<br><a href="{url}">Unsubscribe</a></p>'
    )


def test_the_html_footer_goes_inside_the_body_of_a_whole_document():
    outreach = OutreachFactory(html_body="<html><body><p>Hi</p></BODY></html>")
    html = _parts(_wire(outreach_message(outreach)))["text/html"]
    assert html.startswith("<html><body><p>Hi</p><hr>")
    assert html.endswith("Unsubscribe</a></p></BODY></html>")


@pytest.mark.parametrize("breaker", ["\n", "\r\n", "\r", "\u2028", "\x0b"])
def test_no_line_break_in_a_stored_subject_or_address_reaches_a_header(breaker):
    outreach = OutreachFactory(subject=f"Hello{breaker}Bcc: victim@example.org")
    mail = _wire(outreach_message(outreach))
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Hello Bcc: victim@example.org"


def test_the_mail_carries_its_ids_as_provider_metadata_and_its_experiment_as_its_one_tag():
    outreach = OutreachFactory()
    message = outreach_message(outreach)
    assert message.metadata == {  # type: ignore[attr-defined]
        "outreach_id": str(outreach.pk),
        "variant_id": str(outreach.variant_id),
        "experiment_id": str(outreach.variant.experiment_id),
    }
    assert message.tags == [f"experiment-{outreach.variant.experiment_id}"]  # type: ignore[attr-defined]


def test_an_outreach_outside_any_experiment_carries_only_its_own_id_and_the_plain_tag():
    outreach = OutreachFactory(variant=None)
    message = outreach_message(outreach)
    assert message.metadata == {"outreach_id": str(outreach.pk)}  # type: ignore[attr-defined]
    assert message.tags == ["outreach"]  # type: ignore[attr-defined]


def test_over_smtp_the_provider_metadata_and_tag_add_no_header():
    mail = _wire(outreach_message(OutreachFactory(message_id="<abc@acme.example.com>")))
    assert set(mail.keys()) == MESSAGE_HEADERS
