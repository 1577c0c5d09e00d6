"""Dry-run plan: what a matrix costs in endpoint deployments, endpoint-hours and dollars, before it runs.

Two methods are compared. Ours deploys one endpoint per configuration and runs every concurrency level
on it, so each configuration pays the deploy and teardown time once. The 2023 scripts deployed a fresh
endpoint for every (configuration, concurrency) run, paying them once per run. An endpoint is billed
from creation to deletion, so deploy and teardown minutes count as endpoint time. Each configuration names
its serving engine (TGI or vLLM, with its image version), and each method's totals are also split per engine.

    python -m benchmark.analysis.plan 2023 [--region us-east-1] [--deploy-minutes 20] [--teardown-minutes 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from benchmark.matrix import Matrix, PlanSettings, load_matrix
from benchmark.serialize import to_data
from catalog import get_price
from catalog.engines import ENGINE_NAMES, get_engine
from catalog.errors import ConfigError, Issue


@dataclass(frozen=True)
class ConfigurationCost:
    id: str
    instance_type: str
    usd_per_hour: float
    deployments: int
    endpoint_hours: float
    usd: float
    engine: str = "tgi"  # catalog.engines name
    engine_version: str = ""  # its image version


@dataclass(frozen=True)
class EngineCost:
    """One engine's share of a method: its configurations, deployments, endpoint-hours and dollars."""

    engine: str
    configurations: int
    deployments: int
    endpoint_hours: float
    usd: float


@dataclass(frozen=True)
class MethodCost:
    method: str
    deployments: int
    endpoint_hours: float
    usd: float
    wall_clock_hours: float  # with the matrix's max_parallel_endpoints
    configurations: tuple[ConfigurationCost, ...]
    engines: tuple[EngineCost, ...] = ()  # per engine, in catalog order (catalog.engines.ENGINE_NAMES)


def _per_engine(rows: Sequence[ConfigurationCost]) -> tuple[EngineCost, ...]:
    return tuple(
        EngineCost(
            name,
            len(mine),
            sum(r.deployments for r in mine),
            sum(r.endpoint_hours for r in mine),
            sum(r.usd for r in mine),
        )
        for name in ENGINE_NAMES
        if (mine := [r for r in rows if r.engine == name])
    )


@dataclass(frozen=True)
class Plan:
    matrix: str
    region: str
    price_as_of: str
    configurations: int
    runs: int
    ours: MethodCost
    method_2023: MethodCost


def _level_hours(matrix: Matrix) -> float:
    return (matrix.level_duration_s + matrix.plan.level_overhead_s) / 3600.0


def _wall_clock(durations: Sequence[float], slots: int) -> float:
    """Greedy list scheduling in matrix order, as the state machine's Map hands out items."""
    free = [0.0] * max(1, slots)
    for hours in durations:
        i = free.index(min(free))
        free[i] += hours
    return max(free)


def _method(matrix: Matrix, *, per_configuration: bool, region: str) -> MethodCost:
    plan = matrix.plan
    fixed = (plan.deploy_minutes + plan.teardown_minutes) / 60.0
    levels = len(matrix.levels)
    level = _level_hours(matrix)
    rows: list[ConfigurationCost] = []
    durations: list[float] = []
    for config in matrix.configurations:
        price = get_price(str(config.deployment.instance_type), region)
        deployments = 1 if per_configuration else levels
        hours = deployments * fixed + levels * level
        rows.append(
            ConfigurationCost(
                config.id,
                price.instance_type,
                price.usd_per_hour,
                deployments,
                hours,
                hours * price.usd_per_hour,
                config.deployment.engine,
                config.deployment.engine_version,
            )
        )
        durations.extend([hours] if per_configuration else [fixed + level] * levels)
    return MethodCost(
        method="one endpoint per configuration" if per_configuration else "one endpoint per run (2023)",
        deployments=sum(r.deployments for r in rows),
        endpoint_hours=sum(r.endpoint_hours for r in rows),
        usd=sum(r.usd for r in rows),
        wall_clock_hours=_wall_clock(durations, matrix.max_parallel_endpoints),
        configurations=tuple(rows),
        engines=_per_engine(rows),
    )


def make_plan(matrix: Matrix, *, region: str | None = None) -> Plan:
    region = region or matrix.plan.region
    ours = _method(matrix, per_configuration=True, region=region)
    old = _method(matrix, per_configuration=False, region=region)
    as_of = sorted({get_price(str(c.deployment.instance_type), region).as_of for c in matrix.configurations})
    return Plan(matrix.name, region, ", ".join(as_of), len(matrix.configurations), matrix.runs, ours, old)


def format_plan(plan: Plan) -> str:
    lines = [
        f"Benchmark plan for matrix {plan.matrix!r}: {plan.configurations} configurations x "
        f"{plan.runs // max(plan.configurations, 1)} concurrency levels = {plan.runs} runs",
        f"Prices: catalog, {plan.region}, as of {plan.price_as_of} (on-demand, one instance per endpoint)",
        "",
        f"{'method':<34} {'deployments':>11} {'endpoint-h':>10} {'USD':>10} {'wall-clock h':>12}",
    ]
    for m in (plan.ours, plan.method_2023):
        lines.append(
            f"{m.method:<34} {m.deployments:>11} {m.endpoint_hours:>10.2f} {m.usd:>10.2f} {m.wall_clock_hours:>12.2f}"
        )
    saved = plan.method_2023.usd - plan.ours.usd
    lines += [
        "",
        f"Saving: {plan.method_2023.deployments - plan.ours.deployments} deployments, "
        f"{plan.method_2023.endpoint_hours - plan.ours.endpoint_hours:.2f} endpoint-hours, ${saved:.2f}",
        "",
        f"{'engine':<8} {'configurations':>14} {'deployments':>11} {'endpoint-h':>10} {'USD':>10} "
        f"{'2023 deployments':>16} {'2023 endpoint-h':>15} {'2023 USD':>10}",
    ]
    for e, f in zip(plan.ours.engines, plan.method_2023.engines, strict=True):
        lines.append(
            f"{get_engine(e.engine).display_name:<8} {e.configurations:>14} {e.deployments:>11} "
            f"{e.endpoint_hours:>10.2f} {e.usd:>10.2f} {f.deployments:>16} {f.endpoint_hours:>15.2f} {f.usd:>10.2f}"
        )
    lines += [
        "",
        f"{'configuration':<26} {'engine':<14} {'instance':<16} {'$/h':>7} {'ours h':>7} {'ours $':>8} "
        f"{'2023 h':>7} {'2023 $':>8}",
    ]
    for a, b in zip(plan.ours.configurations, plan.method_2023.configurations, strict=True):
        engine = f"{get_engine(a.engine).display_name} {a.engine_version}"
        lines.append(
            f"{a.id:<26} {engine:<14} {a.instance_type:<16} {a.usd_per_hour:>7.3f} {a.endpoint_hours:>7.3f} "
            f"{a.usd:>8.2f} {b.endpoint_hours:>7.3f} {b.usd:>8.2f}"
        )
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="python -m benchmark.analysis.plan", description=__doc__.splitlines()[0]
    )
    parser.add_argument("matrix", help="a matrix YAML file or a shipped matrix name (2023, engines, smoke)")
    parser.add_argument("--region", help="price region (default: the matrix's plan.region)")
    parser.add_argument("--deploy-minutes", type=float, help="override plan.deploy_minutes")
    parser.add_argument("--teardown-minutes", type=float, help="override plan.teardown_minutes")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        matrix = load_matrix(args.matrix)
        overrides = {
            k: v
            for k, v in (("deploy_minutes", args.deploy_minutes), ("teardown_minutes", args.teardown_minutes))
            if v is not None
        }
        bad = [Issue(f"--{k.replace('_', '-')}", v, "must be at least 0") for k, v in overrides.items() if v < 0]
        if bad:
            raise ConfigError(bad)
        if overrides:
            matrix = replace(matrix, plan=replace(matrix.plan, **overrides))
        plan = make_plan(matrix, region=args.region)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(json.dumps(to_data(plan), indent=2) if args.json else format_plan(plan))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


__all__ = [
    "ConfigurationCost",
    "EngineCost",
    "MethodCost",
    "Plan",
    "PlanSettings",
    "build_parser",
    "format_plan",
    "make_plan",
    "run",
]

if __name__ == "__main__":
    raise SystemExit(main())
