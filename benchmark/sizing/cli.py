"""``python -m benchmark size sweep|plan``: measure capacity under an SLO, then plan, report and write the config.

    size sweep --target emulator --config model=7b,quantization=gptq,instance=ml.g5.2xlarge \\
        --slo "ttft_ms.p90<=1500,ms_per_token.p90<=60" --out sweep.jsonl
    size plan sweep.jsonl --slo "..." --peak-rps 8 --average-rps 3 --out reports/sizing --write-config sized.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.cost import parse_price_overrides
from benchmark.analysis.plan import make_plan as matrix_plan
from benchmark.matrix import load_matrix
from benchmark.measure.runner import late_first_tokens_flag
from benchmark.sizing.allin_cost import Usage
from benchmark.sizing.capacity import Capacity, SweepSettings, capacity_of, sweep
from benchmark.sizing.config_writer import write_config
from benchmark.sizing.levels import MeasuredLevel, by_configuration, load_levels
from benchmark.sizing.measure import LevelPlan, measurer
from benchmark.sizing.plan import SizingOptions, SizingPlan, Traffic, describe_all_in, make_plan
from benchmark.sizing.report import write_sizing_report
from benchmark.sizing.slo import parse_slo
from benchmark.target import (
    add_request_arguments,
    client_bound_advice,
    emulator_config,
    load_spec,
    open_target,
    parse_config,
    persisted_target,
    process_options,
)
from catalog import get_instance
from catalog.errors import ConfigError, Issue

if TYPE_CHECKING:  # the emulator needs aiohttp; only a sweep against it starts one (benchmark.target.open_target)
    from benchmark.emulator import EmulatorConfig

EXIT_NOT_DEPLOYABLE = 1


SWEEP_DURATION_S = 30.0  # a sweep's level: shorter than run's, since a sweep runs many


def _emulator(args: argparse.Namespace, configuration: BenchmarkConfiguration) -> EmulatorConfig | None:
    """The emulator's latency model: the catalog-shaped default, with any knobs given as JSON replacing it."""
    if not args.emulator_latency:
        return None
    if args.target != "emulator":
        raise ConfigError([Issue("emulator_latency", args.emulator_latency, "applies to --target emulator only")])
    text = args.emulator_latency
    base = emulator_config(configuration)
    try:
        knobs = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError([Issue("emulator_latency", text, f"must be a JSON object ({err.msg})")]) from None
    if not isinstance(knobs, dict):
        raise ConfigError([Issue("emulator_latency", text, "must be a JSON object of LatencyModel fields")])
    known = set(base.latency.__dataclass_fields__)
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ConfigError([Issue("emulator_latency", unknown[0], f"must be one of {', '.join(sorted(known))}")])
    return replace(base, latency=replace(base.latency, **knobs))


def _progress(level: MeasuredLevel) -> None:
    m = level.result.metrics
    print(
        f"  load {level.load:g} run {level.repeat + 1}: {m.requests_total} requests, "
        f"p90 ms/token {m.ms_per_token.p90 or 0:.1f}, p90 TTFT {m.ttft_ms.p90 or 0:.0f} ms, "
        f"errors {m.error_rate or 0:.1%}" + late_first_tokens_flag(m),
        file=sys.stderr,
        flush=True,
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    slo = parse_slo(args.slo)
    settings = SweepSettings(start=args.start, limit=args.limit, step=args.step, repeats=args.repeats)
    plan = LevelPlan(
        load=load_spec(args),
        open_loop=args.mode == "rate",
        target=persisted_target(args),
        process=process_options(args),
    )
    if plan.process.workers and plan.open_loop:
        raise ConfigError([Issue("workers", args.workers, "applies to --mode concurrency only (closed loop)")])
    configuration = parse_config(args.config, region=args.region)
    configuration.check_deployable()
    # One target for the whole sweep (against the emulator, one server, so its latency model stays what was set);
    # a target that cannot be reached stops here.
    with open_target(args, configuration, emulator=_emulator(args, configuration)) as clients:
        print(f"sweeping {configuration.key} under {slo} ({args.mode})", file=sys.stderr)
        measure = measurer(configuration, clients, plan, sizing_file=args.out, on_level=_progress)
        levels = sweep(measure, slo, settings)
    capacity = capacity_of(levels, slo)
    print(_capacity_line(capacity))
    for note in capacity.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(levels)} level(s) in {args.out}", file=sys.stderr)
    advice = client_bound_advice([level.result.metrics for level in levels])
    if advice:
        print(advice, file=sys.stderr)
    return 0


def _capacity_line(capacity: Capacity) -> str:
    if capacity.capacity is None:
        return f"{capacity.configuration.key}: no capacity: {capacity.reason}"
    rps = capacity.rps_per_instance
    spread = ", ".join(f"{k} spread {v:.2f}" for k, v in capacity.spread().items())
    return (
        f"{capacity.configuration.key}: capacity {capacity.capacity:g} ({capacity.load_kind}), {capacity.precision}; "
        f"{capacity.requests_at_capacity} requests at capacity over {len(capacity.at_capacity)} run(s)"
        + (f", {spread}" if spread else "")
        + (f"; {rps:.2f} requests/s per instance" if rps else "")
    )


def _quota(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise ConfigError([Issue("quota", item, "must look like ml.g5.2xlarge=4 (instances you may run)")])
        out[get_instance(name.strip(), field="quota").name] = int(value)
    return out


def _numbers(text: str, field: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError([Issue(field, text, "must be comma-separated numbers")]) from None


def _traffic(args: argparse.Namespace) -> Traffic:
    if args.daily_profile:
        if args.peak_rps is not None or args.average_rps is not None:
            raise ConfigError(
                [Issue("daily_profile", args.daily_profile, "give it instead of --peak-rps/--average-rps")]
            )
        return Traffic.from_profile(_numbers(args.daily_profile, "daily_profile"))
    if args.peak_rps is None:
        raise ConfigError([Issue("peak_rps", None, "is required (requests/s at peak), or give --daily-profile")])
    return Traffic(args.peak_rps, args.average_rps if args.average_rps is not None else args.peak_rps)


def _options(args: argparse.Namespace) -> SizingOptions:
    usage = Usage()
    if args.benchmark_matrix and args.benchmark_runs_per_month:
        matrix = load_matrix(args.benchmark_matrix)
        usage = Usage(
            benchmark_runs_per_month=args.benchmark_runs_per_month,
            benchmark_usd_per_run=matrix_plan(matrix).ours.usd,
            benchmark_levels_per_run=matrix.runs,
        )
    return SizingOptions(
        margin=args.margin, instance_quota=_quota(args.quota or []), usage=usage, cost_region=args.cost_region
    )


def summary(sizing: SizingPlan) -> str:
    lines = []
    for p in sizing.configurations:
        c = p.capacity
        head = f"{c.configuration.key}: "
        if not p.feasible:
            lines.append(head + "not deployable: " + "; ".join(p.problems))
            continue
        lines.append(
            head + f"capacity {c.capacity:g} {c.load_kind} ({c.precision}); instances peak {p.instances_peak}, "
            f"average {p.instances_average}; min {p.min_instances} max {p.max_instances} target "
            f"{p.autoscaling_target:g}; headroom at peak {p.headroom_at_peak:.0%}; {describe_all_in(p)}"
        )
    chosen = sizing.cheapest
    lines.append(f"cheapest meeting the SLO: {chosen.key if chosen else 'none'}")
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    slo = parse_slo(args.slo)
    traffic = _traffic(args)
    options = _options(args)
    levels = load_levels(args.results, price_overrides=parse_price_overrides(args.price_override or []))
    if not levels:
        raise ConfigError([Issue("results", args.results, "contain no levels")])
    capacities = [capacity_of(group, slo) for group in by_configuration(levels).values()]
    sizing = make_plan(capacities, traffic, options)
    print(summary(sizing))
    if args.out:
        markdown, html = write_sizing_report(sizing, slo, args.out)
        print(f"report: {markdown} {html}", file=sys.stderr)
    if args.write_config:
        chosen = sizing.cheapest
        if chosen is None:
            print("no configuration meets the SLO and can be deployed: no config written", file=sys.stderr)
            return EXIT_NOT_DEPLOYABLE
        path = write_config(sizing, chosen, slo, args.write_config, scenario=args.scenario)
        print(f"config: {path} (npx cdk synth -c config={path})", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    size = sub.add_parser("size", help="capacity under an SLO -> capacity plan -> deployable config file")
    commands = size.add_subparsers(dest="size_command", required=True)

    run = commands.add_parser("sweep", help="find one instance's capacity under the SLO (refining sweep)")
    add_request_arguments(run, duration_s=SWEEP_DURATION_S)
    run.add_argument("--config", required=True, help="model=7b,quantization=gptq,instance=ml.g5.2xlarge")
    run.add_argument("--slo", required=True, help='e.g. "ttft_ms.p90<=1500,ms_per_token.p90<=60,error_rate<=0.01"')
    run.add_argument("--mode", choices=("concurrency", "rate"), default="concurrency", help="closed or open loop")
    run.add_argument("--start", type=int, default=1, help="first load (concurrency, or requests/s)")
    run.add_argument("--limit", type=int, default=256, help="highest load tried")
    run.add_argument("--step", type=int, default=1, help="refine until pass and fail are this close")
    run.add_argument("--repeats", type=int, default=2, help="runs at the capacity level (spread)")
    run.add_argument("--emulator-latency", help='emulator knobs as JSON, e.g. {"tpot_base_ms":10,"tpot_slope_ms":2}')
    run.add_argument("--out", default="results/sweep.jsonl", help="sizing file (appended)")
    run.set_defaults(func=cmd_sweep)

    plan = commands.add_parser("plan", help="SLO report, capacity plan, all-in cost; optionally the config file")
    plan.add_argument("results", nargs="+", help="sizing files, results JSONL/CSV, s3://bucket/prefix")
    plan.add_argument("--slo", required=True)
    plan.add_argument("--peak-rps", type=float)
    plan.add_argument("--average-rps", type=float)
    plan.add_argument("--daily-profile", help="24 comma-separated hourly request rates (instead of peak/average)")
    plan.add_argument("--margin", type=float, default=0.2, help="share of measured capacity kept free")
    plan.add_argument("--quota", action="append", metavar="INSTANCE=N", help="your instance quota (repeat)")
    plan.add_argument("--price-override", action="append", metavar="INSTANCE=USD")
    plan.add_argument("--cost-region", help="region of the all-in prices (default: each configuration's)")
    plan.add_argument("--benchmark-matrix", help="count the scheduled benchmark: matrix name or file")
    plan.add_argument("--benchmark-runs-per-month", type=float, default=0.0)
    plan.add_argument("--out", help="write sizing.md / sizing.html here")
    plan.add_argument("--write-config", metavar="FILE", help="write the cheapest plan as a cdk config file")
    plan.add_argument("--scenario", default="cost", help="config section (stack) the plan fills")
    plan.set_defaults(func=cmd_plan)
