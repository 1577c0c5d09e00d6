"""``python -m benchmark`` / ``llama-benchmark``: run levels, render reports, serve the emulator, run the demo.

Bad input ends with exit code 2 and one line per problem naming the field, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.analysis import plan
from benchmark.analysis.collect import collect_results
from benchmark.analysis.configuration import DEFAULT_TGI_VERSION, BenchmarkConfiguration
from benchmark.analysis.cost import parse_price_overrides
from benchmark.analysis.external import import_file
from benchmark.analysis.published import load_published
from benchmark.analysis.recommend import rules_with
from benchmark.analysis.results import LevelResult, open_store
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.load import DEFAULT_LOAD, check_levels
from benchmark.measure.prompts import prompts_for
from benchmark.measure.runner import MatrixPlan, Measure, Progress, measure_level, run_matrix
from benchmark.report import write_report
from benchmark.serialize import dumps, from_data
from benchmark.sizing import cli as sizing_cli
from benchmark.target import (
    add_request_arguments,
    check_target,
    client_bound_advice,
    described_target,
    emulator_config,
    load_spec,
    open_target,
    parse_config,
    persisted_target,
    process_options,
)
from catalog.engines import DEFAULT_ENGINE, ENGINE_NAMES
from catalog.errors import ConfigError, Issue

EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3  # a level failed fast (target unreachable, every first request failed, error-rate limit)
# The demo's matrix: small enough to finish in seconds against the emulator, wide enough for three tables, and
# both engines on the same hardware (TGI and vLLM rows side by side; the emulator gives both one latency model).
DEMO_CONFIGURATIONS = (
    {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
    {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "engine": "vllm"},
    {"model": "7b", "quantization": "fp16", "instance_type": "ml.g5.12xlarge"},
    {"model": "13b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
    {"model": "13b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge", "engine": "vllm"},
)


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``1,5,10,20`` -> (1, 5, 10, 20); zero, negative, fractional, duplicate or empty values are refused."""
    parts = [p.strip() for p in str(text).split(",")]
    values = [int(p) if p.isdigit() else p for p in parts]
    allowed = "must be a comma-separated list of distinct positive integers, e.g. 1,5,10,20"
    return check_levels(values, "concurrency", given=text, allowed=allowed)


# --- commands -----------------------------------------------------------------------------------------------


def _configurations(args: argparse.Namespace) -> list[BenchmarkConfiguration]:
    """What is measured. A real target may go without an instance type: its results then carry no cost."""
    if args.config:
        configurations = [parse_config(text, region=args.region) for text in args.config]
    elif args.target == "emulator" and not (args.model or args.instance):
        # The demo's configurations; --engine keeps those of that engine (each keeps its own engine version).
        demo = [c for c in DEMO_CONFIGURATIONS if args.engine is None or c.get("engine", DEFAULT_ENGINE) == args.engine]
        if not demo:
            engines = sorted({str(c.get("engine", DEFAULT_ENGINE)) for c in DEMO_CONFIGURATIONS})
            raise ConfigError([Issue("engine", args.engine, f"the demo's configurations run on {', '.join(engines)}")])
        configurations = [from_data(BenchmarkConfiguration, {**c, "region": args.region}) for c in demo]
    else:
        if args.target == "emulator" and not args.instance:
            allowed = "is required with --target emulator (the emulator's speed follows the instance's GPUs)"
            raise ConfigError([Issue("instance", None, allowed)])
        configurations = [
            BenchmarkConfiguration(
                model=args.model or "7b",
                quantization=args.quantization,
                instance_type=args.instance or "",
                engine=args.engine or DEFAULT_ENGINE,
                tgi_version=args.tgi_version,
                vllm_version=args.vllm_version,
                region=args.region,
                label=args.label,
            )
        ]
    if args.target != "emulator" and len(configurations) != 1:
        raise ConfigError([Issue("config", len(configurations), "a real target serves exactly one configuration")])
    keys = [c.key for c in configurations]
    if len(set(keys)) != len(keys):
        raise ConfigError([Issue("config", keys, "each configuration may appear only once")])
    for configuration in configurations:
        configuration.check_deployable()
    return configurations


def cmd_run(args: argparse.Namespace, *, measure: Measure = measure_level) -> int:
    """``run``; ``measure`` is the level runner's (a script may keep each level's requests: bench_client_bound)."""
    specs = [load_spec(args, concurrency=c) for c in parse_concurrency(args.concurrency)]
    process = process_options(args)
    overrides = parse_price_overrides(args.price_override or [])
    configurations = _configurations(args)
    check_target(args)
    prompts_for(specs[0].dataset)  # a dataset that cannot be read stops the run before any level
    store = open_store(args.results)
    new = run_matrix(
        MatrixPlan(configurations, specs),
        functools.partial(open_target, args),
        store,
        target=persisted_target(args),
        price_overrides=overrides,
        process=process,
        progress=Progress(len(configurations) * len(specs)),
        measure=measure,
    )
    if args.json:
        for result in new:
            sys.stdout.write(dumps(result))
    print(f"{len(new)} level(s) measured; results in {store.location}", file=sys.stderr)
    advice = client_bound_advice([result.metrics for result in new])
    if advice:
        print(advice, file=sys.stderr)
    if args.report_dir:
        files = write_report(store.load(), args.report_dir)
        print(f"report: {files.markdown} {files.html}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    overrides = parse_price_overrides(args.price_override or [])
    results: list[LevelResult] = collect_results(args.results, price_overrides=overrides)
    notes: list[str] = []
    if args.published:
        published = [row.result.repriced(overrides) for row in load_published(args.published)]
        results += published
        notes.append(f"includes the 2023 published rows from {args.published}, recomputed with catalog prices")
    if not results:
        raise ConfigError([Issue("results", args.results, "contain no results")])
    per_rule = {
        "cost": args.cost_concurrency,
        "latency": args.latency_concurrency,
        "throughput": args.throughput_concurrency,
    }
    for name, value in per_rule.items():
        if value is not None and value < 1:
            raise ConfigError([Issue(f"{name}_concurrency", value, "must be a positive integer")])
    rules = rules_with(
        concurrency={k: v for k, v in per_rule.items() if v is not None},
        max_ms_per_token=args.max_ms_per_token,
        max_error_rate=args.max_error_rate,
    )
    files = write_report(results, args.out, rules, title=args.title, notes=notes)
    print(f"{files.markdown}\n{files.html}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Other tools' results (the 2023 raw CSV included) into our results file, priced at import."""
    overrides = parse_price_overrides(args.price_override or [])
    imported = [
        result
        for path in args.files
        for result in import_file(path, default_region=args.region, price_overrides=overrides)
    ]
    store = open_store(args.results)
    present = {(r.level_key, r.source) for r in store.load()}
    new = [r for r in imported if (r.level_key, r.source) not in present]
    for result in new:
        store.append(result)
    print(f"{len(new)} level(s) imported, {len(imported) - len(new)} already there; results in {store.location}")
    if args.report_dir:
        files = write_report(store.load(), args.report_dir)
        print(f"report: {files.markdown} {files.html}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    run_args = build_parser().parse_args(
        [
            "run",
            "--target",
            "emulator",
            "--concurrency",
            args.concurrency,
            "--duration",
            str(args.duration),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--results",
            str(out / "results.jsonl"),
            "--report-dir",
            str(out),
        ]
    )
    return cmd_run(run_args)


def cmd_plan(args: argparse.Namespace) -> int:
    return plan.run(args)  # reports bad input itself, with exit code 2


def cmd_emulator(args: argparse.Namespace) -> int:
    from benchmark.emulator import serve  # noqa: PLC0415 - the emulator needs aiohttp; no other command does

    configuration = BenchmarkConfiguration(
        model=args.model, quantization=args.quantization, instance_type=args.instance, engine=args.engine
    )
    print(f"emulating {configuration.display_name} (Ctrl-C to stop)", file=sys.stderr)
    serve(args.host, args.port, emulator_config(configuration))
    return 0


# --- parser -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llama-benchmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run configurations x concurrency levels against a target (resumes)")
    add_request_arguments(run)
    run.add_argument(
        "--config", action="append", help="model=7b,quantization=gptq,instance=ml.g5.2xlarge[,engine=vllm] (repeat)"
    )
    run.add_argument("--model", help="model size served (default 7b)")
    run.add_argument("--quantization", default="fp16")
    run.add_argument("--instance", help="instance type serving the target; without it, no cost (real targets only)")
    run.add_argument(
        "--engine",
        help=f"serving engine: {', '.join(ENGINE_NAMES)} (default {DEFAULT_ENGINE}; with --target emulator and no "
        "--model/--instance, the demo's configurations of that engine)",
    )
    run.add_argument("--tgi-version", default=DEFAULT_TGI_VERSION, help="engine tgi's image version")
    run.add_argument("--vllm-version", help="engine vllm's image version (default: the catalog's)")
    run.add_argument("--label", default="")
    run.add_argument("--concurrency", default="1,5,10,20")
    run.add_argument("--results", default="results/results.jsonl", help="JSONL path or s3://bucket/prefix")
    run.add_argument("--price-override", action="append", metavar="INSTANCE=USD")
    run.add_argument("--report-dir", help="also render the report here when done")
    run.add_argument("--json", action="store_true", help="print the new level results as JSON lines")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="results (ours, other tools', S3) -> report.md + report.html")
    report.add_argument("results", nargs="*", help="JSONL/CSV files or s3://bucket/prefix")
    report.add_argument("--out", default="reports")
    report.add_argument("--price-override", action="append", metavar="INSTANCE=USD")
    report.add_argument("--published", help="also include the 2023 published rows (CSV), recomputed")
    report.add_argument("--cost-concurrency", type=int)
    report.add_argument("--latency-concurrency", type=int)
    report.add_argument("--throughput-concurrency", type=int)
    report.add_argument("--max-ms-per-token", type=float)
    report.add_argument("--max-error-rate", type=float)
    report.add_argument("--title", default="Llama 2 on SageMaker benchmark")
    report.set_defaults(func=cmd_report)

    imports = sub.add_parser("import", help="other tools' results (CSV/JSONL, the 2023 raw CSV) -> our results file")
    imports.add_argument("files", nargs="+", help="CSV or JSONL files in the import schema, or the 2023 sagemaker.csv")
    imports.add_argument("--results", default="results/imported.jsonl", help="JSONL path or s3://bucket/prefix")
    imports.add_argument("--region", help="region of rows that name none (default us-east-1; us-west-2 for 2023)")
    imports.add_argument("--price-override", action="append", metavar="INSTANCE=USD", help="wins over every price")
    imports.add_argument("--report-dir", help="also render the report of the whole results file here")
    imports.set_defaults(func=cmd_import)

    demo = sub.add_parser("demo", help="a small TGI + vLLM matrix against the local emulator, then the report")
    demo.add_argument("--out", default="reports/demo")
    demo.add_argument("--concurrency", default="1,5,20")
    demo.add_argument("--duration", type=float, default=2.0)
    demo.add_argument("--max-new-tokens", type=int, default=DEFAULT_LOAD.max_new_tokens)
    demo.set_defaults(func=cmd_demo)

    dry_run = plan.build_parser(
        sub.add_parser("plan", help="dry run: deployments, endpoint-hours, dollars of a matrix")
    )
    dry_run.set_defaults(func=cmd_plan)

    sizing_cli.add_parser(sub)  # size sweep | size plan (benchmark/sizing/cli.py)

    emulator = sub.add_parser("emulator", help="serve the TGI/OpenAI/SageMaker emulator on a port")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--model", default="7b")
    emulator.add_argument("--quantization", default="fp16")
    emulator.add_argument("--instance", default="ml.g5.12xlarge")
    emulator.add_argument("--engine", default=DEFAULT_ENGINE, help=f"engine emulated: {', '.join(ENGINE_NAMES)}")
    emulator.set_defaults(func=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as err:
        for issue in err.issues:
            print(f"error: {issue}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LevelAborted as err:
        print(f"error: run aborted against {described_target(args)}: {err.reason}", file=sys.stderr)
        return EXIT_ABORTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
