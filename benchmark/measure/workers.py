"""One level spread over worker processes, each with its own event loop and client (as GuideLLM does).

At hundreds of streams one Python event loop needs more than a core (its CPU per token: docs/benchmark.md):
it would fall behind and send its next requests late, lowering the load it offers. The times
themselves come from the kernel (see :mod:`benchmark.wire.connection`), so a busy loop does not shift
them; splitting the virtual users over processes keeps the offered load what was asked for. Every
process stamps times on ``time.perf_counter()``, which on Linux is ``CLOCK_MONOTONIC``, shared by all
processes, so the records merge into one :class:`LevelRun` as if one process had measured them.

Only what AWS Lambda supports is used: ``Process`` and ``Pipe``. Lambda has no ``/dev/shm``, so every
primitive built on a POSIX semaphore (``Queue``, ``Barrier``, ``Lock``, ``Semaphore``, ``Manager``, ``Pool``)
raises ``OSError`` there when it is created. Each worker gets one duplex pipe (a socket pair): it says it is
ready, receives the common start time (a ``perf_counter`` timestamp, the same clock in every process), sleeps
until it, runs its share of the level as the level runner runs one in-process (:func:`run_level_with`: its own
client, built for the share and closed after it) and sends back its records or its error. Workers are
started with ``spawn`` (no inherited event loop or client state). The level runner
(:func:`benchmark.measure.runner.measure_level`) and a shard of a fanned-out level
(:mod:`benchmark.aws.shards`) call it.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from benchmark.clients import ClientFactory
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_async, run_level_with
from catalog.errors import ConfigError, Issue

# How far ahead of "everyone is ready" the common start is set: time for the last start message to arrive.
START_MARGIN_S = 0.05
_READY = "ready"


class WorkerFailedError(RuntimeError):
    """A worker process ended without sending its records (killed, out of memory, or crashed in start-up)."""


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive shares, larger first: 10 over 3 is [4, 3, 3]."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def share(spec: LoadSpec, index: int, parts: int) -> LoadSpec:
    """Part ``index``'s share of a closed-loop level: its users, warm-up and request budget."""
    users = split(spec.concurrency, parts)[index]
    warmup = split(spec.warmup_requests, parts)[index] if spec.warmup_requests else 0
    max_requests = max(1, split(spec.max_requests, parts)[index]) if spec.max_requests else None
    # The ramp keeps its pace per user: part i's users start interleaved with the others' (ramp_offset_s).
    ramp = spec.ramp_up_s * parts * users / spec.concurrency
    return replace(spec, concurrency=users, warmup_requests=warmup, max_requests=max_requests, ramp_up_s=ramp)


def ramp_offset_s(spec: LoadSpec, index: int) -> float:
    """How long after the common start part ``index`` begins its ramp: part i's user u is global u*parts+i."""
    return spec.ramp_up_s * index / spec.concurrency


def global_user(user: int, index: int, parts: int) -> int:
    """The level-wide number of part ``index``'s user ``user``: distinct over the parts, 0..concurrency-1."""
    return user * parts + index


def sleep_until(at: float, clock: Any = time.perf_counter) -> None:
    """Sleep until ``clock()`` reads ``at`` (no-op when it is past)."""
    delay = at - clock()
    if delay > 0:
        time.sleep(delay)


@dataclass(frozen=True)
class _Job:
    index: int
    parts: int
    clients: ClientFactory  # plain data (a ClientSpec): each worker builds its own client
    spec: LoadSpec
    uvloop: bool


def _worker(job: _Job, pipe: Connection) -> None:
    spec, index, parts = job.spec, job.index, job.parts
    own = share(spec, index, parts)
    try:
        pipe.send(_READY)
        start_at = float(pipe.recv())  # the common start, on the perf_counter clock every process shares
        sleep_until(start_at + ramp_offset_s(spec, index))
        run = run_async(run_level_with(own, job.clients), uvloop=job.uvloop)
    except Exception as exc:  # sent back and raised in the parent
        pipe.send((index, exc))
        return
    for record in run.records:
        record.user = global_user(record.user, index, parts)
    pipe.send((index, run))
    pipe.close()


def run_in_workers(
    spec: LoadSpec,
    clients: ClientFactory,
    workers: int,
    *,
    uvloop: bool = False,
    start_at: float | None = None,
) -> LevelRun:
    """Run one closed-loop level in ``workers`` processes (at most one per user) and merge the records.

    ``start_at``: the common start on the ``perf_counter`` clock (a shard's agreed start); by default, as
    soon as every worker is ready. A start that has passed when the workers are ready becomes "now".
    """
    if workers < 1:
        raise ConfigError([Issue("workers", workers, "must be >= 1 to spread a level over processes")])
    if spec.open_loop:
        raise ConfigError([Issue("workers", workers, "applies to closed-loop levels only (request_rate unset)")])
    parts = min(workers, spec.concurrency)
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    processes = []
    for index in range(parts):
        own, theirs = context.Pipe(duplex=True)
        process = context.Process(target=_worker, args=(_Job(index, parts, clients, spec, uvloop), theirs))
        process.start()
        theirs.close()  # the worker's end lives in the worker: EOF here when it dies
        pipes.append(own)
        processes.append(process)
    runs: dict[int, LevelRun] = {}
    try:
        for index, pipe in enumerate(pipes):
            if _receive(pipe, index) != _READY:
                raise WorkerFailedError(f"worker {index} did not report ready")
        start = max(start_at or 0.0, time.perf_counter() + START_MARGIN_S)
        for pipe in pipes:
            pipe.send(start)
        pending = {pipe: index for index, pipe in enumerate(pipes)}
        while pending:
            for ready in wait(list(pending)):
                assert isinstance(ready, Connection)
                index, outcome = _receive(ready, pending.pop(ready))
                if isinstance(outcome, BaseException):
                    raise outcome
                runs[index] = outcome
    finally:
        if len(runs) < parts:  # a failure: the others' results are not wanted
            for process in processes:
                process.terminate()
        for process in processes:
            process.join(timeout=30)
        for pipe in pipes:
            pipe.close()
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


def _receive(pipe: Connection, index: int) -> Any:
    try:
        return pipe.recv()
    except EOFError:
        raise WorkerFailedError(f"worker {index} ended without sending its records (killed or crashed)") from None
