"""The benchmark stack alarms on the run-over-run regression the aggregation publishes (benchmark/sizing)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmark.sizing.regression import WORST_METRIC
from catalog.errors import ConfigError
from settings.benchmark_options import parse_benchmark_option
from tests.conftest import AppAssembly

NAMESPACE = "LlamaBenchmark"  # what the aggregate function publishes to (its METRICS_NAMESPACE)


def _regression_alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("MetricName") == WORST_METRIC
    ]


def test_benchmark_stack_alarms_on_the_worst_regression(app_assembly: AppAssembly) -> None:
    template = app_assembly.template_json("LlamaBenchmarkStack")
    [alarm] = _regression_alarms(template)
    assert alarm["Namespace"] == NAMESPACE
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (10.0, "GreaterThanThreshold")
    assert (alarm["Statistic"], alarm["Period"], alarm["TreatMissingData"]) == ("Maximum", 86400, "notBreaching")
    topics = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    assert alarm["AlarmActions"] == [{"Ref": topics[0]}]
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    namespaces = {f["Properties"]["Environment"]["Variables"].get("METRICS_NAMESPACE") for f in functions}
    assert NAMESPACE in namespaces  # the alarm watches where the aggregation publishes


def test_regression_threshold_is_an_option() -> None:
    assert parse_benchmark_option("regression_alarm_pct=25").regression_alarm_pct == 25.0
    with pytest.raises(ConfigError, match=r"benchmark\.regression_alarm_pct"):
        parse_benchmark_option("regression_alarm_pct=-5")
