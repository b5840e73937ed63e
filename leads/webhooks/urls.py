"""The providers' webhook routes, mounted at /webhooks/: anymail's own paths and names, each view
wrapped by `provider_webhook`. One table, so pointing a path at another view (a subclass with a
stricter signature check) is a one-line edit."""

from __future__ import annotations

from anymail.webhooks.mailgun import MailgunInboundWebhookView, MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView, PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridInboundWebhookView, SendGridTrackingWebhookView
from django.urls import URLPattern, path, re_path

from leads.webhooks.sns import AmazonSESInboundWebhookView, AmazonSESTrackingWebhookView
from leads.webhooks.views import provider_webhook

app_name = "webhooks"

# (path, anymail view class, route name); a path starting with ^ is a regular expression.
WEBHOOKS = [
    # SES's views check each SNS message's signature too (anymail's do not).
    ("amazon_ses/tracking/", AmazonSESTrackingWebhookView, "amazon_ses_tracking_webhook"),
    ("amazon_ses/inbound/", AmazonSESInboundWebhookView, "amazon_ses_inbound_webhook"),
    ("postmark/tracking/", PostmarkTrackingWebhookView, "postmark_tracking_webhook"),
    ("postmark/inbound/", PostmarkInboundWebhookView, "postmark_inbound_webhook"),
    ("mailgun/tracking/", MailgunTrackingWebhookView, "mailgun_tracking_webhook"),
    # Mailgun posts the raw MIME to a URL containing "mime", parsed fields otherwise (anymail's rule).
    (r"^mailgun/inbound(_mime)?/$", MailgunInboundWebhookView, "mailgun_inbound_webhook"),
    ("sendgrid/tracking/", SendGridTrackingWebhookView, "sendgrid_tracking_webhook"),
    ("sendgrid/inbound/", SendGridInboundWebhookView, "sendgrid_inbound_webhook"),
]


def _route(route: str, view_class: type, name: str) -> URLPattern:
    route_of = re_path if route.startswith("^") else path
    return route_of(route, provider_webhook(view_class), name=name)


urlpatterns = [_route(route, view_class, name) for route, view_class, name in WEBHOOKS]
