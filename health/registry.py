"""What the apps add to the probes and to /metrics. health imports no app, so apps register here.

An app calls these from its `AppConfig.ready()`, or names with `register_module` a module whose
`register()` calls them the first time anything reads the registry (so a management command that
never probes does not import the checks and what they need): `register_check` puts a
django-health-check check into one or more probes, `register_collector` a prometheus_client
collector into /metrics, `register_consumer_groups` the Kafka consumer groups whose lag
/health/detailed, /metrics and the console report. The views read the registry on every request,
after health's own checks. Registering the same thing again changes nothing, so a `ready()` that
runs twice is harmless.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from health_check.base import HealthCheck
    from prometheus_client.registry import Collector

Probe = Literal["startup", "readiness", "detailed"]
PROBES: tuple[Probe, ...] = get_args(Probe)

_checks: dict[Probe, list[type[HealthCheck]]] = {probe: [] for probe in PROBES}
_collectors: list[Collector] = []
_consumer_groups: dict[str, str] = {}
_modules: list[str] = []  # named by register_module, not imported yet
_importing = threading.Lock()


def register_module(path: str) -> None:
    """Import `path` and call its `register()` before the registry is first read."""
    if path not in _modules:
        _modules.append(path)


def _import_registered_modules() -> None:
    if not _modules:  # the lock-free common case: everything registered already
        return
    with _importing:
        while _modules:
            importlib.import_module(_modules[0]).register()
            _modules.pop(0)


def register_check(check: type[HealthCheck], *, probes: Iterable[Probe] = ("detailed",)) -> None:
    """Run `check` in each probe named, in the order checks were registered.

    Each probe runs exactly the checks that name it: a check that should fail readiness and
    also appear in the detailed report names both.
    """
    named = tuple(probes)
    unknown = sorted(set(named) - set(PROBES))
    if not named or unknown:
        raise ValueError(f"register_check({check.__name__}): probes must be some of {PROBES}, not {unknown or named}")
    for probe in named:
        if check not in _checks[probe]:
            _checks[probe].append(check)


def register_collector(collector: Collector) -> None:
    """Export what `collector.collect()` yields on /metrics, asked afresh at every scrape."""
    if not any(registered is collector for registered in _collectors):
        _collectors.append(collector)


def register_consumer_groups(topics: Mapping[str, str]) -> None:
    """Report the lag of each stage's consumer group on its topic: {stage: topic}.

    The group of a stage is `<KAFKA_CONSUMER_GROUP_PREFIX>.<stage>`. A stage keeps the topic it
    was first registered with; another topic for it is a mistake and raises ValueError.
    """
    for stage, topic in topics.items():
        registered = _consumer_groups.setdefault(stage, topic)
        if registered != topic:
            raise ValueError(f"stage {stage!r} already reads {registered!r}, not {topic!r}")


def registered_checks(probe: Probe) -> tuple[type[HealthCheck], ...]:
    """The checks apps registered for `probe`, in registration order."""
    _import_registered_modules()
    return tuple(_checks[probe])


def registered_collectors() -> tuple[Collector, ...]:
    """The collectors apps registered for /metrics, in registration order."""
    _import_registered_modules()
    return tuple(_collectors)


def registered_consumer_groups() -> dict[str, str]:
    """{stage: topic} of every registered consumer group, in registration order (a copy)."""
    _import_registered_modules()
    return dict(_consumer_groups)
