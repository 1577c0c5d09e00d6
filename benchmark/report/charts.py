"""Inline SVG charts drawn in Python: no JavaScript, no network, readable when the HTML file is opened offline.

Every label goes through :func:`html.escape`, so a configuration label cannot inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# One colour per model size, colour-blind-safe (Okabe-Ito).
MODEL_COLOURS = {"7b": "#0072B2", "13b": "#E69F00", "70b": "#009E73"}
_DEFAULT_COLOUR = "#CC79A7"


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    group: str  # model size: picks the colour


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    group: str


def _nice_max(value: float) -> float:
    """A round axis end just above value (1, 2, 2.5, 5 x 10^k)."""
    if value <= 0:
        return 1.0
    exponent = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * exponent:
            return step * exponent
    return 10.0 * exponent


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _legend(groups: Sequence[str], x: float, y: float) -> list[str]:
    parts = []
    for i, group in enumerate(groups):
        colour = MODEL_COLOURS.get(group, _DEFAULT_COLOUR)
        gx = x + i * 90
        parts.append(f'<rect x="{gx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{gx + 14:.1f}" y="{y:.1f}">{escape(group.upper())}</text>')
    return parts


def _open_svg(title: str, width: int, height: int) -> list[str]:
    """The opening ``<svg>`` (labelled for screen readers), its ``<title>`` and the visible heading."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(title)}</text>",
    ]


def scatter(points: Sequence[Point], *, title: str, x_label: str, y_label: str, width: int = 760) -> str:
    """Labelled scatter plot (x: ms/token, y: tokens/s in the report)."""
    height = 440
    left, right, top, bottom = 70, 40, 40, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = _open_svg(title, width, height)
    if not points:
        parts.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    x_max = _nice_max(max(p.x for p in points))
    y_max = _nice_max(max(p.y for p in points))

    def sx(value: float) -> float:
        return left + value / x_max * plot_w

    def sy(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    for i in range(6):  # grid and ticks
        xv, yv = x_max * i / 5, y_max * i / 5
        parts.append(
            f'<line x1="{sx(xv):.1f}" y1="{top}" x2="{sx(xv):.1f}" y2="{top + plot_h}" stroke="#e5e5e5"/>'
            f'<line x1="{left}" y1="{sy(yv):.1f}" x2="{left + plot_w}" y2="{sy(yv):.1f}" stroke="#e5e5e5"/>'
            f'<text x="{sx(xv):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_fmt(xv)}</text>'
            f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{_fmt(yv)}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 22}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate(16 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    for point in points:
        colour = MODEL_COLOURS.get(point.group, _DEFAULT_COLOUR)
        cx, cy = sx(point.x), sy(point.y)
        anchor = "end" if cx > left + plot_w * 0.75 else "start"
        dx = -7 if anchor == "end" else 7
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}" fill-opacity="0.85">'
            f"<title>{escape(point.label)}: {point.x:.2f}, {point.y:.2f}</title></circle>"
            f'<text x="{cx + dx:.1f}" y="{cy - 6:.1f}" text-anchor="{anchor}" font-size="10">'
            f"{escape(point.label)}</text>"
        )
    groups = sorted({p.group for p in points}, key=lambda g: list(MODEL_COLOURS).index(g) if g in MODEL_COLOURS else 9)
    parts += _legend(groups, left, height - 6)
    parts.append("</svg>")
    return "".join(parts)


def bars(items: Sequence[Bar], *, title: str, value_label: str, width: int = 760) -> str:
    """Horizontal bar chart, one bar per item in the given order, its value printed at the end."""
    row, left, right, top = 22, 300, 90, 40
    height = top + max(len(items), 1) * row + 40
    plot_w = width - left - right
    parts = _open_svg(title, width, height)
    if not items:
        parts.append(f'<text x="{width / 2:.1f}" y="{top + 16}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    top_value = _nice_max(max(item.value for item in items))
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
    parts += _legend(groups, left, height - 10)
    parts.append("</svg>")
    return "".join(parts)
