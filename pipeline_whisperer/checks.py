"""System checks of our own settings that need more than one setting to judge (`manage.py check
--deploy`; settings.py stops start-up for what one setting alone gets wrong)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.http.request import validate_host


@register(Tags.security, deploy=True)
def public_base_url_is_served(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The mail's unsubscribe links point at PUBLIC_BASE_URL: a host Django refuses (not in
    ALLOWED_HOSTS) would answer every one-click unsubscribe 400, which no sender may do."""
    host = urlsplit(settings.PUBLIC_BASE_URL).hostname or ""
    if not settings.OUTREACH_ENABLED or not host or validate_host(host, settings.ALLOWED_HOSTS):
        return []
    return [
        Error(
            f"PUBLIC_BASE_URL's host {host} is not in DJANGO_ALLOWED_HOSTS: every unsubscribe link would get 400.",
            hint="Add the host to DJANGO_ALLOWED_HOSTS, or set PUBLIC_BASE_URL to a host this service answers.",
            id="pipeline_whisperer.E001",
        )
    ]


@register(Tags.security, deploy=True)
def webhook_secret_is_set(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Sending through a provider (an anymail EMAIL_BACKEND) without ANYMAIL_WEBHOOK_SECRET:
    production refuses every provider webhook (403), so no delivery, bounce or complaint reaches
    the bandit. (With SMTP no provider posts, and the refusal alone is enough.)"""
    if not settings.EMAIL_BACKEND.startswith("anymail.") or (getattr(settings, "ANYMAIL", None) or {}).get(
        "WEBHOOK_SECRET"
    ):
        return []
    return [
        CheckWarning(
            "ANYMAIL_WEBHOOK_SECRET is not set: every email provider webhook is refused (403).",
            hint='Set ANYMAIL_WEBHOOK_SECRET to "user:password" and put it in each webhook URL you give a provider.',
            id="pipeline_whisperer.W001",
        )
    ]
