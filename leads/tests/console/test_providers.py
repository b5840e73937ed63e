"""The console's email providers panel: events per provider and type over the last 24 hours,
and the unmatched webhook events with a link to their (read-only) admin list."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leads.models import EngagementEvent, UnmatchedProviderEvent
from leads.tests.factories import EngagementEventFactory, OutreachFactory

pytestmark = pytest.mark.django_db
PANELS = reverse("console:panels")


def _panel(html: str) -> str:
    return html[html.index('id="panel-providers"') :].split("</section>")[0]


def test_the_panel_counts_each_providers_events_by_type_and_lists_the_unmatched(admin_client):
    outreach = OutreachFactory()
    for n, (provider, event_type) in enumerate(
        [
            ("postmark", "delivered"),
            ("postmark", "opened"),
            ("postmark", "opened"),
            ("mailgun", "bounced"),
            ("", "opened"),
        ]
    ):
        EngagementEventFactory(outreach=outreach, provider=provider, event_type=event_type, event_id=f"e-{n}")
    old = EngagementEventFactory(outreach=outreach, provider="postmark", event_type="delivered", event_id="old")
    EngagementEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))
    UnmatchedProviderEvent.objects.create(
        provider="sendgrid", event_id="sendgrid:1", event_type="opened", provider_message_id="someone-elses"
    )
    panel = _panel(admin_client.get(PANELS).content.decode())
    assert '<tr data-provider="postmark"><th>postmark</th>' in panel
    assert "<th>delivered</th><th>opened</th><th>bounced</th>" in panel
    postmark = panel.split('data-provider="postmark"')[1].split("</tr>")[0]
    assert postmark.count('<td class="num">') == 3 and '<td class="num" data-field="total">3</td>' in postmark
    assert 'data-provider=""' not in panel  # our own API's events are no provider's
    assert reverse("admin:leads_unmatchedproviderevent_changelist") in panel
    assert 'data-providers="unmatched-count"' in panel and "sendgrid opened for someone-elses" in panel


def test_the_unmatched_admin_list_is_read_only(admin_client):
    row = UnmatchedProviderEvent.objects.create(provider="postmark", event_id="postmark:h:1", event_type="opened")
    assert admin_client.get(reverse("admin:leads_unmatchedproviderevent_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:leads_unmatchedproviderevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:leads_unmatchedproviderevent_delete", args=[row.pk])).status_code == 403
