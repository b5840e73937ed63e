"""The staff console for the lead domain: pages render, actions go through services, history is read-only."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from leads import caching
from leads.models import EngagementEvent, Experiment, Lead, Outreach, OutreachTemplate
from leads.tests.factories import (
    EngagementEventFactory,
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db

MODELS = ["lead", "outreachtemplate", "experiment", "outreach", "engagementevent"]


@pytest.fixture
def seeded() -> dict[str, object]:
    """One row of every model, linked the way the pipeline links them."""
    experiment = ExperimentFactory(name="Cold intro")
    variant = VariantFactory(experiment=experiment, name="Pain-led")
    VariantFactory(experiment=experiment, name="Social proof")
    lead = LeadFactory(company_name="Acme", status=Lead.Status.SCORED, score=0.7, raw_payload={"lightfield_id": "x"})
    outreach = OutreachFactory(lead=lead, variant=variant)
    event = EngagementEventFactory(outreach=outreach)
    return {
        "lead": lead,
        "outreachtemplate": variant.template,
        "experiment": experiment,
        "outreach": outreach,
        "engagementevent": event,
    }


@pytest.mark.parametrize("model", MODELS)
def test_changelist_renders_for_staff(admin_client, seeded, model):
    response = admin_client.get(reverse(f"admin:leads_{model}_changelist"))
    assert response.status_code == 200
    assert seeded[model] in response.context["cl"].result_list


@pytest.mark.parametrize("model", MODELS)
def test_change_page_renders_for_staff(admin_client, seeded, model):
    response = admin_client.get(reverse(f"admin:leads_{model}_change", args=[seeded[model].pk]))
    assert response.status_code == 200


def test_changelist_search_finds_a_lead_by_company(admin_client, seeded):
    LeadFactory(company_name="Globex")
    response = admin_client.get(reverse("admin:leads_lead_changelist"), {"q": "Acme"})
    assert [lead.company_name for lead in response.context["cl"].result_list] == ["Acme"]


def test_experiment_change_page_shows_its_variants_inline(admin_client, seeded):
    response = admin_client.get(reverse("admin:leads_experiment_change", args=[seeded["experiment"].pk]))
    (inline,) = response.context["inline_admin_formsets"]
    assert sorted(form.original.name for form in inline if form.original) == ["Pain-led", "Social proof"]


def test_lead_change_page_shows_its_outreach_inline(admin_client, seeded):
    response = admin_client.get(reverse("admin:leads_lead_change", args=[seeded["lead"].pk]))
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original for form in inline if form.original] == [seeded["outreach"]]


def test_leads_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:leads_lead_add")).status_code == 403


def _run_action(client, action: str, leads: list[Lead]):
    return client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": action, "_selected_action": [lead.pk for lead in leads]},
        follow=True,
    )


def test_snooze_action_snoozes_the_selected_leads_and_logs_each(admin_client, admin_user):
    leads = [LeadFactory(status=Lead.Status.SCORED), LeadFactory(status=Lead.Status.RAW)]
    untouched = LeadFactory(status=Lead.Status.SCORED)
    response = _run_action(admin_client, "snooze_leads", leads)
    assert "Snoozed 2 of the selected leads." in [str(m) for m in response.context["messages"]]
    snoozed = Lead.objects.filter(status=Lead.Status.SNOOZED).values_list("pk", flat=True)
    assert set(snoozed) == {lead.pk for lead in leads}
    assert Lead.objects.get(pk=untouched.pk).status == Lead.Status.SCORED
    entries = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert sorted(str(e.object_id) for e in entries) == sorted(str(lead.pk) for lead in leads)
    assert {e.get_change_message() for e in entries} == {"Snoozed from the admin."}


def test_unsnooze_action_restores_the_selected_leads_and_logs_each(admin_client, admin_user):
    lead = LeadFactory(status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.CONTACTED)
    _run_action(admin_client, "unsnooze_leads", [lead])
    assert Lead.objects.get(pk=lead.pk).status == Lead.Status.CONTACTED
    entry = LogEntry.objects.get(user=admin_user, object_id=str(lead.pk))
    assert entry.get_change_message() == "Unsnoozed from the admin."


def test_snooze_action_leaves_leads_it_may_not_snooze_and_says_why(admin_client):
    converted = LeadFactory(company_name="Done Inc", status=Lead.Status.CONVERTED)
    response = _run_action(admin_client, "snooze_leads", [converted])
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Left 1 as they were: Done Inc (")
    assert message.endswith("A lead that is converted cannot be snoozed.")
    assert Lead.objects.get(pk=converted.pk).status == Lead.Status.CONVERTED
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("model", ["outreach", "engagementevent"])
def test_history_cannot_be_added(admin_client, model):
    assert admin_client.get(reverse(f"admin:leads_{model}_add")).status_code == 403


def test_outreach_change_post_is_refused(admin_client, seeded):
    outreach = seeded["outreach"]
    response = admin_client.post(
        reverse("admin:leads_outreach_change", args=[outreach.pk]), {"subject": "Rewritten", "status": "converted"}
    )
    assert response.status_code == 403
    assert Outreach.objects.get(pk=outreach.pk).subject == outreach.subject


def test_engagement_change_post_is_refused(admin_client, seeded):
    event = seeded["engagementevent"]
    response = admin_client.post(
        reverse("admin:leads_engagementevent_change", args=[event.pk]), {"event_type": "converted"}
    )
    assert response.status_code == 403
    assert EngagementEvent.objects.get(pk=event.pk).event_type == event.event_type


@pytest.mark.parametrize("model", ["outreach", "engagementevent"])
def test_history_cannot_be_deleted(admin_client, seeded, model):
    response = admin_client.post(reverse(f"admin:leads_{model}_delete", args=[seeded[model].pk]), {"post": "yes"})
    assert response.status_code == 403


def test_template_with_a_syntax_error_is_refused_by_the_admin_form(admin_client):
    response = admin_client.post(
        reverse("admin:leads_outreachtemplate_add"), {"name": "Broken", "subject": "Hi", "body": "{% if %}"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["body"]
    assert errors["body"][0].startswith("Template syntax error")
    assert not OutreachTemplate.objects.filter(name="Broken").exists()


def test_valid_template_is_saved_by_the_admin_form(admin_client):
    response = admin_client.post(
        reverse("admin:leads_outreachtemplate_add"),
        {"name": "Fine", "subject": "Hi {{ company.name }}", "body": "Hello"},
    )
    assert response.status_code == 302
    assert OutreachTemplate.objects.get(name="Fine").subject == "Hi {{ company.name }}"


def test_the_admin_form_saves_an_html_body(admin_client):
    response = admin_client.post(
        reverse("admin:leads_outreachtemplate_add"),
        {"name": "Rich", "subject": "Hi", "body": "Hello", "html_body": "<p>Hello {{ company.name }}</p>"},
    )
    assert response.status_code == 302
    assert OutreachTemplate.objects.get(name="Rich").html_body == "<p>Hello {{ company.name }}</p>"


def test_the_admin_form_refuses_an_html_body_that_does_not_compile(admin_client):
    response = admin_client.post(
        reverse("admin:leads_outreachtemplate_add"),
        {"name": "Broken", "subject": "Hi", "body": "Hello", "html_body": "{% if %}"},
    )
    assert list(response.context["adminform"].form.errors) == ["html_body"]
    assert not OutreachTemplate.objects.filter(name="Broken").exists()


def test_the_admin_preview_shows_the_rendered_html_as_source_not_as_markup(admin_client):
    lead = LeadFactory(company_name="Acme <i>Labs</i>")
    response = admin_client.post(
        reverse("admin:leads_outreachtemplate_add"),
        {
            "name": "Rich",
            "subject": "Hi",
            "body": "Hello",
            "html_body": "<p>{{ company.name }}</p>",
            "preview_lead": lead.lightfield_id,
            "_preview": "Preview",
        },
    )
    page = response.content.decode()
    # Rendered (the lead's value escaped once), then shown as text (escaped again): nothing runs.
    assert '<pre data-preview="html_body">&lt;p&gt;Acme &amp;lt;i&amp;gt;Labs&amp;lt;/i&amp;gt;&lt;/p&gt;</pre>' in page
    assert not OutreachTemplate.objects.exists()


def _experiment_form(name: str, variants: list[dict[str, str]], initial: int = 0) -> dict[str, str]:
    data = {
        "name": name,
        "status": "active",
        "success_event": "converted",
        "loss_threshold": "0.001",
        "min_resolved_per_variant": "50",
        "burn_in_sends": "0",
        "target_persona": "",
        "description": "",
        "variants-TOTAL_FORMS": str(len(variants)),
        "variants-INITIAL_FORMS": str(initial),
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for index, variant in enumerate(variants):
        data.update({f"variants-{index}-{field}": value for field, value in variant.items()})
    return data


def test_experiment_with_two_variants_is_added_by_the_admin_form(admin_client):
    template = OutreachTemplateFactory()
    variants = [{"name": name, "template": str(template.pk), "is_active": "on"} for name in ("A", "B")]
    response = admin_client.post(reverse("admin:leads_experiment_add"), _experiment_form("Pair", variants))
    assert response.status_code == 302
    assert sorted(Experiment.objects.get(name="Pair").variants.values_list("name", flat=True)) == ["A", "B"]


def test_the_admin_form_sets_an_experiments_success_event(admin_client):
    template = OutreachTemplateFactory()
    variants = [{"name": name, "template": str(template.pk), "is_active": "on"} for name in ("A", "B")]
    form = {**_experiment_form("Clicks", variants), "success_event": "clicked"}
    assert admin_client.post(reverse("admin:leads_experiment_add"), form).status_code == 302
    assert Experiment.objects.get(name="Clicks").success_event == Experiment.SuccessEvent.CLICKED


def test_experiment_with_one_variant_is_refused_by_the_admin_form(admin_client):
    template = OutreachTemplateFactory()
    variants = [{"name": "Only", "template": str(template.pk), "is_active": "on"}]
    response = admin_client.post(reverse("admin:leads_experiment_add"), _experiment_form("Lonely", variants))
    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert inline.formset.non_form_errors() == ["Please submit at least 2 forms."]
    assert not Experiment.objects.filter(name="Lonely").exists()


def test_deleting_a_variant_below_two_is_refused_by_the_admin_form(admin_client, seeded):
    experiment = seeded["experiment"]
    variants = [
        {"id": str(v.pk), "experiment": str(experiment.pk), "name": v.name, "template": str(v.template_id)}
        for v in experiment.variants.order_by("name")
    ]
    variants[1]["DELETE"] = "on"
    response = admin_client.post(
        reverse("admin:leads_experiment_change", args=[experiment.pk]),
        _experiment_form(experiment.name, variants, initial=2),
    )
    assert response.status_code == 200
    assert experiment.variants.count() == 2


def test_non_staff_user_is_sent_to_the_login_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="plain", password="not-staff-0"))
    response = client.get(reverse("admin:leads_lead_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def _changelist_queries(client, model: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse(f"admin:leads_{model}_changelist")).status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", MODELS)
def test_changelist_queries_do_not_grow_with_the_rows(admin_client, model):
    EngagementEventFactory()
    one_row = _changelist_queries(admin_client, model)
    EngagementEventFactory.create_batch(4)
    assert _changelist_queries(admin_client, model) == one_row


def test_lead_with_outreach_cannot_be_deleted_from_the_admin(admin_client, seeded):
    lead = seeded["lead"]
    response = admin_client.post(reverse("admin:leads_lead_delete", args=[lead.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Outreach.objects.filter(lead=lead).exists()


def test_experiment_with_outreach_cannot_be_deleted_from_the_admin(admin_client, seeded):
    experiment = seeded["experiment"]
    response = admin_client.post(reverse("admin:leads_experiment_delete", args=[experiment.pk]), {"post": "yes"})
    assert response.status_code == 200
    assert response.context["protected"]
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_experiment_without_outreach_can_be_deleted_from_the_admin(admin_client):
    experiment = ExperimentFactory()
    VariantFactory.create_batch(2, experiment=experiment)
    response = admin_client.post(reverse("admin:leads_experiment_delete", args=[experiment.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Experiment.objects.filter(pk=experiment.pk).exists()


def _rename_variants_inline(admin_client) -> int:
    experiment = ExperimentFactory()
    VariantFactory.create_batch(2, experiment=experiment)
    variants = [
        {"id": str(v.pk), "experiment": str(experiment.pk), "name": f"{v.name} again", "template": str(v.template_id)}
        for v in experiment.variants.order_by("name")
    ]
    form = _experiment_form(experiment.name, variants, initial=2)
    return admin_client.post(reverse("admin:leads_experiment_change", args=[experiment.pk]), form).status_code


def _rename_template(admin_client) -> int:
    template = VariantFactory().template
    form = {"name": "Renamed", "subject": template.subject, "body": template.body}
    return admin_client.post(reverse("admin:leads_outreachtemplate_change", args=[template.pk]), form).status_code


def _delete_experiment(admin_client) -> int:
    experiment = ExperimentFactory()
    VariantFactory.create_batch(2, experiment=experiment)
    url = reverse("admin:leads_experiment_delete", args=[experiment.pk])
    return admin_client.post(url, {"post": "yes"}).status_code


ADMIN_EXPERIMENT_WRITES = {
    "variants renamed inline": _rename_variants_inline,
    "template renamed": _rename_template,
    "experiment deleted": _delete_experiment,
}


@pytest.mark.parametrize("write", ADMIN_EXPERIMENT_WRITES.values(), ids=ADMIN_EXPERIMENT_WRITES.keys())
def test_an_admin_write_refreshes_the_cached_experiment_answers(
    write, admin_client, django_capture_on_commit_callbacks
):
    assert caching.experiments_answer_cached(parts=("page",), compute=lambda: "before") == "before"
    with django_capture_on_commit_callbacks(execute=True):
        assert write(admin_client) == 302
    assert caching.experiments_answer_cached(parts=("page",), compute=lambda: "after") == "after"


def test_a_lead_deleted_in_the_admin_leaves_the_cached_lead_stats(admin_client, django_capture_on_commit_callbacks):
    lead = LeadFactory()
    assert caching.lead_stats_cached(present=dict)["total"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:leads_lead_delete", args=[lead.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert caching.lead_stats_cached(present=dict)["total"] == 0
