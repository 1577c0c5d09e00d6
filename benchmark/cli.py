"""``python -m benchmark`` / ``llama-benchmark``: run levels, render reports, serve the emulator, run the demo.

Bad input ends with exit code 2 and one line per problem naming the field, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.analysis import plan
from benchmark.analysis.collect import collect_results
from benchmark.analysis.configuration import DEFAULT_TGI_VERSION, BenchmarkConfiguration
from benchmark.analysis.cost import parse_price_overrides
from benchmark.analysis.published import load_published
from benchmark.analysis.recommend import rules_with
from benchmark.analysis.results import LevelResult, open_store
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.runner import ClientOpener, MatrixPlan, Progress, run_matrix
from benchmark.report import write_report
from benchmark.serialize import dumps, from_data
from benchmark.sizing import cli as sizing_cli
from benchmark.target import (
    add_process_arguments,
    add_target_arguments,
    check_target,
    described_target,
    late_stamps_advice,
    make_client,
    persisted_target,
)
from catalog import bandwidth_bound_ms_per_token
from catalog.errors import ConfigError, Issue

if TYPE_CHECKING:  # the emulator needs aiohttp; `report` (and the Lambda) must work without it
    from benchmark.emulator import EmulatorConfig

EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3  # a level failed fast (target unreachable, every first request failed, error-rate limit)
# The demo's matrix: small enough to finish in seconds against the emulator, wide enough for three tables.
DEMO_CONFIGURATIONS = (
    {"model": "7b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
    {"model": "7b", "quantization": "fp16", "instance_type": "ml.g5.12xlarge"},
    {"model": "13b", "quantization": "gptq", "instance_type": "ml.g5.2xlarge"},
)
_CONFIG_KEYS = {"model", "quantization", "instance", "instance_type", "tgi", "tgi_version", "region", "label"}


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``1,5,10,20`` -> (1, 5, 10, 20); zero, negative, fractional, duplicate or empty values are refused."""
    allowed = "must be a comma-separated list of distinct positive integers, e.g. 1,5,10,20"
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p.isdigit() or int(p) < 1 for p in parts):
        raise ConfigError([Issue("concurrency", text, allowed)])
    values = tuple(int(p) for p in parts)
    if len(set(values)) != len(values):
        raise ConfigError([Issue("concurrency", text, allowed)])
    return values


def parse_config(text: str, *, region: str) -> BenchmarkConfiguration:
    """``model=7b,quantization=gptq,instance=ml.g5.2xlarge[,tgi=3.3.6,region=..,label=..]``."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _CONFIG_KEYS:
            allowed = f"must be key=value pairs with keys {', '.join(sorted(_CONFIG_KEYS))}"
            raise ConfigError([Issue("config", part, allowed)])
        fields[{"instance": "instance_type", "tgi": "tgi_version"}.get(key, key)] = value.strip()
    fields.setdefault("region", region)
    if "model" not in fields or "instance_type" not in fields:
        raise ConfigError([Issue("config", text, "must name at least model and instance")])
    return from_data(BenchmarkConfiguration, fields)


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError([Issue(name, value, "must be a positive number")])


# Emulated decode runs at this share of the bandwidth bound: real TGI reaches roughly 40-70 % at low load.
EMULATED_EFFICIENCY = 0.6


def emulator_config(configuration: BenchmarkConfiguration) -> EmulatorConfig:
    """Emulator timing shaped by the catalog's bandwidth bound, so emulated configurations differ like hardware.

    Only for demos and tests: results measured against the emulator say so in their ``load.target``.
    """
    from benchmark.emulator import EmulatorConfig, LatencyModel  # noqa: PLC0415

    c = configuration
    bound = bandwidth_bound_ms_per_token(c.model_spec, c.quantization_spec, c.instance)
    tpot = bound / EMULATED_EFFICIENCY
    latency = LatencyModel(
        prefill_base_ms=2 * tpot, prefill_ms_per_token=tpot / 100, tpot_base_ms=tpot, tpot_slope_ms=tpot * 0.02
    )
    return EmulatorConfig(latency=latency)


# --- targets (options and clients: benchmark/target.py) -------------------------------------------------


def client_opener(args: argparse.Namespace, concurrency: int) -> ClientOpener:
    """How to reach the deployment under test: the local emulator (one per configuration) or a real target."""
    address = check_target(args)
    emulate = args.target == "emulator"
    if emulate:
        from benchmark.emulator import running_emulator  # noqa: PLC0415

    @contextlib.asynccontextmanager
    async def open_client(configuration: BenchmarkConfiguration) -> AsyncIterator[Any]:
        with contextlib.ExitStack() as stack:
            base_url = stack.enter_context(running_emulator(emulator_config(configuration))) if emulate else address
            client = make_client(args, base_url, concurrency)
            try:
                yield client
            finally:
                await client.aclose()

    return open_client


# --- commands -----------------------------------------------------------------------------------------------


def _configurations(args: argparse.Namespace) -> list[BenchmarkConfiguration]:
    """What is measured. A real target may go without an instance type: its results then carry no cost."""
    if args.config:
        configurations = [parse_config(text, region=args.region) for text in args.config]
    elif args.target == "emulator" and not (args.model or args.instance):
        configurations = [from_data(BenchmarkConfiguration, {**c, "region": args.region}) for c in DEMO_CONFIGURATIONS]
    else:
        if args.target == "emulator" and not args.instance:
            allowed = "is required with --target emulator (the emulator's speed follows the instance's GPUs)"
            raise ConfigError([Issue("instance", None, allowed)])
        configurations = [
            BenchmarkConfiguration(
                model=args.model or "7b",
                quantization=args.quantization,
                instance_type=args.instance or "",
                tgi_version=args.tgi_version,
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


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.measure.prompts import GenerationParams, builtin_prompts, load_jsonl  # noqa: PLC0415

    concurrency = parse_concurrency(args.concurrency)
    _positive("duration", args.duration)
    if args.max_requests is not None and args.max_requests < 1:
        raise ConfigError([Issue("max_requests", args.max_requests, "must be a positive integer")])
    if args.warmup < 0:
        raise ConfigError([Issue("warmup", args.warmup, "must be zero or a positive integer")])
    _check_abort_options(args)
    overrides = parse_price_overrides(args.price_override or [])
    configurations = _configurations(args)
    prompts = load_jsonl(args.dataset) if args.dataset else builtin_prompts()
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    opener = client_opener(args, max(concurrency))
    try:  # imported after validation, so bad input is reported even where no load generator is installed
        load_spec: Callable[..., Any] = importlib.import_module("benchmark.measure.loadgen").LoadSpec
    except ImportError as err:
        raise ConfigError([Issue("target", args.target, f"needs benchmark.measure.loadgen ({err})")]) from None

    specs = [
        load_spec(
            concurrency=c,
            duration_s=args.duration,
            max_requests=args.max_requests,
            warmup_requests=args.warmup,
            timeout_s=args.timeout,
            fail_fast_requests=args.fail_fast,
            max_error_rate=args.abort_error_rate,
            ramp_up_s=args.ramp_up,
        )
        for c in concurrency
    ]
    store = open_store(args.results)
    target = persisted_target(args)
    new = run_matrix(
        MatrixPlan(configurations, specs),
        opener,
        prompts,
        params,
        store,
        target=target,
        dataset=args.dataset or "built-in",
        price_overrides=overrides,
        progress=Progress(len(configurations) * len(specs)),
        level_runner=_worker_runner(args),
        uvloop=args.uvloop,
    )
    if args.json:
        for result in new:
            sys.stdout.write(dumps(result))
    print(f"{len(new)} level(s) measured; results in {store.location}", file=sys.stderr)
    advice = late_stamps_advice(args, [result.metrics for result in new])
    if advice:
        print(advice, file=sys.stderr)
    if args.report_dir:
        files = write_report(store.load(), args.report_dir)
        print(f"report: {files.markdown} {files.html}", file=sys.stderr)
    return 0


def _check_abort_options(args: argparse.Namespace) -> None:
    if args.fail_fast < 0:
        raise ConfigError([Issue("fail_fast", args.fail_fast, "must be zero (off) or a positive integer")])
    if args.abort_error_rate is not None and not 0.0 <= args.abort_error_rate < 1.0:
        raise ConfigError([Issue("abort_error_rate", args.abort_error_rate, "must be within [0, 1), e.g. 0.5")])
    if not args.ramp_up >= 0:
        raise ConfigError([Issue("ramp_up", args.ramp_up, "must be zero or a positive number of seconds")])


def _worker_runner(args: argparse.Namespace) -> Any:
    """With ``--workers N``: levels spread over N processes (benchmark.measure.workers), else the runner's default."""
    if not args.workers:
        return None
    from benchmark.measure.workers import worker_level_runner  # noqa: PLC0415

    return worker_level_runner(args.workers, uvloop=args.uvloop)


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
    from benchmark.analysis.external import import_file  # noqa: PLC0415

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
    from benchmark.emulator import serve  # noqa: PLC0415

    configuration = BenchmarkConfiguration(
        model=args.model, quantization=args.quantization, instance_type=args.instance
    )
    print(f"emulating {configuration.display_name} (Ctrl-C to stop)", file=sys.stderr)
    serve(args.host, args.port, emulator_config(configuration))
    return 0


# --- parser -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llama-benchmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run configurations x concurrency levels against a target (resumes)")
    add_target_arguments(run)
    add_process_arguments(run)
    run.add_argument("--config", action="append", help="model=7b,quantization=gptq,instance=ml.g5.2xlarge (repeat)")
    run.add_argument("--model", help="model size served (default 7b)")
    run.add_argument("--quantization", default="fp16")
    run.add_argument("--instance", help="instance type serving the target; without it, no cost (real targets only)")
    run.add_argument("--tgi-version", default=DEFAULT_TGI_VERSION)
    run.add_argument("--label", default="")
    run.add_argument("--concurrency", default="1,5,10,20")
    run.add_argument("--duration", type=float, default=90.0, help="seconds per level")
    run.add_argument("--max-requests", type=int)
    run.add_argument("--warmup", type=int, default=0, help="warm-up requests per level, not measured")
    run.add_argument(
        "--fail-fast",
        type=int,
        default=10,
        metavar="N",
        help="stop with exit 3 when the first N requests of a level all fail (throttling aside); 0: never",
    )
    run.add_argument(
        "--abort-error-rate",
        type=float,
        metavar="RATE",
        help="stop with exit 3 when a level's error rate passes RATE (0-1), judged after max(20, concurrency)",
    )
    run.add_argument("--ramp-up", type=float, default=0.0, metavar="S", help="stagger users' first requests over S s")
    run.add_argument("--dataset", help="JSONL prompts (default: built-in set)")
    run.add_argument("--max-new-tokens", type=int, default=50)
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

    demo = sub.add_parser("demo", help="a small matrix against the local emulator, then the report")
    demo.add_argument("--out", default="reports/demo")
    demo.add_argument("--concurrency", default="1,5,20")
    demo.add_argument("--duration", type=float, default=2.0)
    demo.add_argument("--max-new-tokens", type=int, default=50)
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
