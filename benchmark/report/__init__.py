"""Render results as Markdown and as one self-contained HTML page (inline CSS and SVG, no scripts).

Templates live next to this module (``templates/``) and are loaded relative to it, so the report works
from a checkout, a wheel or a Lambda bundle alike. HTML is autoescaped; the Markdown environment escapes
every expression through ``finalize`` (:func:`md_escape`), so a label, a failure cause or an imported value
renders as the text it is: no table break, link, image, emphasis, HTML or entity can come from data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchmark.analysis.recommend import DEFAULT_RULES, Recommendation, Rule, recommend
from benchmark.analysis.results import LevelResult, tool_version, utc_now
from benchmark.measure.percentiles import PERCENTILES, Distribution, min_samples
from benchmark.measure.selfcheck import COALESCED_LIMIT, CPU_BUSY_LIMIT, SEND_LATENESS_LIMIT
from benchmark.report.charts import Bar, Point, bars, scatter
from catalog import MODELS

TEMPLATES = Path(__file__).with_name("templates")
DASH = "\u2013"  # en dash for "no value"


class Trusted(str):
    """Text this tool wrote itself (formatted numbers, rule text, timestamps): Markdown leaves it as is."""

    __slots__ = ()


def fmt(value: float | int | None, digits: int = 2) -> Trusted:
    if value is None:
        return Trusted(DASH)
    if isinstance(value, int):
        return Trusted(f"{value:,}")
    return Trusted(f"{value:,.{digits}f}")


def pct(value: float | None) -> Trusted:
    return Trusted(DASH if value is None else f"{value:.1%}")


def dist(distribution: Distribution, name: str, digits: int = 1) -> Trusted:
    """A percentile, marked with † when too few samples support it (rule in the report's method section)."""
    value = distribution.get(name)
    if value is None:
        return Trusted(DASH)
    flag = "†" if not distribution.is_supported(name) and distribution.count else ""
    return Trusted(f"{value:,.{digits}f}{flag}")


# Characters GitHub-flavoured Markdown gives a meaning anywhere in a line: escapes, code, emphasis, links
# and images, raw HTML, entities, tables, strikethrough and math ($); and the ':' that makes an autolink
# ("http://", "mailto:", "xmpp:"), left alone elsewhere so "failed: cause" stays readable.
_MD_INLINE = re.compile(r"[\\`*_\[\]<>#!|~&$]|:(?=/)|(?i:(?<=mailto)|(?<=xmpp)):")
_MD_BLOCK_START = re.compile(r"^( ?)([-+=]|\d+[.)])")  # list items, setext underlines, "1." / "1)"


def md_escape(value: Any) -> Any:
    """Finalize hook for Markdown: any text from data renders as itself (checked with GitHub's cmark-gfm).

    Whitespace runs (newlines included) become one space, every inline-significant character is
    backslash-escaped, a block marker at the start is escaped, ``www.`` loses its autolink, and a zero-width
    space after ``@`` stops the e-mail autolink (which backslash escapes do not prevent).
    """
    if not isinstance(value, str) or isinstance(value, Trusted):
        return value
    text = _MD_INLINE.sub(r"\\\g<0>", re.sub(r"\s+", " ", value))
    text = _MD_BLOCK_START.sub(lambda m: f"{m[1]}{m[2][:-1]}\\{m[2][-1]}", text)  # escape the marker's last char
    text = re.sub(r"(?i)(www)\.", r"\1\\.", text)
    return text.replace("@", "@\u200b")


def _environment(kind: str) -> jinja2.Environment:
    options: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(TEMPLATES),
        "undefined": jinja2.StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
    }
    if kind == "html":
        env = jinja2.Environment(autoescape=True, **options)
    else:
        env = jinja2.Environment(autoescape=False, finalize=md_escape, **options)  # escaped by finalize
    env.filters.update(fmt=fmt, pct=pct, dist=dist, trusted=Trusted)
    return env


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path


def _short(result: LevelResult, *, model: bool = True, engine: bool = False) -> str:
    """``7B fp16 g5.12xlarge on TGI 3.3.6 [label] (source)``; without the size inside a chart that holds one size,
    without the engine where it is shown beside the name (a chart legend's engine column)."""
    c = result.configuration
    name = f"{c.quantization_spec.display_name} {c.instance_type.removeprefix('ml.') or 'no instance'}"
    if model:
        name = f"{c.model.upper()} {name}"
    if engine:
        name += f" on {c.engine_label}"
    if c.label:
        name += f" [{c.label}]"
    return name if result.measured else f"{name} ({result.source})"


def _series(result: LevelResult) -> str:
    return _short(result, model=False)


def _charts(results: Sequence[LevelResult]) -> list[str]:
    """One throughput/latency scatter chart per model size, then the cost bars of every result."""
    charted = [r for r in results if r.metrics.ms_per_token.median is not None and r.metrics.tokens_per_s is not None]
    charts = []
    for model in [m for m in MODELS if any(r.configuration.model == m for r in charted)]:
        rows = sorted(
            (r for r in charted if r.configuration.model == model),
            key=lambda r: (r.configuration.engine_label, _series(r), r.concurrency),
        )
        points = [
            Point(
                _series(r),
                str(r.concurrency),
                r.metrics.ms_per_token.median or 0.0,
                r.metrics.tokens_per_s or 0.0,
                r.configuration.engine_label,
            )
            for r in rows
        ]
        charts.append(
            scatter(
                points,
                title=f"{MODELS[model].display_name}: throughput against latency (numbers: concurrency)",
                x_label="median ms per output token (lower is better)",
                y_label="output tokens/s, one instance (higher is better)",
            )
        )
    costed = [r for r in results if r.cost is not None and r.cost.usd_per_1m_tokens is not None]
    items = sorted(
        (
            Bar(f"{_short(r, engine=True)} c={r.concurrency}", r.cost.usd_per_1m_tokens, r.configuration.model)  # type: ignore[union-attr,arg-type]
            for r in costed
        ),
        key=lambda b: (b.value, b.label),
    )
    charts.append(bars(items, title="$ per 1M output tokens (shorter is cheaper)", value_label="$"))
    return charts


OWN = Trusted("‡")  # marks a figure defined by its source, not by the Method section


def own(result: LevelResult, metric: str) -> Trusted:
    """``‡`` when an imported row defines ``metric`` (or all its figures) its own way."""
    return OWN if metric in result.definitions or "all figures" in result.definitions else Trusted("")


def _imported_definitions(results: Sequence[LevelResult]) -> list[tuple[str, int, list[tuple[str, str]]]]:
    """(source, rows, definitions) per source whose rows carry their own definitions, in first-seen order."""
    by_source: dict[str, tuple[int, dict[str, str]]] = {}
    for r in results:
        if r.definitions:
            count, definitions = by_source.get(r.source, (0, {}))
            by_source[r.source] = (count + 1, {**definitions, **r.definitions})
    return [(source, count, list(defs.items())) for source, (count, defs) in by_source.items()]


def _prices(results: Sequence[LevelResult]) -> list[dict[str, Any]]:
    """Each price used, with the engines whose rows it priced (an instance costs the same under either engine)."""
    seen: dict[tuple[str, str, float], dict[str, Any]] = {}
    engines: dict[tuple[str, str, float], set[str]] = {}
    for r in results:
        if r.cost is not None:
            key = (r.cost.instance_type, r.cost.region, r.cost.usd_per_hour)
            engines.setdefault(key, set()).add(r.configuration.engine_label)
            seen[key] = {
                "instance": r.cost.instance_type,
                "region": r.cost.region,
                "usd_per_hour": r.cost.usd_per_hour,
                "as_of": r.cost.price_as_of,
                "source": r.cost.price_source,
            }
    return [{**seen[k], "engines": ", ".join(sorted(engines[k]))} for k in sorted(seen)]


def context(
    results: Sequence[LevelResult],
    rules: Sequence[Rule] = DEFAULT_RULES,
    *,
    title: str = "Llama 2 on SageMaker benchmark",
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything the templates show; computed once so Markdown and HTML always agree."""
    recommendations = recommend(results, rules)
    by_rule: list[tuple[Rule, list[Recommendation]]] = [
        (rule, [rec for rec in recommendations if rec.rule == rule]) for rule in rules
    ]
    ordered = sorted(results, key=lambda r: (r.configuration.model, r.configuration.key, r.concurrency, r.source))
    return {
        "title": title,
        "generated_at": utc_now(),
        "tool_version": tool_version(),
        "results": ordered,
        "by_rule": by_rule,
        "prices": _prices(results),
        "notes": list(notes),
        "result_notes": [
            (f"{r.configuration.key} at concurrency {r.concurrency}", note)
            for r in ordered
            for note in (*r.notes, *r.metrics.notes)
        ],
        "short": _short,
        "own": own,
        "measured_count": sum(1 for r in results if r.measured),
        "imported_definitions": _imported_definitions(ordered),
        "percentile_rules": [(name, min_samples(q)) for name, q in PERCENTILES.items()],
        "coalesced_limit": COALESCED_LIMIT,
        "client_limits": {"coalesced": COALESCED_LIMIT, "cpu": CPU_BUSY_LIMIT, "lateness": SEND_LATENESS_LIMIT},
        "charts": _charts(ordered),
    }


def render_markdown(ctx: Mapping[str, Any]) -> str:
    return _environment("md").get_template("report.md.j2").render(**ctx)


def render_html(ctx: Mapping[str, Any]) -> str:
    # The SVG is built in Python with every label escaped; mark it safe so autoescape keeps it as markup.
    html_ctx = dict(ctx, charts=[Markup(svg) for svg in ctx["charts"]])
    return _environment("html").get_template("report.html.j2").render(**html_ctx)


def write_report(
    results: Sequence[LevelResult],
    out_dir: str | Path,
    rules: Sequence[Rule] = DEFAULT_RULES,
    *,
    title: str = "Llama 2 on SageMaker benchmark",
    notes: Sequence[str] = (),
) -> ReportFiles:
    """Write ``report.md`` and ``report.html`` into out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = context(results, rules, title=title, notes=notes)
    files = ReportFiles(out / "report.md", out / "report.html")
    files.markdown.write_text(render_markdown(ctx), encoding="utf-8")
    files.html.write_text(render_html(ctx), encoding="utf-8")
    return files
