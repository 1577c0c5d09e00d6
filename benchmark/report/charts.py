"""Inline SVG charts drawn in Python: no JavaScript, no network, readable when the HTML file is opened offline.

Every label goes through :func:`html.escape`, so a configuration label cannot inject markup. The scatter
chart is laid out before it is drawn (:func:`layout_scatter`) so its guarantees can be tested: axes fitted
to the data, no two markers overlapping (a marker pushed aside keeps a leader line to its true position),
no tag overlapping a marker or another tag, the legend outside the plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# One colour per model size, colour-blind-safe (Okabe-Ito).
MODEL_COLOURS = {"7b": "#0072B2", "13b": "#E69F00", "70b": "#009E73"}
_DEFAULT_COLOUR = "#CC79A7"
# One colour per series in a scatter chart (Okabe-Ito without yellow, which is unreadable on white).
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKER_R = 4.5
_CHAR_W = 6.2  # average glyph width of the 10-11 px sans-serif text used here
_TAG_H = 10.0


@dataclass(frozen=True)
class Point:
    series: str  # the configuration: one line and one legend entry per (engine, series)
    tag: str  # short text beside the point (its concurrency)
    x: float
    y: float
    engine: str = ""  # the serving engine (``TGI 3.3.6``): its own column in the legend; "" for none


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    group: str


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        apart_x = self.x >= other.x + other.w or other.x >= self.x + self.w
        return not apart_x and self.y < other.y + other.h and other.y < self.y + self.h


@dataclass(frozen=True)
class Axis:
    low: float
    high: float
    ticks: tuple[float, ...]


@dataclass(frozen=True)
class Marker:
    point: Point
    true_x: float  # where the value is
    true_y: float
    cx: float  # where the marker is drawn (moved aside only to avoid another marker)
    cy: float
    colour: str


@dataclass(frozen=True)
class Tag:
    text: str
    box: Box  # the text is drawn from the box's left edge; the box is sized for it


@dataclass(frozen=True)
class ScatterLayout:
    width: int
    height: int
    plot: Box
    x_axis: Axis
    y_axis: Axis
    markers: tuple[Marker, ...]
    tags: tuple[Tag, ...]
    legend: tuple[tuple[str, str, float, float], ...]  # (series, colour, x, y)
    engines: tuple[str, ...] = ()  # each legend entry's engine, in legend order ("" where a point names none)


def nice_axis(low: float, high: float, *, min_ticks: int = 4, max_ticks: int = 8) -> Axis:
    """The tightest round ticks (1, 2, 2.5, 5 x 10^k) around [low, high] plus a small margin.

    Fitted to the data, not forced to zero; never below zero for data that is not (ms and tokens/s).
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"axis bounds must be finite, got {low}, {high}")
    low, high = min(low, high), max(low, high)
    span = high - low
    pad = span * 0.05 if span > 0 else max(abs(high) * 0.1, 1.0)
    floor = 0.0 if low >= 0 else -math.inf
    low, high = max(low - pad, floor), high + pad
    best: tuple[float, float, float] | None = None  # (covered span, first, step)
    exponent = math.floor(math.log10(high - low)) - 2
    for power in range(exponent, exponent + 4):
        for mantissa in (1.0, 2.0, 2.5, 5.0):
            step = mantissa * 10.0**power
            first, last = math.floor(low / step) * step, math.ceil(high / step) * step
            if min_ticks <= round((last - first) / step) + 1 <= max_ticks and (best is None or last - first < best[0]):
                best = (last - first, first, step)
    assert best is not None  # some power of ten always gives between 4 and 8 ticks
    extent, first, step = best
    ticks = tuple(round(first + i * step, 10) for i in range(round(extent / step) + 1))
    return Axis(ticks[0], ticks[-1], ticks)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def _text_width(text: str) -> float:
    return len(text) * _CHAR_W + 2


def _key(point: Point) -> tuple[str, str]:
    """A series is one configuration on one engine: the same name on two engines is two lines."""
    return (point.engine, point.series)


def _place_markers(
    points: Sequence[Point], colours: dict[tuple[str, str], str], sx: Sx, sy: Sx, plot: Box
) -> list[Marker]:
    """Markers at their values; one that would overlap another moves to the nearest free spot (spiral)."""
    placed: list[Marker] = []
    gap = 2 * MARKER_R + 1
    for point in points:
        tx, ty = sx(point.x), sy(point.y)
        cx, cy = tx, ty
        for step in range(1, 400):
            if all(math.hypot(cx - m.cx, cy - m.cy) >= gap for m in placed):
                break
            angle, radius = step * 0.7, gap * (0.5 + step / 12)
            cx = min(max(tx + radius * math.cos(angle), plot.x), plot.x + plot.w)
            cy = min(max(ty + radius * math.sin(angle), plot.y), plot.y + plot.h)
        placed.append(Marker(point, tx, ty, cx, cy, colours[_key(point)]))
    return placed


def _place_tags(markers: Sequence[Marker], plot: Box) -> list[Tag]:
    """Each marker's tag in the first free spot around it; a tag with no free spot is left to the tooltip."""
    taken = [Box(m.cx - MARKER_R, m.cy - MARKER_R, 2 * MARKER_R, 2 * MARKER_R) for m in markers]
    tags: list[Tag] = []
    for m in markers:
        w = _text_width(m.point.tag)
        candidates = [
            (m.cx + MARKER_R + 2, m.cy - _TAG_H / 2),  # right
            (m.cx - MARKER_R - 2 - w, m.cy - _TAG_H / 2),  # left
            (m.cx - w / 2, m.cy - MARKER_R - 1 - _TAG_H),  # above
            (m.cx - w / 2, m.cy + MARKER_R + 1),  # below
            (m.cx + MARKER_R, m.cy - MARKER_R - _TAG_H),  # upper right
            (m.cx - MARKER_R - w, m.cy + MARKER_R),  # lower left
            (m.cx + MARKER_R, m.cy + MARKER_R),  # lower right
            (m.cx - MARKER_R - w, m.cy - MARKER_R - _TAG_H),  # upper left
        ]
        for x, y in candidates:
            box = Box(x, y, w, _TAG_H)
            inside = plot.x <= x and x + w <= plot.x + plot.w and plot.y <= y and y + _TAG_H <= plot.y + plot.h
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                tags.append(Tag(m.point.tag, box))
                break
    return tags


class Sx:
    """Value -> pixel along one axis."""

    def __init__(self, axis: Axis, start: float, length: float, *, flip: bool) -> None:
        self.axis, self.start, self.length, self.flip = axis, start, length, flip

    def __call__(self, value: float) -> float:
        share = (value - self.axis.low) / (self.axis.high - self.axis.low)
        return self.start + (1.0 - share if self.flip else share) * self.length


def layout_scatter(points: Sequence[Point], *, width: int = 760, plot_height: int = 360) -> ScatterLayout:
    """Where everything of a scatter chart goes; points of a series are joined in the order given."""
    series = list(dict.fromkeys(_key(p) for p in points))
    colours = {key: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, key in enumerate(series)}
    plot = Box(70.0, 40.0, width - 70.0 - 30.0, float(plot_height))
    x_axis = nice_axis(min(p.x for p in points), max(p.x for p in points))
    y_axis = nice_axis(min(p.y for p in points), max(p.y for p in points))
    sx = Sx(x_axis, plot.x, plot.w, flip=False)
    sy = Sx(y_axis, plot.y, plot.h, flip=True)
    markers = _place_markers(points, colours, sx, sy, plot)
    legend_top = plot.y + plot.h + 56
    legend = tuple(
        (name, colours[(engine, name)], plot.x, legend_top + i * 18) for i, (engine, name) in enumerate(series)
    )
    height = int(legend_top + len(series) * 18 + 8)
    tags = tuple(_place_tags(markers, plot))
    engines = tuple(engine for engine, _ in series)
    return ScatterLayout(width, height, plot, x_axis, y_axis, tuple(markers), tags, legend, engines)


def _open_svg(title: str, width: int, height: int) -> list[str]:
    """The opening ``<svg>`` (labelled for screen readers), its ``<title>`` and the visible heading."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(title)}</text>",
    ]


def _axes(layout: ScatterLayout, x_label: str, y_label: str) -> list[str]:
    plot = layout.plot
    sx = Sx(layout.x_axis, plot.x, plot.w, flip=False)
    sy = Sx(layout.y_axis, plot.y, plot.h, flip=True)
    parts = []
    for value in layout.x_axis.ticks:
        x = sx(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{plot.y}" x2="{x:.1f}" y2="{plot.y + plot.h}" stroke="#e5e5e5"/>'
            f'<text x="{x:.1f}" y="{plot.y + plot.h + 16}" text-anchor="middle">{_fmt(value)}</text>'
        )
    for value in layout.y_axis.ticks:
        y = sy(value)
        parts.append(
            f'<line x1="{plot.x}" y1="{y:.1f}" x2="{plot.x + plot.w}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{plot.x - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>'
        )
    parts.append(
        f'<rect x="{plot.x}" y="{plot.y}" width="{plot.w}" height="{plot.h}" fill="none" stroke="#999"/>'
        f'<text x="{plot.x + plot.w / 2:.1f}" y="{plot.y + plot.h + 36}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate(16 {plot.y + plot.h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    return parts


def scatter(points: Sequence[Point], *, title: str, x_label: str, y_label: str, width: int = 760) -> str:
    """Scatter chart, one coloured line per series, each point tagged (x: ms/token, y: tokens/s in the report)."""
    if not points:
        parts = _open_svg(title, width, 120)
        parts.append(f'<text x="{width / 2:.1f}" y="70" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    layout = layout_scatter(points, width=width)
    parts = _open_svg(title, layout.width, layout.height) + _axes(layout, x_label, y_label)
    engines = layout.engines or ("",) * len(layout.legend)
    for (name, colour, _, _), engine in zip(layout.legend, engines, strict=True):
        line = " ".join(f"{m.cx:.1f},{m.cy:.1f}" for m in layout.markers if _key(m.point) == (engine, name))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.2" opacity="0.6"/>')
    for m in layout.markers:
        if (m.cx, m.cy) != (m.true_x, m.true_y):  # moved aside: show where the value really is
            parts.append(
                f'<line x1="{m.true_x:.1f}" y1="{m.true_y:.1f}" x2="{m.cx:.1f}" y2="{m.cy:.1f}" stroke="#777" '
                f'stroke-width="0.8"/><circle cx="{m.true_x:.1f}" cy="{m.true_y:.1f}" r="1.5" fill="#777"/>'
            )
        parts.append(
            f'<circle cx="{m.cx:.1f}" cy="{m.cy:.1f}" r="{MARKER_R}" fill="{m.colour}" stroke="#fff" stroke-width="1">'
            f"<title>{escape(m.point.series)}{escape(' on ' + m.point.engine if m.point.engine else '')}, "
            f"{escape(m.point.tag)}: {m.point.x:.2f}, {m.point.y:.2f}</title></circle>"
        )
    for tag in layout.tags:
        parts.append(
            f'<text x="{tag.box.x + 1:.1f}" y="{tag.box.y + tag.box.h - 1:.1f}" font-size="10" fill="#333">'
            f"{escape(tag.text)}</text>"
        )
    # The legend's engine column (where points name one), then the configuration: one row per series.
    engine_w = max((_text_width(engine) for engine in engines if engine), default=0.0)
    for (name, colour, x, y), engine in zip(layout.legend, engines, strict=True):
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 22}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{x + 11}" cy="{y - 4}" r="{MARKER_R}" fill="{colour}"/>'
        )
        if engine_w:
            parts.append(f'<text x="{x + 30}" y="{y}" font-weight="bold">{escape(engine)}</text>')
        parts.append(f'<text x="{x + 30 + (engine_w + 6 if engine_w else 0):.1f}" y="{y}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(items: Sequence[Bar], *, title: str, value_label: str, width: int = 760) -> str:
    """Horizontal bar chart, one bar per item in the given order, its value printed at the end."""
    row, right, top = 22, 90, 40
    left = int(min(max((_text_width(item.label) for item in items), default=100) + 12, width * 0.55))
    height = top + max(len(items), 1) * row + 40
    plot_w = width - left - right
    parts = _open_svg(title, width, height)
    if not items:
        parts.append(f'<text x="{width / 2:.1f}" y="{top + 16}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    top_value = nice_axis(0.0, max(item.value for item in items)).high
    for i, item in enumerate(items):
        y = top + i * row
        length = max(item.value / top_value * plot_w, 1.0)
        colour = MODEL_COLOURS.get(item.group, _DEFAULT_COLOUR)
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(item.label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" fill="{colour}">'
            f"<title>{escape(item.label)}: {item.value:.2f}</title></rect>"
            f'<text x="{left + length + 4:.1f}" y="{y + 14}">{escape(value_label)}{item.value:,.2f}</text>'
        )
    groups = sorted({i.group for i in items}, key=lambda g: list(MODEL_COLOURS).index(g) if g in MODEL_COLOURS else 9)
    for i, group in enumerate(groups):
        colour = MODEL_COLOURS.get(group, _DEFAULT_COLOUR)
        gx, gy = left + i * 90, height - 10
        parts.append(
            f'<rect x="{gx:.1f}" y="{gy - 9:.1f}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{gx + 14:.1f}" y="{gy:.1f}">{escape(group.upper())}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
