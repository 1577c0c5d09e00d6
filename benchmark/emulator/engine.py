"""Scheduling and bookkeeping, independent of the wire protocols.

Each request gets a plan: wait for a batch slot, prefill, then one token every ``tpot`` ms. Token ``i``
is emitted at an *absolute* deadline (previous deadline + tpot), never after a relative sleep, so sleep
overshoot does not accumulate and the gaps a client sees are the gaps scheduled here. What was
scheduled is kept as ground truth for the accuracy benchmark.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from benchmark.emulator.config import EmulatorConfig, FaultKind, FaultPicker


class Overloaded(Exception):  # noqa: N818 - TGI's own word for it
    """More requests in flight than ``max_concurrent``."""


@dataclass
class RequestTruth:
    """What the emulator scheduled for one request (times in ms from its arrival)."""

    request_id: str
    protocol: str
    stream: bool
    input_tokens: int
    tokens: int  # tokens the plan generates
    fault: str | None
    in_flight_at_arrival: int
    queue_ms: float = 0.0
    ttft_ms: float | None = None  # arrival to the first token's deadline (queue + prefill)
    gaps_ms: list[float] = field(default_factory=list)  # scheduled gap before each token after the first
    tokens_sent: int = 0
    max_lag_ms: float = 0.0  # worst lateness of an emission against its deadline (emulator overload check)
    outcome: str = "pending"
    # Streams: time.perf_counter() right after each token's bytes were written (CLOCK_MONOTONIC on Linux, the
    # clock the client stamps with): what the server sent, and when, for tests that check throughput against it.
    sent_at: list[float] = field(default_factory=list)

    @property
    def tpot_ms(self) -> float | None:
        return sum(self.gaps_ms) / len(self.gaps_ms) if self.gaps_ms else None


class Generation:
    """One admitted request: yields token indices at their deadlines, records the truth as it goes."""

    def __init__(self, engine: Engine, truth: RequestTruth, arrival: float) -> None:
        self._engine = engine
        self.truth = truth
        self.arrival = arrival
        self._slot: asyncio.Semaphore | None = None  # the one acquired (configure() may swap engine.slots)
        self._done = False

    @property
    def fault(self) -> FaultKind | None:
        return FaultKind(self.truth.fault) if self.truth.fault else None

    async def tokens(self) -> AsyncIterator[int]:
        engine = self._engine
        model = engine.config.latency
        loop = asyncio.get_running_loop()
        slots = engine.slots
        await slots.acquire()
        self._slot = slots
        engine.active += 1
        start = loop.time()
        self.truth.queue_ms = (start - self.arrival) * 1000
        deadline = start + model.prefill_ms(self.truth.input_tokens) / 1000
        self.truth.ttft_ms = (deadline - self.arrival) * 1000
        for index in range(self.truth.tokens):
            if index:
                gap = model.tpot_ms(engine.active)
                self.truth.gaps_ms.append(gap)
                deadline += gap / 1000
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = (loop.time() - deadline) * 1000
            self.truth.max_lag_ms = max(self.truth.max_lag_ms, lag)
            self.truth.tokens_sent = index + 1
            yield index

    def done(self, outcome: str) -> None:
        """Leave the batch and the in-flight count; call before the last bytes go out (idempotent)."""
        if self._done:
            return
        self._done = True
        engine = self._engine
        if self._slot is not None:
            engine.active -= 1
            self._slot.release()
            self._slot = None
        engine.in_flight -= 1
        self.truth.outcome = outcome
        engine.log.append(self.truth)


class Engine:
    """Shared state of one emulator: in-flight counts, batch slots, fault picker, ground-truth log."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.configure(config)
        self.in_flight = 0
        self.max_in_flight = 0
        self.active = 0
        self.log: list[RequestTruth] = []
        self._counter = itertools.count(1)

    def configure(self, config: EmulatorConfig) -> None:
        """Replace the configuration (between runs: the batch slots are recreated)."""
        self.config = config
        self.picker = FaultPicker(config.faults, config.seed)
        self.slots = asyncio.Semaphore(config.latency.max_batch)

    def reset(self) -> None:
        self.log.clear()
        self.max_in_flight = self.in_flight
        self._counter = itertools.count(1)

    def admit(self, *, protocol: str, stream: bool, input_tokens: int, max_new_tokens: int) -> Generation:
        number = next(self._counter)
        limit = self.config.latency.max_concurrent
        if limit is not None and self.in_flight >= limit:
            raise Overloaded(f"{self.in_flight} requests in flight, limit {limit}")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        fault = self.picker.pick(number)
        truth = RequestTruth(
            request_id=str(uuid.uuid4()),
            protocol=protocol,
            stream=stream,
            input_tokens=input_tokens,
            tokens=max(1, min(max_new_tokens, self.config.latency.tokens)),
            fault=fault.value if fault else None,
            in_flight_at_arrival=self.in_flight,
        )
        return Generation(self, truth, asyncio.get_running_loop().time())

    def stats(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for truth in self.log:
            outcomes[truth.outcome] = outcomes.get(truth.outcome, 0) + 1
        return {
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "active": self.active,
            "completed": len(self.log),
            "outcomes": outcomes,
            "max_lag_ms": max((truth.max_lag_ms for truth in self.log), default=0.0),
        }
