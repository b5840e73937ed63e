"""The console's outreach queue: its counts match the database, and staff's send-now and cancel
are staff-only, CSRF-checked POSTs that go through the queue services."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from leads.models import Outreach, SendingPause
from leads.tests.factories import LeadFactory, OutreachFactory

pytestmark = pytest.mark.django_db
QUEUE = reverse("console:queue")


def _scheduled(minutes: float, domain: str = "acme.example", **fields) -> Outreach:
    lead = LeadFactory(contact_email=f"{LeadFactory._meta.model.objects.count()}@{domain}")
    return OutreachFactory(
        lead=lead,
        status=fields.pop("status", Outreach.Status.SCHEDULED),
        recipient_domain=domain,
        scheduled_for=timezone.now() + timedelta(minutes=minutes),
        **fields,
    )


def _cell(html: str, name: str) -> str:
    match = re.search(rf'data-queue="{name}"[^>]*>(.*?)</td>', html, re.S)
    assert match, f"no data-queue={name} cell"
    return match.group(1).strip()


def test_the_queue_shows_what_is_due_now_later_and_by_domain(admin_client):
    now = timezone.localtime()
    minutes_left_today = (now.replace(hour=23, minute=59) - now).total_seconds() / 60
    for minutes in (-30, -1):
        _scheduled(minutes)
    _scheduled(-5, domain="globex.example")
    if minutes_left_today > 2:
        _scheduled(1)
    _scheduled(60 * 30, domain="globex.example")  # tomorrow or later
    _scheduled(-10, status=Outreach.Status.SENT)  # not in the queue

    html = admin_client.get(QUEUE).content.decode()

    assert _cell(html, "due-now") == "3"
    assert _cell(html, "later-today") == ("1" if minutes_left_today > 2 else "0")
    assert _cell(html, "total") == str(Outreach.objects.filter(status=Outreach.Status.SCHEDULED).count())
    assert re.search(r'data-domain="globex.example">.*?data-field="count">2<.*?data-field="due">1<', html, re.S)
    scheduled = Outreach.objects.filter(status=Outreach.Status.SCHEDULED).order_by("scheduled_for")
    assert re.findall(r'data-outreach="(\d+)"', html) == [str(o.pk) for o in scheduled]
    assert html.count('name="send-now"') == html.count('name="cancel"') == scheduled.count()
    assert 'id="queue-paused"' not in html


def test_the_queue_says_when_sending_is_paused(admin_client):
    SendingPause.objects.create(reason="bounce rate 7% over 5%")
    html = admin_client.get(QUEUE).content.decode()
    assert 'id="queue-paused"' in html and "bounce rate 7% over 5%" in html


def test_the_dashboard_links_to_the_queue(admin_client):
    assert QUEUE in admin_client.get(reverse("console:dashboard")).content.decode()


def test_send_now_makes_the_row_due_and_says_so(admin_client):
    row = _scheduled(120)
    response = admin_client.post(reverse("console:queue-send-now", args=[row.pk]), follow=True)
    assert response.redirect_chain[-1][0] == QUEUE
    row.refresh_from_db()
    assert row.status == Outreach.Status.SCHEDULED
    assert row.scheduled_for is not None and row.scheduled_for <= timezone.now()
    assert "goes out with the next dispatch" in response.content.decode()


def test_cancel_cancels_the_row_with_the_reason_and_who(admin_client, admin_user):
    row = _scheduled(120)
    response = admin_client.post(
        reverse("console:queue-cancel", args=[row.pk]), {"reason": "duplicate contact"}, follow=True
    )
    row.refresh_from_db()
    assert row.status == Outreach.Status.CANCELLED
    assert row.error == f"cancelled by {admin_user.username}: duplicate contact"
    assert "is cancelled" in response.content.decode()


def test_cancelling_a_row_that_was_sent_meanwhile_changes_nothing_and_says_why(admin_client):
    row = _scheduled(-1, status=Outreach.Status.SENT)
    response = admin_client.post(reverse("console:queue-cancel", args=[row.pk]), {"reason": "late"}, follow=True)
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SENT
    assert "only a scheduled mail can be changed" in response.content.decode()


def test_the_buttons_take_no_get(admin_client):
    row = _scheduled(120)
    assert admin_client.get(reverse("console:queue-send-now", args=[row.pk])).status_code == 405
    assert admin_client.get(reverse("console:queue-cancel", args=[row.pk])).status_code == 405
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SCHEDULED


def test_a_user_who_is_not_staff_cannot_see_or_change_the_queue(plain_client):
    row = _scheduled(120)
    assert plain_client.get(QUEUE).status_code == 302  # to the admin login
    plain_client.post(reverse("console:queue-cancel", args=[row.pk]), {"reason": "x"})
    plain_client.post(reverse("console:queue-send-now", args=[row.pk]))
    row.refresh_from_db()
    assert row.status == Outreach.Status.SCHEDULED
    assert row.scheduled_for is not None and row.scheduled_for > timezone.now()


def test_staff_without_permission_to_change_outreach_see_the_queue_without_buttons_and_cannot_post(
    django_user_model: type[User],
):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(username="viewer", password="view-only-0", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outreach"))
    client = Client()
    client.force_login(viewer)
    row = _scheduled(120)
    html = client.get(QUEUE).content.decode()
    assert f'data-outreach="{row.pk}"' in html and 'name="cancel"' not in html
    assert client.post(reverse("console:queue-cancel", args=[row.pk]), {"reason": "x"}).status_code == 403
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SCHEDULED


def test_a_post_without_the_csrf_token_is_refused(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    row = _scheduled(120)
    assert client.post(reverse("console:queue-cancel", args=[row.pk]), {"reason": "x"}).status_code == 403
    assert Outreach.objects.get(pk=row.pk).status == Outreach.Status.SCHEDULED
