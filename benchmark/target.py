"""How every command reaches the deployment under test: the options, declared once, and the client factory.

Each command that sends requests (``run``, ``size sweep``) builds its parser with :func:`add_target_arguments`
and :func:`add_process_arguments`, so :func:`make_client` finds every option it reads, whichever command
called it: a new option is added here, for all of them at once (a command whose parser lacked one used to
fail with ``AttributeError`` against every target but the emulator).

Nothing here imports a network library: the clients are imported when a client is built.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from catalog import DEFAULT_REGION
from catalog.errors import ConfigError, Issue

TARGETS = ("emulator", "sagemaker", "tgi", "openai")
# --target -> benchmark.clients kind (streaming adds "-stream").
CLIENT_KINDS = {"emulator": "tgi-http", "tgi": "tgi-http", "openai": "openai-chat", "sagemaker": "sagemaker"}


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
    group.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    group.add_argument("--no-stream", action="store_true", help="non-streaming requests, as in 2023")


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """How the load generator runs on this machine: worker processes and event loop."""
    group = parser.add_argument_group("load generator")
    group.add_argument(
        "--workers", type=int, default=0, metavar="N", help="spread each level's users over N processes (0: one)"
    )
    group.add_argument("--uvloop", action="store_true", help="run the load generator on uvloop (less CPU per event)")


class _Flagged(Protocol):
    @property
    def concurrency(self) -> int: ...
    @property
    def late_first_tokens(self) -> bool: ...


STREAMS_PER_WORKER = 32  # what scripts/bench_accuracy.py found one process keeps on time with uvloop


def suggested_workers(concurrency: int) -> int:
    """Worker processes for ``concurrency`` streams: one per 32, at least 2, at most one per core."""
    return max(2, min(os.cpu_count() or 1, math.ceil(concurrency / STREAMS_PER_WORKER)))


def late_stamps_advice(args: argparse.Namespace, levels: Sequence[_Flagged]) -> str | None:
    """What to do when levels were flagged for coalesced first tokens (their TTFT may read late), else None.

    The run is not changed behind the user's back: the flagged levels are named and the options to add
    are printed, and the user reruns them.
    """
    flagged = sorted({m.concurrency for m in levels if m.late_first_tokens})
    if not flagged:
        return None
    where = ", ".join(str(c) for c in flagged)
    head = (
        f"warning: TTFT may read late at concurrency {where}: first tokens arrived in one read with later bytes "
        "(the load generator read its sockets late; late_first_tokens in the results)"
    )
    workers = suggested_workers(max(flagged))
    if args.workers >= workers and args.uvloop:
        return head + (
            f"; already on --workers {args.workers} --uvloop with {os.cpu_count()} cores: measure fewer streams "
            "per machine (more cores, or the load split over machines)"
        )
    return head + f"; rerun those levels with --workers {workers} --uvloop (into a new results file)"


def check_target(args: argparse.Namespace) -> str:
    """Refuse a target that cannot be reached before any level starts; returns the client's address.

    The address is the endpoint name (SageMaker), the base URL (TGI, OpenAI) or ``""`` for the emulator,
    whose URL is known only once it runs.
    """
    from benchmark.clients.base import split_credentials  # noqa: PLC0415 - clients are imported late

    if not args.timeout > 0:
        raise ConfigError([Issue("timeout", args.timeout, "must be a positive number of seconds")])
    if args.workers < 0:
        raise ConfigError([Issue("workers", args.workers, "must be zero (in this process) or a positive integer")])
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


def make_client(args: argparse.Namespace, address: str, concurrency: int) -> Any:
    """A client from ``benchmark.clients.create_client``, or with ``--workers`` the description each worker builds."""
    from benchmark.clients import create_client  # noqa: PLC0415 - `report` needs no HTTP stack

    kind = CLIENT_KINDS[args.target] + ("" if args.no_stream else "-stream")
    options = target_options(args)
    if args.workers:
        from benchmark.measure.workers import ClientSpec  # noqa: PLC0415

        return ClientSpec(kind, address, concurrency=concurrency, timeout_s=args.timeout, options=options)
    return create_client(kind, address, concurrency=concurrency, timeout_s=args.timeout, **options)


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """Client options for the target: request model name, API key (environment only), SageMaker endpoint URL."""
    from benchmark.clients.base import api_key_from_env, redact_url  # noqa: PLC0415 - clients are imported late

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
    from benchmark.clients.base import redact_url  # noqa: PLC0415 - clients are imported late

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
