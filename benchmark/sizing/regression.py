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
from datetime import UTC, datetime
from typing import Any

from benchmark.analysis.collect import collect_results
from benchmark.analysis.results import LevelResult
from benchmark.sizing.capacity import capacity_of
from benchmark.sizing.levels import MeasuredLevel, by_configuration
from benchmark.sizing.slo import Slo, parse_slo

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


def earlier_runs(
    s3: Any, bucket: str, results_prefix: str, run_id: str, *, max_runs: int = 8
) -> list[tuple[str, list[LevelResult]]]:
    """Up to ``max_runs`` runs before ``run_id``, newest first, each with its level results."""
    ids = run_ids_newest_first(s3, bucket, results_prefix)
    earlier = ids[ids.index(run_id) + 1 :] if run_id in ids else ids
    return [
        (other, collect_results([f"s3://{bucket}/{results_prefix}{other}/levels/"], s3_client=s3))
        for other in earlier[:max_runs]
    ]


def previous_of(current: Sequence[LevelResult], runs: Sequence[tuple[str, Sequence[LevelResult]]]) -> list[LevelResult]:
    """For each configuration of ``current``, its levels from the newest of ``runs`` (newest first) that has it."""
    wanted = {r.configuration.key for r in current}
    found: list[LevelResult] = []
    for _, results in runs:
        hits = [r for r in results if r.configuration.key in wanted]
        found += hits
        wanted -= {r.configuration.key for r in hits}
    return found


def previous_results(
    s3: Any, bucket: str, results_prefix: str, run_id: str, current: Sequence[LevelResult], *, max_runs: int = 8
) -> list[LevelResult]:
    return previous_of(current, earlier_runs(s3, bucket, results_prefix, run_id, max_runs=max_runs))


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


# --- what the aggregation step calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunOverRun:
    metric_data: list[dict[str, Any]]
    summary: dict[str, Any]  # for the SNS message


def trend_markdown(runs: Sequence[tuple[str, Sequence[LevelResult]]], figure: str = "ms_per_token.p90") -> str:
    """The trend table (oldest run first) that the aggregation writes next to the run's report."""
    table = trend(runs, figure)
    head = "| configuration | concurrency | " + " | ".join(run_id for run_id, _ in runs) + " |"
    rule = "|---|---|" + "---|" * len(runs)
    rows = [
        f"| {key} | {concurrency} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in values) + " |"
        for (key, concurrency), values in table.items()
    ]
    return "\n".join([f"## Trend across runs: {figure}", "", head, rule, *rows, ""])


def run_over_run(
    results: Sequence[LevelResult],
    *,
    run_id: str,
    bucket: str,
    results_prefix: str,
    s3: Any,
    slo: str | None = None,
    trend_key: str | None = None,
    now: datetime | None = None,
) -> RunOverRun:
    """Compare a finished run with the previous run of each configuration; upload the trend when asked."""
    runs = earlier_runs(s3, bucket, results_prefix, run_id)
    previous = previous_of(results, runs)
    changes = compare(results, previous, slo=parse_slo(slo) if slo else None)
    stamp = now or datetime.now(UTC)
    if trend_key:
        body = trend_markdown([*reversed(runs), (run_id, list(results))])
        s3.put_object(Bucket=bucket, Key=trend_key, Body=body.encode("utf-8"), ContentType="text/markdown")
    worst = max(changes, key=lambda c: c.worse_pct, default=None)
    summary: dict[str, Any] = {
        "compared_levels": len({(c.configuration, c.concurrency) for c in changes}),
        "worst_change_pct": None if worst is None else round(worst.worse_pct, 2),
        "worst": None if worst is None else f"{worst.configuration} c={worst.concurrency} {worst.figure}",
    }
    return RunOverRun(metric_data(changes, results, stamp), summary)
