"""One level spread over worker processes, each with its own event loop and client (as GuideLLM does).

At hundreds of streams one Python event loop needs more than a core (its CPU per token: docs/benchmark.md):
it would fall behind and send its next requests late, lowering the load it offers. The times
themselves come from the kernel (see :mod:`benchmark.wire.connection`), so a busy loop does not shift
them; splitting the virtual users over processes keeps the offered load what was asked for. Every
process stamps times on ``time.perf_counter()``, which on Linux is ``CLOCK_MONOTONIC``, shared by all
processes, so the records merge into one :class:`LevelRun` as if one process had measured them.

Workers are started with ``spawn`` (no inherited event loop or client state), wait at a barrier so that all start
together, run their share of the level as the level runner runs one in-process (:func:`run_level_with`: its own
client, built for the share and closed after it) and send back their records. The level runner
(:func:`benchmark.measure.runner.measure_level`) is the only caller.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, replace
from typing import Any

from benchmark.clients import ClientFactory
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_async, run_level_with
from catalog.errors import ConfigError, Issue


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive shares, larger first: 10 over 3 is [4, 3, 3]."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def share(spec: LoadSpec, index: int, parts: int) -> LoadSpec:
    """Worker ``index``'s part of a closed-loop level: its users, warm-up and request budget."""
    users = split(spec.concurrency, parts)[index]
    warmup = split(spec.warmup_requests, parts)[index] if spec.warmup_requests else 0
    max_requests = max(1, split(spec.max_requests, parts)[index]) if spec.max_requests else None
    # The ramp keeps its pace per user: worker i's users start interleaved with the others' (see _worker).
    ramp = spec.ramp_up_s * parts * users / spec.concurrency
    return replace(spec, concurrency=users, warmup_requests=warmup, max_requests=max_requests, ramp_up_s=ramp)


@dataclass(frozen=True)
class _Job:
    index: int
    parts: int
    clients: ClientFactory  # plain data (a ClientSpec): each worker builds its own client
    spec: LoadSpec
    uvloop: bool


def _worker(job: _Job, barrier: Any, results: Any) -> None:
    spec, index, parts = job.spec, job.index, job.parts
    own = share(spec, index, parts)
    barrier.wait()
    if spec.ramp_up_s:
        time.sleep(spec.ramp_up_s * index / spec.concurrency)  # interleave: worker i's user u is global u*parts+i
    try:
        run = run_async(run_level_with(own, job.clients), uvloop=job.uvloop)
    except Exception as exc:  # sent back and raised in the parent
        results.put((index, exc))
        return
    for record in run.records:
        record.user = record.user * parts + index
    results.put((index, run))


def run_in_workers(spec: LoadSpec, clients: ClientFactory, workers: int, *, uvloop: bool = False) -> LevelRun:
    """Run one closed-loop level in ``workers`` processes (at most one per user) and merge the records."""
    if workers < 1:
        raise ConfigError([Issue("workers", workers, "must be >= 1 to spread a level over processes")])
    if spec.open_loop:
        raise ConfigError([Issue("workers", workers, "applies to closed-loop levels only (request_rate unset)")])
    parts = min(workers, spec.concurrency)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(parts)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(_Job(i, parts, clients, spec, uvloop), barrier, results))
        for i in range(parts)
    ]
    for process in processes:
        process.start()
    runs: dict[int, LevelRun] = {}
    try:
        for _ in processes:
            index, outcome = results.get()
            if isinstance(outcome, BaseException):
                raise outcome
            runs[index] = outcome
    finally:
        for process in processes:
            process.join(timeout=30)
    ordered = [runs[i] for i in range(parts)]
    # The measurement window of the whole level, as one process would have had it: from the first measured
    # request to the last. (Intersecting the workers' windows can be empty when one worker finishes its
    # share of a request-bounded level before another leaves warm-up.)
    return LevelRun(
        spec=spec,
        window_start=min(run.window_start for run in ordered),
        window_end=max(run.window_end for run in ordered),
        records=[record for run in ordered for record in run.records],
    )
