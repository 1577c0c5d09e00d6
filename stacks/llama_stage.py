"""LlamaStage: one promotion stage (dev, staging, prod): the same stacks as the app, in the stage's account.

The stage builds exactly what ``cdk deploy`` builds stand-alone (``add_llama_stacks``), with the stage's own
validated settings and environment, plus a small stack holding the smoke-test role the pipeline assumes after
the deploy. It exposes the CfnOutputs the smoke test reads.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk

from constructs import Construct
from llama_constructs.pipeline.smoke_test_access import SmokeTestAccess, SmokeTestAccessProps, smoke_role_names
from settings.stages import PipelineConfig, StageConfig
from stacks.compliance import apply_compliance
from stacks.composition import LlamaStacks, add_llama_stacks

SMOKE_ACCESS_STACK_NAME = "LlamaSmokeTestAccess"
ENDPOINT_OUTPUT_ID = "EndpointName"  # LlamaEndpointStack's output


@dataclass(frozen=True, kw_only=True)
class LlamaStageProps:
    stage: StageConfig
    pipeline: PipelineConfig


class SmokeTestAccessStack(cdk.Stack):
    """Only the smoke-test role; its own stack so granting the pipeline access never touches an endpoint stack."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: SmokeTestAccessProps, env: cdk.Environment
    ) -> None:
        super().__init__(
            scope, construct_id, env=env, description="Role the promotion pipeline assumes to smoke-test endpoints"
        )
        self.access = SmokeTestAccess(self, "SmokeTest", props=props)
        self.role_arn_output = cdk.CfnOutput(self, "SmokeTestRoleArn", value=self.access.role.role_arn)


class LlamaStage(cdk.Stage):
    """Exposes ``.config``, ``.stacks`` (foundation, endpoints), ``.smoke_access``, ``.endpoint_outputs`` (scenario
    -> the endpoint stack's ``EndpointName`` output) and ``.smoke_role_output``."""

    def __init__(self, scope: Construct, construct_id: str, *, props: LlamaStageProps) -> None:
        stage = props.stage
        env = cdk.Environment(account=stage.account, region=stage.region)
        super().__init__(scope, construct_id, env=env)
        self.config = stage
        # App-level packs already reach stage stacks; this only matters for a stage synthesized on its own.
        apply_compliance(self)
        self.stacks: LlamaStacks = add_llama_stacks(self, stage.settings, env=env)
        names = smoke_role_names(props.pipeline.name, stage.name)
        self.smoke_access = SmokeTestAccessStack(
            self,
            SMOKE_ACCESS_STACK_NAME,
            props=SmokeTestAccessProps(
                role_name=names.target,
                runner_account=props.pipeline.account,
                runner_role_name=names.runner,
                endpoint_names=tuple(str(d.endpoint_name) for d in stage.deployments.values()),
            ),
            env=env,
        )
        self.endpoint_outputs: Mapping[str, cdk.CfnOutput] = types.MappingProxyType(
            {scenario: _endpoint_output(stack) for scenario, stack in self.stacks.endpoints.items()}
        )
        self.smoke_role_output = self.smoke_access.role_arn_output


def _endpoint_output(stack: cdk.Stack) -> cdk.CfnOutput:
    """The endpoint stack's own output, so the smoke test reads the name of what was actually deployed."""
    child = stack.node.try_find_child(ENDPOINT_OUTPUT_ID)
    if not isinstance(child, cdk.CfnOutput):
        raise TypeError(f"{stack.stack_name} has no CfnOutput {ENDPOINT_OUTPUT_ID!r} for the smoke test")
    return child
