"""What the benchmark state machine works with: its results bucket, the SageMaker role its models run as,
the schedule that starts it, and the janitor that deletes tagged endpoints which outlived their TTL."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn

from catalog.tgi_images import get_image
from constructs import Construct
from constructs.access_log_bucket import AccessLogBucket, AccessLogBucketProps, deliver_logs_by_policy
from constructs.execution_role import VpcAccess, acknowledge_scoped_wildcards
from constructs.kms_bucket import kms_bucket

_LOG_PREFIX = "benchmark-results/"


@dataclass(frozen=True, kw_only=True)
class ResultsBucketProps:
    key: kms.IKey
    access_log_bucket: s3.IBucket | None = None  # a new one is created when the foundation exposes none


class ResultsBucket(Construct):
    """KMS (customer key), TLS-only, versioned, access-logged, no public access."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ResultsBucketProps) -> None:
        super().__init__(scope, construct_id)
        deliver_logs_by_policy(self)
        logs_bucket = props.access_log_bucket
        if logs_bucket is None:
            # Its grant admits this account's deliveries under the prefix; CDK adds one pinned to the results bucket.
            logs_bucket = AccessLogBucket(
                self,
                "AccessLogs",
                props=AccessLogBucketProps(sid="ServerAccessLogsOfTheResultsBucket", object_prefix=_LOG_PREFIX),
            ).bucket
        self.bucket = kms_bucket(self, "Bucket", key=props.key, access_logs=logs_bucket, log_prefix=_LOG_PREFIX)
        cdk.Validations.of(self.bucket).acknowledge(
            cdk.Acknowledgment(
                id="NIST.800.53.R5-S3BucketReplicationEnabled",
                reason="benchmark results are reproducible by re-running the matrix; versioning guards overwrites",
            )
        )


@dataclass(frozen=True, kw_only=True)
class ModelRoleProps:
    key: kms.IKey
    vpc: ec2.IVpc  # benchmark models attach to it; their network interfaces are held to it
    weights_bucket_arn: str  # a plain ARN or an import, so that its nag finding id is predictable
    weights_prefix: str = "models/"  # every model's weights live under it
    tgi_versions: tuple[str, ...] = ()
    prefix: str = "llmbench"


class ModelRole(Construct):
    """The role benchmark models run as: read weights, pull the TGI image, write endpoint logs and metrics."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ModelRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker execution role for benchmark models",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"{props.weights_bucket_arn}/{props.weights_prefix}*"]
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[props.weights_bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{props.weights_prefix}*"]}},
            )
        )
        props.key.grant_decrypt(self.role)
        repositories = sorted({get_image(v).repository for v in props.tgi_versions})
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[
                    stack.format_arn(service="ecr", account="*", resource="repository", resource_name=r)
                    for r in repositories
                ],
            )
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"/aws/sagemaker/Endpoints/{props.prefix}-*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/*"]}},
            )
        )
        vpc_access = VpcAccess(stack, props.vpc)  # the same statements as every endpoint's execution role
        for statement in vpc_access.statements:
            self.role.add_to_principal_policy(statement)
        acknowledge_scoped_wildcards(self.role, vpc_access.wildcard_reasons)


@dataclass(frozen=True, kw_only=True)
class ScheduleProps:
    state_machine: sfn.IStateMachine
    matrix: str
    expression: str  # rate(...) or cron(...)
    enabled: bool = False
    key: kms.IKey | None = None


class BenchmarkSchedule(Construct):
    """EventBridge Scheduler schedule starting the state machine with ``{"matrix": name}``; off by default."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ScheduleProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="lets EventBridge Scheduler start the benchmark state machine, nothing else",
        )
        props.state_machine.grant_start_execution(self.role)
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            description=f"Run the {props.matrix} benchmark matrix",
            schedule_expression=props.expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if props.enabled else "DISABLED",
            kms_key_arn=props.key.key_arn if props.key is not None else None,
            target=scheduler.CfnSchedule.TargetProperty(
                arn=props.state_machine.state_machine_arn,
                role_arn=self.role.role_arn,
                input=json.dumps({"matrix": props.matrix}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=0),
            ),
        )
        if props.key is not None:
            props.key.grant_decrypt(self.role)


@dataclass(frozen=True, kw_only=True)
class JanitorProps:
    function: lambda_.IFunction
    role: iam.IRole
    rate: cdk.Duration


class JanitorSchedule(Construct):
    """Runs the janitor on a fixed rate and lets it delete only resources tagged ``llama-benchmark=true``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: JanitorProps, tag_key: str) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        arns = [
            stack.format_arn(service="sagemaker", resource=kind, resource_name="*")
            for kind in ("endpoint", "endpoint-config", "model")
        ]
        props.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:ListEndpoints",
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListModels",
                    "sagemaker:ListTags",
                ],
                resources=["*"],
            )
        )
        props.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
                resources=arns,
                conditions={"StringEquals": {f"aws:ResourceTag/{tag_key}": "true"}},
            )
        )
        self.rule = events.Rule(
            self, "Rule", schedule=events.Schedule.rate(props.rate), targets=[targets.LambdaFunction(props.function)]
        )
