"""Scheduled runs notice regressions: each run against the previous run of the same configuration.

Per (configuration, concurrency) measured in both runs: the relative change of ms/token (median, p90) and TTFT
(median, p90), signed so that a positive change is worse (slower). Per configuration, when an SLO is given: the
change of its capacity under the SLO (a lower capacity is worse). The state machine's aggregation publishes
every change as a CloudWatch metric plus ``WorstRegressionPct`` (the largest worsening of the run), which the
benchmark stack alarms on; the trend table shows each figure across the last runs.

The previous run is found by time: runs live under ``<results prefix><run id>/levels/`` and run ids are random,
so runs are ordered by the newest ``LastModified`` of their level objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from benchmark.collect import collect_results
from benchmark.results import LevelResult
from benchmark.sizing.capacity import capacity_of
from benchmark.sizing.levels import MeasuredLevel, by_configuration
from benchmark.sizing.slo import Slo

# compared figure (metric.percentile of a level) -> CloudWatch metric name of its change
LEVEL_FIGURES: Mapping[str, str] = {
    "ms_per_token.median": "MsPerTokenMedianChangePct",
    "ms_per_token.p90": "MsPerTokenP90ChangePct",
    "ttft_ms.median": "TimeToFirstTokenMedianChangePct",
    "ttft_ms.p90": "TimeToFirstTokenP90ChangePct",
}
CAPACITY_METRIC = "CapacityUnderSloChangePct"
WORST_METRIC = "WorstRegressionPct"


@dataclass(frozen=True)
class Change:
    configuration: str  # configuration key
    concurrency: int | None  # None for the capacity figure
    figure: str
    previous: float
    current: float

    @property
    def worse_pct(self) -> float:
        """Relative worsening in percent: slower latency, or lower capacity, is positive."""
        if self.figure == "capacity":
            return (self.previous - self.current) / self.previous * 100.0
        return (self.current - self.previous) / self.previous * 100.0


def _figure(result: LevelResult, figure: str) -> float | None:
    metric, name = figure.split(".")
    value: float | None = getattr(result.metrics, metric).get(name)
    return value


def compare(current: Sequence[LevelResult], previous: Sequence[LevelResult], *, slo: Slo | None = None) -> list[Change]:
    """Changes from ``previous`` to ``current`` for every level and figure both runs measured."""
    before = {r.level_key: r for r in previous if r.measured}
    changes: list[Change] = []
    for result in sorted((r for r in current if r.measured), key=lambda r: r.level_key):
        old = before.get(result.level_key)
        if old is None:
            continue
        for figure in LEVEL_FIGURES:
            now, then = _figure(result, figure), _figure(old, figure)
            if now is not None and then:
                changes.append(Change(result.configuration.key, result.concurrency, figure, then, now))
    if slo is not None:
        changes += _capacity_changes(current, previous, slo)
    return changes


def _capacities(results: Sequence[LevelResult], slo: Slo) -> dict[str, float | None]:
    grouped = by_configuration(MeasuredLevel(r) for r in results if r.measured)
    return {key: capacity_of(levels, slo).capacity for key, levels in grouped.items()}


def _capacity_changes(current: Sequence[LevelResult], previous: Sequence[LevelResult], slo: Slo) -> list[Change]:
    now, then = _capacities(current, slo), _capacities(previous, slo)
    out = []
    for key in sorted(set(now) & set(then)):
        old = then[key]
        if old:  # a configuration that met the SLO before; now it may meet it less (or not at all: 0)
            out.append(Change(key, None, "capacity", old, now[key] or 0.0))
    return out


def metric_data(changes: Sequence[Change], results: Sequence[LevelResult], timestamp: datetime) -> list[dict[str, Any]]:
    """PutMetricData entries: every change (dimensioned like the headline metrics) and the run's worst one."""
    configurations = {r.configuration.key: r.configuration for r in results}
    data: list[dict[str, Any]] = []
    for change in changes:
        c = configurations[change.configuration]
        dimensions = [
            {"Name": "Model", "Value": c.model},
            {"Name": "Quantization", "Value": c.quantization},
            {"Name": "InstanceType", "Value": c.instance_type},
        ]
        if change.concurrency is not None:
            dimensions.append({"Name": "Concurrency", "Value": str(change.concurrency)})
        name = CAPACITY_METRIC if change.figure == "capacity" else LEVEL_FIGURES[change.figure]
        data.append(
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": timestamp,
                "Value": change.worse_pct,
                "Unit": "Percent",
            }
        )
    if changes:
        worst = max(change.worse_pct for change in changes)
        data.append({"MetricName": WORST_METRIC, "Timestamp": timestamp, "Value": worst, "Unit": "Percent"})
    return data


def run_ids_newest_first(s3: Any, bucket: str, results_prefix: str) -> list[str]:
    """Run ids under the prefix, newest first by their level objects' LastModified."""
    newest: dict[str, datetime] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=results_prefix):
        for item in page.get("Contents", []):
            run_id, _, rest = str(item["Key"])[len(results_prefix) :].partition("/")
            if rest.startswith("levels/"):
                stamp = item["LastModified"]
                newest[run_id] = max(stamp, newest.get(run_id, stamp))
    return sorted(newest, key=lambda r: newest[r], reverse=True)


def previous_results(
    s3: Any, bucket: str, results_prefix: str, run_id: str, current: Sequence[LevelResult], *, max_runs: int = 10
) -> list[LevelResult]:
    """For each configuration of ``current``, its levels from the newest earlier run that measured it."""
    wanted = {r.configuration.key for r in current}
    found: list[LevelResult] = []
    ids = run_ids_newest_first(s3, bucket, results_prefix)
    earlier = ids[ids.index(run_id) + 1 :] if run_id in ids else ids
    for other in earlier[:max_runs]:
        results = collect_results([f"s3://{bucket}/{results_prefix}{other}/levels/"], s3_client=s3)
        hits = [r for r in results if r.configuration.key in wanted]
        found += hits
        wanted -= {r.configuration.key for r in hits}
        if not wanted:
            break
    return found


def trend(
    runs: Sequence[tuple[str, Sequence[LevelResult]]], figure: str = "ms_per_token.p90"
) -> dict[tuple[str, int], list[float | None]]:
    """One figure per (configuration, concurrency) across runs (oldest first), None where a run lacks it."""
    keys = sorted({r.level_key for _, results in runs for r in results if r.measured})
    table: dict[tuple[str, int], list[float | None]] = {key: [] for key in keys}
    for _, results in runs:
        by_key = {r.level_key: r for r in results if r.measured}
        for key in keys:
            table[key].append(_figure(by_key[key], figure) if key in by_key else None)
    return table
