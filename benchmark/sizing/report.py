"""The sizing report section: SLO verdict per level, capacity per instance, the plan, the all-in cost, charts.

Both renderings (``sizing.md``, ``sizing.html``) come from the same tables, built here as text cells, through
``benchmark/report/templates/sizing_section.*.j2`` (fragments reading one ``sizing`` variable, so the main report
can include them too); the charts are inline SVG in the HTML and files beside the Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from benchmark.report import DASH, TEMPLATES, Trusted, md_escape
from benchmark.sizing.capacity import Capacity, requests_per_s
from benchmark.sizing.chart import line_chart
from benchmark.sizing.plan import ConfigurationPlan, SizingPlan, describe_all_in
from benchmark.sizing.slo import Slo
from catalog.engines import DEFAULT_ENGINE


@dataclass(frozen=True)
class Table:
    title: str
    note: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


# Numbers this tool formats are Trusted: Markdown escaping would turn "10.00" into "10\.00" (a list marker
# at the start of a string) and "$2.00" into "\$2.00"; names and notes from data stay escaped.
def _n(value: float | None, digits: int = 1) -> Trusted:
    return Trusted(DASH if value is None else f"{value:,.{digits}f}")


def _usd(value: float | None) -> Trusted:
    return Trusted(DASH if value is None else f"${value:,.2f}")


def _range(bounds: tuple[float, float] | None) -> Trusted:
    return Trusted(DASH if bounds is None else f"{_usd(bounds[0])} to {_usd(bounds[1])}")


def _share(value: float | None) -> Trusted:
    return Trusted(DASH if value is None else f"{value:.0%}")


def _name(capacity: Capacity) -> str:
    """``7b gptq ml.g5.2xlarge``; an engine other than TGI, the default, is named: ``... on vLLM 0.29.0``."""
    c = capacity.configuration
    engine = "" if c.engine == DEFAULT_ENGINE else f" on {c.engine_label}"
    return f"{c.model} {c.quantization} {c.instance_type}{engine}" + (f" ({c.label})" if c.label else "")


def level_table(capacities: Sequence[Capacity], slo: Slo) -> Table:
    headers = ("configuration", "load", "run", *(lim.label for lim in slo.limits))
    headers += ("error rate", "met every limit", "goodput req/s", "goodput tokens/s", "meets SLO")
    rows = []
    for capacity in capacities:
        for v in capacity.verdicts:
            checks = tuple(
                Trusted(_n(c.value) + ("" if c.status in ("met", "exceeded") else f" ({c.status})")) for c in v.checks
            )
            rows.append(
                (
                    _name(capacity),
                    Trusted(f"{v.level.load:g}"),
                    str(v.level.repeat + 1),
                    *checks,
                    _n(v.error_rate, 3),
                    _share(v.share_meeting),
                    _n(v.goodput_rps, 2),
                    _n(v.goodput_tokens_per_s),
                    "yes" if v.meets else "no",
                )
            )
    note = "Percentiles over the level's successful requests; goodput counts requests that met every limit."
    return Table("SLO per level", note, headers, tuple(rows))


def capacity_table(capacities: Sequence[Capacity]) -> Table:
    rows = []
    for c in capacities:
        spread = ", ".join(f"{k} range {v:.2f}" for k, v in c.spread().items()) or DASH
        rows.append(
            (
                _name(c),
                c.load_kind,
                Trusted(DASH if c.capacity is None else f"{c.capacity:g}"),
                c.precision if c.capacity is not None else c.reason,
                str(c.requests_at_capacity) if c.capacity is not None else DASH,
                str(len(c.at_capacity)) if c.capacity is not None else DASH,
                spread,
                _n(c.rps_per_instance, 2),
                "; ".join(c.notes) or DASH,
            )
        )
    headers = ("configuration", "load", "capacity", "precision", "requests at capacity", "runs", "spread", "req/s")
    note = "Capacity: the highest load below the first failing one; a level passes only if every run passes."
    return Table("Capacity per instance", note, (*headers, "notes"), tuple(rows))


def plan_table(sizing: SizingPlan) -> Table:
    rows = []
    for p in sizing.configurations:
        rows.append(
            (
                _name(p.capacity),
                *(DASH if x is None else str(x) for x in (p.instances_peak, p.instances_average)),
                *(DASH if x is None else str(x) for x in (p.min_instances, p.max_instances)),
                _n(p.autoscaling_target, 2),
                _share(p.headroom_at_peak),
                Trusted(DASH if p.usd_per_hour is None else f"${p.usd_per_hour:g}"),
                _usd(p.min_fleet_usd_month),
                _usd(p.max_fleet_usd_month),
                _usd(p.instance_usd_month if p.from_profile else None),
                _usd(p.fixed_usd_month if p.other_lines else None),
                _range(p.all_in_range_usd_month if p.other_lines else None),
                "; ".join(p.problems) or "ok",
            )
        )
    headers: tuple[str, ...] = ("configuration", "instances at peak", "on average", "min", "max", "autoscaling target")
    headers += ("headroom at peak", "$/h each", "min fleet all month", "max fleet all month")
    headers += ("expected (daily profile)", "other $/month", "all-in $/month (min to max fleet)", "status")
    margin = sizing.options.margin
    note = (
        f"Safety margin {margin:.0%}: usable req/s = measured x {1 - margin:.2f}. A month is 730 hours. "
        "Autoscaling keeps the fleet between min and max, so the instances cost between the min fleet and the max "
        "fleet all month; with a daily profile, the expected figure is its hourly fleets. All-in adds the other lines."
    )
    return Table("Capacity plan", note, headers, tuple(rows))


def cost_table(plan: ConfigurationPlan) -> Table:
    rows = [
        (
            "Instances (on demand)",
            DASH,
            "instance-hours",
            DASH if plan.usd_per_hour is None else f"${plan.usd_per_hour:g}",
            _usd(plan.instance_usd_month),
            plan.price_as_of,
            "catalog",
        )
    ]
    for line in plan.other_lines:
        rows.append(
            (
                line.item,
                f"{line.quantity:,.0f}" if line.quantity >= 1000 else f"{line.quantity:,.4g}",
                line.unit,
                f"${line.usd_per_unit:g}",
                _usd(line.usd_per_month),
                line.as_of,
                line.source,
            )
        )
    headers = ("item", "quantity", "unit", "$/unit", "$/month", "as of", "source")
    return Table(f"All-in monthly cost of {_name(plan.capacity)}", "", headers, tuple(rows))


def _binding(sizing: SizingPlan, slo: Slo) -> int:
    """Index of the limit that broke first for the chosen (else the first) configuration."""
    plan = sizing.cheapest or (sizing.configurations[0] if sizing.configurations else None)
    if plan is None:
        return 0
    failing = [v for v in plan.capacity.verdicts if v.level.load == plan.capacity.first_failing]
    for verdict in failing:
        for index, check in enumerate(verdict.checks):
            if check.status != "met":
                return index
    return 0


def _mean_by_load(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Repeats at one load become their mean, so each line moves forward in load."""
    grouped: dict[float, list[float]] = {}
    for x, y in points:
        grouped.setdefault(x, []).append(y)
    return [(x, sum(ys) / len(ys)) for x, ys in sorted(grouped.items())]


def charts(sizing: SizingPlan, slo: Slo) -> dict[str, str]:
    """Goodput against load, and the binding limit's percentile against load with the SLO line."""
    index = _binding(sizing, slo)
    goodput: dict[str, list[tuple[float, float]]] = {}
    limited: dict[str, list[tuple[float, float]]] = {}
    for p in sizing.configurations:
        name = _name(p.capacity)
        for v in p.capacity.verdicts:
            rate = v.goodput_rps if v.goodput_rps is not None else requests_per_s(v.level)
            if rate is not None:
                goodput.setdefault(name, []).append((v.level.load, rate))
            if index < len(v.checks) and v.checks[index].value is not None:
                limited.setdefault(name, []).append((v.level.load, float(v.checks[index].value or 0.0)))
    goodput = {k: _mean_by_load(v) for k, v in goodput.items()}
    limited = {k: _mean_by_load(v) for k, v in limited.items()}
    chosen = sizing.cheapest
    load = chosen.capacity.load_kind.replace("_", " ") if chosen else "load"

    def mark(series: dict[str, list[tuple[float, float]]]) -> tuple[str, float, float] | None:
        if chosen is None or chosen.capacity.capacity is None:
            return None
        name, at = _name(chosen.capacity), chosen.capacity.capacity
        found = [y for x, y in series.get(name, []) if x == at]
        return (name, at, found[0]) if found else None

    out = {
        "goodput": line_chart(
            goodput,
            title="Goodput against load",
            x_label=load,
            y_label="requests/s meeting the SLO",
            chosen=mark(goodput),
        )
    }
    if slo.limits:
        limit = slo.limits[index]
        out["limit"] = line_chart(
            limited,
            title=f"{limit.label} against load",
            x_label=load,
            y_label=limit.label,
            slo=limit.max_value,
            chosen=mark(limited),
        )
    return out


def context(sizing: SizingPlan, slo: Slo) -> dict[str, Any]:
    capacities = [p.capacity for p in sizing.configurations]
    chosen = sizing.cheapest
    tables = [plan_table(sizing), capacity_table(capacities), level_table(capacities, slo)]
    if chosen is not None:
        tables.insert(1, cost_table(chosen))
    traffic = sizing.traffic
    return {
        "slo": str(slo),
        "traffic": f"peak {traffic.peak_rps:g} requests/s, average {traffic.average_rps:.3g} requests/s"
        + (" (24-hour profile)" if traffic.daily_profile else ""),
        "chosen": None if chosen is None else _name(chosen.capacity),
        "chosen_engine": None if chosen is None else chosen.capacity.configuration.engine_label,
        "chosen_plan": chosen,
        "chosen_total": None if chosen is None else Trusted(describe_all_in(chosen, cents=True)),
        "infeasible": [(_name(p.capacity), "; ".join(p.problems)) for p in sizing.configurations if not p.feasible],
        "tables": tables,
        "charts": charts(sizing, slo),
    }


def _render(name: str, ctx: dict[str, Any], *, html: bool) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        finalize=None if html else md_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(name).render(**ctx)


def write_sizing_report(sizing: SizingPlan, slo: Slo, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = context(sizing, slo)
    for key, svg in ctx["charts"].items():
        (out / f"sizing-{key}.svg").write_text(svg, encoding="utf-8")
    markdown, html = out / "sizing.md", out / "sizing.html"
    markdown.write_text(_render("sizing.md.j2", {"sizing": ctx}, html=False), encoding="utf-8")
    html.write_text(_render("sizing.html.j2", {"sizing": ctx}, html=True), encoding="utf-8")
    return markdown, html
