"""The console's chart geometry: the Beta density and where the curves and bars land."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from leads.console.charts import HEIGHT, MARGIN_BOTTOM, beta_pdf, posterior_chart, timeline_chart


def test_beta_pdf_matches_the_closed_form():
    assert beta_pdf(0.5, 2, 2) == pytest.approx(1.5)  # 6 x (1 - x)
    assert beta_pdf(0.25, 1, 1) == pytest.approx(1.0)


def test_beta_pdf_does_not_overflow_with_large_counts():
    assert beta_pdf(0.3, 30_001, 70_001) > 0


def _row(name: str, alpha: float, beta: float, low: float, high: float, series: int) -> SimpleNamespace:
    return SimpleNamespace(
        variant=SimpleNamespace(name=name),
        posterior=SimpleNamespace(alpha=alpha, beta=beta, ci_low=low, ci_high=high),
        series=series,
    )


def test_posterior_chart_draws_one_curve_per_variant_peaking_at_the_top():
    chart = posterior_chart([_row("a", 31, 71, 0.22, 0.40, 0), _row("b", 6, 96, 0.02, 0.11, 1)])
    assert [curve.name for curve in chart.curves] == ["a", "b"]
    heights = [float(point.split(",")[1]) for curve in chart.curves for point in curve.points.split()]
    assert min(heights) == pytest.approx(8.0, abs=1.0)  # the tallest curve reaches the top margin
    assert max(heights) <= HEIGHT - MARGIN_BOTTOM


def test_timeline_chart_scales_bars_to_the_busiest_day():
    days = [
        {"date": date(2026, 1, 1), "leads": 10, "converted": 2},
        {"date": date(2026, 1, 2), "leads": 5, "converted": 0},
    ]
    chart = timeline_chart(days)
    assert [bar.value for bar in chart.lead_bars] == [10, 5]
    assert chart.lead_bars[0].height == pytest.approx(2 * chart.lead_bars[1].height)
    assert chart.conversion_bars[1].height == 0
