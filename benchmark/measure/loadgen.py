"""The asyncio load generator: one concurrency level against one client.

Closed loop (the 2023 method): exactly ``concurrency`` virtual users, each sending its next request as soon
as its previous one ends. Open loop (``request_rate`` set): arrivals follow a Poisson or constant
schedule whatever the server does, with at most ``concurrency`` in flight; a request that waits for a free
slot keeps its *scheduled* start, so queueing on our side counts as latency (no coordinated omission).

Warm-up requests are the first ``warmup_requests`` sent; they are recorded with ``warmup=True`` and the
measurement window opens when the first measured request is sent, so the warm-up load is still running
(steady state) when measuring starts. The window closes ``duration_s`` later or, when ``max_requests``
stops the run first, when the last measured request ends. Requests still in flight at the close are
awaited and kept (they end after the window, which metrics handle).

Failing fast, as k6 thresholds with ``abortOnFail`` do: a level raises :class:`LevelAborted` when its first
``fail_fast_requests`` finished requests all failed (a refused connection, a wrong URL, key or model name:
anything but throttling, which is a measurement), or when its error rate passes ``max_error_rate`` once
``max(20, concurrency)`` requests have finished. A virtual user whose connection failed backs off (50 ms,
doubling, at most 0.5 s) instead of spinning. Any other error is recorded and the run goes on.

``ramp_up_s`` staggers the closed loop's first requests evenly over that many seconds (as LLMPerf and
GuideLLM stagger theirs), so 256 users do not all send in the same event-loop turn and the server sees
the load build up as it would in production; the steady-state throughput window starts after the ramp.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchmark.clients import ClientFactory
from benchmark.clients.base import Client
from benchmark.measure.failfast import FailFast, LevelAborted, backoff_s
from benchmark.measure.load import ARRIVALS, LoadSpec
from benchmark.measure.prompts import GenerationParams, Prompt, prompts_for
from benchmark.measure.records import ErrorKind, RequestRecord
from catalog.errors import ConfigError, Issue

__all__ = ["ARRIVALS", "LevelAborted", "LevelRun", "LoadSpec", "run_async", "run_level", "run_level_with"]

T = TypeVar("T")

# The loop's own per-request deadline, beyond the client's: a backstop if a client ignores its timeout.
_BACKSTOP_S = 5.0


@dataclass
class LevelRun:
    spec: LoadSpec
    window_start: float
    window_end: float
    records: list[RequestRecord] = field(default_factory=list)  # warm-up records flagged warmup=True
    # Open loop: how late each request was handed to the client after its scheduled arrival (seconds).
    # Its latency is measured from the schedule, so lateness counts; this says how much there was.
    dispatch_lag_s: list[float] = field(default_factory=list)
    # Filled by the level runner (benchmark.measure.runner.measure_level): (perf_counter, client CPU seconds)
    # samples over the level, the CPUs the client could use and the event-loop processes it ran in.
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)
    usable_cpus: float | None = None
    processes: int | None = None
    # Filled by a fanned-out level's merge (benchmark.aws.shards.merge_runs): the client-bound reasons each shard
    # found on its own records, each prefixed with its shard.
    shard_client_bound_reasons: list[str] = field(default_factory=list)

    @property
    def measured(self) -> list[RequestRecord]:
        return [record for record in self.records if not record.warmup]


class _Tickets:
    """Hands out request numbers until the run's bounds are reached; opens and closes the window."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.issued = 0
        self.stopped = False
        self.window_start: float | None = None
        self.deadline: float | None = None
        self.stopped_by_deadline = False

    def take(self) -> tuple[int, bool] | None:
        if self.stopped:
            return None
        number = self.issued
        measured = number - self.spec.warmup_requests
        now = time.perf_counter()
        if measured >= 0:
            if self.window_start is None:
                self.window_start = now
                if self.spec.duration_s is not None:
                    self.deadline = now + self.spec.duration_s
            if self.spec.max_requests is not None and measured >= self.spec.max_requests:
                self.stopped = True
                return None
            if self.deadline is not None and now >= self.deadline:
                self.stopped = self.stopped_by_deadline = True
                return None
        self.issued += 1
        return number, measured < 0


async def run_level(
    client: Client,
    prompts: Sequence[Prompt],
    params: GenerationParams,
    spec: LoadSpec,
    *,
    progress: Callable[[int], None] | None = None,
) -> LevelRun:
    """Run one level; ``progress`` is called with the number of measured requests finished so far.

    Raises :class:`LevelAborted` when the target fails fast (see the module docstring); requests still
    in flight then are cancelled, so a dead target ends the level within moments.
    """
    if not prompts:
        raise ConfigError([Issue("prompts", 0, "at least one prompt is needed")], context="load generator")
    tickets = _Tickets(spec)
    guard = FailFast(spec.concurrency, spec.fail_fast_requests, spec.max_error_rate)
    aborted = asyncio.Event()
    records: list[RequestRecord] = []
    lags: list[float] = []
    done = 0

    async def one(user: int, number: int, warmup: bool, scheduled: float | None = None) -> RequestRecord:
        nonlocal done
        prompt = prompts[number % len(prompts)]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout_s + _BACKSTOP_S):
                record = await client.send(prompt, params, user=user)
        except TimeoutError:
            record = RequestRecord(user=user, start=started, end=time.perf_counter(), prompt_id=prompt.id or None)
            record.error, record.error_detail = ErrorKind.TIMEOUT, f"no answer within {spec.timeout_s} s"
        except Exception as exc:  # a client bug must not stop the run
            record = RequestRecord(user=user, start=started, end=time.perf_counter(), prompt_id=prompt.id or None)
            record.error, record.error_detail = ErrorKind.CLIENT, f"{type(exc).__name__}: {exc}"
        if scheduled is not None and scheduled < record.start:
            record.start = scheduled  # open loop: waiting for a free slot is latency (no coordinated omission)
        record.warmup = warmup
        records.append(record)
        guard.check(record)
        if guard.reason is not None:
            tickets.stopped = True
            aborted.set()
        if not warmup:
            done += 1
            if progress is not None:
                progress(done)
        return record

    async def user_loop(user: int) -> None:
        if spec.ramp_up_s:
            await asyncio.sleep(spec.ramp_up_s * user / spec.concurrency)
        connection_failures = 0
        while (ticket := tickets.take()) is not None:
            record = await one(user, *ticket)
            connection_failures = connection_failures + 1 if record.error is ErrorKind.CONNECTION else 0
            if connection_failures:
                await asyncio.sleep(backoff_s(connection_failures))

    work: asyncio.Future[Any]
    if spec.open_loop:
        work = asyncio.ensure_future(_open_loop(spec, tickets, one, lags))
    else:
        work = asyncio.ensure_future(asyncio.gather(*(user_loop(user) for user in range(spec.concurrency))))
    await _until_done_or_aborted(work, aborted)
    if guard.reason is not None:
        raise LevelAborted(guard.reason, records)

    end = time.perf_counter()
    start = tickets.window_start if tickets.window_start is not None else end
    if tickets.stopped_by_deadline and tickets.deadline is not None:
        window_end = tickets.deadline
    else:
        window_end = max((r.end for r in records if not r.warmup), default=end)
    return LevelRun(spec=spec, window_start=start, window_end=window_end, records=records, dispatch_lag_s=lags)


async def run_level_with(spec: LoadSpec, clients: ClientFactory) -> LevelRun:
    """One level in this event loop: its prompts (``spec.dataset``), a client built for it and closed after it.

    The one client lifetime of every caller (the level runner, each worker process): a client never outlives
    its level, so no level inherits another's connections or a target's state.
    """
    prompts = prompts_for(spec.dataset)
    client = clients.create(spec)
    try:
        return await run_level(client, prompts, GenerationParams(max_new_tokens=spec.max_new_tokens), spec)
    finally:
        await client.aclose()


def run_async(coroutine: Coroutine[Any, Any, T], *, uvloop: bool) -> T:
    """``asyncio.run``, on uvloop when asked (libuv's loop spends less CPU per socket event)."""
    if not uvloop:
        return asyncio.run(coroutine)
    import uvloop as uv  # noqa: PLC0415 - optional (the distribution's [fast] extra): imported only when asked for

    with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
        return runner.run(coroutine)


async def _until_done_or_aborted(work: asyncio.Future[Any], aborted: asyncio.Event) -> None:
    """Await ``work``; when ``aborted`` is set first, cancel it (and every request in flight)."""
    watcher = asyncio.ensure_future(aborted.wait())
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work


async def _open_loop(
    spec: LoadSpec, tickets: _Tickets, one: Callable[..., Awaitable[RequestRecord]], lags: list[float]
) -> None:
    """Arrivals on schedule; ``lags`` gets how late the loop was for each (a loop falling behind shows there)."""
    assert spec.request_rate is not None
    rng = random.Random(spec.seed)
    slots = asyncio.Semaphore(spec.concurrency)
    pending: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    next_at = time.perf_counter()

    async def bounded(number: int, warmup: bool, scheduled: float) -> None:
        async with slots:
            await one(number % spec.concurrency, number, warmup, scheduled)

    while True:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        ticket = tickets.take()
        if ticket is None:
            break
        lags.append(time.perf_counter() - next_at)
        task = loop.create_task(bounded(*ticket, next_at))
        pending.add(task)
        task.add_done_callback(pending.discard)
        gap = rng.expovariate(spec.request_rate) if spec.arrival == "poisson" else 1.0 / spec.request_rate
        next_at += gap
    try:
        if pending:
            await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()
