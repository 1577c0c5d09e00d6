"""Does a level meet the SLO, what share of its requests met every limit, and how much good work it did.

- A limit is checked on the level's percentile: from its requests when we have them (any percentile), else from
  the stored summary (median, p90, p95, p99 only). A percentile needs enough requests to be supported
  (``benchmark.measure.percentiles.min_samples``: p90 needs 10, p99 100); a level with fewer does not meet the SLO.
- Per request (only with requests): a request meets the SLO when it succeeded and each limited metric is at or
  below its limit. Goodput = those requests (and their server-counted tokens) per second of the window, as
  vLLM's benchmark defines it.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.measure.percentiles import min_samples, percentile
from benchmark.sizing.levels import MeasuredLevel
from benchmark.sizing.slo import Limit, Slo

MET, EXCEEDED, TOO_FEW, NO_DATA = "met", "exceeded", "too few requests", "no data"


@dataclass(frozen=True)
class LimitCheck:
    limit: Limit
    value: float | None
    requests: int  # successful requests the percentile is over
    status: str  # MET, EXCEEDED, TOO_FEW or NO_DATA

    def explain(self) -> str:
        if self.status == EXCEEDED:
            return f"{self.limit.label} {self.value:.1f} > {self.limit.max_value:g}"
        if self.status == TOO_FEW:
            need = min_samples(self.limit.percentile / 100.0) if self.limit.percentile < 100 else 1
            return f"{self.limit.label} needs {need} requests, the level had {self.requests}"
        if self.status == NO_DATA:
            return f"{self.limit.label}: not in these results"
        return f"{self.limit.label} {self.value:.1f} <= {self.limit.max_value:g}"


@dataclass(frozen=True)
class LevelVerdict:
    level: MeasuredLevel
    checks: tuple[LimitCheck, ...]
    error_rate: float | None
    error_status: str | None  # None when the SLO sets no error-rate limit
    share_meeting: float | None  # of all measured requests; None without per-request data
    goodput_rps: float | None
    goodput_tokens_per_s: float | None

    @property
    def meets(self) -> bool:
        return all(c.status == MET for c in self.checks) and self.error_status in (None, MET)

    @property
    def client_bound(self) -> bool:
        """The load generator may have bounded the level (:mod:`benchmark.measure.selfcheck`), not the endpoint."""
        return self.level.result.metrics.client_bound

    @property
    def inconclusive(self) -> bool:
        """Fails for want of requests (run longer) or of client (client-bound): says nothing of the endpoint."""
        if self.meets:
            return False
        few = all(c.status in (MET, TOO_FEW) for c in self.checks) and self.error_status != EXCEEDED
        return few or self.client_bound

    @property
    def reason(self) -> str:
        """Why the level does not meet the SLO ('' when it does)."""
        parts = [c.explain() for c in self.checks if c.status != MET]
        if parts and self.client_bound:
            reasons = "; ".join(self.level.result.metrics.client_bound_reasons)
            parts.insert(0, f"{client_bound_note(self.level.load)} ({reasons})")
        if self.error_status == EXCEEDED:
            parts.append(f"error rate {self.error_rate:.3f} above the limit")
        elif self.error_status == NO_DATA:
            parts.append("error rate: not in these results")
        return "; ".join(parts)


def client_bound_note(load: float) -> str:
    """What the sizing sweep says of a client-bound level instead of calling it a failure of the endpoint."""
    return f"client-bound at {load:g} streams: inconclusive, add workers/shards"


def _check_from_samples(level: MeasuredLevel, limit: Limit) -> LimitCheck:
    assert level.samples is not None
    values = sorted(v for s in level.samples if s.ok and (v := s.value(limit.metric)) is not None)
    if not values:
        return LimitCheck(limit, None, 0, NO_DATA)
    value = percentile(values, limit.percentile / 100.0)
    if limit.percentile < 100.0 and len(values) < min_samples(limit.percentile / 100.0):
        return LimitCheck(limit, value, len(values), TOO_FEW)
    return LimitCheck(limit, value, len(values), MET if value <= limit.max_value else EXCEEDED)


def _check_from_summary(level: MeasuredLevel, limit: Limit) -> LimitCheck:
    distribution = getattr(level.result.metrics, limit.metric)
    name = limit.summary_name
    value = None if name is None else distribution.get(name)
    if value is None:
        return LimitCheck(limit, None, distribution.count, NO_DATA)
    if distribution.count and not distribution.is_supported(name):
        return LimitCheck(limit, value, distribution.count, TOO_FEW)
    return LimitCheck(limit, value, distribution.count, MET if value <= limit.max_value else EXCEEDED)


def _meets_each(sample_value: float | None, limit: Limit) -> bool:
    return sample_value is not None and sample_value <= limit.max_value


def evaluate(level: MeasuredLevel, slo: Slo) -> LevelVerdict:
    samples = level.samples
    check = _check_from_samples if samples is not None else _check_from_summary
    checks = tuple(check(level, limit) for limit in slo.limits)
    if samples is not None:
        error_rate = sum(1 for s in samples if not s.ok) / len(samples) if samples else None
    else:
        error_rate = level.result.metrics.error_rate
    error_status: str | None = None
    if slo.max_error_rate is not None:
        error_status = NO_DATA if error_rate is None else (MET if error_rate <= slo.max_error_rate else EXCEEDED)
    share = goodput_rps = goodput_tps = None
    window_s = level.result.metrics.window_s
    if samples:
        good = [s for s in samples if s.ok and all(_meets_each(s.value(lm.metric), lm) for lm in slo.limits)]
        share = len(good) / len(samples)
        if window_s > 0:
            goodput_rps = len(good) / window_s
            goodput_tps = sum(s.tokens or 0 for s in good) / window_s
    return LevelVerdict(level, checks, error_rate, error_status, share, goodput_rps, goodput_tps)
