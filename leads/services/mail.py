"""The outreach mail as it goes out: the stored subject and bodies, the sender's footer and the
RFC 8058 one-click unsubscribe headers.

Every message carries `List-Unsubscribe` (our https URL with a signed token, and a mailto) with
`List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and a footer naming the sender and their
postal address (CAN-SPAM) with a visible unsubscribe link, in the text part and, when the outreach
has one, the HTML part (then the mail is multipart/alternative). Header values are made one line
here whatever the row holds, so no stored text can add a header.

Through an email provider (django-anymail) the message also carries `metadata` (the outreach,
variant and experiment ids, which the provider hands back on every tracking event) and one tag
for the provider's dashboards; SMTP and the console ignore both.
"""

from __future__ import annotations

import re

from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.html import format_html

from leads.addresses import single_line
from leads.models import Outreach
from leads.services.unsubscribe import unsubscribe_mailto, unsubscribe_url

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def outreach_message(outreach: Outreach, *, connection: BaseEmailBackend | None = None) -> EmailMessage:
    """The message for a stored Outreach (multipart/alternative when it has an HTML body), ready
    to `send()` over `connection`. Reads settings when called, never at import. Reads
    `outreach.variant` when it has one (select it with the row)."""
    url = unsubscribe_url(outreach_id=outreach.pk)
    headers = {
        "X-Outreach-ID": str(outreach.pk),
        "List-Unsubscribe": f"<{url}>, <{unsubscribe_mailto(outreach_id=outreach.pk)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    # A row without one (message_id is nullable) gets Django's own, never the text "None".
    if outreach.message_id:
        headers["Message-ID"] = single_line(outreach.message_id)
    message = AnymailMessage(
        subject=single_line(" ".join(outreach.subject.split())),
        body=outreach.body + text_footer(unsubscribe=url),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[single_line(outreach.to_email)],
        headers=headers,
        connection=connection,
        metadata=provider_metadata(outreach),
        tags=[provider_tag(outreach)],
    )
    if outreach.html_body:
        message.attach_alternative(_with_footer(outreach.html_body, html_footer(unsubscribe=url)), "text/html")
    return message


def provider_metadata(outreach: Outreach) -> dict[str, str]:
    """The ids a provider keeps with the message and reports back with its events, as strings
    (Mailgun's custom data and SES's headers carry text only); absent ids are left out."""
    variant = outreach.variant
    ids = {
        "outreach_id": outreach.pk,
        "variant_id": outreach.variant_id,
        "experiment_id": variant.experiment_id if variant is not None else None,
    }
    return {key: str(value) for key, value in ids.items() if value is not None}


def provider_tag(outreach: Outreach) -> str:
    """The message's one tag: Postmark takes a single tag (anymail refuses more), SES's message
    tag name one value of letters, digits, "-" and "_"; Mailgun and SendGrid take this too."""
    variant = outreach.variant
    return f"experiment-{variant.experiment_id}" if variant is not None else "outreach"


def text_footer(*, unsubscribe: str) -> str:
    """The plain-text footer, after the conventional signature separator ("-- ")."""
    sender = ", ".join(part for part in (settings.OUTREACH_SENDER_NAME, settings.OUTREACH_POSTAL_ADDRESS) if part)
    return f"\n\n-- \n{sender}\nUnsubscribe: {unsubscribe}\n"


def html_footer(*, unsubscribe: str) -> str:
    """The HTML footer, every value escaped."""
    return format_html(
        '<hr><p style="font-size:12px;color:#666666">{}<br>{}<br><a href="{}">Unsubscribe</a></p>',
        settings.OUTREACH_SENDER_NAME,
        settings.OUTREACH_POSTAL_ADDRESS,
        unsubscribe,
    )


def _with_footer(html: str, footer: str) -> str:
    """`footer` inside the document's body when it has a closing </body> tag, else appended."""
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + footer
    at = ends[-1].start()
    return html[:at] + footer + html[at:]
