"""A module an app names with `health.registry.register_module` (test_registry imports it by name)."""

from __future__ import annotations

import dataclasses

from health import registry
from health.checks import ProbeCheck


@dataclasses.dataclass
class Registered(ProbeCheck):
    def run(self) -> None:
        pass


def register() -> None:
    registry.register_check(Registered)
    registry.register_consumer_groups({"registered-on-import": "registered.topic"})
