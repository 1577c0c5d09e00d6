"""The aggregate Lambda: a run's report to the results bucket, its headline metrics to CloudWatch."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from benchmark.aws.contract import METRICS_NAMESPACE, RESULTS_PREFIX, AggregateEnvironment
from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import acknowledge_results_objects
from llama_constructs.benchmark.benchmark_function import ResultsFunctionProps, benchmark_function


class AggregateFunction(Construct):
    """Exposes ``.function``, ``.role`` and ``.namespace`` (where it publishes, for alarms on its metrics)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ResultsFunctionProps) -> None:
        super().__init__(scope, construct_id)
        bucket = props.results_bucket
        self.namespace = METRICS_NAMESPACE
        environment = AggregateEnvironment(
            results_bucket=bucket.bucket_name, results_prefix=RESULTS_PREFIX, metrics_namespace=self.namespace
        )
        self.python_function = benchmark_function(
            self,
            name="aggregate",
            description="Renders a benchmark run's report and publishes its headline metrics",
            placement=props.placement,
            environment=environment.variables(),
            timeout=cdk.Duration.minutes(5),
        )
        self.function, self.role = self.python_function.function, self.python_function.role
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}*")]
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{RESULTS_PREFIX}*"]}},
            )
        )
        props.placement.key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self.namespace}},
            )
        )
        acknowledge_results_objects(self.role, bucket)
