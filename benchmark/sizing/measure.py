"""Measure one sweep level against a target through the level runner, keeping every request's numbers.

Each level is one call of :func:`benchmark.measure.runner.run_one_level` (its own client, its own event loop or
worker processes), appended to the sizing file the moment it finishes. The target stays open for the whole
sweep: against the emulator one server serves every level, so its latency model (the batching slope in
particular) stays what the caller set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.clients import ClientFactory
from benchmark.measure.load import LoadSpec
from benchmark.measure.runner import ProcessOptions, run_one_level, stream_tokens_per_s
from benchmark.sizing.capacity import Measure
from benchmark.sizing.levels import MeasuredLevel, append_level, samples_of


@dataclass(frozen=True)
class LevelPlan:
    """What every level of a sweep shares: its load but the level's own concurrency or rate, and where it goes.

    ``open_loop``: the sweep's load is requests/s, with at most ``max_in_flight`` requests outstanding.
    """

    load: LoadSpec = field(default_factory=LoadSpec)
    open_loop: bool = False
    max_in_flight: int = 256
    target: str = "emulator"
    price_overrides: Mapping[str, float] = field(default_factory=dict)
    process: ProcessOptions = field(default_factory=ProcessOptions)

    def spec(self, load: int, repeat: int) -> LoadSpec:
        """The level at ``load`` (users, or requests/s), with a steady arrival schedule seeded by the repeat."""
        if self.open_loop:
            return replace(
                self.load, concurrency=self.max_in_flight, request_rate=float(load), arrival="constant", seed=repeat
            )
        return replace(self.load, concurrency=load, request_rate=None, arrival="constant", seed=repeat)


def measurer(
    configuration: BenchmarkConfiguration,
    clients: ClientFactory,
    plan: LevelPlan,
    *,
    sizing_file: str | None = None,
    on_level: Callable[[MeasuredLevel], None] | None = None,
) -> Measure:
    """A ``Measure`` for :func:`benchmark.sizing.capacity.sweep`."""

    # Tokens/s per stream measured so far, the highest (a lower load's): what the automatic choice of worker
    # processes expects of the next level (benchmark.measure.processes).
    per_stream: list[float] = []

    def measure(load: int, repeat: int) -> MeasuredLevel:
        process = replace(plan.process, stream_tokens_per_s=max(per_stream, default=plan.process.stream_tokens_per_s))
        outcome = run_one_level(
            configuration,
            plan.spec(load, repeat),
            clients,
            target=plan.target,
            price_overrides=plan.price_overrides,
            process=process,
        )
        rate = stream_tokens_per_s(outcome.result.metrics)
        if rate is not None:
            per_stream.append(rate)
        level = MeasuredLevel(outcome.result, samples_of(outcome.run), repeat)
        if sizing_file:
            append_level(sizing_file, level)
        if on_level is not None:
            on_level(level)
        return level

    return measure
