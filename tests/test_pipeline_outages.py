"""Stages meeting a dependency that is down, as real processes on a real broker: they wait for it
without dead-lettering anything, and when it stays away they say so with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator

import psycopg
import pytest

from leads.services.simulation import simulated_events
from tests.pipeline_support import produce_raw, wait_until
from tests.stand_ins import ROOT, PipelineProcess, PostgresCluster, free_port, loopback_env

pytestmark = pytest.mark.django_db(transaction=True)

STAGES = ("relay", "scorer", "outreach", "feedback")
LEADS = 2000


def test_a_stage_whose_database_is_gone_for_good_waits_then_exits_non_zero(kafka_settings, broker, tmp_path):
    produce_raw(broker.bootstrap, list(simulated_events(count=3, seed=21, prefix="orphan")))
    env = loopback_env(
        database_url=f"postgres://postgres@127.0.0.1:{free_port()}/gone",  # nothing listens there
        bootstrap=broker.bootstrap,
        smtp_port=free_port(),
        DB_POOL_TIMEOUT_SECONDS="1",
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="1",
        PIPELINE_OUTAGE_GIVE_UP_SECONDS="4",
    )
    scorer = PipelineProcess("scorer", env, tmp_path).start()
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
    kafka_settings, broker, smtp_sink, own_postgres, tmp_path
):
    env = loopback_env(
        database_url=own_postgres.url("pipeline"),
        bootstrap=broker.bootstrap,
        smtp_port=smtp_sink.port,
        PIPELINE_OUTAGE_MAX_BACKOFF_SECONDS="1",
    )
    stages = [PipelineProcess(stage, env, tmp_path, ["--batch-size", "200"]).start() for stage in STAGES]
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
