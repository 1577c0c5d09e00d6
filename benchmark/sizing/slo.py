"""A service-level objective: limits on request percentiles and on the error rate.

Written ``ttft_ms.p90<=1500, ms_per_token.p90<=60, e2e_ms.p99<=20000, error_rate<=0.01``. A level *meets* the
SLO when every limited percentile (over its successful requests) is at or below its limit and its error rate is
at or below the maximum. Percentiles use the project's one definition (``benchmark.measure.percentiles``, type 7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from catalog.errors import ConfigError, Issue

# Per-request latency metrics an SLO may limit, with what each means.
METRICS: Mapping[str, str] = {
    "ttft_ms": "time to first token, ms",
    "ms_per_token": "ms per output token after the first",
    "e2e_ms": "end-to-end request time, ms",
}
ERROR_RATE = "error_rate"
# Percentile names the stored summaries carry (benchmark.measure.percentiles.PERCENTILES), by percent.
SUMMARY_NAMES: Mapping[float, str] = {50.0: "median", 90.0: "p90", 95.0: "p95", 99.0: "p99"}
_TERM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<pct>[^<\s]+))?\s*<=\s*(?P<value>\S+)$")
_ALLOWED_TERMS = (
    "must look like <metric>.p<percentile><=<limit> (metric one of ttft_ms, ms_per_token, e2e_ms) "
    "or error_rate<=<0..1>, comma-separated"
)


@dataclass(frozen=True)
class Limit:
    """``metric`` at ``percentile`` (0 < p <= 100) must be at most ``max_value``."""

    metric: str
    percentile: float
    max_value: float

    @property
    def label(self) -> str:
        return f"{self.metric}.{percentile_name(self.percentile)}"

    @property
    def summary_name(self) -> str | None:
        """The stored summary field holding this percentile, if there is one."""
        return SUMMARY_NAMES.get(self.percentile)

    def __str__(self) -> str:
        return f"{self.label}<={_number(self.max_value)}"


@dataclass(frozen=True)
class Slo:
    limits: tuple[Limit, ...]
    max_error_rate: float | None = None

    def __post_init__(self) -> None:
        issues = _check(self.limits, self.max_error_rate)
        if issues:
            raise ConfigError(issues, context="SLO")

    def __str__(self) -> str:
        terms = [str(limit) for limit in self.limits]
        if self.max_error_rate is not None:
            terms.append(f"{ERROR_RATE}<={_number(self.max_error_rate)}")
        return ", ".join(terms)


def percentile_name(percentile: float) -> str:
    return "median" if percentile == 50.0 else f"p{_number(percentile)}"


def _number(value: float) -> str:
    return f"{value:g}"


def _check(limits: Iterable[Limit], max_error_rate: float | None) -> list[Issue]:
    limits = tuple(limits)
    issues: list[Issue] = []
    if not limits and max_error_rate is None:
        issues.append(Issue("slo", "", "needs at least one limit, e.g. ms_per_token.p90<=60"))
    seen: set[str] = set()
    for limit in limits:
        where = f"slo.{limit.metric}"
        if limit.metric not in METRICS:
            issues.append(Issue("slo.metric", limit.metric, f"must be one of {', '.join(METRICS)} or {ERROR_RATE}"))
            continue
        if not (math.isfinite(limit.percentile) and 0.0 < limit.percentile <= 100.0):
            issues.append(Issue(f"{where}.percentile", limit.percentile, "must be within (0, 100]"))
        if not (math.isfinite(limit.max_value) and limit.max_value > 0):
            issues.append(Issue(f"{where}.limit", limit.max_value, "must be a positive number of milliseconds"))
        if limit.label in seen:
            issues.append(Issue(where, limit.label, "is limited twice; give each percentile once"))
        seen.add(limit.label)
    if max_error_rate is not None and not (math.isfinite(max_error_rate) and 0.0 <= max_error_rate <= 1.0):
        issues.append(Issue(f"slo.{ERROR_RATE}", max_error_rate, "must be within [0, 1] (0.01 = 1 %)"))
    return issues


def _percentile(text: str | None, term: str) -> float:
    if text is None:
        raise ConfigError([Issue("slo.percentile", term, "name a percentile: .median or .p<0..100>, e.g. .p90")])
    if text == "median":
        return 50.0
    digits = text[1:] if text.startswith("p") else ""
    try:
        return float(digits)
    except ValueError:
        raise ConfigError([Issue("slo.percentile", text, "must be median or p<number>, e.g. p90, p99.9")]) from None


def _value(text: str, field: str) -> float:
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise ConfigError([Issue(field, text, "must be a number")]) from None


def parse_slo(text: str) -> Slo:
    """``ttft_ms.p90<=1500, ms_per_token.p90<=60, error_rate<=1%`` -> Slo; every problem names its field."""
    limits: list[Limit] = []
    max_error_rate: float | None = None
    for raw in str(text).split(","):
        term = raw.strip()
        if not term:
            continue
        match = _TERM.match(term)
        if match is None:
            raise ConfigError([Issue("slo", term, _ALLOWED_TERMS)])
        name = match["name"]
        if name == ERROR_RATE:
            if match["pct"] is not None:
                raise ConfigError([Issue(f"slo.{ERROR_RATE}", term, "takes no percentile: error_rate<=0.01")])
            max_error_rate = _value(match["value"], f"slo.{ERROR_RATE}")
            continue
        if name not in METRICS:
            raise ConfigError([Issue("slo.metric", name, f"must be one of {', '.join(METRICS)} or {ERROR_RATE}")])
        limits.append(Limit(name, _percentile(match["pct"], term), _value(match["value"], f"slo.{name}.limit")))
    return Slo(tuple(limits), max_error_rate)
