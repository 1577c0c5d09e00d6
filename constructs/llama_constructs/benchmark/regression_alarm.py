"""An alarm when a scheduled benchmark run is slower than the previous run of the same configuration.

The aggregation step publishes ``WorstRegressionPct`` once per run (``benchmark/sizing/regression.py``): the
largest relative worsening of ms/token, TTFT or capacity under the SLO against each configuration's previous
run. The alarm fires when it exceeds ``threshold_pct`` and notifies the benchmark's encrypted topic, whose policy
admits this alarm (and whose key must admit CloudWatch alarms); a run with nothing to compare publishes nothing,
which is not a breach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns

from benchmark.sizing.regression import WORST_METRIC
from catalog.errors import ConfigError, Issue
from constructs import Construct
from llama_constructs.common.notification_topic import allow_alarm_notifications


@dataclass(frozen=True, kw_only=True)
class RegressionAlarmProps:
    namespace: str
    threshold_pct: float  # alarm when the worst change of a run is above this many percent
    topic: sns.ITopic

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold_pct) and self.threshold_pct > 0):
            raise ConfigError([Issue("regression_alarm_pct", self.threshold_pct, "must be a positive percentage")])


class RegressionAlarm(Construct):
    """Exposes ``.alarm``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: RegressionAlarmProps) -> None:
        super().__init__(scope, construct_id)
        metric = cw.Metric(
            namespace=props.namespace,
            metric_name=WORST_METRIC,
            statistic="Maximum",
            period=cdk.Duration.days(1),
        )
        self.alarm = cw.Alarm(
            self,
            "Alarm",
            metric=metric,
            threshold=props.threshold_pct,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"A scheduled benchmark run is more than {props.threshold_pct:g} % worse than the previous run of "
                "the same configuration (ms/token, TTFT or capacity under the SLO); see the run's trend.md"
            ),
        )
        self.alarm.add_alarm_action(cw_actions.SnsAction(props.topic))
        allow_alarm_notifications(props.topic, alarms=[self.alarm], sid="RegressionAlarm")
