"""Alarms, their notification topic and a dashboard for one endpoint.

The alarms have literal names derived from the endpoint name, because the endpoint's blue/green
``AutoRollbackConfiguration`` names them; deriving both from the deployment avoids a reference cycle.
Units matter here: SageMaker reports ``ModelLatency`` and ``OverheadLatency`` in microseconds, and
``GPUMemoryUtilization`` summed over the instance's GPUs (0..100 x GPUs).

Every alarm and metric widget reads SageMaker's own metrics, the same for either engine. What differs by engine
is the container's log lines: where the engine records some (``catalog.engines.Engine.log_lines``: vLLM's KV cache
size, its API server start and its errors), the dashboard adds one Logs Insights widget over the endpoint's log
group whose title names the engine and version it reads. TGI records none: its dashboard is the one it always had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns

from constructs import Construct
from llama_constructs.common.notification_topic import allow_alarm_notifications
from settings import DeploymentConfig

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
MICROSECONDS_PER_MS = 1000
PERIOD = cdk.Duration.minutes(1)
HIGH_RESOLUTION_PERIOD = cdk.Duration.seconds(10)
EVALUATION_PERIODS = 5
DATAPOINTS_TO_ALARM = 3


@dataclass(frozen=True)
class AlarmNames:
    error_rate: str
    model_latency: str
    gpu_memory: str

    @property
    def rollback(self) -> tuple[str, ...]:
        """The alarms that roll a blue/green update back: errors and latency, not memory pressure."""
        return (self.error_rate, self.model_latency)


def alarm_names(endpoint_name: str) -> AlarmNames:
    return AlarmNames(
        error_rate=f"{endpoint_name}-5xx-rate",
        model_latency=f"{endpoint_name}-model-latency-p90",
        gpu_memory=f"{endpoint_name}-gpu-memory",
    )


@dataclass(frozen=True, kw_only=True)
class EndpointMonitoringProps:
    deployment: DeploymentConfig
    variant_name: str
    key: kms.IKey  # encrypts the topic; its key policy must let cloudwatch.amazonaws.com use it


@dataclass(frozen=True)
class _Metrics:
    """The endpoint's metrics, built with one set of dimensions so no widget or alarm can name another variant."""

    dims: dict[str, str]
    gpus: int

    def get(
        self,
        name: str,
        statistic: str,
        *,
        namespace: str = INVOCATION_NAMESPACE,
        period: cdk.Duration = PERIOD,
        label: str | None = None,
    ) -> cw.Metric:
        return cw.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map=self.dims,
            statistic=statistic,
            period=period,
            label=label,
        )

    def utilisation(self, name: str) -> cw.Metric:
        return self.get(name, "Average", namespace=INSTANCE_NAMESPACE, label=name)

    def error_rate(self) -> cw.MathExpression:
        return cw.MathExpression(
            expression="IF(invocations > 0, 100 * FILL(errors, 0) / invocations, 0)",
            using_metrics={
                "invocations": self.get("Invocations", "Sum"),
                "errors": self.get("Invocation5XXErrors", "Sum"),
            },
            period=PERIOD,
            label="5xx errors (% of invocations)",
        )

    def latency_p90(self) -> cw.Metric:
        return self.get("ModelLatency", "p90", label="ModelLatency p90 (us)")

    def gpu_memory(self) -> cw.MathExpression:
        return cw.MathExpression(
            expression=f"gpumem / {self.gpus}",
            using_metrics={"gpumem": self.get("GPUMemoryUtilization", "Maximum", namespace=INSTANCE_NAMESPACE)},
            period=PERIOD,
            label=f"GPU memory (% per GPU, {self.gpus} GPUs)",
        )


class EndpointMonitoring(Construct):
    """Exposes ``.alarms`` (by purpose), ``.alarm_names``, ``.topic`` and ``.dashboard``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: EndpointMonitoringProps) -> None:
        super().__init__(scope, construct_id)
        deployment = props.deployment
        endpoint_name = str(deployment.endpoint_name)
        metrics = _Metrics(
            dims={"EndpointName": endpoint_name, "VariantName": props.variant_name},
            gpus=deployment.instance.gpu_count,
        )
        self.alarm_names = alarm_names(endpoint_name)
        self.topic = self._topic(endpoint_name, props.key)
        self._add_alarms(deployment, metrics, cw_actions.SnsAction(self.topic))
        allow_alarm_notifications(self.topic, alarms=list(self.alarms.values()), sid="CloudWatchAlarms")
        self.dashboard = self._dashboard(endpoint_name, deployment, metrics)

    def _topic(self, endpoint_name: str, key: kms.IKey) -> sns.Topic:
        topic = sns.Topic(
            self, "Topic", display_name=f"Alarms of endpoint {endpoint_name}", master_key=key, enforce_ssl=True
        )
        return topic

    def _alarm(
        self,
        construct_id: str,
        name: str,
        source: cw.IMetric,
        threshold: float,
        description: str,
        *,
        action: cw.IAlarmAction,
    ) -> cw.Alarm:
        created = cw.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=source,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=EVALUATION_PERIODS,
            datapoints_to_alarm=DATAPOINTS_TO_ALARM,
            # No traffic (or no instance metrics yet) is not a failure, and must not roll an update back.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        created.add_alarm_action(action)
        created.add_ok_action(action)
        return created

    def _add_alarms(self, deployment: DeploymentConfig, metrics: _Metrics, action: cw.IAlarmAction) -> None:
        self.error_rate_alarm = self._alarm(
            "ErrorRate",
            self.alarm_names.error_rate,
            metrics.error_rate(),
            deployment.alarm_5xx_rate_pct,
            f"More than {deployment.alarm_5xx_rate_pct}% of invocations returned 5xx; rolls back a blue/green update",
            action=action,
        )
        self.model_latency_alarm = self._alarm(
            "ModelLatency",
            self.alarm_names.model_latency,
            metrics.latency_p90(),
            deployment.alarm_model_latency_p90_ms * MICROSECONDS_PER_MS,
            f"ModelLatency p90 above {deployment.alarm_model_latency_p90_ms} ms; rolls back a blue/green update",
            action=action,
        )
        self.gpu_memory_alarm = self._alarm(
            "GpuMemory",
            self.alarm_names.gpu_memory,
            metrics.gpu_memory(),
            deployment.alarm_gpu_memory_pct,
            f"GPU memory above {deployment.alarm_gpu_memory_pct}% per GPU on the busiest instance",
            action=action,
        )
        self.alarms: dict[str, cw.Alarm] = {
            "error_rate": self.error_rate_alarm,
            "model_latency": self.model_latency_alarm,
            "gpu_memory": self.gpu_memory_alarm,
        }

    def _dashboard(self, endpoint_name: str, deployment: DeploymentConfig, metrics: _Metrics) -> cw.Dashboard:
        metric = metrics.get
        gpus = metrics.gpus
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=endpoint_name)
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Invocations and errors",
                left=[
                    metric("Invocations", "Sum"),
                    metric("Invocation4XXErrors", "Sum"),
                    metric("Invocation5XXErrors", "Sum"),
                ],
                right=[metrics.error_rate()],
                width=12,
            ),
            cw.GraphWidget(
                title="Latency (microseconds)",
                left=[
                    metric("ModelLatency", "p50", label="ModelLatency p50"),
                    metrics.latency_p90(),
                    metric("ModelLatency", "p99", label="ModelLatency p99"),
                    metric("OverheadLatency", "p90", label="OverheadLatency p90"),
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=deployment.alarm_model_latency_p90_ms * MICROSECONDS_PER_MS, label="p90 alarm"
                    )
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Concurrent requests per model (autoscaling metric, 10 s)",
                left=[
                    metric("ConcurrentRequestsPerModel", "Maximum", period=HIGH_RESOLUTION_PERIOD, label="maximum"),
                    metric("ConcurrentRequestsPerModel", "Average", period=HIGH_RESOLUTION_PERIOD, label="average"),
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(value=float(deployment.autoscaling_target or 0), label="target")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Instances (CPUUtilization samples per minute)",
                left=[
                    metric("CPUUtilization", "SampleCount", namespace=INSTANCE_NAMESPACE, label="instances reporting")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title=f"GPU (% summed over {gpus} GPUs)",
                left=[metrics.utilisation("GPUUtilization"), metrics.utilisation("GPUMemoryUtilization")],
                width=12,
            ),
            cw.GraphWidget(
                title="Host",
                left=[
                    metrics.utilisation("CPUUtilization"),
                    metrics.utilisation("MemoryUtilization"),
                    metrics.utilisation("DiskUtilization"),
                ],
                width=12,
            ),
        )
        log_widget = engine_log_widget(endpoint_name, deployment)
        if log_widget is not None:
            dashboard.add_widgets(log_widget)
        return dashboard


_PLAIN = re.compile(r"^[A-Za-z0-9 ]+$")
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/{}"  # where SageMaker writes the container's stdout and stderr


def engine_log_query(lines: tuple[str, ...]) -> str:
    """Logs Insights: the newest lines holding any of ``lines`` (plain words, so no regex escaping), with their
    instance (the log stream)."""
    bad = [line for line in lines if not _PLAIN.match(line)]
    if bad:
        raise ValueError(f"log lines must be letters, digits and spaces: {bad}")
    pattern = "|".join(lines)
    return "\n".join(
        [
            "fields @timestamp, @logStream, @message",
            f"| filter @message like /{pattern}/",
            "| sort @timestamp desc",
            "| limit 100",
        ]
    )


def engine_log_widget(endpoint_name: str, deployment: DeploymentConfig) -> cw.LogQueryWidget | None:
    """The engine's start-up and error lines, titled with the engine they are that engine's; None where the
    engine records none."""
    engine = deployment.engine_spec
    if not engine.log_lines:
        return None
    return cw.LogQueryWidget(
        title=f"{engine.display_name} {deployment.engine_version} container log: start-up and errors "
        f"({engine.display_name}'s log lines)",
        log_group_names=[ENDPOINT_LOG_GROUP.format(endpoint_name)],
        query_string=engine_log_query(engine.log_lines),
        view=cw.LogQueryVisualizationType.TABLE,
        width=24,
    )
