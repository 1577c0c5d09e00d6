"""How every command reaches the deployment under test and loads it: the options, declared once, and the target.

Each command that sends requests (``run``, ``size sweep``) builds its parser with :func:`add_request_arguments`
(the target's, the load's and the load generator's options), and reads them back with :func:`load_spec`,
:func:`process_options` and :func:`open_target`, whichever command called it: a new option is added here, for
all of them at once. The load options' defaults are :class:`LoadSpec`'s, their checks LoadSpec's own (an error
names the option as typed). :func:`open_target` is the one way to the deployment under test: a real target's
address, or an emulator started for it, as the :class:`ClientSpec` each level builds its client from.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.clients import ClientSpec
from benchmark.clients.base import api_key_from_env, redact_url, split_credentials
from benchmark.measure.load import DEFAULT_LOAD, LoadSpec
from benchmark.measure.runner import ProcessOptions
from benchmark.measure.selfcheck import machine_cpus
from benchmark.serialize import from_data
from catalog import DEFAULT_REGION, bandwidth_bound_ms_per_token
from catalog.engines import SERVED_MODEL_NAME
from catalog.errors import ConfigError, Issue

if TYPE_CHECKING:  # the emulator needs aiohttp, imported only when one is started (report and import need none)
    from benchmark.emulator import EmulatorConfig

TARGETS = ("emulator", "sagemaker", "tgi", "openai")
# --target -> benchmark.clients protocol (a streaming level adds "-stream").
CLIENT_PROTOCOLS = {"emulator": "tgi-http", "tgi": "tgi-http", "openai": "openai-chat", "sagemaker": "sagemaker"}
# The emulator speaks the configuration's engine: TGI's own API, or vLLM's OpenAI chat completions (its TGI routes
# answer 404, so a vLLM row can only be measured the way vLLM is reached), with vLLM's served model name.
EMULATOR_PROTOCOLS = {"tgi": "tgi-http", "vllm": "openai-chat"}
# What the ``--config`` of ``run`` and ``size sweep`` may name; instance, tgi and vllm are short for the fields.
_CONFIG_KEYS = {"model", "quantization", "instance", "instance_type", "tgi", "tgi_version", "region", "label"}
_CONFIG_KEYS |= {"engine", "vllm", "vllm_version"}
_CONFIG_ALIASES = {"instance": "instance_type", "tgi": "tgi_version", "vllm": "vllm_version"}
# Emulated decode runs at this share of the bandwidth bound: real TGI reaches roughly 40-70 % at low load.
EMULATED_EFFICIENCY = 0.6
# LoadSpec field -> its option and argparse settings; the default is always LoadSpec's (DEFAULT_LOAD).
_TARGET_LOAD_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "timeout_s": ("--timeout", {"type": float, "help": "seconds per request"}),
    "streaming": ("--no-stream", {"action": "store_false", "help": "non-streaming requests, as in 2023"}),
}
_LOAD_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "duration_s": ("--duration", {"type": float, "help": "seconds per level"}),
    "max_requests": ("--max-requests", {"type": int, "help": "measured requests per level, at most"}),
    "warmup_requests": ("--warmup", {"type": int, "help": "warm-up requests per level, not measured"}),
    "max_new_tokens": ("--max-new-tokens", {"type": int}),
    "dataset": ("--dataset", {"help": "JSONL prompts (default: built-in set)"}),
    "fail_fast_requests": (
        "--fail-fast",
        {
            "type": int,
            "metavar": "N",
            "help": "stop with exit 3 when the first N requests of a level all fail (throttling aside); 0: never",
        },
    ),
    "max_error_rate": (
        "--abort-error-rate",
        {
            "type": float,
            "metavar": "RATE",
            "help": "stop with exit 3 when a level's error rate passes RATE (0-1), judged after max(20, concurrency)",
        },
    ),
    "ramp_up_s": ("--ramp-up", {"type": float, "metavar": "S", "help": "stagger users' first requests over S s"}),
}


def _load_options(
    parser: argparse.ArgumentParser,
    group: Any,
    options: dict[str, tuple[str, dict[str, Any]]],
    defaults: LoadSpec = DEFAULT_LOAD,
) -> None:
    """Options that set LoadSpec's fields, defaulting to ``defaults``'; each remembered, so an error names it."""
    names = dict(parser.get_default("load_options") or {})
    for dest, (flag, settings) in options.items():
        group.add_argument(flag, dest=dest, default=getattr(defaults, dest), **settings)
        names[dest] = flag.removeprefix("--").replace("-", "_")
    parser.set_defaults(load_options=names)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Where requests go and how they are sent: the target, its address and credentials, timeout, streaming."""
    group = parser.add_argument_group("target")
    group.add_argument("--target", choices=TARGETS, default="emulator")
    group.add_argument("--endpoint", help="SageMaker endpoint name (--target sagemaker)")
    group.add_argument("--url", help="base URL (--target tgi or openai); user:password@ in it is sent, never recorded")
    group.add_argument("--endpoint-url", help="SageMaker runtime URL (--target sagemaker), e.g. a VPC endpoint")
    group.add_argument("--model-name", default="tgi", help="request model name (--target openai; TGI accepts tgi)")
    group.add_argument(
        "--api-key-env",
        metavar="VARIABLE",
        help="environment variable holding the API key sent as Bearer (--target tgi/openai; "
        "default: BENCHMARK_API_KEY when set); the key itself is never a flag",
    )
    group.add_argument("--region", default=DEFAULT_REGION)
    _load_options(parser, group, _TARGET_LOAD_OPTIONS)


def add_load_arguments(parser: argparse.ArgumentParser, *, duration_s: float | None = None) -> None:
    """What each level asks of the target, beyond its concurrency (LoadSpec's fields; its defaults).

    ``duration_s``: the command's own default level length (a sweep runs many short levels).
    """
    group = parser.add_argument_group("load (each level)")
    defaults = DEFAULT_LOAD if duration_s is None else dataclasses.replace(DEFAULT_LOAD, duration_s=duration_s)
    _load_options(parser, group, _LOAD_OPTIONS, defaults)


def load_spec(args: argparse.Namespace, **level: Any) -> LoadSpec:
    """The LoadSpec the options give, with the level's own fields (``concurrency=5``); errors name the options."""
    names: dict[str, str] = getattr(args, "load_options", {})
    try:
        return LoadSpec(**{dest: getattr(args, dest) for dest in names}, **level)
    except ConfigError as err:
        issues = [dataclasses.replace(i, field=names.get(i.field, i.field)) for i in err.issues]
        raise ConfigError(issues, context="load options") from None


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """How the load generator runs on this machine: worker processes and event loop."""
    group = parser.add_argument_group("load generator")
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="spread each level's users over N processes (0: this one; default: chosen per level from its expected "
        "token rate and the usable CPUs, see benchmark/measure/processes.py)",
    )
    group.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the load generator on uvloop, less CPU per event (default: where installed, at 2+ streams)",
    )


def add_request_arguments(parser: argparse.ArgumentParser, *, duration_s: float | None = None) -> None:
    """Every option of a command that sends requests: the target, each level's load, the load generator."""
    add_target_arguments(parser)
    add_load_arguments(parser, duration_s=duration_s)
    add_process_arguments(parser)


def process_options(args: argparse.Namespace) -> ProcessOptions:
    """What the options ask; ``None`` (not given): chosen per level (``runner.resolve_process``)."""
    return ProcessOptions(workers=args.workers, uvloop=args.uvloop)


class _Flagged(Protocol):
    @property
    def concurrency(self) -> int: ...
    @property
    def client_bound(self) -> bool: ...
    @property
    def client_bound_reasons(self) -> tuple[str, ...]: ...
    @property
    def client_processes(self) -> int | None: ...


def client_bound_advice(levels: Sequence[_Flagged]) -> str | None:
    """What to do when levels were client-bound (the load generator may have bounded them), else None.

    The run is not changed behind the user's back: the levels are named with the rules they broke, and what to
    change is printed (more processes where CPUs are left, else fewer streams per machine).
    """
    flagged = [m for m in levels if m.client_bound]
    if not flagged:
        return None
    where = ", ".join(str(c) for c in sorted({m.concurrency for m in flagged}))
    worst = max(flagged, key=lambda m: m.concurrency)
    head = (
        f"warning: client-bound at concurrency {where}: inconclusive, the load generator may have bounded these "
        f"levels, not the endpoint (client_bound in the results); at {worst.concurrency}: "
        + "; ".join(worst.client_bound_reasons)
    )
    cpus = machine_cpus()
    used = worst.client_processes or 1
    if used >= max(1, math.floor(cpus)):
        return head + (
            f"; already {used} process(es) on {cpus:.2g} usable CPU(s): measure fewer streams per machine "
            "(more cores, or the level sharded over machines)"
        )
    return head + (
        f"; rerun those levels with `run ... --workers {math.floor(cpus)} --uvloop` (into a new results file)"
    )


def check_target(args: argparse.Namespace) -> str:
    """Refuse a target that cannot be reached before any level starts; returns the client's address.

    The address is the endpoint name (SageMaker), the base URL (TGI, OpenAI) or ``""`` for the emulator,
    whose URL is known only once it runs.
    """
    target_options(args)  # an API key variable, model name or endpoint URL that cannot work
    if args.target == "emulator":
        return ""
    if args.target == "sagemaker":
        if not args.endpoint:
            raise ConfigError([Issue("endpoint", None, "is required with --target sagemaker")])
        if args.endpoint_url:
            split_credentials(args.endpoint_url, "endpoint_url")
        return str(args.endpoint)
    if not args.url:
        raise ConfigError([Issue("url", None, f"is required with --target {args.target}")])
    split_credentials(args.url)  # a malformed URL stops the run before any level starts
    return str(args.url)


def client_factory(args: argparse.Namespace, address: str) -> ClientSpec:
    """The factory of every level's client against ``address`` (plain data: worker processes build their own)."""
    return ClientSpec(CLIENT_PROTOCOLS[args.target], address, target_options(args))


@contextlib.contextmanager
def open_target(
    args: argparse.Namespace, configuration: BenchmarkConfiguration, emulator: EmulatorConfig | None = None
) -> Iterator[ClientSpec]:
    """The deployment under test while the block runs: a real target, or an emulator started for the configuration.

    The emulator is shaped like the configuration's hardware (:func:`emulator_config`) unless ``emulator`` says
    otherwise, and stopped when the block ends. Each level builds its own client from what this yields.
    """
    address = check_target(args)
    if args.target != "emulator":
        spec = client_factory(args, address)
        if args.target == "sagemaker":  # the body the engine's container takes on /invocations
            spec = dataclasses.replace(
                spec, options={**spec.options, "payload": configuration.engine_spec.default_payload}
            )
        yield spec
        return
    from benchmark.emulator import running_emulator  # noqa: PLC0415 - the emulator needs aiohttp (see TYPE_CHECKING)

    config = emulator or emulator_config(configuration)
    with running_emulator(config) as base_url:
        options = target_options(args)
        if config.engine == "vllm":
            options["model"] = config.model_name or SERVED_MODEL_NAME
        yield ClientSpec(EMULATOR_PROTOCOLS[config.engine], base_url, options)


def emulator_config(configuration: BenchmarkConfiguration) -> EmulatorConfig:
    """Emulator timing shaped by the catalog's bandwidth bound, so emulated configurations differ like hardware;
    the emulator speaks the configuration's engine (vLLM: chat completions for its served model name).

    Only for demos and tests: results measured against the emulator say so in their ``load.target``. Both engines
    get the same latency model: the emulator says nothing about which engine is faster.
    """
    from benchmark.emulator import EmulatorConfig, LatencyModel  # noqa: PLC0415 - the emulator needs aiohttp

    c = configuration
    bound = bandwidth_bound_ms_per_token(c.model_spec, c.quantization_spec, c.instance)
    tpot = bound / EMULATED_EFFICIENCY
    latency = LatencyModel(
        prefill_base_ms=2 * tpot, prefill_ms_per_token=tpot / 100, tpot_base_ms=tpot, tpot_slope_ms=tpot * 0.02
    )
    vllm = c.engine == "vllm"
    return EmulatorConfig(latency=latency, engine=c.engine, model_name=SERVED_MODEL_NAME if vllm else None)


def parse_config(text: str, *, region: str) -> BenchmarkConfiguration:
    """``model=7b,quantization=gptq,instance=ml.g5.2xlarge[,engine=vllm,vllm=0.29.0,tgi=3.3.6,region=..,label=..]``."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _CONFIG_KEYS:
            allowed = f"must be key=value pairs with keys {', '.join(sorted(_CONFIG_KEYS))}"
            raise ConfigError([Issue("config", part, allowed)])
        fields[_CONFIG_ALIASES.get(key, key)] = value.strip()
    fields.setdefault("region", region)
    if "model" not in fields or "instance_type" not in fields:
        raise ConfigError([Issue("config", text, "must name at least model and instance")])
    return from_data(BenchmarkConfiguration, fields)


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """Client options for the target: request model name, API key (environment only), SageMaker endpoint URL."""
    if args.target == "sagemaker":
        return {"region_name": args.region, "endpoint_url": args.endpoint_url}
    if args.endpoint_url:
        raise ConfigError([Issue("endpoint_url", redact_url(args.endpoint_url), "applies to --target sagemaker only")])
    options: dict[str, Any] = {}
    if args.target in ("tgi", "openai"):
        options["api_key"] = api_key_from_env(args.api_key_env)
    if args.target == "openai":
        if not args.model_name.strip():
            raise ConfigError([Issue("model_name", args.model_name, "must be a non-empty model name")])
        options["model"] = args.model_name
    return options


def persisted_target(args: argparse.Namespace) -> str:
    """What results record as ``load.target``: never a credential from a URL."""
    if args.target == "emulator":
        return "emulator"
    if args.target == "sagemaker":
        via = f" via {redact_url(args.endpoint_url)}" if args.endpoint_url else ""
        return f"sagemaker:{args.endpoint}{via}"
    name = f" model={args.model_name}" if args.target == "openai" else ""
    return f"{args.target}:{redact_url(args.url or '')}{name}"


def described_target(args: argparse.Namespace) -> str:
    """What an error message names: the URL (without credentials), the endpoint, or the emulator."""
    if args.target == "sagemaker":
        return f"SageMaker endpoint {args.endpoint} ({args.region})"
    if args.target == "emulator" or not args.url:
        return "the local emulator"
    parts = urlsplit(args.url)
    netloc = parts.netloc.rpartition("@")[2]
    return str(urlunsplit(parts._replace(netloc=netloc)))
