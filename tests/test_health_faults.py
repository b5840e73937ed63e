"""Health and metrics against real processes and real outages: PostgreSQL unreachable, the
Kafka broker frozen, and gunicorn with two workers sharing one set of counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from leads.pipeline.stages import STAGES
from leads.topics import LEADS_RAW
from pipeline_whisperer.kafka import consumer_lag, ensure_topics, make_producer
from tests.stand_ins import ROOT, TansuBroker, free_port, wait_for_port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback only)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Gunicorn:
    """gunicorn serving the project on a free loopback port, with the hooks of
    health.gunicorn_hooks, in the given environment."""

    def __init__(self, env: dict[str, str], *, workers: int, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)]
        self.process = subprocess.Popen(  # noqa: S603
            [*command, "--config", "python:health.gunicorn_hooks", "pipeline_whisperer.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        return _get(self.base + path)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(*, workers: int = 1, **variables: str) -> Gunicorn:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))}
        env.update({"DJANGO_SECURE_SSL_REDIRECT": "0", "HEALTH_CHECK_TIMEOUT_SECONDS": "1", **variables})
        server = Gunicorn(env, workers=workers, log=tmp_path / f"gunicorn-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _test_database_url() -> str:
    database = settings.DATABASES["default"]
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


def test_with_postgresql_unreachable_liveness_is_ok_and_readiness_is_503(serve):
    server = serve(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere", DB_POOL_TIMEOUT_SECONDS="1")
    assert server.get("/health/liveness") == (200, b'{"status":"ok"}')
    status, body = server.get("/health/readiness")
    assert status == 503
    assert json.loads(body)["checks"]["database"]["status"] == "unavailable"


def test_metrics_count_requests_across_every_gunicorn_worker(serve, tmp_path, django_db_setup):
    multiprocess_dir = tmp_path / "prometheus"
    multiprocess_dir.mkdir()
    (multiprocess_dir / "counter_1.db").write_bytes(b"")  # an earlier server's leftovers: emptied at start
    server = serve(workers=2, PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir), DATABASE_URL=_test_database_url())
    requests = 24
    with ThreadPoolExecutor(max_workers=4) as pool:  # concurrent, so both workers answer some
        # Startup: a view the metrics middleware sees (liveness is answered ahead of it).
        statuses = list(pool.map(lambda _: server.get("/health/startup")[0], range(requests)))
    assert statuses == [200] * requests

    status, body = server.get("/metrics")
    assert status == 200
    counted = [
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "django_http_requests_total_by_view_transport_method_total"
        and sample.labels["view"] == "health-startup"
    ]
    assert counted == [requests]


@pytest.fixture
def kafka_settings(settings, broker: TansuBroker):
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap
    settings.KAFKA_TOPIC_PARTITIONS = 3
    return settings


@pytest.mark.django_db
def test_readiness_checks_the_kafka_broker_when_it_answers(client, kafka_settings):
    response = client.get("/health/readiness")
    assert response.status_code == 200
    assert response.json()["checks"]["kafka_broker"]["status"] == "ok"


@pytest.mark.django_db
def test_readiness_is_503_while_the_kafka_broker_is_frozen(client, kafka_settings, broker):
    broker.pause()
    try:
        response = client.get("/health/readiness")
    finally:
        broker.resume()
    assert response.status_code == 503
    assert response.json()["checks"]["kafka_broker"]["status"] == "unavailable"


def test_consumer_lag_counts_messages_no_group_member_has_committed(kafka_settings):
    ensure_topics([LEADS_RAW])
    producer = make_producer()
    for number in range(5):
        producer.produce(LEADS_RAW, key=f"lead-{number}".encode(), value=b"{}")
        # One record per batch: tansu's high watermark moves by one per batch, not per record.
        assert producer.flush(15) == 0
    group = f"{settings.KAFKA_CONSUMER_GROUP_PREFIX}.scorer"
    assert consumer_lag(groups={group: [LEADS_RAW]}) == {group: 5}


def test_consumer_lag_is_unknown_while_the_broker_is_frozen(kafka_settings, broker):
    broker.pause()
    try:
        lags = consumer_lag(groups={"frozen.scorer": [LEADS_RAW]}, timeout=1.0)
    finally:
        broker.resume()
    assert lags == {"frozen.scorer": None}


def test_detailed_reports_each_stages_consumer_lag(staff_client, kafka_settings):
    body = staff_client.get("/health/detailed").json()
    assert set(body["consumer_lag"]) == set(STAGES)
    assert body["checks"]["kafka_broker"]["status"] == "ok"
