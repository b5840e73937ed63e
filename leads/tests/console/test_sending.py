"""The console's deliverability panel, the banner while sending is paused, and staff's pause and
resume (POST, CSRF, permissions)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from leads.models import Outreach, SendingPause
from leads.services.brake import brake_check, sending_pause, sending_paused
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("console:dashboard")
PANELS = reverse("console:panels")
PAUSE = reverse("console:sending-pause")
RESUME = reverse("console:sending-resume")


def _cell(html: str, name: str) -> str:
    match = re.search(rf'data-deliverability="{name}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no data-deliverability={name}"
    return match.group(1).strip()


def _mail(count: int, **fields) -> None:
    lead = LeadFactory()
    at = timezone.now() - timedelta(hours=2)
    Outreach.objects.bulk_create(
        Outreach(lead=lead, to_email=f"c{n}@example.com", subject="s", body="b", sent_at=at, **fields)
        for n in range(count)
    )


def _tripped(settings) -> SendingPause:
    settings.OUTREACH_BRAKE_MIN_SAMPLE = 100
    _mail(99)
    _mail(1, status=Outreach.Status.COMPLAINED, complained_at=timezone.now() - timedelta(hours=1))
    pause = brake_check(now=timezone.now())
    assert pause is not None
    return pause


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    """Staff who may view leads but not pause or resume sending."""
    user = django_user_model.objects.create_user(username="viewer", password="x-staff-0", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_shows_the_bounce_and_complaint_rates(admin_client):
    recent = timezone.now() - timedelta(hours=1)
    _mail(36)
    _mail(3, status=Outreach.Status.BOUNCED, bounce_type="hard", bounced_at=recent)
    _mail(1, status=Outreach.Status.COMPLAINED, complained_at=recent)
    html = admin_client.get(DASHBOARD).content.decode()
    assert (_cell(html, "sent"), _cell(html, "hard-bounces"), _cell(html, "complaints")) == ("40", "3", "1")
    assert (_cell(html, "bounce-rate"), _cell(html, "complaint-rate")) == ("7.50%", "2.50%")
    assert _cell(html, "state") == "Sending is on."
    assert 'id="sending-paused"' not in html


@pytest.mark.parametrize("page", [DASHBOARD, PANELS])
def test_when_the_brake_tripped_the_console_says_why_and_offers_resume(admin_client, settings, page):
    pause = _tripped(settings)
    html = admin_client.get(page).content.decode()
    banner = html[html.index('id="sending-paused"') :]
    assert "by the deliverability brake" in banner
    assert pause.reason in banner
    assert pause.paused_at.strftime("%Y-%m-%d %H:%M") in banner
    assert 'data-sending="resume"' in banner and f'action="{RESUME}"' in banner


def test_resume_from_the_console_lifts_the_pause_and_says_so(admin_client, admin_user, settings):
    pause = _tripped(settings)
    response = admin_client.post(RESUME, follow=True)
    assert response.redirect_chain == [(DASHBOARD, 302)]
    pause.refresh_from_db()
    assert (pause.in_force, pause.resumed_by) == (None, admin_user.username)
    assert sending_paused() is None
    html = response.content.decode()
    assert "Sending resumed." in html and 'id="sending-paused"' not in html


def test_pause_from_the_console_pauses_with_the_reason_given(admin_client, admin_user):
    response = admin_client.post(PAUSE, {"reason": "Checking the new list"}, follow=True)
    pause = sending_paused()
    assert (pause.paused_by, pause.reason) == (admin_user.username, "Checking the new list")
    html = response.content.decode()
    assert "Checking the new list" in html[html.index('id="sending-paused"') :]


def test_pausing_when_paused_keeps_the_first_pause(admin_client):
    first = sending_pause(by="ops", reason="first")
    admin_client.post(PAUSE, {"reason": "second"})
    assert list(SendingPause.objects.values_list("pk", flat=True)) == [first.pk]


def test_staff_without_the_permission_see_the_banner_without_buttons_and_cannot_resume(viewer_client, settings):
    _tripped(settings)
    html = viewer_client.get(DASHBOARD).content.decode()
    assert 'id="sending-paused"' in html
    assert 'data-sending="resume"' not in html
    assert viewer_client.post(RESUME).status_code == 403
    assert viewer_client.post(PAUSE).status_code == 403
    assert sending_paused() is not None


def test_non_staff_are_sent_to_the_login_and_change_nothing(plain_client):
    sending_pause(by="ops", reason="held")
    response = plain_client.post(RESUME)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert sending_paused() is not None


def test_resume_is_post_only(admin_client, settings):
    _tripped(settings)
    assert admin_client.get(RESUME).status_code == 405
    assert sending_paused() is not None


def test_resume_without_the_csrf_token_is_refused_and_with_it_works(admin_user, settings):
    _tripped(settings)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(RESUME).status_code == 403
    assert sending_paused() is not None
    html = client.get(DASHBOARD).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert client.post(RESUME, {"csrfmiddlewaretoken": token}).status_code == 302
    assert sending_paused() is None


def test_the_queue_page_shows_the_banner_with_its_resume_button(admin_client, settings):
    pause = _tripped(settings)
    html = admin_client.get(reverse("console:queue")).content.decode()
    banner = html[html.index('id="sending-paused"') :]
    assert pause.reason in banner and 'data-sending="resume"' in banner
