"""/api/v1/experiments and their variants: CRUD, pause/resume, and posterior summaries."""

from __future__ import annotations

import math

import pytest

from leads.caching import experiments_invalidate
from leads.models import Experiment, Variant
from leads.tests.factories import ExperimentFactory, OutreachFactory, OutreachTemplateFactory, VariantFactory
from pipeline_whisperer.tests.support import assert_problem

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments"


def _experiment(name: str = "Openers", variants: int = 2, **fields) -> Experiment:
    experiment = ExperimentFactory(name=name, **fields)
    for index in range(variants):
        VariantFactory(experiment=experiment, name=f"V{index}")
    return experiment


def _variants_url(experiment: Experiment) -> str:
    return f"{EXPERIMENTS}/{experiment.pk}/variants"


def _by_name(variants: list[dict]) -> dict[str, dict]:
    return {variant["name"]: variant for variant in variants}


# --- List and detail --------------------------------------------------------------------


def test_experiment_list_is_sorted_by_name_with_variants_nested(api_client):
    _experiment("Zeta")
    _experiment("Alpha", variants=3)
    body = api_client.get(EXPERIMENTS).json()
    assert body["count"] == 2
    assert [row["name"] for row in body["results"]] == ["Alpha", "Zeta"]
    assert [variant["name"] for variant in body["results"][0]["variants"]] == ["V0", "V1", "V2"]


def test_experiment_detail_shows_its_fields_and_variants(api_client):
    template = OutreachTemplateFactory(name="Short")
    experiment = ExperimentFactory(name="Openers", description="Which opener", target_persona="smb")
    VariantFactory(
        experiment=experiment, name="A", template=template, alpha=3, beta=5, sends=6, successes=2, failures=4
    )
    VariantFactory(experiment=experiment, name="B")
    body = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()
    assert (body["id"], body["name"], body["description"]) == (experiment.pk, "Openers", "Which opener")
    assert (body["target_persona"], body["status"]) == ("smb", "active")
    variant = _by_name(body["variants"])["A"]
    assert (variant["template"], variant["template_name"]) == (template.pk, "Short")
    assert (variant["alpha"], variant["beta"]) == (3, 5)
    assert (variant["sends"], variant["successes"], variant["failures"]) == (6, 2, 4)
    assert variant["is_active"] is True


def test_experiment_detail_of_an_unknown_experiment_is_404(api_client):
    assert_problem(api_client.get(f"{EXPERIMENTS}/999999"), 404)


def test_experiment_search_matches_name_or_description(api_client):
    _experiment("Subject lines")
    _experiment("Openers", description="Short subject or long")
    _experiment("Timing")
    names = [row["name"] for row in api_client.get(EXPERIMENTS, {"search": "subject"}).json()["results"]]
    assert names == ["Openers", "Subject lines"]


def test_experiment_list_orders_by_name_descending(api_client):
    for name in ("B", "C", "A"):
        _experiment(name)
    names = [row["name"] for row in api_client.get(EXPERIMENTS, {"ordering": "-name"}).json()["results"]]
    assert names == ["C", "B", "A"]


def test_experiment_list_refuses_an_unknown_ordering_field(api_client):
    assert_problem(api_client.get(EXPERIMENTS, {"ordering": "status"}), 400, errors=["ordering"])


@pytest.mark.parametrize("page_size", ["0", "201", "abc"])
def test_experiment_list_refuses_a_bad_page_size(page_size, api_client):
    assert_problem(api_client.get(EXPERIMENTS, {"page_size": page_size}), 400, errors=["page_size"])


@pytest.mark.parametrize("rows", [3, 30])
def test_experiment_list_query_count_does_not_grow_with_rows(
    rows, api_client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    for index in range(rows):
        _experiment(f"Experiment {index:02d}")
    api_client.get(EXPERIMENTS)  # the first call verifies the key and records its use
    with django_capture_on_commit_callbacks(execute=True):
        experiments_invalidate()  # as a writer does, so the answer is computed again
    # Count, experiments, their variants with templates (the key is remembered).
    with django_assert_num_queries(3):
        response = api_client.get(EXPERIMENTS)
    assert len(response.json()["results"]) == rows
    with django_assert_num_queries(0):  # then the whole answer is read from the cache
        assert api_client.get(EXPERIMENTS).json() == response.json()


# --- Posterior summaries ----------------------------------------------------------------


def test_a_fresh_variant_has_the_uniform_prior_summary(api_client):
    experiment = _experiment()
    variant = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"][0]
    assert variant["posterior_mean"] == 0.5
    assert variant["credible_interval_95"] == pytest.approx([0.025, 0.975], abs=1e-6)


def test_credible_interval_is_the_central_95_percent_of_the_posterior(api_client):
    # Beta(2, 1) has CDF x**2, so its quantiles are square roots.
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="A", alpha=2, beta=1)
    VariantFactory(experiment=experiment, name="B")
    variant = _by_name(api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"])["A"]
    assert variant["posterior_mean"] == pytest.approx(2 / 3, abs=1e-6)
    assert variant["credible_interval_95"] == pytest.approx([math.sqrt(0.025), math.sqrt(0.975)], abs=1e-6)


def test_every_variant_has_a_credible_interval_around_its_mean(api_client):
    experiment = ExperimentFactory()
    for name, alpha, beta in (("A", 3, 7), ("B", 20, 4), ("C", 1, 30)):
        VariantFactory(experiment=experiment, name=name, alpha=alpha, beta=beta)
    for variant in api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]:
        interval = variant["credible_interval_95"]
        assert len(interval) == 2
        assert all(isinstance(bound, float) for bound in interval)
        assert 0 < interval[0] < variant["posterior_mean"] < interval[1] < 1


def test_probability_best_sums_to_one_over_the_active_variants(api_client):
    experiment = ExperimentFactory()
    for name, alpha, beta in (("A", 3, 7), ("B", 5, 5), ("C", 4, 6)):
        VariantFactory(experiment=experiment, name=name, alpha=alpha, beta=beta)
    variants = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]
    assert sum(variant["probability_best"] for variant in variants) == pytest.approx(1, abs=1e-3)
    assert all(0 < variant["probability_best"] < 1 for variant in variants)


def test_probability_best_favours_the_clearly_better_variant(api_client):
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="Strong", alpha=60, beta=10)
    VariantFactory(experiment=experiment, name="Weak", alpha=10, beta=60)
    variants = _by_name(api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"])
    assert variants["Strong"]["probability_best"] > 0.99
    assert variants["Weak"]["probability_best"] < 0.01


def test_two_identical_variants_are_each_about_half_likely_best(api_client):
    experiment = _experiment()
    variants = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]
    assert [variant["probability_best"] for variant in variants] == [pytest.approx(0.5, abs=0.03)] * 2


def test_paused_variant_has_probability_best_zero_and_the_rest_share_one(api_client):
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="A", alpha=50, beta=2, is_active=False)
    VariantFactory(experiment=experiment, name="B", alpha=3, beta=7)
    VariantFactory(experiment=experiment, name="C", alpha=4, beta=6)
    variants = _by_name(api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"])
    assert variants["A"]["probability_best"] == 0
    assert variants["A"]["posterior_mean"] == pytest.approx(50 / 52, abs=1e-6)
    assert variants["B"]["probability_best"] + variants["C"]["probability_best"] == pytest.approx(1, abs=1e-3)


def test_probability_best_sums_to_one_within_each_experiment_of_a_list_page(api_client):
    _experiment("First")
    _experiment("Second", variants=3)
    for experiment in api_client.get(EXPERIMENTS).json()["results"]:
        total = sum(variant["probability_best"] for variant in experiment["variants"])
        assert total == pytest.approx(1, abs=1e-3), experiment["name"]


def test_posterior_summaries_are_the_same_on_every_read(api_client):
    experiment = ExperimentFactory()
    VariantFactory(experiment=experiment, name="A", alpha=3, beta=4)
    VariantFactory(experiment=experiment, name="B", alpha=4, beta=3)
    first = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]
    second = api_client.get(f"{EXPERIMENTS}/{experiment.pk}").json()["variants"]
    assert first == second


# --- Create -----------------------------------------------------------------------------


def _payload(templates, **fields) -> dict:
    return {
        "name": "Openers",
        "variants": [{"name": f"V{index}", "template": template.pk} for index, template in enumerate(templates)],
        **fields,
    }


def test_create_experiment_with_two_variants(api_client):
    first, second = OutreachTemplateFactory(), OutreachTemplateFactory()
    payload = _payload([first, second], description="Short or long", target_persona="enterprise")
    response = api_client.post(EXPERIMENTS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    experiment = Experiment.objects.get()
    assert body["id"] == experiment.pk
    assert (body["name"], body["status"], body["target_persona"]) == ("Openers", "active", "enterprise")
    assert [(v["name"], v["template"], v["alpha"], v["beta"]) for v in body["variants"]] == [
        ("V0", first.pk, 1, 1),
        ("V1", second.pk, 1, 1),
    ]
    assert sum(v["probability_best"] for v in body["variants"]) == pytest.approx(1, abs=1e-3)
    assert experiment.variants.count() == 2


def test_create_experiment_targets_every_persona_by_default(api_client):
    template = OutreachTemplateFactory()
    response = api_client.post(EXPERIMENTS, _payload([template, template]), format="json")
    assert response.json()["target_persona"] == ""


def test_create_experiment_can_start_a_variant_paused(api_client):
    template = OutreachTemplateFactory()
    payload = _payload([template, template])
    payload["variants"][1]["is_active"] = False
    variants = _by_name(api_client.post(EXPERIMENTS, payload, format="json").json()["variants"])
    assert variants["V1"]["is_active"] is False
    assert variants["V1"]["probability_best"] == 0
    assert variants["V0"]["probability_best"] == 1


@pytest.mark.parametrize("count", [0, 1])
def test_create_experiment_with_fewer_than_two_variants_is_400(count, api_client):
    template = OutreachTemplateFactory()
    body = assert_problem(api_client.post(EXPERIMENTS, _payload([template] * count), format="json"), 400, ["variants"])
    assert "variants" in body["detail"]
    assert not Experiment.objects.exists()


def test_create_experiment_with_more_than_twenty_variants_is_400(api_client):
    template = OutreachTemplateFactory()
    assert_problem(api_client.post(EXPERIMENTS, _payload([template] * 21), format="json"), 400, ["variants"])


def test_create_experiment_with_duplicate_variant_names_is_400(api_client):
    template = OutreachTemplateFactory()
    payload = {"name": "Openers", "variants": [{"name": "A", "template": template.pk}] * 2}
    body = assert_problem(api_client.post(EXPERIMENTS, payload, format="json"), 400, ["variants"])
    assert body["errors"]["variants"] == ["Variant names must differ."]
    assert not Experiment.objects.exists()


def test_create_experiment_with_an_unknown_template_is_400(api_client):
    template = OutreachTemplateFactory()
    payload = {"name": "X", "variants": [{"name": "A", "template": template.pk}, {"name": "B", "template": 999999}]}
    body = assert_problem(api_client.post(EXPERIMENTS, payload, format="json"), 400, ["variants"])
    assert body["errors"]["variants"]["1"]["template"] == ['Invalid pk "999999" - object does not exist.']
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"target_persona": "martian"}, "target_persona"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name")],
)
def test_create_experiment_refuses_bad_fields(fields, field, api_client):
    template = OutreachTemplateFactory()
    assert_problem(api_client.post(EXPERIMENTS, _payload([template, template], **fields), format="json"), 400, [field])


def test_create_experiment_with_a_taken_name_is_409(api_client):
    _experiment("Openers")
    template = OutreachTemplateFactory()
    body = assert_problem(api_client.post(EXPERIMENTS, _payload([template, template]), format="json"), 409)
    assert "Openers" in body["detail"]
    assert Experiment.objects.count() == 1


# --- Update, delete, pause, resume ------------------------------------------------------


def test_patch_experiment_changes_the_given_fields(api_client):
    experiment = _experiment("Openers", description="Old")
    response = api_client.patch(f"{EXPERIMENTS}/{experiment.pk}", {"target_persona": "startup"}, format="json")
    assert response.status_code == 200
    assert (response.json()["target_persona"], response.json()["description"]) == ("startup", "Old")
    assert len(response.json()["variants"]) == 2
    experiment.refresh_from_db()
    assert experiment.target_persona == "startup"


def test_an_experiment_counts_conversions_unless_created_with_another_success_event(api_client):
    template = OutreachTemplateFactory()
    default = api_client.post(EXPERIMENTS, _payload([template, template]), format="json").json()
    clicks = api_client.post(
        EXPERIMENTS, _payload([template, template], name="Clicks", success_event="clicked"), format="json"
    )
    assert default["success_event"] == "converted"
    assert clicks.json()["success_event"] == "clicked"
    assert Experiment.objects.get(name="Clicks").success_event == Experiment.SuccessEvent.CLICKED


def test_patch_experiment_changes_its_success_event_and_refuses_an_unknown_one(api_client):
    experiment = _experiment()
    url = f"{EXPERIMENTS}/{experiment.pk}"
    assert api_client.patch(url, {"success_event": "replied_interested"}, format="json").json()["success_event"] == (
        "replied_interested"
    )
    assert_problem(api_client.patch(url, {"success_event": "opened"}, format="json"), 400, ["success_event"])
    experiment.refresh_from_db()
    assert experiment.success_event == Experiment.SuccessEvent.REPLIED_INTERESTED


def test_patch_experiment_cannot_change_its_status(api_client):
    experiment = _experiment()
    api_client.patch(f"{EXPERIMENTS}/{experiment.pk}", {"status": "paused"}, format="json")
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.ACTIVE


def test_patch_experiment_to_a_taken_name_is_409(api_client):
    _experiment("Taken")
    experiment = _experiment("Mine")
    assert_problem(api_client.patch(f"{EXPERIMENTS}/{experiment.pk}", {"name": "Taken"}, format="json"), 409)
    experiment.refresh_from_db()
    assert experiment.name == "Mine"


def test_patch_experiment_refuses_an_unknown_persona(api_client):
    experiment = _experiment()
    response = api_client.patch(f"{EXPERIMENTS}/{experiment.pk}", {"target_persona": "martian"}, format="json")
    assert_problem(response, 400, ["target_persona"])


def test_delete_experiment_removes_it_and_its_variants(api_client):
    experiment = _experiment()
    assert api_client.delete(f"{EXPERIMENTS}/{experiment.pk}").status_code == 204
    assert not Experiment.objects.exists()
    assert not Variant.objects.exists()


def test_deleting_an_experiment_that_has_sent_outreach_is_409(api_client):
    experiment = _experiment()
    OutreachFactory(variant=experiment.variants.first())
    body = assert_problem(api_client.delete(f"{EXPERIMENTS}/{experiment.pk}"), 409)
    assert "pause" in body["detail"]
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_pause_experiment_marks_it_paused(api_client):
    experiment = _experiment()
    response = api_client.post(f"{EXPERIMENTS}/{experiment.pk}/pause")
    assert response.status_code == 200
    assert response.json()["status"] == "paused"
    assert len(response.json()["variants"]) == 2
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.PAUSED


def test_resume_experiment_marks_it_active(api_client):
    experiment = _experiment(status=Experiment.Status.PAUSED)
    response = api_client.post(f"{EXPERIMENTS}/{experiment.pk}/resume")
    assert response.json()["status"] == "active"
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.ACTIVE


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_or_resume_of_an_unknown_experiment_is_404(action, api_client):
    assert_problem(api_client.post(f"{EXPERIMENTS}/999999/{action}"), 404)


def test_read_only_key_cannot_pause_an_experiment(read_client):
    experiment = _experiment()
    assert_problem(read_client.post(f"{EXPERIMENTS}/{experiment.pk}/pause"), 403)
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.ACTIVE


# --- Variants ---------------------------------------------------------------------------


def test_variant_list_shows_the_experiments_variants_by_name(api_client):
    experiment = ExperimentFactory()
    for name in ("B", "A", "C"):
        VariantFactory(experiment=experiment, name=name)
    _experiment("Other")
    body = api_client.get(_variants_url(experiment)).json()
    assert [variant["name"] for variant in body] == ["A", "B", "C"]
    assert sum(variant["probability_best"] for variant in body) == pytest.approx(1, abs=1e-3)
    for variant in body:
        assert variant["credible_interval_95"][0] < variant["posterior_mean"] < variant["credible_interval_95"][1]


def test_variant_list_of_an_unknown_experiment_is_404(api_client):
    assert_problem(api_client.get(f"{EXPERIMENTS}/999999/variants"), 404)


def test_variant_detail_shows_the_variant_with_its_summary(api_client):
    experiment = ExperimentFactory()
    variant = VariantFactory(experiment=experiment, name="A", alpha=9, beta=1)
    VariantFactory(experiment=experiment, name="B", alpha=1, beta=9)
    body = api_client.get(f"{_variants_url(experiment)}/{variant.pk}").json()
    assert (body["id"], body["name"]) == (variant.pk, "A")
    assert body["posterior_mean"] == pytest.approx(0.9)
    # The probability of being best is among the variant's siblings, not alone.
    assert body["probability_best"] > 0.99


def test_variant_of_another_experiment_is_404(api_client):
    experiment, other = _experiment("Mine"), _experiment("Other")
    assert_problem(api_client.get(f"{_variants_url(experiment)}/{other.variants.first().pk}"), 404)


def test_create_variant_adds_an_arm_with_the_uniform_prior(api_client):
    experiment = _experiment()
    template = OutreachTemplateFactory()
    response = api_client.post(_variants_url(experiment), {"name": "New", "template": template.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["template"], body["alpha"], body["beta"], body["is_active"]) == (
        "New",
        template.pk,
        1,
        1,
        True,
    )
    assert body["probability_best"] == pytest.approx(1 / 3, abs=0.03)
    assert experiment.variants.count() == 3


def test_create_variant_with_a_taken_name_is_409(api_client):
    experiment = _experiment()
    template = OutreachTemplateFactory()
    body = assert_problem(api_client.post(_variants_url(experiment), {"name": "V0", "template": template.pk}), 409)
    assert "V0" in body["detail"]
    assert experiment.variants.count() == 2


@pytest.mark.parametrize(
    ("payload", "fields"),
    [({}, ["name", "template"]), ({"name": "X", "template": 999999}, ["template"]), ({"name": "X"}, ["template"])],
)
def test_create_variant_refuses_missing_or_bad_fields(payload, fields, api_client):
    experiment = _experiment()
    assert_problem(api_client.post(_variants_url(experiment), payload, format="json"), 400, fields)
    assert experiment.variants.count() == 2


def test_create_variant_refuses_a_blank_name(api_client):
    experiment = _experiment()
    template = OutreachTemplateFactory()
    response = api_client.post(_variants_url(experiment), {"name": "", "template": template.pk}, format="json")
    assert_problem(response, 400, ["name"])


def test_create_variant_in_an_unknown_experiment_is_404(api_client):
    template = OutreachTemplateFactory()
    assert_problem(api_client.post(f"{EXPERIMENTS}/999999/variants", {"name": "A", "template": template.pk}), 404)


def test_patch_variant_renames_and_retemplates_it_keeping_its_posterior(api_client):
    experiment = ExperimentFactory()
    variant = VariantFactory(experiment=experiment, name="A", alpha=4, beta=2)
    VariantFactory(experiment=experiment, name="B")
    template = OutreachTemplateFactory()
    response = api_client.patch(
        f"{_variants_url(experiment)}/{variant.pk}", {"name": "A2", "template": template.pk}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["template"]) == ("A2", template.pk)
    variant.refresh_from_db()
    assert (variant.name, variant.template_id, variant.alpha, variant.beta) == ("A2", template.pk, 4, 2)


def test_patch_variant_to_a_sibling_name_is_409(api_client):
    experiment = _experiment()
    variant = experiment.variants.get(name="V0")
    assert_problem(api_client.patch(f"{_variants_url(experiment)}/{variant.pk}", {"name": "V1"}, format="json"), 409)


def test_patch_variant_refuses_an_unknown_template(api_client):
    experiment = _experiment()
    variant = experiment.variants.first()
    response = api_client.patch(f"{_variants_url(experiment)}/{variant.pk}", {"template": 999999}, format="json")
    assert_problem(response, 400, ["template"])


def test_delete_variant_removes_it_when_the_experiment_keeps_two(api_client):
    experiment = _experiment(variants=3)
    variant = experiment.variants.get(name="V2")
    assert api_client.delete(f"{_variants_url(experiment)}/{variant.pk}").status_code == 204
    assert list(experiment.variants.values_list("name", flat=True).order_by("name")) == ["V0", "V1"]


def test_deleting_a_variant_that_has_outreach_is_409(api_client):
    experiment = _experiment(variants=3)
    variant = experiment.variants.get(name="V2")
    OutreachFactory(variant=variant)
    body = assert_problem(api_client.delete(f"{_variants_url(experiment)}/{variant.pk}"), 409)
    assert "outreach" in body["detail"]
    assert Variant.objects.filter(pk=variant.pk).exists()


def test_deleting_a_variant_that_would_leave_one_is_409(api_client):
    experiment = _experiment(variants=2)
    variant = experiment.variants.first()
    body = assert_problem(api_client.delete(f"{_variants_url(experiment)}/{variant.pk}"), 409)
    assert "at least 2" in body["detail"]
    assert experiment.variants.count() == 2


def test_pause_variant_deactivates_it_and_zeroes_its_probability_best(api_client):
    experiment = _experiment(variants=3)
    variant = experiment.variants.get(name="V0")
    response = api_client.post(f"{_variants_url(experiment)}/{variant.pk}/pause")
    assert response.status_code == 200
    assert (response.json()["is_active"], response.json()["probability_best"]) == (False, 0)
    variant.refresh_from_db()
    assert variant.is_active is False
    siblings = api_client.get(_variants_url(experiment)).json()
    assert sum(v["probability_best"] for v in siblings) == pytest.approx(1, abs=1e-3)


def test_resume_variant_reactivates_it(api_client):
    experiment = ExperimentFactory()
    variant = VariantFactory(experiment=experiment, name="A", is_active=False)
    VariantFactory(experiment=experiment, name="B")
    response = api_client.post(f"{_variants_url(experiment)}/{variant.pk}/resume")
    assert (response.json()["is_active"], response.json()["probability_best"]) == (True, pytest.approx(0.5, abs=0.03))
    variant.refresh_from_db()
    assert variant.is_active is True


def test_read_only_key_cannot_pause_a_variant(read_client):
    experiment = _experiment()
    variant = experiment.variants.first()
    assert_problem(read_client.post(f"{_variants_url(experiment)}/{variant.pk}/pause"), 403)
    variant.refresh_from_db()
    assert variant.is_active is True
