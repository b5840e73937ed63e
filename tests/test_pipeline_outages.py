"""Stages meeting a dependency that is down, as real processes on a real broker: they wait for it
without dead-lettering anything, and when it stays away they say so with a non-zero exit."""

from __future__ import annotations

import pytest

from leads.services.simulation import simulated_events
from tests.pipeline_support import produce_raw
from tests.stand_ins import PipelineProcess, free_port, loopback_env

pytestmark = pytest.mark.django_db(transaction=True)


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
