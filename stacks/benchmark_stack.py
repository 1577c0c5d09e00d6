"""BenchmarkStack: runs benchmark matrices on AWS, on a schedule, and never leaves an endpoint running.

It only composes: each construct owns its resources, their permissions and the cdk-nag findings it
acknowledges on them; the state machine and its Lambda functions agree through ``benchmark.aws.contract``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from benchmark.aws.contract import LoadTestSizing
from benchmark.matrix import Matrix, load_matrix
from constructs import Construct
from llama_constructs.benchmark.aggregate_function import AggregateFunction
from llama_constructs.benchmark.benchmark_function import FunctionPlacement, ResultsFunctionProps
from llama_constructs.benchmark.benchmark_janitor import (
    JanitorFunction,
    JanitorFunctionProps,
    JanitorSchedule,
    JanitorScheduleProps,
    StepFunctionsEndpoint,
    StepFunctionsEndpointProps,
    TeardownOnBadEnd,
    TeardownOnBadEndProps,
)
from llama_constructs.benchmark.benchmark_model_role import ModelRole, ModelRoleProps
from llama_constructs.benchmark.benchmark_schedule import BenchmarkSchedule, ScheduleProps
from llama_constructs.benchmark.benchmark_state_machine import BenchmarkStateMachine, BenchmarkStateMachineProps
from llama_constructs.benchmark.load_test_function import LoadTestFunction, LoadTestFunctionProps
from llama_constructs.benchmark.regression_alarm import RegressionAlarm, RegressionAlarmProps
from llama_constructs.benchmark.results_bucket import ResultsBucket, ResultsBucketProps
from llama_constructs.common.encryption import Encryption, EncryptionProps
from llama_constructs.common.notification_topic import NotificationTopic, NotificationTopicProps
from settings.benchmark_options import BenchmarkOptions


@dataclass(frozen=True, kw_only=True)
class BenchmarkStackProps:
    weights_key: kms.IKey  # the foundation's key: benchmark models only decrypt the weights with it
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    endpoint_security_group: ec2.ISecurityGroup
    lambda_security_group: ec2.ISecurityGroup
    interface_endpoint_security_group: ec2.ISecurityGroup  # the foundation's: admits the Lambda group on 443
    weights_bucket: s3.IBucket
    access_log_bucket: s3.IBucket | None = None
    options: BenchmarkOptions = field(default_factory=BenchmarkOptions)
    matrices: Mapping[str, Matrix] | None = None  # default: load options.matrices from benchmark/matrices/


class BenchmarkStack(cdk.Stack):
    """Exposes each construct it composes: ``.results``, ``.topic``, ``.model_role``, ``.load_test``, ``.aggregate``,
    ``.janitor``, ``.state_machine``, ``.schedule``, ``.janitor_schedule``, ``.regression_alarm``, ``.teardown``,
    ``.states_endpoint``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: BenchmarkStackProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        opts = props.options
        # Its own key for results, logs, topic and state machine: the benchmark's grants (log delivery,
        # Step Functions) then never widen the foundation key's policy, and tearing down the benchmark
        # leaves the production key untouched.
        self.encryption = Encryption(
            self,
            "Encryption",
            # The regression alarm publishes to the topic this key encrypts, so CloudWatch alarms get the key grant.
            props=EncryptionProps(description="Llama 2 benchmark: results, logs, topic, runs"),
        )
        key = self.encryption.key
        matrices = dict(props.matrices or {n: load_matrix(n, prefix=opts.prefix) for n in opts.matrices})
        parallel = opts.max_parallel_endpoints or min(m.max_parallel_endpoints for m in matrices.values())
        images = {
            (c.deployment.engine, c.deployment.engine_version): c.deployment.image
            for m in matrices.values()
            for c in m.configurations
        }

        self.weights_export, self.weights_arn = self._weights_arn(props.weights_bucket)
        self.results = ResultsBucket(
            self, "Results", props=ResultsBucketProps(key=key, access_log_bucket=props.access_log_bucket)
        )
        self.notifications = NotificationTopic(self, "Notifications", props=NotificationTopicProps(key=key))
        self.topic = self.notifications.topic
        self.model_role = ModelRole(
            self,
            "ModelRole",
            props=ModelRoleProps(
                key=props.weights_key,
                vpc=props.vpc,
                weights_bucket_arn=self.weights_arn,
                weights_finding=self.weights_export or "<weights bucket>",
                images=tuple(image for _, image in sorted(images.items())),
                prefix=opts.prefix,
            ),
        )
        # The load test's size, from the largest level of every matrix it runs: one value, for the function and
        # for the state machine's shard counts.
        sizing = LoadTestSizing.for_levels([level for m in matrices.values() for level in m.levels])
        self._functions(props, key, sizing)
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
                results_bucket=self.results.bucket,
                execution_role=self.model_role.role,
                load_test_function=self.load_test.function,
                load_test_sizing=sizing,
                aggregate_function=self.aggregate.function,
                topic=self.topic,
                max_parallel_endpoints=parallel,
                prefix=opts.prefix,
                endpoint_ttl_hours=opts.ttl_hours,
                slo=opts.slo,
            ),
        )
        self._triggers(props, key)
        cdk.CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "ResultsBucketName", value=self.results.bucket.bucket_name)

    def _weights_arn(self, bucket: s3.IBucket) -> tuple[str | None, str]:
        """A named export when the weights bucket lives in another stack, so the IAM finding id is stable."""
        owner = cdk.Stack.of(bucket)
        export = f"{self.stack_name}-WeightsBucketArn" if owner is not self else None
        return export, owner.export_value(bucket.bucket_arn, name=export) if export else bucket.bucket_arn

    def _functions(self, props: BenchmarkStackProps, key: kms.IKey, sizing: LoadTestSizing) -> None:
        opts = props.options
        placement = FunctionPlacement(
            key=key, vpc=props.vpc, subnets=props.subnets, security_group=props.lambda_security_group
        )
        bucket = self.results.bucket
        self.load_test = LoadTestFunction(
            self,
            "Loadtest",
            props=LoadTestFunctionProps(placement=placement, results_bucket=bucket, sizing=sizing, prefix=opts.prefix),
        )
        self.aggregate = AggregateFunction(
            self, "Aggregate", props=ResultsFunctionProps(placement=placement, results_bucket=bucket)
        )
        self.placement = placement

    def _triggers(self, props: BenchmarkStackProps, key: kms.IKey) -> None:
        """What starts the machine and the janitor, and what watches the runs' results."""
        opts = props.options
        machine = self.state_machine.state_machine
        self.janitor = JanitorFunction(
            self,
            "Janitor",
            props=JanitorFunctionProps(
                placement=self.placement, state_machine=machine, ttl_hours=opts.ttl_hours, prefix=opts.prefix
            ),
        )
        self.states_endpoint = StepFunctionsEndpoint(
            self,
            "StatesEndpoint",
            props=StepFunctionsEndpointProps(
                vpc=self.placement.vpc,
                subnets=self.placement.subnets,
                security_group=props.interface_endpoint_security_group,
                state_machine=machine,
            ),
        )
        self.schedule = BenchmarkSchedule(
            self,
            "Schedule",
            props=ScheduleProps(
                state_machine=machine,
                matrix=opts.schedule_matrix,
                expression=opts.schedule,
                enabled=opts.enabled,
                key=key,
            ),
        )
        self.janitor_schedule = JanitorSchedule(
            self,
            "JanitorSchedule",
            props=JanitorScheduleProps(function=self.janitor.function),
        )
        self.regression_alarm = RegressionAlarm(
            self,
            "RegressionAlarm",
            props=RegressionAlarmProps(
                namespace=self.aggregate.namespace, threshold_pct=opts.regression_alarm_pct, topic=self.topic
            ),
        )
        self.teardown = TeardownOnBadEnd(
            self,
            "TeardownOnBadEnd",
            props=TeardownOnBadEndProps(state_machine=machine, function=self.janitor.function),
        )
        self.teardown_rule = self.teardown.rule
