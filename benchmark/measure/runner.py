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
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TextIO

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.analysis.results import LevelResult, ResultsStore, build_result, finished_levels, utc_now
from benchmark.clients import ClientFactory
from benchmark.measure.failfast import LevelAborted
from benchmark.measure.load import LoadSpec
from benchmark.measure.loadgen import LevelRun, run_async, run_level_with
from benchmark.measure.metrics import LevelMetrics, compute_metrics
from benchmark.measure.processes import Choice, choose
from benchmark.measure.selfcheck import CpuMonitor, machine_cpus, usable_cpus
from benchmark.measure.workers import run_in_workers, sleep_until
from benchmark.serialize import to_data
from catalog.errors import ConfigError, Issue


@dataclass(frozen=True)
class ProcessOptions:
    """How this machine runs the load generator: worker processes (0: this process) and the event loop.

    ``None`` (the command line's default): chosen per level from its expected token rate and the CPUs there are
    (:func:`benchmark.measure.processes.choose`); ``stream_tokens_per_s`` is what a lower level of the same run
    measured per stream, the basis of that expectation (None: the assumed rate).

    ``cpu_cap``: the CPUs this machine really grants the client where neither its affinity nor a cgroup quota
    shows it (None: what they show). The load-test Lambda passes its memory's vCPU share (0.58 at 1,024 MB;
    Lambda shows 2 vCPUs and no quota): the CPUs the level's client-bound verdict measures against
    (:func:`benchmark.measure.selfcheck.usable_cpus`) and the automatic choice counts.
    """

    workers: int | None = 0
    uvloop: bool | None = False
    stream_tokens_per_s: float | None = None
    cpu_cap: float | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            allowed = "must be zero (in this process), a positive integer, or unset (chosen per level)"
            raise ConfigError([Issue("workers", self.workers, allowed)])
        cap = self.cpu_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 < cap < math.inf):
            raise ConfigError([Issue("cpu_cap", cap, "must be a positive number of CPUs, or unset (none)")])

    @property
    def automatic(self) -> bool:
        return self.workers is None or self.uvloop is None


def resolve_process(spec: LoadSpec, clients: ClientFactory, process: ProcessOptions) -> tuple[ProcessOptions, Choice]:
    """The level's processes and event loop: what was asked, the automatic choice where nothing was."""
    protocol = str(getattr(clients, "protocol", ""))
    choice = choose(
        concurrency=spec.concurrency,
        protocol=protocol,
        cpus=machine_cpus() if process.cpu_cap is None else min(machine_cpus(), process.cpu_cap),
        stream_tokens_per_s=process.stream_tokens_per_s,
        open_loop=spec.open_loop,
    )
    workers = choice.workers if process.workers is None else process.workers
    uvloop = choice.uvloop if process.uvloop is None else process.uvloop
    return replace(process, workers=workers, uvloop=uvloop), choice


def measure_level(
    spec: LoadSpec,
    clients: ClientFactory,
    process: ProcessOptions = ProcessOptions(),
    *,
    start_at: float | None = None,
) -> LevelRun:
    """Run one level, measuring the client's own CPU; raises :class:`LevelAborted` when the target fails fast.

    ``start_at``: when the level starts, on the ``perf_counter`` clock (a shard of a fanned-out level waits
    for its common start); by default at once. The CPU monitor runs from the call, so it covers the wait too.
    """
    if process.automatic:
        process, _ = resolve_process(spec, clients, process)
    workers, uvloop = process.workers or 0, bool(process.uvloop)
    with CpuMonitor() as cpu:
        if workers:
            run = run_in_workers(spec, clients, workers, uvloop=uvloop, start_at=start_at)
        else:
            if start_at is not None:
                sleep_until(start_at)
            run = run_async(run_level_with(spec, clients), uvloop=uvloop)
    run.cpu_samples = cpu.samples
    run.processes = min(workers, spec.concurrency) if workers else 1
    run.usable_cpus = usable_cpus(run.processes, cap=process.cpu_cap)
    return run


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
            observed = process.stream_tokens_per_s  # per stream, at the configuration's last level (auto workers)
            for spec in specs:
                level_process = replace(process, stream_tokens_per_s=observed)
                if process.automatic:
                    level_process, choice = resolve_process(spec, clients, level_process)
                    if progress is not None:
                        progress.line(f"c={spec.concurrency}: {choice.describe()}", final=True)
                with progress.level(configuration, spec.concurrency) if progress else contextlib.nullcontext():
                    outcome = run_one_level(
                        configuration,
                        spec,
                        clients,
                        target=target,
                        store=store,
                        price_overrides=price_overrides,
                        process=level_process,
                        measure=measure,
                    )
                results.append(outcome.result)
                observed = stream_tokens_per_s(outcome.result.metrics) or observed
                if progress is not None:
                    progress.finished(configuration, outcome.result.metrics)
    return results


def stream_tokens_per_s(metrics: LevelMetrics) -> float | None:
    """Tokens/s per stream a level measured (steady state), the expectation of the next level's (auto workers)."""
    if not metrics.tokens_per_s or metrics.open_loop:
        return None
    return metrics.tokens_per_s / metrics.concurrency


def late_first_tokens_flag(metrics: LevelMetrics) -> str:
    """``""``, or what a progress line adds for a level the client may have bounded (client-bound, late stamps)."""
    share = metrics.coalesced_first_token_share
    text = ""
    if metrics.late_first_tokens and share is not None:
        text += f"; LATE STAMPS: {share:.1%} of first tokens coalesced, TTFT may read late"
    text += self_measurement(metrics)
    if metrics.client_bound:
        text += "; CLIENT-BOUND: " + "; ".join(metrics.client_bound_reasons)
    return text


def self_measurement(metrics: LevelMetrics) -> str:
    """The client's own figures for a progress line: send lateness p50/p99/max, CPU against the usable CPUs."""
    late = metrics.send_lateness_ms
    parts = []
    if late.count:
        parts.append(f"sent late p50/p99/max {late.median:.1f}/{late.p99:.1f}/{late.maximum:.1f} ms")
    share = metrics.client_cpu_share
    if share is not None and metrics.client_cpus:
        parts.append(f"client CPU {share:.0%} of {metrics.client_cpus:.2g}")
    return "; " + ", ".join(parts) if parts else ""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
