"""Stages meeting a dependency that is down, as real processes on a real broker: they wait for it
without dead-lettering anything, and when it stays away they say so with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import connection

from leads.models import DeadLetter, Lead, Outreach
from leads.services.simulation import simulated_events
from tests.pipeline_support import leads_settled, produce_raw, wait_until
from tests.stand_ins import ROOT, PipelineProcess, PostgresCluster, SmtpSink, free_port, loopback_env, pipeline_env

pytestmark = pytest.mark.django_db(transaction=True)

STAGES = ("relay", "scorer", "outreach", "dispatch", "feedback")
LEADS = 2000
MAIL_OUTAGE_LEADS = 1000


@pytest.fixture
def start_stage(tmp_path) -> Iterator[Callable[..., PipelineProcess]]:
    """Starts `run_pipeline STAGE [ARGS]` in the environment given; kills what is left at the end."""
    started: list[PipelineProcess] = []

    def start(stage: str, env: dict[str, str], *args: str) -> PipelineProcess:
        started.append(PipelineProcess(stage, env, tmp_path, args).start())
        return started[-1]

    yield start
    for process in started:
        if process.alive():
            process.kill()


def test_a_stage_whose_database_is_gone_for_good_waits_then_exits_non_zero(kafka_settings, broker, start_stage):
    produce_raw(broker.bootstrap, list(simulated_events(count=3, seed=21, prefix="orphan")))
    env = loopback_env(
        database_url=f"postgres://postgres@127.0.0.1:{free_port()}/gone",  # nothing listens there
        bootstrap=broker.bootstrap,
        smtp_port=free_port(),
        DB_POOL_TIMEOUT_SECONDS="1",
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="1",
        PIPELINE_OUTAGE_GIVE_UP_SECONDS="6",
        PIPELINE_PROBE_PORT=str(probe_port := free_port()),
    )
    scorer = start_stage("scorer", env)

    # Before it gives up, its probe says it is alive but not ready, and why.
    def waiting_for_the_database() -> bool:
        status, body = _probe(probe_port, "/health/readiness")
        return status == 503 and bool(body.get("loops", {}).get("scorer", {}).get("waiting_for"))

    # (A process whose loop has not started yet is not ready either: wait for the outage itself.)
    wait_until(waiting_for_the_database, timeout=60, what="readiness 503 waiting for the database")
    assert _probe(probe_port, "/health/liveness")[0] == 200
    assert "OperationalError" in _probe(probe_port, "/health/readiness")[1]["loops"]["scorer"]["waiting_for"]
    assert scorer.process is not None
    assert scorer.process.wait(90) == 1
    log = scorer.log()
    assert log.count("a dependency is unavailable") == 1, log  # logged once for the whole outage
    assert "scorer stopped: OutageGaveUp: scorer: unavailable for" in log
    assert "dead-lettered" not in log


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this test's own, migrated and seeded, which it may restart."""
    cluster = PostgresCluster().start()
    try:
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE pipeline")
        env = {**os.environ, "DATABASE_URL": cluster.url("pipeline")}
        for command in (["migrate", "-v0"], ["seed_demo", "--leads", "0", "-v0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)  # noqa: S603
        yield cluster
    finally:
        cluster.stop()


def test_every_stage_keeps_running_through_a_postgresql_restart_and_mails_each_lead_once(
    kafka_settings, broker, smtp_sink, own_postgres, start_stage
):
    env = loopback_env(
        database_url=own_postgres.url("pipeline"),
        bootstrap=broker.bootstrap,
        smtp_port=smtp_sink.port,
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="1",
    )
    stages = [start_stage(stage, env, "--batch-size", "200") for stage in STAGES]
    events = list(simulated_events(count=LEADS, seed=31, prefix="restart"))
    produce_raw(broker.bootstrap, events[: LEADS // 2])
    with psycopg.connect(own_postgres.url("pipeline"), autocommit=True) as db:
        wait_until(lambda: _count(db, "SELECT count(*) FROM leads_lead") > 0, timeout=60, what="leads flowing")
    own_postgres.restart()  # every connection of every stage is terminated mid-stream
    produce_raw(broker.bootstrap, events[LEADS // 2 :])

    with psycopg.connect(own_postgres.url("pipeline"), autocommit=True) as db:
        settled = "SELECT count(*) FROM leads_lead WHERE status IN ('contacted', 'disqualified')"
        wait_until(lambda: _count(db, settled) == LEADS, timeout=240, what="every lead past outreach")
        contacted = _count(db, "SELECT count(*) FROM leads_lead WHERE status = 'contacted'")
        assert _count(db, "SELECT count(*) FROM leads_deadletter") == 0
        assert _count(db, "SELECT count(*) FROM leads_outreach") == contacted
        per_lead = "SELECT count(*) FROM (SELECT lead_id FROM leads_outreach GROUP BY 1 HAVING count(*) > 1) x"
        assert _count(db, per_lead) == 0
    wait_until(lambda: len(smtp_sink.received()) >= contacted, timeout=30, what="every mail at the sink")
    ids_by_recipient: dict[str, set[str]] = defaultdict(set)
    for message in smtp_sink.received():
        ids_by_recipient[message["To"]].add(message["Message-ID"])
    assert len(ids_by_recipient) == contacted and all(len(ids) == 1 for ids in ids_by_recipient.values())
    for stage in stages:
        assert stage.alive(), f"{stage.stage} stopped:\n{stage.log()}"
    # The restart was met (and waited out), not missed: a stage busy at the time logged both ends.
    assert any("dependency back after" in stage.log() for stage in stages)


def _count(db: psycopg.Connection, query: str) -> int:
    row = db.execute(query).fetchone()
    return int(row[0]) if row else 0


def test_a_60_second_mail_outage_mid_stream_dead_letters_nothing_and_mails_each_lead_once_after(
    kafka_settings, broker, experiment, start_stage
):
    port = free_port()
    first = SmtpSink(port).start()
    env = pipeline_env(
        database_name=connection.settings_dict["NAME"],
        bootstrap=broker.bootstrap,
        smtp_port=port,
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="2",
    )
    stages = [start_stage(stage, env, "--batch-size", "100") for stage in STAGES]
    produce_raw(broker.bootstrap, list(simulated_events(count=MAIL_OUTAGE_LEADS, seed=41, prefix="mail")))
    wait_until(lambda: len(first.received()) >= 20, timeout=90, what="mail flowing")
    first.stop()  # the mail server goes away mid-stream ...
    time.sleep(60)
    assert Outreach.objects.filter(status=Outreach.Status.PENDING).exists()  # ... with sends in hand
    second = SmtpSink(port).start()  # ... and comes back on the same port
    try:
        wait_until(leads_settled(MAIL_OUTAGE_LEADS), timeout=180, what="every lead past outreach after the outage")
    finally:
        second.stop()
    assert not DeadLetter.objects.exists()
    contacted = Lead.objects.filter(status=Lead.Status.CONTACTED).count()
    ids_by_recipient: dict[str, set[str]] = defaultdict(set)
    for message in [*first.received(), *second.received()]:
        ids_by_recipient[message["To"]].add(message["Message-ID"])
    assert len(ids_by_recipient) == contacted == Outreach.objects.filter(status=Outreach.Status.SENT).count()
    assert all(len(ids) == 1 for ids in ids_by_recipient.values())
    assert all(stage.alive() for stage in stages)
    # The outreach stage only schedules: the dispatcher is the one that meets the mail outage.
    [dispatch] = [stage for stage in stages if stage.stage == "dispatch"]
    assert dispatch.log().count("a dependency is unavailable") == 1  # one outage, logged once


def _probe(port: int, path: str) -> tuple[int, dict]:
    """A stage process's probe, over HTTP; (0, {}) while nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def test_readiness_warns_about_a_stage_with_messages_waiting_and_no_progress(kafka_settings, broker, client):
    kafka_settings.HEALTH_STAGE_STALL_SECONDS = 1
    kafka_settings.HEALTH_PROBE_CACHE_SECONDS = 0
    produce_raw(broker.bootstrap, list(simulated_events(count=3, seed=61, prefix="waiting")))
    response = client.get("/health/readiness", HTTP_ACCEPT="application/json")
    assert response.status_code == 200  # a stuck stage is reported, the web stays in service
    check = response.json()["checks"]["stage_progress"]
    assert check["status"] == "warning"
    assert "no progress for 1 s while messages wait: scorer (" in json.dumps(check)
