"""Chart geometry for the staff console, drawn server-side as SVG by the templates.

Pure functions: numbers in, coordinates out, in a fixed viewBox. The Beta density is computed
on a grid with `math.lgamma`, so no SciPy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 480, 180
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 36, 22, 8
GRID_POINTS = 121
SERIES_COLOURS = 6  # console.css defines .series-0 to .series-5


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Curve:
    name: str
    points: str  # an SVG polyline's `points`
    series: int  # colour class index


@dataclass(frozen=True)
class PosteriorChart:
    width: int
    height: int
    curves: list[Curve]
    x_ticks: list[Tick]
    baseline: float


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class TimelineChart:
    width: int
    height: int
    lead_bars: list[Bar]
    conversion_bars: list[Bar]
    x_ticks: list[Tick]
    y_max: int
    baseline: float


def beta_pdf(x: float, alpha: float, beta: float) -> float:
    """The Beta(alpha, beta) density at x in (0, 1), in log space so large counts do not overflow."""
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    return math.exp(log_norm + (alpha - 1) * math.log(x) + (beta - 1) * math.log1p(-x))


def posterior_chart(rows: Sequence[Any]) -> PosteriorChart:
    """One curve per variant, on an x range zoomed to where the posteriors have their mass.

    Rows have `.variant` (its name), `.posterior` (alpha, beta, the credible interval) and
    `.series` (a colour index)."""
    low = min((row.posterior.ci_low for row in rows), default=0.0)
    high = max((row.posterior.ci_high for row in rows), default=1.0)
    pad = max((high - low) * 0.5, 0.02)
    x_min, x_max = max(low - pad, 0.0), min(high + pad, 1.0)
    # Stay off 0 and 1, where a density with alpha or beta below 1 is infinite.
    grid = [x_min + (x_max - x_min) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    grid = [min(max(x, 1e-6), 1 - 1e-6) for x in grid]
    densities = [[beta_pdf(x, row.posterior.alpha, row.posterior.beta) for x in grid] for row in rows]
    peak = max((max(values) for values in densities), default=1.0) or 1.0
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    curves = []
    for row, values in zip(rows, densities, strict=True):
        points = " ".join(
            f"{_x(x, x_min, x_max):.1f},{HEIGHT - MARGIN_BOTTOM - plot_height * value / peak:.1f}"
            for x, value in zip(grid, values, strict=True)
        )
        curves.append(Curve(name=row.variant.name, points=points, series=row.series))
    ticks = [x_min + (x_max - x_min) * i / 4 for i in range(5)]
    return PosteriorChart(
        width=WIDTH,
        height=HEIGHT,
        curves=curves,
        x_ticks=[Tick(position=_x(t, x_min, x_max), label=f"{t:.1%}") for t in ticks],
        baseline=HEIGHT - MARGIN_BOTTOM,
    )


def timeline_chart(points: Sequence[dict[str, Any]]) -> TimelineChart:
    """Paired bars per day: leads created, and conversions beside them, on one y scale."""
    y_max = max((max(p["leads"], p["converted"]) for p in points), default=0) or 1
    slot = (WIDTH - MARGIN_LEFT) / max(len(points), 1)
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    baseline = HEIGHT - MARGIN_BOTTOM
    lead_bars: list[Bar] = []
    conversion_bars: list[Bar] = []
    for index, point in enumerate(points):
        left = MARGIN_LEFT + index * slot
        day = point["date"].isoformat()
        for bars, value, offset, noun in (
            (lead_bars, point["leads"], 0.1, "leads"),
            (conversion_bars, point["converted"], 0.5, "conversions"),
        ):
            height = plot_height * value / y_max
            bars.append(
                Bar(
                    x=round(left + slot * offset, 1),
                    y=round(baseline - height, 1),
                    width=round(slot * 0.4, 1),
                    height=round(height, 1),
                    label=f"{day}: {value} {noun}",
                    value=value,
                )
            )
    every = max(len(points) // 6, 1)
    ticks = [
        Tick(position=round(MARGIN_LEFT + (i + 0.5) * slot, 1), label=p["date"].strftime("%b %d"))
        for i, p in enumerate(points)
        if i % every == 0
    ]
    return TimelineChart(
        width=WIDTH,
        height=HEIGHT,
        lead_bars=lead_bars,
        conversion_bars=conversion_bars,
        x_ticks=ticks,
        y_max=y_max,
        baseline=baseline,
    )


def _x(value: float, x_min: float, x_max: float) -> float:
    return MARGIN_LEFT + (WIDTH - MARGIN_LEFT - 24) * (value - x_min) / ((x_max - x_min) or 1.0)
