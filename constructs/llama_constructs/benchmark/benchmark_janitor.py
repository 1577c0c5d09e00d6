"""The janitor: deletes tagged benchmark endpoints, configs and models that nothing else will delete.

Two triggers (``benchmark/aws/janitor.py`` says why): the status change of an execution that ended without its
own teardown, and a sweep every ``SWEEP_RATE`` that deletes what ended executions left (once SageMaker can
delete it) and what outlived its TTL. Its delete permissions carry the benchmark tag's condition, so a bug in
its code cannot widen what it deletes. The function runs in the isolated VPC: the sweep reaches Step Functions
through an interface endpoint (``StepFunctionsEndpoint``) whose policy admits only the janitor's one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn

from benchmark.aws.contract import (
    BENCHMARK_TAG,
    ENDED_WITHOUT_TEARDOWN,
    NAME_PREFIX,
    STATUS_CHANGE,
    STATUS_CHANGE_SOURCE,
    JanitorEnvironment,
)
from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import sagemaker_arn_prefix
from llama_constructs.benchmark.benchmark_function import FunctionPlacement, benchmark_function
from settings.subnets import selection_kwargs

# How often the sweep runs. An endpoint of an ended execution that becomes deletable is deleted by the next
# sweep: within SWEEP_RATE plus the function's run (at most JANITOR_TIMEOUT), well within the hour asked for.
SWEEP_RATE = cdk.Duration.minutes(15)
JANITOR_TIMEOUT = cdk.Duration.minutes(5)
# The janitor's only Step Functions call (``benchmark.aws.janitor.ended_execution_tags``).
LIST_EXECUTIONS = "states:ListExecutions"
_KINDS = ("endpoint", "endpoint-config", "model")


@dataclass(frozen=True, kw_only=True)
class JanitorFunctionProps:
    placement: FunctionPlacement
    state_machine: sfn.IStateMachine  # whose ended executions the sweep cleans up after
    ttl_hours: int  # for a tagged resource whose TTL tag is missing or unreadable
    prefix: str = NAME_PREFIX


class JanitorFunction(Construct):
    """Exposes ``.function`` and ``.role``: lists SageMaker resources, deletes only those tagged as the benchmark's."""

    def __init__(self, scope: Construct, construct_id: str, *, props: JanitorFunctionProps) -> None:
        super().__init__(scope, construct_id)
        environment = JanitorEnvironment(
            default_ttl_hours=props.ttl_hours,
            name_prefix=f"{props.prefix}-",
            state_machine_arn=props.state_machine.state_machine_arn,
        )
        self.python_function = benchmark_function(
            self,
            name="janitor",
            description="Deletes tagged benchmark endpoints, configs and models of ended runs, or past their TTL",
            placement=props.placement,
            environment=environment.variables(),
            timeout=JANITOR_TIMEOUT,
        )
        self.function, self.role = self.python_function.function, self.python_function.role
        props.placement.key.grant(self.role, "kms:GenerateDataKey", "kms:Decrypt")  # its dead-letter queue
        self._grant(props.state_machine)
        for kind in _KINDS:
            cdk.Validations.of(self.role).acknowledge(
                cdk.Acknowledgment(
                    id=f"AwsSolutions-IAM5[{sagemaker_arn_prefix(self)}:{kind}/*]",
                    reason=f"deletes are conditioned on aws:ResourceTag/{BENCHMARK_TAG}=true, so only "
                    "tagged benchmark resources can be deleted",
                )
            )

    def _grant(self, state_machine: sfn.IStateMachine) -> None:
        stack = cdk.Stack.of(self)
        arns = [stack.format_arn(service="sagemaker", resource=kind, resource_name="*") for kind in _KINDS]
        tagged = {"StringEquals": {f"aws:ResourceTag/{BENCHMARK_TAG}": "true"}}
        self.role.add_to_principal_policy(
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
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
                resources=arns,
                conditions=tagged,
            )
        )
        # The sweep asks which executions of this state machine have ended (no other machine's).
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=[LIST_EXECUTIONS], resources=[state_machine.state_machine_arn])
        )
        # Tearing down an ended execution reads which config and models a still-busy endpoint holds.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
                resources=arns[:2],
                conditions=tagged,
            )
        )


@dataclass(frozen=True, kw_only=True)
class JanitorScheduleProps:
    function: lambda_.IFunction
    rate: cdk.Duration = SWEEP_RATE


class JanitorSchedule(Construct):
    """Runs the janitor's sweep at a fixed rate. Exposes ``.rule``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: JanitorScheduleProps) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self, "Rule", schedule=events.Schedule.rate(props.rate), targets=[targets.LambdaFunction(props.function)]
        )


@dataclass(frozen=True, kw_only=True)
class TeardownOnBadEndProps:
    state_machine: sfn.IStateMachine
    function: lambda_.IFunction  # the janitor


class TeardownOnBadEnd(Construct):
    """An execution that ends ABORTED, TIMED_OUT or FAILED never reaches its own teardown: its status change
    (Standard workflows send it to the default bus) invokes the janitor, which deletes what it created.
    Exposes ``.rule`` (the default child, so its logical id is this construct's)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: TeardownOnBadEndProps) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "Default",
            description="Tear down the endpoints of a benchmark execution that ended without its own teardown",
            event_pattern=events.EventPattern(
                source=[STATUS_CHANGE_SOURCE],
                detail_type=[STATUS_CHANGE],
                detail={
                    "stateMachineArn": [props.state_machine.state_machine_arn],
                    "status": list(ENDED_WITHOUT_TEARDOWN),
                },
            ),
            targets=[targets.LambdaFunction(props.function, retry_attempts=8, max_event_age=cdk.Duration.hours(2))],
        )


@dataclass(frozen=True, kw_only=True)
class StepFunctionsEndpointProps:
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection  # the janitor's: the endpoint takes the first of them (one AZ)
    security_group: ec2.ISecurityGroup  # the foundation's interface-endpoint group: 443 in from the workloads
    state_machine: sfn.IStateMachine


class StepFunctionsEndpoint(Construct):
    """An interface endpoint for Step Functions in the isolated VPC, so the janitor's sweep can list the state
    machine's executions. It shares the foundation's interface-endpoint security group (443 in from the
    workloads, the Lambda functions' group among them; nothing out). One AZ: every subnet of the VPC reaches it,
    and while that AZ is down the sweep falls back to the TTL (``benchmark.aws.janitor.scheduled_sweep``)
    instead of paying for an endpoint in every AZ. Its policy admits only ``states:ListExecutions`` on this
    state machine, by principals of this account. Exposes ``.endpoint``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: StepFunctionsEndpointProps) -> None:
        super().__init__(scope, construct_id)
        (first, *_) = props.vpc.select_subnets(**selection_kwargs(props.subnets)).subnets
        self.endpoint = ec2.InterfaceVpcEndpoint(
            self,
            "Default",
            vpc=props.vpc,
            service=ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
            subnets=ec2.SubnetSelection(subnets=[first]),
            security_groups=[props.security_group],
            private_dns_enabled=True,
            open=False,  # the group's own rules, not the whole VPC
        )
        self.endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=[LIST_EXECUTIONS],
                resources=[props.state_machine.state_machine_arn],
                conditions={"StringEquals": {"aws:PrincipalAccount": cdk.Stack.of(self).account}},
            )
        )
