"""Run levels and matrices: measure, compute, price, and record each level the moment it finishes.

:func:`run_one_level` is what the AWS Lambda calls for one (configuration, concurrency): a synchronous
wrapper around the async load generator. :func:`run_matrix` drives configurations x concurrency levels,
skipping levels already in the results store, so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, TypeVar

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import LevelResult, ResultsStore, build_result, finished_levels, utc_now
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.metrics import LevelMetrics, LevelRunLike, compute_metrics

T = TypeVar("T")


class LoadSpecLike(Protocol):
    """What the runner needs from ``benchmark.measure.loadgen.LoadSpec`` (a frozen dataclass)."""

    @property
    def concurrency(self) -> int: ...


class ParamsLike(Protocol):
    @property
    def max_new_tokens(self) -> int: ...


# run_level(client, prompts, params, spec, *, progress=None) -> LevelRun, as in benchmark.measure.loadgen.
LevelRunner = Callable[..., Awaitable[LevelRunLike]]
# Opens a client for one configuration (starting an emulator, or pointing at an endpoint) and closes it.
ClientOpener = Callable[[BenchmarkConfiguration], contextlib.AbstractAsyncContextManager[Any]]


def _default_level_runner() -> LevelRunner:
    """``benchmark.measure.loadgen.run_level``, imported late: pricing and reporting need no load generator."""
    run_level: LevelRunner = importlib.import_module("benchmark.measure.loadgen").run_level
    return run_level


def describe_load(spec: LoadSpecLike, params: ParamsLike, *, target: str, dataset: str) -> dict[str, Any]:
    """The load spec as recorded with each result: what was asked of the endpoint, and where."""
    load: dict[str, Any] = {"concurrency": spec.concurrency}
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        load = dataclasses.asdict(spec)
    load.update({"max_new_tokens": params.max_new_tokens, "target": target, "dataset": dataset})
    return load


async def arun_one_level(
    client: Any,
    configuration: BenchmarkConfiguration,
    spec: LoadSpecLike,
    prompts: Sequence[Any],
    params: ParamsLike,
    *,
    store: ResultsStore | None = None,
    target: str = "",
    dataset: str = "built-in",
    price_overrides: Mapping[str, float] | None = None,
    level_runner: LevelRunner | None = None,
) -> LevelResult:
    """Measure one level, compute its metrics, cost and headroom, and append it to the store at once.

    A level the load generator aborts (:class:`LevelAborted`: the target fails fast) is not stored; the
    error goes up with the configuration and concurrency in its reason.
    """
    started_at = utc_now()
    try:
        run = await (level_runner or _default_level_runner())(client, prompts, params, spec)
    except LevelAborted as err:
        raise err.within(f"{configuration.key} at concurrency {spec.concurrency}") from None
    metrics = compute_metrics(run, max_new_tokens=params.max_new_tokens)
    result = build_result(
        configuration,
        describe_load(spec, params, target=target, dataset=dataset),
        metrics,
        started_at=started_at,
        price_overrides=price_overrides,
    )
    if store is not None:
        store.append(result)
    return result


def run_one_level(
    client: Any,
    configuration: BenchmarkConfiguration,
    spec: LoadSpecLike,
    prompts: Sequence[Any],
    params: ParamsLike,
    *,
    store: ResultsStore | None = None,
    target: str = "",
    dataset: str = "built-in",
    price_overrides: Mapping[str, float] | None = None,
    level_runner: LevelRunner | None = None,
) -> LevelResult:
    """Synchronous :func:`arun_one_level` for callers without an event loop (the Lambda handler)."""
    return asyncio.run(
        arun_one_level(
            client,
            configuration,
            spec,
            prompts,
            params,
            store=store,
            target=target,
            dataset=dataset,
            price_overrides=price_overrides,
            level_runner=level_runner,
        )
    )


@dataclass(frozen=True)
class MatrixPlan:
    """Configurations x load specs (one per concurrency), in the order they run."""

    configurations: Sequence[BenchmarkConfiguration]
    specs: Sequence[LoadSpecLike]

    def levels(self) -> list[tuple[BenchmarkConfiguration, LoadSpecLike]]:
        return [(c, s) for c in self.configurations for s in self.specs]


class Progress:
    """One status line on stderr, rewritten in place: no dependency, readable in a terminal or a log."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()

    def line(self, text: str, *, final: bool = False) -> None:
        elapsed = time.monotonic() - self._started
        end = "\n" if final or not self.stream.isatty() else "\r"
        self.stream.write(f"[{self.done}/{self.total} levels, {elapsed:5.0f}s] {text}{end}")
        self.stream.flush()

    @contextlib.asynccontextmanager
    async def level(self, configuration: BenchmarkConfiguration, concurrency: int) -> AsyncIterator[None]:
        name = f"{configuration.key} c={concurrency}"

        async def tick() -> None:
            while True:
                await asyncio.sleep(1.0)
                if self.stream.isatty():
                    self.line(f"{name}: running")

        self.line(f"{name}: running", final=not self.stream.isatty())
        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.done += 1


async def arun_matrix(
    plan: MatrixPlan,
    open_client: ClientOpener,
    prompts: Sequence[Any],
    params: ParamsLike,
    store: ResultsStore,
    *,
    target: str = "",
    dataset: str = "built-in",
    price_overrides: Mapping[str, float] | None = None,
    level_runner: LevelRunner | None = None,
    progress: Progress | None = None,
) -> list[LevelResult]:
    """Run every level not yet in the store; a configuration whose levels are all done is not even opened."""
    done = finished_levels(store)
    results: list[LevelResult] = []
    todo = [(c, s) for c, s in plan.levels() if (c.key, s.concurrency) not in done]
    if progress is not None:
        progress.total = len(todo)
        skipped = len(plan.levels()) - len(todo)
        if skipped:
            progress.line(f"resuming: {skipped} level(s) already in {store.location}", final=True)
    for configuration in plan.configurations:
        specs = [s for c, s in todo if c is configuration]
        if not specs:
            continue
        async with open_client(configuration) as client:
            for spec in specs:
                async with progress.level(configuration, spec.concurrency) if progress else _nothing():
                    result = await arun_one_level(
                        client,
                        configuration,
                        spec,
                        prompts,
                        params,
                        store=store,
                        target=target,
                        dataset=dataset,
                        price_overrides=price_overrides,
                        level_runner=level_runner,
                    )
                results.append(result)
                if progress is not None:
                    m = result.metrics
                    progress.line(
                        f"{configuration.key} c={spec.concurrency}: {_num(m.tokens_per_s)} tokens/s (steady), "
                        f"{_num(m.ms_per_token.median)} ms/token, {m.requests_ok} ok, {m.requests_failed} failed"
                        + late_first_tokens_flag(m),
                        final=True,
                    )
    return results


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def late_first_tokens_flag(metrics: LevelMetrics) -> str:
    """``""``, or what a progress line adds for a level whose TTFT may read late (coalesced first tokens)."""
    share = metrics.coalesced_first_token_share
    if not metrics.late_first_tokens or share is None:
        return ""
    return f"; LATE STAMPS: {share:.1%} of first tokens coalesced, TTFT may read late"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_matrix(
    plan: MatrixPlan,
    open_client: ClientOpener,
    prompts: Sequence[Any],
    params: ParamsLike,
    store: ResultsStore,
    *,
    uvloop: bool = False,
    **options: Any,
) -> list[LevelResult]:
    """Synchronous :func:`arun_matrix`; ``uvloop=True`` runs it on uvloop's event loop."""
    return run_async(arun_matrix(plan, open_client, prompts, params, store, **options), uvloop=uvloop)


def run_async(coroutine: Coroutine[Any, Any, T], *, uvloop: bool) -> T:
    """``asyncio.run``, on uvloop when asked (libuv's loop spends less CPU per socket event)."""
    if not uvloop:
        return asyncio.run(coroutine)
    import uvloop as uv  # noqa: PLC0415 - optional: only the load generator needs it

    with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
        return runner.run(coroutine)
