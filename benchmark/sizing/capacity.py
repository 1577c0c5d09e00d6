"""Capacity per instance: the highest load at which one instance still meets the SLO, and how sure that is.

Capacity is the highest measured load *below the lowest failing load* (a level passes only when every repeat
passes), so a lucky pass above a failure never counts. Its precision is the gap to that first failure: with
the 2023 levels 1/5/10/20 a capacity of 10 means "somewhere in [10, 20)", and the plan says so. A sweep
(:func:`sweep`) closes that gap: it doubles the load until the SLO breaks, then bisects between the last pass
and the first failure until they are one ``step`` apart, and repeats the capacity level to show the spread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmark.analysis.configuration import BenchmarkConfiguration
from benchmark.sizing.goodput import LevelVerdict, client_bound_note, evaluate
from benchmark.sizing.levels import MeasuredLevel
from benchmark.sizing.slo import Slo
from catalog.errors import ConfigError, Issue


@dataclass(frozen=True)
class Capacity:
    configuration: BenchmarkConfiguration
    load_kind: str  # "concurrency" (closed loop) or "request_rate" (open loop, requests/s)
    capacity: float | None  # None: no measured load meets the SLO
    first_failing: float | None  # None: the SLO never broke (capacity is a lower bound)
    verdicts: tuple[LevelVerdict, ...]  # every level and repeat, by load
    reason: str = ""  # why there is no capacity
    notes: tuple[str, ...] = field(default=())

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(sorted({v.level.load for v in self.verdicts}))

    @property
    def at_capacity(self) -> tuple[LevelVerdict, ...]:
        return tuple(v for v in self.verdicts if v.level.load == self.capacity)

    @property
    def requests_at_capacity(self) -> int:
        return sum(v.level.result.metrics.requests_total for v in self.at_capacity)

    @property
    def precision(self) -> str:
        """How coarse the figure is, in words."""
        unit = "concurrent requests" if self.load_kind == "concurrency" else "requests/s"
        if self.capacity is None:
            return "no measured load meets the SLO"
        if self.first_failing is None:
            return f"at least {self.capacity:g} {unit}: the SLO held at every measured load (a lower bound)"
        gap = self.first_failing - self.capacity
        return (
            f"between {self.capacity:g} and {self.first_failing:g} {unit} "
            f"(measured {', '.join(f'{x:g}' for x in self.levels)}; the true capacity may be up to {gap:g} higher)"
        )

    def spread(self) -> dict[str, float]:
        """Across repeats at the capacity level: max - min of each limited percentile (empty with one run)."""
        runs = self.at_capacity
        if len(runs) < 2:
            return {}
        out: dict[str, float] = {}
        for index, check in enumerate(runs[0].checks):
            values = [run.checks[index].value for run in runs]
            known = [v for v in values if v is not None]
            if len(known) == len(values):
                out[check.limit.label] = max(known) - min(known)
        return out

    @property
    def rps_per_instance(self) -> float | None:
        """Requests/s one instance serves at its capacity: the offered rate (open loop), else the mean completed."""
        if self.load_kind == "request_rate":
            return self.capacity
        rates = [rate for v in self.at_capacity if (rate := requests_per_s(v.level)) is not None]
        return sum(rates) / len(rates) if rates else None


def requests_per_s(level: MeasuredLevel) -> float | None:
    """Completed requests/s of a level; for imports without a request count, tokens/s over tokens per request."""
    metrics = level.result.metrics
    if metrics.requests_per_min:
        return metrics.requests_per_min / 60.0
    tokens_per_request = metrics.max_new_tokens or level.result.load.get("max_new_tokens")
    if metrics.tokens_per_s and tokens_per_request:
        return metrics.tokens_per_s / float(tokens_per_request)
    return None


def capacity_of(levels: Sequence[MeasuredLevel], slo: Slo) -> Capacity:
    """Capacity of one configuration's levels (all measured with the same load kind)."""
    if not levels:
        raise ConfigError([Issue("levels", 0, "need at least one measured level")])
    configuration = levels[0].result.configuration
    kinds = {level.load_kind for level in levels}
    if len(kinds) > 1:
        raise ConfigError([Issue("levels", sorted(kinds), f"{configuration.key}: mix closed and open loop")])
    verdicts = tuple(sorted((evaluate(level, slo) for level in levels), key=lambda v: (v.level.load, v.level.repeat)))
    failing = sorted({v.level.load for v in verdicts if not v.meets and not v.inconclusive})
    first_failing = failing[0] if failing else None
    unsure = {v.level.load for v in verdicts if v.inconclusive}
    passing = [
        v.level.load
        for v in verdicts
        if v.meets and v.level.load not in unsure and (first_failing is None or v.level.load < first_failing)
    ]
    bound = {v.level.load for v in verdicts if v.client_bound}
    few = "inconclusive (too few requests for a percentile; run longer)"
    notes = [client_bound_note(x) if x in bound else f"load {x:g} {few}" for x in sorted(unsure)]
    # A client-bound level that met the SLO counts, said so: the load generator may have offered less than asked.
    notes += [
        f"client-bound at {x:g} streams but met the SLO: the load offered may have been lower than asked"
        for x in sorted(bound - unsure)
        if x in passing
    ]
    if not all(v.level.samples is not None for v in verdicts):
        notes.append("judged on stored percentiles (no per-request data): goodput unknown")
    if passing:
        return Capacity(configuration, kinds.pop(), max(passing), first_failing, verdicts, notes=tuple(notes))
    lowest = next((v for v in verdicts if not v.meets and not v.inconclusive), None)
    if lowest is None and bound:
        reason = client_bound_note(min(bound))
    elif lowest is None:
        reason = "no level had enough requests to judge: run longer levels"
    else:
        reason = f"fails the SLO already at {lowest.level.load:g} ({lowest.reason})"
    return Capacity(configuration, kinds.pop(), None, first_failing, verdicts, reason=reason, notes=tuple(notes))


# --- the adaptive sweep ------------------------------------------------------------------------------------


Measure = Callable[[int, int], MeasuredLevel]  # (load, repeat) -> the measured level


@dataclass(frozen=True)
class SweepSettings:
    start: int = 1
    limit: int = 256
    step: int = 1  # stop refining when the last pass and the first failure are this close
    repeats: int = 2  # runs at the capacity level (the spread between them is reported)

    def __post_init__(self) -> None:
        issues = [
            Issue(name, getattr(self, name), "must be a whole number >= 1")
            for name in ("start", "limit", "step", "repeats")
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1
        ]
        if not issues and self.limit < self.start:
            issues.append(Issue("limit", self.limit, f"must be >= start ({self.start})"))
        if issues:
            raise ConfigError(issues, context="sweep")


def sweep(measure: Measure, slo: Slo, settings: SweepSettings) -> list[MeasuredLevel]:
    """Measure loads until the capacity is known to within ``step``; returns every level measured, in order."""
    runs: dict[int, list[MeasuredLevel]] = {}
    order: list[MeasuredLevel] = []

    def passes(load: int) -> bool:
        if load not in runs:
            runs[load] = []
        if not runs[load]:
            level = measure(load, 0)
            runs[load].append(level)
            order.append(level)
        # A level with too few requests is not a failure: the sweep goes on upwards (capacity_of excludes it). A
        # client-bound one is no failure either, but higher loads would be more so: the search turns back there.
        verdicts = [evaluate(level, slo) for level in runs[load]]
        return all(v.meets or (v.inconclusive and not v.client_bound) for v in verdicts)

    low, high = 0, None  # highest load known to pass, lowest known to fail
    load = settings.start
    while True:
        if not passes(load):
            high = load
            break
        low = load
        if load >= settings.limit:
            break
        load = min(load * 2, settings.limit)
    while True:
        while high is not None and high - low > settings.step:
            middle = max(1, (low + high) // 2)
            if middle in (low, high):
                break
            if passes(middle):
                low = middle
            else:
                high = middle
        if low == 0 or len(runs[low]) >= settings.repeats:
            return order
        level = measure(low, len(runs[low]))
        runs[low].append(level)
        order.append(level)
        verdict = evaluate(level, slo)
        if not verdict.meets and not verdict.inconclusive:  # a repeat failed: the capacity is lower, refine again
            high = low
            low = max((x for x in runs if x < high and all(evaluate(r, slo).meets for r in runs[x])), default=0)
