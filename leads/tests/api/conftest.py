"""Fixtures for the REST API tests: callers with bad credentials and a small, complete world."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from leads.models import Experiment, Lead, Outreach, OutreachTemplate, Persona, Suppression, Variant
from leads.services.suppression import suppression_add
from leads.tests.factories import (
    ExperimentFactory,
    LeadFactory,
    OutreachFactory,
    OutreachTemplateFactory,
    VariantFactory,
)
from pipeline_whisperer.models import ApiKey


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """The session fixtures create users; a slow hasher would dominate these tests' run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


@pytest.fixture
def unknown_key_client(db: None) -> APIClient:
    """A key in the right shape that no ApiKey row matches."""
    return _client("AbCdEfGh.0123456789abcdefghijklmnopqrstuv")


@pytest.fixture
def wrong_secret_client(db: None) -> APIClient:
    """The prefix of a real write key with a secret that is not its own."""
    api_key, _ = ApiKey.objects.create_key(name="real", scope=ApiKey.Scope.WRITE)
    return _client(f"{api_key.prefix}.not-the-secret-of-this-key")


@pytest.fixture
def revoked_key_client(db: None) -> APIClient:
    api_key, key = ApiKey.objects.create_key(name="revoked", scope=ApiKey.Scope.WRITE)
    api_key.revoked = True
    api_key.save()
    return _client(key)


@pytest.fixture
def expired_key_client(db: None) -> APIClient:
    _, key = ApiKey.objects.create_key(
        name="expired", scope=ApiKey.Scope.WRITE, expiry_date=timezone.now() - timedelta(minutes=1)
    )
    return _client(key)


@dataclass(frozen=True)
class World:
    """One of everything an endpoint can name, so every URL in the catalogue resolves."""

    lead: Lead
    snoozed_lead: Lead
    template: OutreachTemplate
    spare_template: OutreachTemplate
    experiment: Experiment
    variant: Variant
    spare_variant: Variant
    outreach: Outreach
    suppression: Suppression
    spare_suppression: Suppression

    def ids(self) -> dict[str, object]:
        return {
            "lead": self.lead.pk,
            "lightfield_id": self.lead.lightfield_id,
            "snoozed_lead": self.snoozed_lead.pk,
            "template": self.template.pk,
            "spare_template": self.spare_template.pk,
            "experiment": self.experiment.pk,
            "variant": self.variant.pk,
            "spare_variant": self.spare_variant.pk,
            "outreach": self.outreach.pk,
            "suppression": self.suppression.pk,
            "spare_suppression": self.spare_suppression.pk,
        }


@pytest.fixture
def world(db: None) -> World:
    lead = LeadFactory(status=Lead.Status.SCORED, score=0.8, persona=Persona.MID_MARKET)
    snoozed_lead = LeadFactory(status=Lead.Status.SNOOZED, status_before_snooze=Lead.Status.SCORED)
    template = OutreachTemplateFactory(name="Intro")
    experiment = ExperimentFactory(name="Subject lines")
    variant = VariantFactory(experiment=experiment, name="A", template=template)
    VariantFactory(experiment=experiment, name="B", template=template)
    spare_variant = VariantFactory(experiment=experiment, name="C", template=template)
    # Outreach outside any experiment, so deleting the experiment stays allowed.
    outreach = OutreachFactory(lead=lead, variant=None)
    return World(
        lead=lead,
        snoozed_lead=snoozed_lead,
        template=template,
        spare_template=OutreachTemplateFactory(name="Unused"),
        experiment=experiment,
        variant=variant,
        spare_variant=spare_variant,
        outreach=outreach,
        suppression=suppression_add(kind="domain", value="globex.example", reason="complaint")[0],
        spare_suppression=suppression_add(kind="address", value="spare@acme.example", reason="staff")[0],
    )
