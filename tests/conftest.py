"""Fixtures for the cross-app tests: a Kafka-protocol broker and an SMTP server on loopback, an
experiment to write with, and pipeline stage processes running on them.

The stage fixtures live here, not in a helper module, so that every test file on the broker
gets them by name (an imported fixture reads as an unused, then redefined, import)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from leads.models import Variant
from leads.tests.factories import ExperimentFactory, OutreachTemplateFactory, VariantFactory
from tests.stand_ins import PipelineProcess, SmtpSink, TansuBroker, pipeline_env


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A fresh in-memory tansu broker on a free loopback port."""
    started = TansuBroker().start()
    yield started
    started.stop()


@pytest.fixture
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The broker's address: KAFKA_BOOTSTRAP_SERVERS when it names one, else a fresh tansu."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or request.getfixturevalue("broker").bootstrap


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def experiment() -> list[Variant]:
    experiment = ExperimentFactory(name="Kafka test")
    return [
        VariantFactory(experiment=experiment, name=name, template=OutreachTemplateFactory(name=name))
        for name in ("A", "B")
    ]


@pytest.fixture
def kafka_settings(settings, broker: TansuBroker):
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap
    settings.KAFKA_TOPIC_PARTITIONS = 3
    settings.KAFKA_PUBLISH_TIMEOUT_SECONDS = 5
    return settings


@pytest.fixture
def pipeline(
    kafka_settings, broker: TansuBroker, smtp_sink: SmtpSink, tmp_path
) -> Iterator[Callable[..., PipelineProcess]]:
    """Starts `run_pipeline STAGE [ARGS]` processes against the test database; stops them all at the end."""
    started: list[PipelineProcess] = []
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"], bootstrap=broker.bootstrap, smtp_port=smtp_sink.port
    )

    def start(stage: str, *args: str, **settings_env: str) -> PipelineProcess:
        """`settings_env`: environment variables of this process only (OUTREACH_MIN_SCORE="0.1")."""
        process = PipelineProcess(stage, {**env, **settings_env}, tmp_path, args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.alive():
            process.kill()
