"""The ``benchmark`` app option: whether BenchmarkStack is built, which matrices it carries, its schedule.

From cdk context as a mapping (cdk.json / config) or a string of ``key=value`` pairs separated by ``;``:
``-c benchmark="matrices=2023,smoke;schedule=rate(7 days);schedule_matrix=smoke;enabled=true"``,
or ``-c benchmark=off`` to leave the stack out. The schedule is off unless ``enabled=true``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.aws.contract import NAME_PREFIX
from benchmark.sizing.slo import parse_slo
from catalog.errors import ConfigError, Issue

_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$")
_KEYS = {
    "include",
    "matrices",
    "schedule",
    "schedule_matrix",
    "enabled",
    "max_parallel_endpoints",
    "ttl_hours",
    "prefix",
    "regression_alarm_pct",
    "slo",
}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class BenchmarkOptions:
    include: bool = True
    matrices: tuple[str, ...] = ("2023", "smoke")
    schedule: str = "rate(7 days)"
    schedule_matrix: str = "smoke"
    enabled: bool = False  # the schedule's state; off unless asked
    max_parallel_endpoints: int | None = None  # None: the smallest of the matrices' own limits
    ttl_hours: int = 6
    prefix: str = NAME_PREFIX
    regression_alarm_pct: float = 10.0  # alarm when a run is this much worse than the previous (benchmark/sizing)
    slo: str | None = None  # e.g. "ttft_ms.p90<=1500,ms_per_token.p90<=60": scheduled runs also compare capacity


def _bool(key: str, value: Any, issues: list[Issue]) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool):
        return value
    if text in _TRUE | _FALSE:
        return text in _TRUE
    issues.append(Issue(f"benchmark.{key}", value, "must be true or false"))
    return False


def parse_benchmark_option(raw: Any) -> BenchmarkOptions:
    if raw is None or raw == "":
        return BenchmarkOptions()
    if isinstance(raw, str) and raw.strip().lower() in _FALSE:
        return BenchmarkOptions(include=False)
    if isinstance(raw, str):
        pairs = [p.split("=", 1) for p in raw.split(";") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError([Issue("benchmark", raw, "must be 'off' or key=value pairs separated by ';'")])
        values: Mapping[str, Any] = {k.strip(): v.strip() for k, v in pairs}
    elif isinstance(raw, Mapping):
        values = raw
    else:
        raise ConfigError([Issue("benchmark", raw, "must be a mapping or a string of key=value pairs")])
    issues = [
        Issue(f"benchmark.{k}", v, f"unknown key; known: {', '.join(sorted(_KEYS))}")
        for k, v in values.items()
        if k not in _KEYS
    ]
    out: dict[str, Any] = {}
    for key in ("include", "enabled"):
        if key in values:
            out[key] = _bool(key, values[key], issues)
    if "matrices" in values:
        m = values["matrices"]
        names = tuple(x.strip() for x in (m if isinstance(m, list) else str(m).split(",")) if x.strip())
        if not names:
            issues.append(Issue("benchmark.matrices", m, "must name at least one matrix"))
        out["matrices"] = names
    if "schedule" in values:
        if not _SCHEDULE.match(str(values["schedule"])):
            issues.append(Issue("benchmark.schedule", values["schedule"], "must be rate(N unit) or cron(...)"))
        out["schedule"] = str(values["schedule"])
    for key in ("max_parallel_endpoints", "ttl_hours"):
        if key in values:
            try:
                number = int(values[key])
                if number < 1:
                    raise ValueError
                out[key] = number
            except (TypeError, ValueError):
                issues.append(Issue(f"benchmark.{key}", values[key], "must be a positive whole number"))
    if "regression_alarm_pct" in values:
        try:
            out["regression_alarm_pct"] = float(values["regression_alarm_pct"])
            if not out["regression_alarm_pct"] > 0:
                raise ValueError
        except (TypeError, ValueError):
            issues.append(Issue("benchmark.regression_alarm_pct", values["regression_alarm_pct"], "must be > 0 (%)"))
    if "slo" in values:
        try:
            parse_slo(str(values["slo"]))
            out["slo"] = str(values["slo"])
        except ConfigError as err:
            issues += [Issue(f"benchmark.{issue.field}", issue.value, issue.allowed) for issue in err.issues]
    for key in ("schedule_matrix", "prefix"):
        if key in values:
            out[key] = str(values[key])
    options = BenchmarkOptions(**out)
    if options.schedule_matrix not in options.matrices:
        issues.append(
            Issue("benchmark.schedule_matrix", options.schedule_matrix, f"must be one of {', '.join(options.matrices)}")
        )
    if issues:
        raise ConfigError(issues, context="benchmark option")
    return options
