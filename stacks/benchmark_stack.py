"""BenchmarkStack: runs benchmark matrices on AWS, on a schedule, and never leaves an endpoint running."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns

from benchmark.matrix import Matrix, load_matrix
from constructs import Construct
from constructs.benchmark_state_machine import (
    BENCHMARK_TAG,
    RESULTS_PREFIX,
    TTL_TAG,
    BenchmarkStateMachine,
    BenchmarkStateMachineProps,
)
from constructs.benchmark_support import (
    BenchmarkSchedule,
    JanitorProps,
    JanitorSchedule,
    ModelRole,
    ModelRoleProps,
    ResultsBucket,
    ResultsBucketProps,
    ScheduleProps,
)
from constructs.encryption import Encryption, EncryptionProps
from constructs.execution_role import nag_name
from constructs.python_function import PythonFunction, PythonFunctionProps
from constructs.regression_alarm import RegressionAlarm, RegressionAlarmProps
from settings.benchmark_options import BenchmarkOptions

METRICS_NAMESPACE = "LlamaBenchmark"
_LIBRARY = ("benchmark", "catalog", "settings")
_THIRD_PARTY = ("jinja2", "markupsafe", "yaml")


@dataclass(frozen=True, kw_only=True)
class BenchmarkStackProps:
    weights_key: kms.IKey  # the foundation's key: benchmark models only decrypt the weights with it
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    endpoint_security_group: ec2.ISecurityGroup
    lambda_security_group: ec2.ISecurityGroup
    weights_bucket: s3.IBucket
    access_log_bucket: s3.IBucket | None = None
    options: BenchmarkOptions = field(default_factory=BenchmarkOptions)
    matrices: Mapping[str, Matrix] | None = None  # default: load options.matrices from benchmark/matrices/


class BenchmarkStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, props: BenchmarkStackProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        opts = props.options
        # Its own key for results, logs, topic and state machine: the benchmark's grants (log delivery,
        # Step Functions) then never widen the foundation key's policy, and tearing down the benchmark
        # leaves the production key untouched.
        self.encryption = Encryption(
            self,
            "Encryption",
            # No alarm publishes to the benchmark's topic (the state machine does), so CloudWatch gets no key grant.
            props=EncryptionProps(description="Llama 2 benchmark: results, logs, topic, runs", alarm_publishers=()),
        )
        key = self.encryption.key
        matrices = dict(props.matrices or {n: load_matrix(n, prefix=opts.prefix) for n in opts.matrices})
        parallel = opts.max_parallel_endpoints or min(m.max_parallel_endpoints for m in matrices.values())
        versions = tuple(sorted({str(c.deployment.tgi_version) for m in matrices.values() for c in m.configurations}))

        # A named export when the weights bucket lives in another stack, so the IAM finding id is stable.
        owner = cdk.Stack.of(props.weights_bucket)
        self.weights_export = f"{self.stack_name}-WeightsBucketArn" if owner is not self else None
        self.weights_arn = (
            owner.export_value(props.weights_bucket.bucket_arn, name=self.weights_export)
            if self.weights_export
            else props.weights_bucket.bucket_arn
        )
        self.results = ResultsBucket(
            self, "Results", props=ResultsBucketProps(key=key, access_log_bucket=props.access_log_bucket)
        )
        self.topic = sns.Topic(self, "Notifications", master_key=key, enforce_ssl=True)
        self.model_role = ModelRole(
            self,
            "ModelRole",
            props=ModelRoleProps(
                key=props.weights_key,
                vpc=props.vpc,
                weights_bucket_arn=self.weights_arn,
                tgi_versions=versions,
                prefix=opts.prefix,
            ),
        )

        def function(name: str, description: str, **kw: object) -> PythonFunction:
            return PythonFunction(
                self,
                name.title().replace("_", ""),
                props=PythonFunctionProps(
                    name=name,
                    description=description,
                    project_packages=_LIBRARY,
                    third_party=_THIRD_PARTY,
                    key=key,
                    vpc=props.vpc,
                    subnets=props.subnets,
                    security_group=props.lambda_security_group,
                    **kw,  # type: ignore[arg-type]
                ),
            )

        bucket = self.results.bucket
        self.load_test = function(
            "loadtest",
            "Runs one concurrency level against a benchmark endpoint and stores its record",
            timeout=cdk.Duration.minutes(15),
            memory_mb=1024,
            reserved_concurrency=max(parallel, 1),
            environment={"RESULTS_BUCKET": bucket.bucket_name, "RESULTS_PREFIX": RESULTS_PREFIX},
        )
        self.aggregate = function(
            "aggregate",
            "Renders a benchmark run's report and publishes its headline metrics",
            timeout=cdk.Duration.minutes(5),
            reserved_concurrency=2,
            environment={
                "RESULTS_BUCKET": bucket.bucket_name,
                "RESULTS_PREFIX": RESULTS_PREFIX,
                "METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        self.janitor = function(
            "janitor",
            "Deletes benchmark endpoints, configs and models tagged llama-benchmark=true past their TTL",
            timeout=cdk.Duration.minutes(5),
            reserved_concurrency=1,
            environment={
                "TAG_KEY": BENCHMARK_TAG,
                "TTL_TAG_KEY": TTL_TAG,
                "DEFAULT_TTL_HOURS": str(opts.ttl_hours),
                "NAME_PREFIX": f"{opts.prefix}-",
            },
        )
        objects = bucket.arn_for_objects(f"{RESULTS_PREFIX}*")
        self.load_test.role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[objects]))
        self.aggregate.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[objects])
        )
        self.aggregate.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{RESULTS_PREFIX}*"]}},
            )
        )
        # Results are SSE-KMS, and each function's dead-letter queue is encrypted with the key: Lambda sends a failed
        # asynchronous event there with the function's role, which SQS then needs to use the key for.
        for fn in (self.load_test, self.aggregate, self.janitor):
            key.grant(fn.role, "kms:GenerateDataKey", "kms:Decrypt")
        self.load_test.role.add_to_principal_policy(_metric_read())  # the endpoint's utilisation after a level
        self.aggregate.role.add_to_principal_policy(_metric_put())
        self.load_test.role.add_to_principal_policy(_invoke_benchmark_endpoints(self, opts.prefix))

        self.state_machine = BenchmarkStateMachine(
            self,
            "Runner",
            props=BenchmarkStateMachineProps(
                matrices=matrices,
                key=key,
                vpc=props.vpc,
                subnets=props.subnets,
                endpoint_security_group=props.endpoint_security_group,
                weights_bucket=props.weights_bucket,
                results_bucket=bucket,
                execution_role=self.model_role.role,
                load_test_function=self.load_test.function,
                aggregate_function=self.aggregate.function,
                topic=self.topic,
                max_parallel_endpoints=parallel,
                prefix=opts.prefix,
                endpoint_ttl_hours=opts.ttl_hours,
            ),
        )
        self.schedule = BenchmarkSchedule(
            self,
            "Schedule",
            props=ScheduleProps(
                state_machine=self.state_machine.state_machine,
                matrix=opts.schedule_matrix,
                expression=opts.schedule,
                enabled=opts.enabled,
                key=key,
            ),
        )
        self.janitor_schedule = JanitorSchedule(
            self,
            "JanitorSchedule",
            props=JanitorProps(function=self.janitor.function, role=self.janitor.role, rate=cdk.Duration.hours(1)),
            tag_key=BENCHMARK_TAG,
        )
        self.regression_alarm = RegressionAlarm(
            self,
            "RegressionAlarm",
            props=RegressionAlarmProps(
                namespace=METRICS_NAMESPACE, threshold_pct=opts.regression_alarm_pct, topic=self.topic
            ),
        )
        _acknowledge(self, opts.prefix)
        cdk.CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "ResultsBucketName", value=bucket.bucket_name)


def _metric_read() -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"])


def _metric_put() -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["cloudwatch:PutMetricData"],
        resources=["*"],
        conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
    )


def _invoke_benchmark_endpoints(stack: cdk.Stack, prefix: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
        resources=[stack.format_arn(service="sagemaker", resource="endpoint", resource_name=f"{prefix}-*")],
    )


def _acknowledge(self: BenchmarkStack, prefix: str) -> None:
    """Findings that remain after scoping every statement to this stack's resources, with the reason."""
    results = f"Resource::<{self.get_logical_id(self.results.bucket.node.default_child)}.Arn>/{RESULTS_PREFIX}*"  # type: ignore[arg-type]
    # How cdk-nag prints them: <AWS::Region> etc. when environment-agnostic, literals inside a pipeline stage.
    partition, region, account = (nag_name(self, v) for v in (self.partition, self.region, self.account))
    sagemaker = f"Resource::arn:{partition}:sagemaker:{region}:{account}"
    inline = cdk.Acknowledgment(
        id="NIST.800.53.R5-IAMNoInlinePolicy",
        reason="CDK grants write this role's own policy, scoped to this stack's resources; "
        "a separate managed policy would hold the same statements",
    )
    for role in (
        self.load_test.role,
        self.aggregate.role,
        self.janitor.role,
        self.model_role.role,
        self.state_machine.role,
        self.schedule.role,
    ):
        cdk.Validations.of(role).acknowledge(inline)
    objects = cdk.Acknowledgment(
        id=f"AwsSolutions-IAM5[{results}]",
        reason="one object per run, configuration and level under the results prefix; names are made at run time",
    )
    for role in (self.load_test.role, self.aggregate.role, self.state_machine.role):
        cdk.Validations.of(role).acknowledge(objects)
    cdk.Validations.of(self.load_test.role).acknowledge(
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[{sagemaker}:endpoint/{prefix}-*]",
            reason="benchmark endpoints are named per run; the prefix limits the function to them",
        )
    )
    for kind in ("endpoint", "endpoint-config", "model"):
        cdk.Validations.of(self.state_machine.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[{sagemaker}:{kind}/{prefix}-*]",
                reason="names carry the run id, made at run time; the benchmark prefix limits the state "
                "machine to its own models, configs and endpoints",
            )
        )
        cdk.Validations.of(self.janitor.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[{sagemaker}:{kind}/*]",
                reason="deletes are conditioned on aws:ResourceTag/llama-benchmark=true, so only "
                "tagged benchmark resources can be deleted",
            )
        )
    for fn in (self.load_test, self.aggregate):
        cdk.Validations.of(self.state_machine.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(fn.function.node.default_child)}.Arn>:*]",  # type: ignore[arg-type]
                reason="LambdaInvoke grants the function's versions and aliases; only this function",
            )
        )
    cdk.Validations.of(self.state_machine.role).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray PutTraceSegments and GetSamplingRules have no resource-level permissions",
        )
    )
    model = self.model_role.role
    cdk.Validations.of(model).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken, the ec2:Describe* calls SageMaker makes for a VpcConfig and "
            "cloudwatch:PutMetricData (conditioned on the SageMaker namespaces) have no resource-level permissions; "
            "the network-interface actions are held to the VPC by ec2:Vpc",
        ),
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{self.weights_export or '<weights bucket>'}/models/*]",
            reason="benchmark models read any staged model's weights; all of them live under models/",
        ),
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:{partition}:ecr:{region}:*:repository/"
            "huggingface-pytorch-tgi-inference]",
            reason="the TGI image lives in an AWS-owned account that differs by region (vendored table)",
        ),
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:{partition}:logs:{region}:{account}:"
            f"log-group:/aws/sagemaker/Endpoints/{prefix}-*]",
            reason="SageMaker writes endpoint logs to a group named after the endpoint, made at run time",
        ),
    )
