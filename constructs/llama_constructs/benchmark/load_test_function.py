"""The load-test Lambda: one concurrency level against a benchmark endpoint, its record to the results bucket; or one
shard of a fanned-out level (its raw records under the shards prefix), or the merge of a level's shards."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from benchmark.aws.contract import NAME_PREFIX, RESULTS_PREFIX, LoadTestEnvironment, LoadTestSizing, shards_prefix
from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import (
    acknowledge_results_objects,
    arn_ref,
    sagemaker_arn_prefix,
)
from llama_constructs.benchmark.benchmark_function import ResultsFunctionProps, benchmark_function


@dataclass(frozen=True, kw_only=True)
class LoadTestFunctionProps(ResultsFunctionProps):
    sizing: LoadTestSizing  # its memory, and so its vCPUs: LoadTestSizing.for_levels(every level it will run)
    prefix: str = NAME_PREFIX  # it may invoke only endpoints named with it

    def __post_init__(self) -> None:
        if not isinstance(self.sizing, LoadTestSizing):
            raise TypeError(f"sizing must be a LoadTestSizing, not {type(self.sizing).__name__}")


class LoadTestFunction(Construct):
    """Exposes ``.function`` and ``.role``: writes level records, reads endpoint metrics, invokes the endpoints."""

    def __init__(self, scope: Construct, construct_id: str, *, props: LoadTestFunctionProps) -> None:
        super().__init__(scope, construct_id)
        bucket = props.results_bucket
        environment = LoadTestEnvironment(results_bucket=bucket.bucket_name, results_prefix=RESULTS_PREFIX)
        self.python_function = benchmark_function(
            self,
            name="loadtest",
            description="Runs one concurrency level against a benchmark endpoint and stores its record",
            placement=props.placement,
            environment=environment.variables(),
            timeout=cdk.Duration.minutes(15),
            memory_mb=props.sizing.memory_mb,
        )
        self.function, self.role = self.python_function.function, self.python_function.role
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}*")])
        )
        # A fanned-out level's merge reads back what its shards wrote: only the shards prefix of any run.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{shards_prefix(RESULTS_PREFIX, '*')}*")]
            )
        )
        props.placement.key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")
        # The endpoint's utilisation after a level; GetMetricData has no resource type.
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]))
        endpoints = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=f"{props.prefix}-*"
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
                resources=[endpoints],
            )
        )
        acknowledge_results_objects(self.role, bucket)
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{arn_ref(bucket)}/{shards_prefix(RESULTS_PREFIX, '*')}*]",
                reason="a fanned-out level's merge reads its shards' records; the run id in the key is made at run "
                "time, and the shards prefix keeps every level record, failure and report out of reach",
            )
        )
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[{sagemaker_arn_prefix(self)}:endpoint/{props.prefix}-*]",
                reason="benchmark endpoints are named per run; the prefix limits the function to them",
            )
        )
