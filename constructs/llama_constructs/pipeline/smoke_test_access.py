"""The cross-account door for the pipeline's post-deploy smoke test, and nothing more.

The smoke test runs in a CodeBuild project of the pipeline account (the *runner* role). In each stage account
this construct makes a role that only that runner may assume (the pipeline account is trusted, narrowed by
``aws:PrincipalArn`` to the runner's ARN, so the trust survives the runner being recreated and grants no one
else in the pipeline account) and that may only call ``sagemaker:InvokeEndpoint`` on the stage's endpoints.
Both role names are derived from the pipeline and stage names (``smoke_role_names``), so neither side needs a
cross-account reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from constructs import Construct

_ROLE_NAME_MAX = 64


@dataclass(frozen=True)
class SmokeRoleNames:
    runner: str  # in the pipeline account: the CodeBuild project's role
    target: str  # in the stage account: what the runner assumes


def smoke_role_names(pipeline_name: str, stage_name: str) -> SmokeRoleNames:
    names = SmokeRoleNames(
        runner=f"{pipeline_name}-{stage_name}-smoke-runner", target=f"{pipeline_name}-{stage_name}-smoke-test"
    )
    for name in (names.runner, names.target):
        if len(name) > _ROLE_NAME_MAX:
            raise ValueError(f"role name {name!r} is longer than IAM's {_ROLE_NAME_MAX} characters")
    return names


def role_arn(account: str, role_name: str) -> str:
    return f"arn:{cdk.Aws.PARTITION}:iam::{account}:role/{role_name}"


@dataclass(frozen=True, kw_only=True)
class SmokeTestRunnerProps:
    stage_name: str
    names: SmokeRoleNames
    stage_account: str  # where the role it may assume lives


class SmokeTestRunner(Construct):
    """Exposes ``.role``: the smoke-test step's role in the pipeline account, which may only assume the stage's
    smoke-test role (the default child, so its logical id is this construct's)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SmokeTestRunnerProps) -> None:
        super().__init__(scope, construct_id)
        target = role_arn(props.stage_account, props.names.target)
        self.role = iam.Role(
            self,
            "Default",
            role_name=props.names.runner,
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"Smoke test of stage {props.stage_name}: may only assume {props.names.target} in "
            f"{props.stage_account}",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(sid="AssumeStageSmokeTestRole", actions=["sts:AssumeRole"], resources=[target])
        )


@dataclass(frozen=True, kw_only=True)
class SmokeTestAccessProps:
    role_name: str
    runner_account: str  # the pipeline account
    runner_role_name: str
    endpoint_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.endpoint_names:
            raise ValueError("SmokeTestAccess needs at least one endpoint name")


class SmokeTestAccess(Construct):
    """Exposes ``.role`` (assumed by the pipeline's smoke-test runner) and its customer-managed ``.policy``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: SmokeTestAccessProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        # SageMaker lower-cases the name in an endpoint's ARN, and IAM compares ARNs case-sensitively.
        endpoints = [
            stack.format_arn(service="sagemaker", resource="endpoint", resource_name=name.lower())
            for name in props.endpoint_names
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"Smoke test: invoke {', '.join(props.endpoint_names)} only",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeStageEndpoints", actions=["sagemaker:InvokeEndpoint"], resources=endpoints
                )
            ],
        )
        runner = role_arn(props.runner_account, props.runner_role_name)
        self.role = iam.Role(
            self,
            "Role",
            role_name=props.role_name,
            assumed_by=iam.AccountPrincipal(props.runner_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": runner}}
            ),
            description="Assumed by the promotion pipeline's smoke test to invoke this stage's endpoints",
            managed_policies=[self.policy],
            max_session_duration=cdk.Duration.hours(1),
        )
