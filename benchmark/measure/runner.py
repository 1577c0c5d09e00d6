"""The one level runner, and the matrix of levels over it.

:func:`measure_level` runs one level: its client built for it from the factory and closed after it, in this
process on asyncio's loop (or uvloop's), or spread over worker processes (``ProcessOptions.workers``).
:func:`run_one_level` adds metrics, price and headroom to the run and writes the record the moment it exists.
Every caller measures through them: ``run`` (through :func:`run_matrix`, which skips the levels already in the
results store, so a rerun after a crash resumes where it stopped), ``size sweep``
(:mod:`benchmark.sizing.measure`) and the load-test Lambda (:mod:`benchmark.aws.levels`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import LevelResult, ResultsStore, build_result, finished_levels, utc_now
from benchmark.clients import ClientFactory
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.load import LoadSpec
from benchmark.measure.loadgen import LevelRun, run_async, run_level_with
from benchmark.measure.metrics import LevelMetrics, compute_metrics
from benchmark.measure.workers import run_in_workers
from benchmark.serialize import to_data
from catalog.errors import ConfigError, Issue


@dataclass(frozen=True)
class ProcessOptions:
    """How this machine runs the load generator: worker processes (0: this process) and the event loop."""

    workers: int = 0
    uvloop: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError([Issue("workers", self.workers, "must be zero (in this process) or a positive integer")])


def measure_level(spec: LoadSpec, clients: ClientFactory, process: ProcessOptions = ProcessOptions()) -> LevelRun:
    """Run one level; raises :class:`LevelAborted` when the target fails fast."""
    if process.workers:
        return run_in_workers(spec, clients, process.workers, uvloop=process.uvloop)
    return run_async(run_level_with(spec, clients), uvloop=process.uvloop)


# What measures a level (the tests put a stand-in here): measure_level's signature.
Measure = Callable[[LoadSpec, ClientFactory, ProcessOptions], LevelRun]


@dataclass(frozen=True)
class LevelOutcome:
    """One measured level: its record, and the run it was computed from (every request's numbers)."""

    result: LevelResult
    run: LevelRun


def describe_load(spec: LoadSpec, *, target: str) -> dict[str, Any]:
    """The load as each result records it: the level's LoadSpec and where it was sent."""
    return {**to_data(spec), "target": target}


def run_one_level(
    configuration: BenchmarkConfiguration,
    spec: LoadSpec,
    clients: ClientFactory,
    *,
    target: str,
    store: ResultsStore | None = None,
    price_overrides: Mapping[str, float] | None = None,
    process: ProcessOptions = ProcessOptions(),
    measure: Measure = measure_level,
) -> LevelOutcome:
    """Measure one level, compute its metrics, cost and headroom, and append it to the store at once.

    A level the load generator aborts (:class:`LevelAborted`: the target fails fast) is not stored; the
    error goes up with the configuration and concurrency in its reason.
    """
    started_at = utc_now()
    try:
        run = measure(spec, clients, process)
    except LevelAborted as err:
        raise err.within(f"{configuration.key} at concurrency {spec.concurrency}") from None
    metrics = compute_metrics(run, max_new_tokens=spec.max_new_tokens)
    result = build_result(
        configuration,
        describe_load(spec, target=target),
        metrics,
        started_at=started_at,
        price_overrides=price_overrides,
    )
    if store is not None:
        store.append(result)
    return LevelOutcome(result, run)


@dataclass(frozen=True)
class MatrixPlan:
    """Configurations x load specs (one per concurrency), in the order they run."""

    configurations: Sequence[BenchmarkConfiguration]
    specs: Sequence[LoadSpec]

    def levels(self) -> list[tuple[BenchmarkConfiguration, LoadSpec]]:
        return [(c, s) for c in self.configurations for s in self.specs]


# Opens the deployment under test for one configuration (a real target, or an emulator started for it) and
# yields the factory of its levels' clients; closed when the configuration's levels are done.
TargetOpener = Callable[[BenchmarkConfiguration], contextlib.AbstractContextManager[ClientFactory]]


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

    @contextlib.contextmanager
    def level(self, configuration: BenchmarkConfiguration, concurrency: int) -> Iterator[None]:
        """The line of a level while it runs, its clock ticking once a second in a terminal."""
        name = f"{configuration.key} c={concurrency}"
        self.line(f"{name}: running", final=not self.stream.isatty())
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(1.0):
                if self.stream.isatty():
                    self.line(f"{name}: running")

        ticker = threading.Thread(target=tick, name="progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
        self.done += 1

    def finished(self, configuration: BenchmarkConfiguration, metrics: LevelMetrics) -> None:
        m = metrics
        self.line(
            f"{configuration.key} c={m.concurrency}: {_num(m.tokens_per_s)} tokens/s (steady), "
            f"{_num(m.ms_per_token.median)} ms/token, {m.requests_ok} ok, {m.requests_failed} failed"
            + late_first_tokens_flag(m),
            final=True,
        )


def run_matrix(
    plan: MatrixPlan,
    open_target: TargetOpener,
    store: ResultsStore,
    *,
    target: str,
    price_overrides: Mapping[str, float] | None = None,
    process: ProcessOptions = ProcessOptions(),
    progress: Progress | None = None,
    measure: Measure = measure_level,
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
        with open_target(configuration) as clients:
            for spec in specs:
                with progress.level(configuration, spec.concurrency) if progress else contextlib.nullcontext():
                    outcome = run_one_level(
                        configuration,
                        spec,
                        clients,
                        target=target,
                        store=store,
                        price_overrides=price_overrides,
                        process=process,
                        measure=measure,
                    )
                results.append(outcome.result)
                if progress is not None:
                    progress.finished(configuration, outcome.result.metrics)
    return results


def late_first_tokens_flag(metrics: LevelMetrics) -> str:
    """``""``, or what a progress line adds for a level whose TTFT may read late (coalesced first tokens)."""
    share = metrics.coalesced_first_token_share
    if not metrics.late_first_tokens or share is None:
        return ""
    return f"; LATE STAMPS: {share:.1%} of first tokens coalesced, TTFT may read late"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
