"""Run-over-run comparison: hand-computed changes, the metrics published, and the previous run found in S3 (moto)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from benchmark.analysis.results import LevelResult, S3ResultsStore
from benchmark.aws.aggregate import aggregate_run
from benchmark.aws.contract import levels_prefix
from benchmark.sizing.regression import (
    WORST_METRIC,
    compare,
    metric_data,
    previous_results,
    run_ids_newest_first,
    trend,
)
from benchmark.sizing.slo import parse_slo
from tests.benchmark.factories import result


def test_slower_is_a_positive_change_and_faster_a_negative_one() -> None:
    previous = [
        result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0),
        result("7b", "gptq", "ml.g5.2xlarge", 10, 150.0, 50.0),
    ]
    current = [
        result("7b", "gptq", "ml.g5.2xlarge", 5, 110.0, 44.0),
        result("7b", "gptq", "ml.g5.2xlarge", 10, 150.0, 45.0),
    ]
    changes = {(c.concurrency, c.figure): c.worse_pct for c in compare(current, previous)}
    assert changes == {
        (5, "ms_per_token.median"): pytest.approx(10.0),
        (10, "ms_per_token.median"): pytest.approx(-10.0),
    }


def test_capacity_under_the_slo_is_compared_per_configuration() -> None:
    def run(ms_at_10: float) -> list[LevelResult]:
        return [
            result("7b", "gptq", "ml.g5.2xlarge", c, 100.0, ms)
            for c, ms in ((1, 20.0), (5, 30.0), (10, ms_at_10), (20, 90.0))
        ]

    slo = parse_slo("ms_per_token.median<=50")
    capacity = [c for c in compare(run(60.0), run(45.0), slo=slo) if c.figure == "capacity"]
    assert [(c.previous, c.current, round(c.worse_pct, 9)) for c in capacity] == [(10.0, 5.0, 50.0)]


def test_metric_data_carries_each_change_and_the_worst() -> None:
    previous = [result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0)]
    current = [result("7b", "gptq", "ml.g5.2xlarge", 5, 110.0, 50.0)]
    stamp = datetime(2026, 12, 1, tzinfo=UTC)
    data = metric_data(compare(current, previous), current, stamp)
    assert data[0]["MetricName"] == "MsPerTokenMedianChangePct"
    assert {d["Name"]: d["Value"] for d in data[0]["Dimensions"]} == {
        "Model": "7b",
        "Quantization": "gptq",
        "InstanceType": "ml.g5.2xlarge",
        "Concurrency": "5",
    }
    assert data[-1] == {"MetricName": WORST_METRIC, "Timestamp": stamp, "Value": pytest.approx(25.0), "Unit": "Percent"}
    assert metric_data([], current, stamp) == []


def test_trend_lines_up_each_figure_across_runs() -> None:
    runs = [
        ("a", [result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 40.0)]),
        (
            "b",
            [
                result("7b", "gptq", "ml.g5.2xlarge", 5, 120.0, 42.0),
                result("7b", "gptq", "ml.g5.2xlarge", 10, 1.0, 9.0),
            ],
        ),
    ]
    table = trend(runs, "ms_per_token.median")
    key5 = next(k for k in table if k[1] == 5)
    key10 = next(k for k in table if k[1] == 10)
    assert table[key5] == [40.0, 42.0] and table[key10] == [None, 9.0]


@pytest.mark.slow  # S3 LastModified has one-second resolution: the runs are written a second apart
def test_previous_run_is_the_newest_earlier_run_with_the_configuration() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-results")
        for run_id, ms in (("old", 40.0), ("mid", 41.0), ("now", 50.0)):
            S3ResultsStore("bench-results", f"runs/{run_id}/levels/", s3).append(
                result("7b", "gptq", "ml.g5.2xlarge", 5, 100.0, ms)
            )
            time.sleep(1.05)
        assert run_ids_newest_first(s3, "bench-results", "runs/") == ["now", "mid", "old"]
        current = [result("7b", "gptq", "ml.g5.2xlarge", 5, 100.0, 50.0)]
        found = previous_results(s3, "bench-results", "runs/", "now", current)
        assert [r.metrics.ms_per_token.median for r in found] == [41.0]


@pytest.mark.slow  # two runs a second apart (S3 LastModified resolution)
def test_aggregation_publishes_the_change_and_writes_the_trend() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-results")
        for run_id, ms in (("first", 40.0), ("second", 48.0)):
            level = replace(
                result("7b", "gptq", "ml.g5.2xlarge", 5, 100.0, ms), finished_at=datetime.now(UTC).isoformat()
            )
            S3ResultsStore("bench-results", levels_prefix("runs/", run_id), s3).append(level)
            time.sleep(1.05)
        event = {"run_id": "second", "matrix": "smoke", "configurations": []}
        summary = aggregate_run(
            event, bucket="bench-results", results_prefix="runs/", namespace="Bench", s3=s3, cloudwatch=cloudwatch
        )
        assert summary["regression"]["worst_change_pct"] == pytest.approx(20.0)  # 40 -> 48 ms/token
        names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="Bench")["Metrics"]}
        assert {"MsPerTokenMedianChangePct", WORST_METRIC} <= names
        trend_md = s3.get_object(Bucket="bench-results", Key="runs/second/report/trend.md")["Body"].read().decode()
        assert "| first | second |" in trend_md
