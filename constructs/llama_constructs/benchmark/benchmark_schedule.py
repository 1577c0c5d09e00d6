"""The EventBridge Scheduler schedule that starts the benchmark state machine; off by default."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn

from constructs import Construct
from llama_constructs.benchmark.benchmark_findings import acknowledge_own_inline_policy


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
        acknowledge_own_inline_policy(self.role)
