"""How many load-generator processes a level needs: its expected token rate against one process's capacity.

One event loop keeps its stamps and its users on time while it is busy for at most :data:`PROCESS_BUSY_TARGET`
of a core; past that its loop turns get long enough that sockets are read late (coalesced first tokens) and
users send late (:mod:`benchmark.measure.selfcheck`). A process's capacity is therefore
``PROCESS_BUSY_TARGET / CPU per token``, the CPU per token being the client's measured steady-state figure
(:data:`CPU_S_PER_TOKEN`). A level's expected token rate is its streams times a per-stream rate: the rate the
previous level of the same run measured per stream (a lower level's rate per stream is at least the next
one's, so this errs high), or :data:`ASSUMED_STREAM_TOKENS_PER_S` for the first. The processes chosen are at
most the CPUs there are (:func:`benchmark.measure.selfcheck.usable_cpus`): a level that needs more is said to
be likely client-bound before it runs, and the verdict after it says whether it was.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

# Client CPU seconds per streamed token at steady state, one process on uvloop at 256 streams against
# scripts/truth_server.py (scripts/bench_accuracy.py --levels 256 --workers 0, its `steady` column), 2026-12-07 on
# the 2-core development machine: HTTP clients (tgi-http, openai-chat) 63.5 us, the median of 8 runs
# (benchmark/README.md, "HTTP/1.1 framing: h11", set B, main's framing); SageMaker 78.2 us, one run
# (docs/bench-client-bound-2026-12-07.md), itself client-bound on a loaded machine: the highest recorded, kept as the
# planning figure because the load-test Lambda runs asyncio (no uvloop in its bundle) and the chat payload costs more
# than TGI's. For comparison: on the idle 16-core device machine, uvloop, 43.0 us (TGI payload) and 55.6 us (chat
# payload) (docs/bench-limits-2026-12-07.md, section 1); on the development machine at 128 streams 59-64 us with
# uvloop and 62-64 us with asyncio (a review rerun of scripts/bench_accuracy.py). A protocol not listed takes the
# largest.
CPU_S_PER_TOKEN: dict[str, float] = {"tgi-http": 63.5e-6, "openai-chat": 63.5e-6, "sagemaker": 78.2e-6}
# The share of a core one event loop may be busy and still read its sockets and send on time. Chosen, not measured
# as a limit: the measured good point is set B above (one process at 256 streams, about 5,600 tokens/s x 63.5 us =
# 36 % of a core, TTFT +0.01 % against the truth); 50 % is a margin above it, and the verdict after each level
# (benchmark.measure.selfcheck) says when it was not enough.
PROCESS_BUSY_TARGET = 0.5
# Tokens/s per stream a level is planned for when nothing has measured it (the first level of a CLI run; every level
# of the state machine, sized at synth): 10 ms per token, the fastest decode of one stream of any endpoint in scope
# (7B on A100s). Over-estimating costs a process or Lambda seconds; under-estimating lets the client fall behind the
# endpoint, which reads as a slower endpoint. The load-test Lambda's sizing (benchmark.aws.contract) reads it too.
ASSUMED_STREAM_TOKENS_PER_S = 100.0


def process_capacity_tokens_per_s(protocol: str) -> float:
    """Tokens/s one event-loop process reads on time: :data:`PROCESS_BUSY_TARGET` / its CPU per token."""
    per_token = CPU_S_PER_TOKEN.get(protocol, max(CPU_S_PER_TOKEN.values()))
    return PROCESS_BUSY_TARGET / per_token


@dataclass(frozen=True)
class Choice:
    """Worker processes (0: the runner's own), the event loop, and why."""

    workers: int
    uvloop: bool
    expected_tokens_per_s: float
    needed: int  # processes the expected rate needs (more than ``workers`` when the CPUs run out)
    cpus: float

    @property
    def short(self) -> bool:
        """The level needs more processes than there are CPUs: it may be client-bound."""
        return self.needed > max(1, self.workers)

    def describe(self) -> str:
        where = f"{self.workers} worker processes" if self.workers else "one process"
        loop = "uvloop" if self.uvloop else "asyncio"
        text = f"{where} on {loop} for about {self.expected_tokens_per_s:.0f} tokens/s expected"
        if self.short:
            text += (
                f"; it needs {self.needed} processes and {self.cpus:.2g} CPU(s) are usable here: "
                "the level may be client-bound (shard it over machines)"
            )
        return text


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def choose(
    *,
    concurrency: int,
    protocol: str,
    cpus: float,
    stream_tokens_per_s: float | None = None,
    open_loop: bool = False,
    has_uvloop: bool | None = None,
) -> Choice:
    """Processes and event loop for one level (open-loop levels run in one process: workers are closed-loop only)."""
    rate = concurrency * (stream_tokens_per_s or ASSUMED_STREAM_TOKENS_PER_S)
    needed = max(1, math.ceil(rate / process_capacity_tokens_per_s(protocol)))
    usable = max(1, math.floor(cpus))
    processes = 1 if open_loop else min(needed, usable, concurrency)
    uvloop = (uvloop_available() if has_uvloop is None else has_uvloop) and concurrency > 1
    return Choice(
        workers=processes if processes > 1 else 0, uvloop=uvloop, expected_tokens_per_s=rate, needed=needed, cpus=cpus
    )
