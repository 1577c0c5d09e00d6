"""Measure one sweep level against a target: load generator, metrics, price, and every request's numbers.

Each level runs in its own event loop with a fresh client (the sweep between levels is plain Python), and is
appended to the sizing file the moment it finishes. Against the emulator one server is started for the whole
sweep, so its latency model (the batching slope in particular) stays what the caller set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import build_result, utc_now
from benchmark.measure.metrics import compute_metrics
from benchmark.measure.runner import describe_load, run_async
from benchmark.sizing.capacity import Measure
from benchmark.sizing.levels import MeasuredLevel, append_level, samples_of

ClientFactory = Callable[[int], Any]  # concurrency -> a benchmark.clients.Client


@dataclass(frozen=True)
class LevelPlan:
    """How long each level runs and what it asks for; ``open_loop``: the load is requests/s."""

    duration_s: float = 10.0
    warmup_requests: int = 0
    timeout_s: float = 120.0
    max_new_tokens: int = 50
    open_loop: bool = False
    max_in_flight: int = 256  # open loop: at most this many requests outstanding
    target: str = "emulator"
    price_overrides: Mapping[str, float] = field(default_factory=dict)
    workers: int = 0  # > 0: each level's users spread over this many processes (the client is then a ClientSpec)
    uvloop: bool = False


def measurer(
    configuration: BenchmarkConfiguration,
    make_client: ClientFactory,
    prompts: Sequence[Any],
    plan: LevelPlan,
    *,
    sizing_file: str | None = None,
    on_level: Callable[[MeasuredLevel], None] | None = None,
) -> Measure:
    """A ``Measure`` for :func:`benchmark.sizing.capacity.sweep`."""
    from benchmark.measure.loadgen import LoadSpec, run_level  # noqa: PLC0415 - only a sweep that measures loads the load generator
    from benchmark.measure.prompts import GenerationParams  # noqa: PLC0415

    params = GenerationParams(max_new_tokens=plan.max_new_tokens)
    level_runner: Callable[..., Awaitable[Any]] = run_level
    if plan.workers:
        from benchmark.measure.workers import worker_level_runner  # noqa: PLC0415

        level_runner = worker_level_runner(plan.workers, uvloop=plan.uvloop)

    async def one(load: int, repeat: int) -> MeasuredLevel:
        spec = LoadSpec(
            concurrency=plan.max_in_flight if plan.open_loop else load,
            request_rate=float(load) if plan.open_loop else None,
            duration_s=plan.duration_s,
            warmup_requests=plan.warmup_requests,
            timeout_s=plan.timeout_s,
            arrival="constant",
            seed=repeat,
        )
        client = make_client(spec.concurrency)
        started = utc_now()
        try:
            run = await level_runner(client, prompts, params, spec)
        finally:
            await client.aclose()
        metrics = compute_metrics(run, max_new_tokens=plan.max_new_tokens)
        load_record = describe_load(spec, params, target=plan.target, dataset="built-in")
        result = build_result(
            configuration, load_record, metrics, started_at=started, price_overrides=plan.price_overrides
        )
        return MeasuredLevel(result, samples_of(run), repeat)

    def measure(load: int, repeat: int) -> MeasuredLevel:
        level = run_async(one(load, repeat), uvloop=plan.uvloop)
        if sizing_file:
            append_level(sizing_file, level)
        if on_level is not None:
            on_level(level)
        return level

    return measure


@contextlib.contextmanager
def emulator_clients(
    emulator_config: Any, *, streaming: bool = True, timeout_s: float = 120.0
) -> Iterator[ClientFactory]:
    """One emulator for the whole sweep; yields a factory of TGI HTTP clients pointed at it."""
    from benchmark.clients import create_client  # noqa: PLC0415
    from benchmark.emulator import running_emulator  # noqa: PLC0415

    kind = "tgi-http-stream" if streaming else "tgi-http"
    with running_emulator(emulator_config) as base_url:
        yield lambda concurrency: create_client(kind, base_url, concurrency=concurrency, timeout_s=timeout_s)
