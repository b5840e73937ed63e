"""The registry: what an app registers shows up in the probes it names, in /metrics and in the
consumer lag, and nowhere else. Each test registers checks of its own, on a registry copy."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

import pytest
from health_check.exceptions import ServiceUnavailable
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from health import registry
from health.checks import ProbeCheck
from health.probes import stage_lag
from tests.stand_ins import free_port


@pytest.fixture(autouse=True)
def _registry_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the apps registered stays; what a test adds is gone after it."""
    registry._import_registered_modules()  # into the originals, not into this test's copy
    monkeypatch.setattr(registry, "_checks", {probe: list(checks) for probe, checks in registry._checks.items()})
    monkeypatch.setattr(registry, "_collectors", list(registry._collectors))
    monkeypatch.setattr(registry, "_consumer_groups", dict(registry._consumer_groups))


def test_a_registered_module_is_imported_when_the_registry_is_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_modules", ["health.tests.registers_on_import"])
    assert "health.tests.registers_on_import" not in sys.modules
    checks = registry.registered_checks("detailed")
    assert sys.modules["health.tests.registers_on_import"].Registered in checks
    assert registry.registered_consumer_groups()["registered-on-import"] == "registered.topic"
    assert registry._modules == []


@dataclasses.dataclass
class AlwaysDown(ProbeCheck):
    def run(self) -> None:
        raise ServiceUnavailable("down on purpose")


@dataclasses.dataclass
class Measured(ProbeCheck):
    def run(self) -> None:
        self.details["answer"] = 42


class ConstantCollector:
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("registry_test_constant", "A registered collector's gauge.", 7.0)


@pytest.mark.django_db
def test_a_check_registered_for_readiness_decides_readiness_but_not_startup(client):
    registry.register_check(AlwaysDown, probes=("readiness",))
    readiness = client.get("/health/readiness")
    assert readiness.status_code == 503
    down = readiness.json()["checks"]["always_down"]
    assert (down["status"], down["error"]) == ("unavailable", "down on purpose")
    startup = client.get("/health/startup")
    assert startup.status_code == 200
    assert "always_down" not in startup.json()["checks"]


def test_a_check_registered_by_default_appears_in_the_detailed_report_only(staff_client, client):
    registry.register_check(Measured)
    detailed = staff_client.get("/health/detailed").json()
    assert detailed["checks"]["measured"]["status"] == "ok"
    assert detailed["checks"]["measured"]["answer"] == 42
    assert "measured" not in client.get("/health/readiness").json()["checks"]


def test_a_check_registered_twice_runs_once():
    registry.register_check(Measured, probes=("startup", "detailed"))
    registry.register_check(Measured, probes=("detailed",))
    assert registry.registered_checks("detailed").count(Measured) == 1
    assert Measured in registry.registered_checks("startup")


@pytest.mark.parametrize("probes", [(), ("liveness",)])
def test_a_check_for_no_probe_or_an_unknown_one_is_refused(probes):
    with pytest.raises(ValueError, match="probes must be some of"):
        registry.register_check(Measured, probes=probes)


@pytest.mark.django_db
def test_a_registered_collector_is_scraped_on_metrics(client):
    collector = ConstantCollector()
    registry.register_collector(collector)
    registry.register_collector(collector)
    families = text_string_to_metric_families(client.get("/metrics").content.decode())
    assert [family.samples[0].value for family in families if family.name == "registry_test_constant"] == [7.0]


def test_registered_consumer_groups_are_the_stages_whose_lag_is_reported(settings):
    registry.register_consumer_groups({"registry-test": "registry.test"})
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"  # nothing listens: every lag unknown
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5
    lags = stage_lag()
    assert set(lags) == set(registry.registered_consumer_groups())
    assert lags["registry-test"] is None


def test_a_stage_keeps_the_topic_it_was_registered_with():
    registry.register_consumer_groups({"registry-test": "registry.test"})
    registry.register_consumer_groups({"registry-test": "registry.test"})
    with pytest.raises(ValueError, match=r"already reads 'registry\.test'"):
        registry.register_consumer_groups({"registry-test": "registry.other"})
