"""/api/v1/experiments: each experiment's decision (status, winner), each variant's expected loss,
and shipping a variant."""

from __future__ import annotations

import logging

import pytest

from leads.models import Experiment, Variant
from leads.tests.factories import ExperimentFactory, VariantFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments"


def _experiment(**fields) -> tuple[Experiment, Variant, Variant]:
    """Two arms with 400 resolved sends each: B (12%) is clearly ahead of A (3%)."""
    experiment = ExperimentFactory(**fields)
    weak = VariantFactory(experiment=experiment, name="A", alpha=13, beta=389, sends=400, successes=12, failures=388)
    strong = VariantFactory(experiment=experiment, name="B", alpha=49, beta=353, sends=400, successes=48, failures=352)
    return experiment, weak, strong


def _variants(body: dict) -> dict[str, dict]:
    return {variant["name"]: variant for variant in body["variants"]}


def test_a_clear_leader_with_enough_resolved_sends_is_the_winner(api_client):
    experiment, _, strong = _experiment()
    body = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()
    assert body["decision"] == {"status": "winner_found", "winner": strong.pk, "shipped_at": None, "shipped_by": ""}
    variants = _variants(body)
    assert variants["B"]["expected_loss"] < 0.001 < variants["A"]["expected_loss"]
    assert variants["A"]["expected_loss"] == pytest.approx(0.09, abs=0.005)  # about 12% - 3%
    assert (body["loss_threshold"], body["min_resolved_per_variant"], body["burn_in_sends"]) == (0.001, 50, 0)


def test_the_experiment_runs_on_while_a_variant_lacks_its_minimum_of_resolved_sends(api_client):
    _experiment(min_resolved_per_variant=500)
    body = api_client.get(EXPERIMENTS).json()["results"][0]
    assert body["decision"]["status"] == "running"
    assert body["decision"]["winner"] is None


def test_the_experiment_runs_on_while_the_least_loss_is_above_its_threshold(api_client):
    experiment = ExperimentFactory()  # 10% against 12% on 400 sends each: B leads, but not surely
    VariantFactory(experiment=experiment, name="A", alpha=41, beta=361, sends=400, successes=40, failures=360)
    VariantFactory(experiment=experiment, name="B", alpha=49, beta=353, sends=400, successes=48, failures=352)
    body = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()
    assert body["decision"]["status"] == "running"
    assert min(v["expected_loss"] for v in body["variants"]) > 0.001


def test_a_paused_variant_has_no_expected_loss(api_client):
    experiment, weak, _ = _experiment()
    api_client.post(f"{EXPERIMENTS}/{experiment.pk}/variants/{weak.pk}/pause")
    assert _variants(api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json())["A"]["expected_loss"] is None


def test_the_stopping_rule_is_set_when_creating_and_updating(api_client):
    template = VariantFactory().template
    variants = [{"name": "A", "template": template.pk}, {"name": "B", "template": template.pk}]
    created = api_client.post(
        EXPERIMENTS,
        {"name": "Rule", "variants": variants, "loss_threshold": 0.0002, "burn_in_sends": 300},
        format="json",
    ).json()
    assert (created["loss_threshold"], created["burn_in_sends"]) == (0.0002, 300)
    updated = api_client.patch(
        f"{EXPERIMENTS}/{created['id']}", {"min_resolved_per_variant": 200}, format="json"
    ).json()
    assert updated["min_resolved_per_variant"] == 200


def test_a_loss_threshold_out_of_range_is_refused(api_client):
    experiment, *_ = _experiment()
    response = api_client.patch(f"{EXPERIMENTS}/{experiment.pk}", {"loss_threshold": 0}, format="json")
    assert_problem(response, 400, errors=["loss_threshold"])


def test_shipping_the_winner_pauses_the_others_and_shows_it_shipped(api_client, caplog):
    experiment, _, strong = _experiment()
    with caplog.at_level(logging.WARNING, logger="leads.services.experiments"):
        response = api_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": strong.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"]["status"], body["decision"]["winner"]) == ("shipped", strong.pk)
    assert body["decision"]["shipped_by"] == "api:test write"
    assert body["decision"]["shipped_at"] is not None
    assert {name: v["is_active"] for name, v in _variants(body).items()} == {"A": False, "B": True}
    assert any(
        r.getMessage().startswith(f"experiment {experiment.pk} shipped variant {strong.pk}") for r in caplog.records
    )


def test_a_staff_session_may_ship_and_is_named(staff_client):
    experiment, _, strong = _experiment()
    body = staff_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": strong.pk}, format="json").json()
    assert body["decision"]["shipped_by"] == "staff:admin"


def test_shipping_a_variant_of_another_experiment_is_409(api_client):
    experiment, *_ = _experiment()
    stranger = VariantFactory()
    response = api_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": stranger.pk}, format="json")
    assert_problem(response, 409)
    assert Variant.objects.filter(is_active=False).count() == 0


def test_shipping_a_paused_variant_is_409(api_client):
    experiment, weak, _ = _experiment()
    Variant.objects.filter(pk=weak.pk).update(is_active=False)
    assert_problem(api_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": weak.pk}, format="json"), 409)
    assert Experiment.objects.get().shipped_at is None


def test_shipping_an_unknown_variant_is_400(api_client):
    experiment, *_ = _experiment()
    response = api_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": 999_999}, format="json")
    assert_problem(response, 400, errors=["variant"])


def test_a_read_only_key_cannot_ship(read_client):
    experiment, _, strong = _experiment()
    assert_problem(read_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": strong.pk}, format="json"), 403)
    assert Experiment.objects.get().shipped_at is None


def test_shipping_needs_authentication(anonymous_client):
    experiment, _, strong = _experiment()
    response = anonymous_client.post(f"{EXPERIMENTS}/{experiment.pk}/ship", {"variant": strong.pk}, format="json")
    assert_problem(response, 401)
