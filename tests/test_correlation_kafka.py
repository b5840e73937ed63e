"""A request's correlation id, on a real broker: in its access line, in the Kafka headers of the
events it caused, and in the lines the relay and the stages log for those events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from leads.models import Lead
from leads.services.simulation import simulated_events
from leads.topics import LEADS_RAW
from pipeline_whisperer.logging import ACCESS_LOGGER
from pipeline_whisperer.tests.support import captured_log_lines
from tests.pipeline_support import read_topic, wait_until
from tests.stand_ins import PipelineProcess, SmtpSink, TansuBroker, pipeline_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stages(settings, broker: TansuBroker, smtp_sink: SmtpSink, tmp_path) -> Iterator[Callable[[str], PipelineProcess]]:
    """Starts `run_pipeline STAGE` processes on the broker and the test database; kills them at the end."""
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap
    settings.KAFKA_TOPIC_PARTITIONS = 3
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"], bootstrap=broker.bootstrap, smtp_port=smtp_sink.port
    )
    started: list[PipelineProcess] = []

    def start(stage: str) -> PipelineProcess:
        started.append(PipelineProcess(stage, env, tmp_path).start())
        return started[-1]

    yield start
    for process in started:
        if process.alive():
            process.kill()


def _ingest(api_client, request_id: str, prefix: str) -> None:
    events = list(simulated_events(count=1, seed=7, prefix=prefix))
    response = api_client.post("/api/v1/leads/ingest", events, format="json", HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 202, response.content


def _json_lines(process: PipelineProcess) -> list[dict]:
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


def test_the_request_id_is_in_the_access_line_and_the_kafka_header_of_the_event_it_caused(api_client, stages, broker):
    with captured_log_lines() as lines:
        _ingest(api_client, "req-kafka-1", "hdr")
    [access] = lines.from_logger(ACCESS_LOGGER)
    assert (access["path"], access["status"], access["correlation_id"]) == ("/api/v1/leads/ingest", 202, "req-kafka-1")

    stages("relay")
    [message] = read_topic(broker.bootstrap, LEADS_RAW, 1)
    assert dict(message.headers())["correlation_id"] == b"req-kafka-1"


def test_the_relay_and_the_stage_log_the_event_under_the_request_id(api_client, stages):
    relay, scorer = stages("relay"), stages("scorer")
    _ingest(api_client, "req-kafka-2", "log")
    scored = Lead.objects.filter(lightfield_id__startswith="log").exclude(status=Lead.Status.RAW)
    wait_until(scored.exists, what="the lead scored")
    assert scorer.terminate() == 0, scorer.log()
    assert relay.terminate() == 0, relay.log()

    # The ingest's event and the scorer's follow-up: both carry the request's id.
    published = [line for line in _json_lines(relay) if line["message"].startswith("relay published")]
    assert published
    assert {line["correlation_id"] for line in published} == {"req-kafka-2"}
    [applied] = [line for line in _json_lines(scorer) if line.get("outcome") == "applied"]
    assert (applied["logger"], applied["stage"], applied["correlation_id"]) == (
        "leads.pipeline.stages",
        "scorer",
        "req-kafka-2",
    )
