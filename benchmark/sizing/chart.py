"""The sizing chart: one line per configuration of a value against load, a dashed SLO line, the chosen point.

Inline SVG written in Python, labels escaped, like ``benchmark.report.charts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

Series = Mapping[str, Sequence[tuple[float, float]]]  # label -> (load, value) points
# Okabe-Ito, colour-blind-safe, as the main report
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")


def _axis_end(value: float) -> float:
    """Round up to 1, 2 or 5 x a power of ten."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= value)


def line_chart(
    series: Series,
    *,
    title: str,
    x_label: str,
    y_label: str,
    slo: float | None = None,
    chosen: tuple[str, float, float] | None = None,
) -> str:
    width, height, left, top, right, bottom = 760, 420, 70, 40, 200, 55
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for values in series.values() for p in values]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="chart" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11"><title>{escape(title)}</title>'
        f'<text x="{left + plot_w / 2:.1f}" y="22" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(title)}</text>"
    )
    if not points:
        return head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>'
    x_end = _axis_end(max(x for x, _ in points))
    y_end = _axis_end(max([y for _, y in points] + ([slo] if slo else [])))

    def sx(x: float) -> float:
        return left + x / x_end * plot_w

    def sy(y: float) -> float:
        return top + plot_h - y / y_end * plot_h

    body = [head, f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for i in range(6):
        xv, yv = x_end * i / 5, y_end * i / 5
        body.append(
            f'<text x="{sx(xv):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{xv:g}</text>'
            f'<text x="{left - 5}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:,.4g}</text>'
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#eee"/>'
        )
    body.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 18}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate(15 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    if slo is not None:
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(slo):.1f}" y2="{sy(slo):.1f}" stroke="#8a1c1c" '
            f'stroke-dasharray="6 4"/><text x="{left + plot_w - 4}" y="{sy(slo) - 4:.1f}" text-anchor="end" '
            f'fill="#8a1c1c">SLO {slo:g}</text>'
        )
    for index, (label, values) in enumerate(series.items()):
        colour = _PALETTE[index % len(_PALETTE)]
        ordered = sorted(values)
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ordered)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in ordered]
        ly = top + 14 + index * 16
        body.append(
            f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + plot_w + 26}" y="{ly}">{escape(label)}</text>'
        )
    if chosen is not None:
        label, x, y = chosen
        body.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="8" fill="none" stroke="#000" stroke-width="2">'
            f"<title>chosen: {escape(label)} at {x:g}</title></circle>"
            f'<text x="{sx(x) + 10:.1f}" y="{sy(y) + 16:.1f}" font-weight="bold">chosen</text>'
        )
    body.append("</svg>")
    return "".join(body)
