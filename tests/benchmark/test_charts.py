"""Scatter chart geometry: axes fitted to the data, markers true to their values, nothing overlapping."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from benchmark.analysis.external import import_file
from benchmark.report.charts import MARKER_R, Box, Point, ScatterLayout, layout_scatter, nice_axis, scatter

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "hf2023" / "sagemaker.csv"


@pytest.mark.parametrize(
    ("low", "high", "axis"),
    [
        ((9.6), 26.3, (5.0, 30.0)),  # the report of issue 9 drew 0-50 for this data
        (16.8, 73.1, (10.0, 80.0)),
        (12.0, 321.0, (0.0, 350.0)),  # the margin below 12 would be negative: tokens/s are not
        (120.0, 120.5, (119.9, 120.6)),
        (5.0, 5.0, (4.0, 6.0)),  # one value: a small range around it
        (-3.0, 7.0, (-4.0, 8.0)),
    ],
)
def test_axis_is_fitted_round_and_covers_the_data(low: float, high: float, axis: tuple[float, float]) -> None:
    got = nice_axis(low, high)
    assert (got.low, got.high) == pytest.approx(axis)
    assert got.low <= low and got.high >= high
    steps = {round(b - a, 9) for a, b in itertools.pairwise(got.ticks)}
    assert len(steps) == 1 and 4 <= len(got.ticks) <= 8
    if high > low:
        assert (high - low) / (got.high - got.low) >= 0.6  # the data fills most of the axis


def _check_layout(layout: ScatterLayout, points: list[Point]) -> None:
    plot = layout.plot
    # markers: true values scaled linearly, drawn inside the plot, never overlapping
    for mark in layout.markers:
        p = mark.point
        share_x = (p.x - layout.x_axis.low) / (layout.x_axis.high - layout.x_axis.low)
        share_y = (p.y - layout.y_axis.low) / (layout.y_axis.high - layout.y_axis.low)
        assert mark.true_x == pytest.approx(plot.x + share_x * plot.w)
        assert mark.true_y == pytest.approx(plot.y + plot.h - share_y * plot.h)
        assert plot.x <= mark.cx <= plot.x + plot.w and plot.y <= mark.cy <= plot.y + plot.h
    for a, b in itertools.combinations(layout.markers, 2):
        assert math.hypot(a.cx - b.cx, a.cy - b.cy) >= 2 * MARKER_R, (a.point, b.point)
    # tags: inside the plot, clear of every marker and of each other
    circles = [Box(m.cx - MARKER_R, m.cy - MARKER_R, 2 * MARKER_R, 2 * MARKER_R) for m in layout.markers]
    for tag in layout.tags:
        assert plot.x <= tag.box.x and tag.box.x + tag.box.w <= plot.x + plot.w
        assert plot.y <= tag.box.y and tag.box.y + tag.box.h <= plot.y + plot.h
        assert not any(tag.box.overlaps(c) for c in circles), tag
    for one, two in itertools.combinations(layout.tags, 2):
        assert not one.box.overlaps(two.box), (one, two)
    # legend: one entry per series, all below the plot
    assert [name for name, *_ in layout.legend] == list(dict.fromkeys(p.series for p in points))
    assert all(y > plot.y + plot.h + 30 for *_, y in layout.legend)


@pytest.mark.parametrize("model", ["7b", "13b", "70b"])
def test_the_2023_data_charts_without_overlap(model: str) -> None:
    rows = [r for r in import_file(RAW, price_overrides={"ml.g5.48xlarge": 20.36}) if r.configuration.model == model]
    points = [
        Point(f"{r.configuration.quantization} {r.configuration.instance_type}", str(r.concurrency), x, y)
        for r in sorted(rows, key=lambda r: (r.configuration.key, r.concurrency))
        if (x := r.metrics.ms_per_token.median) is not None and (y := r.metrics.tokens_per_s) is not None
    ]
    layout = layout_scatter(points)
    _check_layout(layout, points)
    assert len(layout.tags) >= 0.9 * len(points)  # nearly every point keeps its concurrency beside it


def test_coincident_points_are_spread_apart_and_keep_a_line_to_their_value() -> None:
    points = [Point(f"config {i % 3}", str(i), 20.0, 100.0) for i in range(12)] + [Point("other", "1", 40.0, 300.0)]
    layout = layout_scatter(points)
    _check_layout(layout, points)
    moved = [m for m in layout.markers if (m.cx, m.cy) != (m.true_x, m.true_y)]
    assert len(moved) == 11
    svg = scatter(points, title="t", x_label="x", y_label="y")
    assert svg.count('r="1.5"') == 11  # a dot at each true position, joined to its marker
