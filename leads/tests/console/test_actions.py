"""Steering from the admin: each action goes through a service, confirms, and is logged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from leads.models import DeadLetter, Experiment, Lead, OutboxEvent, OutreachTemplate, Variant
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


def _act(client, model: str, action: str, rows: list) -> list[str]:
    response = client.post(
        reverse(f"admin:leads_{model}_changelist"),
        {"action": action, "_selected_action": [row.pk for row in rows]},
        follow=True,
    )
    return [str(message) for message in response.context["messages"]]


def _log_messages(user) -> list[str]:
    return [entry.get_change_message() for entry in LogEntry.objects.filter(user=user, action_flag=CHANGE)]


def test_pause_experiments_action_pauses_confirms_and_logs(admin_client, admin_user):
    experiments = ExperimentFactory.create_batch(2)
    messages = _act(admin_client, "experiment", "pause_experiments", experiments)
    assert messages == ["Paused 2 of the selected experiments."]
    assert set(Experiment.objects.values_list("status", flat=True)) == {Experiment.Status.PAUSED}
    assert _log_messages(admin_user) == ["Paused from the admin."] * 2


def test_resume_experiments_action_resumes_a_paused_experiment(admin_client, admin_user):
    experiment = ExperimentFactory(status=Experiment.Status.PAUSED)
    assert _act(admin_client, "experiment", "resume_experiments", [experiment]) == [
        "Resumed 1 of the selected experiments."
    ]
    assert Experiment.objects.get(pk=experiment.pk).status == Experiment.Status.ACTIVE


def test_pause_variants_action_deactivates_the_arm_and_logs(admin_client, admin_user):
    variant = VariantFactory()
    assert _act(admin_client, "variant", "pause_variants", [variant]) == ["Paused 1 of the selected variants."]
    assert Variant.objects.get(pk=variant.pk).is_active is False
    assert _log_messages(admin_user) == ["Paused from the admin."]


def test_resume_variants_action_reactivates_the_arm(admin_client):
    variant = VariantFactory(is_active=False)
    _act(admin_client, "variant", "resume_variants", [variant])
    assert Variant.objects.get(pk=variant.pk).is_active is True


def test_variant_cannot_be_edited_or_deleted_on_its_own_page(admin_client):
    variant = VariantFactory(name="Original")
    change = admin_client.post(reverse("admin:leads_variant_change", args=[variant.pk]), {"name": "Renamed"})
    delete = admin_client.post(reverse("admin:leads_variant_delete", args=[variant.pk]), {"post": "yes"})
    assert (change.status_code, delete.status_code) == (403, 403)
    assert Variant.objects.get(pk=variant.pk).name == "Original"


def _outbox_row(**fields) -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_id=uuid.uuid4(), topic="leads.raw", key="lf-1", event_type="lead.created", payload={"a": 1}, **fields
    )


def test_retry_outbox_action_clears_the_failure_of_a_stuck_row(admin_client, admin_user, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # the relay publishes; retry only clears the error
    stuck = _outbox_row(attempts=7, last_error="broker down")
    assert _act(admin_client, "outboxevent", "retry", [stuck]) == ["Retried 1 of the selected outbox events."]
    stuck.refresh_from_db()
    assert (stuck.attempts, stuck.last_error, stuck.published_at) == (0, "", None)
    assert _log_messages(admin_user) == ["Retried from the admin."]


def test_discard_outbox_action_moves_the_row_to_dead_letters(admin_client, admin_user):
    stuck = _outbox_row(attempts=3, last_error="broker down")
    assert _act(admin_client, "outboxevent", "discard", [stuck]) == ["Discarded 1 of the selected outbox events."]
    assert not OutboxEvent.objects.filter(pk=stuck.pk).exists()
    dead = DeadLetter.objects.get()
    assert (dead.stage, dead.topic, dead.key, dead.status) == ("outbox", "leads.raw", "lf-1", "pending")
    assert "broker down" in dead.error
    assert LogEntry.objects.filter(user=admin_user, object_id=str(stuck.pk)).exists()


def test_published_outbox_rows_are_left_as_they_were(admin_client):
    published = _outbox_row(published_at=timezone.now())
    (message,) = _act(admin_client, "outboxevent", "discard", [published])
    assert message.startswith("Left 1 as they were")
    assert OutboxEvent.objects.filter(pk=published.pk).exists()


def _template_post(lead: Lead | None, **extra) -> dict[str, str]:
    return {
        "name": "Draft",
        "subject": "Hi {{ company.name }}",
        "body": "Dear {{ contact.first_name }}",
        "preview_lead": lead.lightfield_id if lead else "",
        **extra,
    }


def test_template_preview_renders_for_the_chosen_lead_and_saves_nothing(admin_client):
    lead = LeadFactory(company_name="Acme", contact_name="Grace Hopper")
    response = admin_client.post(reverse("admin:leads_outreachtemplate_add"), _template_post(lead, _preview="1"))
    assert response.status_code == 200
    assert response.context["adminform"].form.preview.subject == "Hi Acme"
    html = response.content.decode()
    assert '<span data-preview="subject">Hi Acme</span>' in html
    assert "Dear Grace" in html
    assert not OutreachTemplate.objects.exists()


def test_template_preview_without_a_lead_asks_for_one(admin_client):
    response = admin_client.post(reverse("admin:leads_outreachtemplate_add"), _template_post(None, _preview="1"))
    assert "Name a lead to preview the message for." in response.content.decode()
    assert not OutreachTemplate.objects.exists()


def test_template_save_ignores_the_preview_lead(admin_client):
    lead = LeadFactory()
    admin_client.post(reverse("admin:leads_outreachtemplate_add"), _template_post(lead, _save="Save"))
    assert OutreachTemplate.objects.get().subject == "Hi {{ company.name }}"


def test_template_preview_on_an_existing_template_leaves_it_unchanged(admin_client):
    template = OutreachTemplateFactory(subject="Old")
    lead = LeadFactory(company_name="Acme")
    url = reverse("admin:leads_outreachtemplate_change", args=[template.pk])
    admin_client.post(url, _template_post(lead, _preview="1"))
    assert OutreachTemplate.objects.get(pk=template.pk).subject == "Old"


def test_lead_change_page_tells_the_story_in_order(admin_client):
    now = timezone.now()
    lead = LeadFactory(
        scored_at=now + timedelta(minutes=1),
        score=0.82,
        scoring_reasons=["budget 50k-100k: +0.2"],
        converted_at=now + timedelta(hours=2),
    )
    outreach = OutreachFactory(
        lead=lead, sent_at=now + timedelta(minutes=5), subject="Hello Acme", body="Rendered body", status="converted"
    )
    EngagementEventFactory(outreach=outreach, event_type="opened", occurred_at=now + timedelta(hours=1))
    html = admin_client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    kinds = [html.index(f'data-kind="{kind}"') for kind in ("ingested", "scored", "outreach.converted")]
    kinds += [html.index(f'data-kind="{kind}"') for kind in ("engagement.opened", "converted")]
    assert kinds == sorted(kinds)
    assert "budget 50k-100k: +0.2" in html
    assert "Subject: Hello Acme" in html
    assert "Rendered body" in html


def test_lead_change_page_says_why_the_lead_was_not_contacted_and_when_mail_is_scheduled(admin_client):
    lead = LeadFactory(not_contacted_reason="the address was written to within 90 days (under another lead)")
    other = LeadFactory()
    OutreachFactory(lead=other, status="scheduled", scheduled_for=timezone.now() + timedelta(hours=3), sent_at=None)
    html = admin_client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    assert 'data-kind="not-contacted"' in html
    assert "Not contacted: the address was written to within 90 days (under another lead)" in html
    other_html = admin_client.get(reverse("admin:leads_lead_change", args=[other.pk])).content.decode()
    assert "Outreach scheduled" in other_html and "scheduled for" in other_html
