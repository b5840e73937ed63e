"""Helpers for tests that read /metrics (health's own and the apps' that register collectors)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
