"""Staff see each experiment's decision in the console and ship its winner from the console or
the admin: the others pause, and the admin's log records it."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from leads.models import Experiment, Variant
from leads.tests.factories import ExperimentFactory, VariantFactory

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("console:dashboard")


def _decided() -> tuple[Experiment, Variant, Variant]:
    """B (12%) clearly ahead of A (3%), with 400 resolved sends each."""
    experiment = ExperimentFactory(name="Cold intro")
    weak = VariantFactory(experiment=experiment, name="A", alpha=13, beta=389, sends=400, successes=12, failures=388)
    strong = VariantFactory(experiment=experiment, name="B", alpha=49, beta=353, sends=400, successes=48, failures=352)
    return experiment, weak, strong


def _ship(client, experiment: Experiment, variant: Variant):
    return client.post(reverse("console:experiment-ship", args=[experiment.pk]), {"variant": variant.pk}, follow=True)


def test_the_dashboard_shows_the_winner_its_expected_losses_and_the_ship_button(admin_client):
    _, weak, strong = _decided()
    html = admin_client.get(DASHBOARD).content.decode()
    decision = re.search(r'data-decision="winner_found">(.*?)</p>', html, re.S).group(1)
    assert "Winner found: <strong>B</strong>" in decision
    assert f'name="variant" value="{strong.pk}"' in decision
    row = re.search(rf'data-variant="{weak.pk}".*?</tr>', html, re.S).group(0)
    loss = float(re.search(r'data-field="expected-loss">(\d+\.\d{3}) pp<', row).group(1))
    assert loss == pytest.approx(100 * (49 - 13) / 402, abs=0.05)  # B's mean less A's, as B is surely best


def test_the_dashboard_says_running_without_a_ship_button_while_undecided(admin_client):
    experiment = ExperimentFactory()
    VariantFactory.create_batch(2, experiment=experiment)
    html = admin_client.get(DASHBOARD).content.decode()
    assert 'data-decision="running"' in html
    assert "console-inline-form" not in html.split('id="panel-experiments"')[1].split("</section>")[0]


def test_shipping_from_the_console_pauses_the_others_and_logs_it(admin_client, admin_user):
    experiment, _, strong = _decided()
    response = _ship(admin_client, experiment, strong)
    assert [str(m) for m in response.context["messages"]] == ["Shipped B: every other variant of Cold intro is paused."]
    assert dict(Variant.objects.values_list("name", "is_active")) == {"A": False, "B": True}
    experiment.refresh_from_db()
    assert (experiment.shipped_variant_id, experiment.shipped_by) == (strong.pk, "staff:admin")
    (entry,) = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert entry.object_id == str(experiment.pk)
    assert entry.get_change_message() == "Shipped variant B from the console; the other variants are paused."
    assert 'data-decision="shipped"' in response.content.decode()


def test_shipping_a_variant_of_another_experiment_from_the_console_is_refused(admin_client):
    experiment, *_ = _decided()
    stranger = VariantFactory()
    response = _ship(admin_client, experiment, stranger)
    assert [str(m) for m in response.context["messages"]] == [
        f"Variant {stranger.pk} is not an arm of experiment {experiment.pk}."
    ]
    assert not Variant.objects.filter(is_active=False).exists()
    assert not LogEntry.objects.exists()


def test_shipping_from_the_console_needs_the_change_experiment_permission(client, django_user_model: type[User]):
    viewer = django_user_model.objects.create_user(username="viewer", password="x-viewer-0", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    experiment, _, strong = _decided()
    assert _ship(client, experiment, strong).status_code == 403
    assert Experiment.objects.get().shipped_at is None


def _act(client, experiments: list[Experiment]) -> list[str]:
    response = client.post(
        reverse("admin:leads_experiment_changelist"),
        {"action": "ship_winners", "_selected_action": [e.pk for e in experiments]},
        follow=True,
    )
    return [str(message) for message in response.context["messages"]]


def test_the_admin_ships_the_winner_of_a_decided_experiment_and_leaves_an_undecided_one(admin_client, admin_user):
    decided, _, strong = _decided()
    undecided = ExperimentFactory(name="Undecided")
    VariantFactory.create_batch(2, experiment=undecided)
    assert _act(admin_client, [decided, undecided]) == [
        "Shipped the winner 1 of the selected experiments.",
        "Left 1 as they were: Undecided: no winner to ship (running)",
    ]
    assert Experiment.objects.get(pk=decided.pk).shipped_variant_id == strong.pk
    assert Experiment.objects.get(pk=undecided.pk).shipped_at is None
    assert Variant.objects.filter(experiment=undecided, is_active=True).count() == 2
    (entry,) = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert (entry.object_id, entry.get_change_message()) == (str(decided.pk), "Shipped the winner from the admin.")


def test_the_admin_lists_each_experiments_decision(admin_client):
    _decided()
    html = admin_client.get(reverse("admin:leads_experiment_changelist")).content.decode()
    assert "winner found: B" in html


def test_the_experiment_pages_show_the_decision_and_what_was_shipped(admin_client):
    experiment, _, strong = _decided()
    assert admin_client.get(reverse("admin:leads_experiment_add")).status_code == 200
    _ship(admin_client, experiment, strong)
    html = admin_client.get(reverse("admin:leads_experiment_change", args=[experiment.pk])).content.decode()
    assert "shipped: B" in html
    assert "staff:admin" in html
