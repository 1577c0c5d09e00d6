"""LlamaPipelineStack: promote the same stacks from dev to staging to prod with CDK Pipelines.

Source -> Synth (set up, run the test suite and the nag checks, synthesize with the stage file) -> self-mutate
-> one ``LlamaStage`` per stage in the file's order, each followed by a smoke test that invokes every endpoint
of the stage, and preceded by a manual approval when the stage requires one (prod always does).

Cross-account: the pipeline runs in the tooling account; ``cross_account_keys`` gives the artifact bucket a
customer-managed key (rotated) whose policy lets each stage account's bootstrap roles read the artifacts, and
CloudFormation in the stage account deploys through those roles (``cdk bootstrap --trust <pipeline account>``).
The smoke test runs in the pipeline account as a per-stage runner role that may only assume that stage's
smoke-test role (``constructs/llama_constructs/pipeline/smoke_test_access.py``), which may only invoke that stage's
endpoints.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from constructs import Construct
from llama_constructs.pipeline.pipeline_artifacts import ArtifactBucketHardening, ArtifactBucketHardeningProps
from llama_constructs.pipeline.pipeline_findings import acknowledge_generated_resources
from llama_constructs.pipeline.pipeline_source import grant_use_connection, pipeline_source
from llama_constructs.pipeline.smoke_test_access import SmokeTestRunner, SmokeTestRunnerProps, smoke_role_names
from settings.stages import StageConfig, StagesConfig
from stacks.llama_stage import LlamaStage, LlamaStageProps

PIPELINE_STACK_NAME = "LlamaPipelineStack"
PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
PYTHON_RUNTIME = "3.11"


def pinned_node_tool(name: str, *, package_json: Path = PACKAGE_JSON) -> str:
    """The exact version package.json pins for a Node tool, so the pipeline installs what developers run.

    CDK Pipelines otherwise installs ``aws-cdk@2`` for self-mutation and ``cdk-assets@latest`` for asset
    publishing: whatever npm serves that day.
    """
    pins: dict[str, str] = json.loads(package_json.read_text()).get("devDependencies", {})
    version = pins.get(name)
    if version is None or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ValueError(f"{package_json.name} must pin {name} to an exact version (x.y.z), found {version!r}")
    return version


def synth_commands(stage_file: str) -> list[str]:
    """The README's test command (ruff, mypy, pytest with the nag checks), then the same synth a developer runs."""
    return [
        "scripts/test",
        f". scripts/env.sh && npx --no-install cdk synth --quiet -c stages={stage_file}",
    ]


def smoke_commands(stage: StageConfig) -> list[str]:
    endpoints = " ".join(f'--endpoint-name "${_endpoint_env(s)}"' for s in stage.deployments)
    return [
        # boto3 at the version the project pins, and nothing else: the smoke test imports only boto3.
        "grep -E '^boto3==' requirements.txt | xargs python3 -m pip install --quiet --disable-pip-version-check",
        f'python3 -m benchmark.aws.smoke --region {stage.region} --role-arn "$SMOKE_ROLE_ARN" {endpoints}',
    ]


def _endpoint_env(scenario: str) -> str:
    return f"ENDPOINT_{scenario.upper()}"


class LlamaPipelineStack(cdk.Stack):
    """Exposes ``.pipeline`` (built), ``.source``, ``.synth``, ``.stages`` (name -> LlamaStage),
    ``.smoke_runners`` (name -> runner role), ``.smoke_steps`` (name -> CodeBuildStep), ``.artifacts`` and
    ``.replication_buckets`` (region -> the hardening of that region's support bucket)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StagesConfig) -> None:
        p = config.pipeline
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=p.account, region=p.region),
            description=f"CDK Pipeline {p.name}: promotes the Llama 2 stacks through "
            f"{', '.join(s.name for s in config.stages)}",
        )
        self.source = pipeline_source(self, p.source)
        self.synth = pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            commands=synth_commands(config.file),
            primary_output_directory="cdk.out",
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
            ),
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": {"python": PYTHON_RUNTIME}}}}
            ),
            timeout=cdk.Duration.minutes(60),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=p.name,
            synth=self.synth,
            self_mutation=True,
            cli_version=pinned_node_tool("aws-cdk"),
            cdk_assets_cli_version=pinned_node_tool("cdk-assets"),
            cross_account_keys=True,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE)
            ),
        )
        stages: dict[str, LlamaStage] = {}
        runners: dict[str, iam.Role] = {}
        steps: dict[str, pipelines.CodeBuildStep] = {}
        for stage_config in config.stages:
            stage = LlamaStage(self, stage_config.name, props=LlamaStageProps(stage=stage_config, pipeline=p))
            runner, step = self._smoke_test(stage, config)
            pre: list[pipelines.Step] = []
            if stage_config.requires_approval:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"Approve-{stage_config.name}",
                        comment=f"Promote to {stage_config.name} ({stage_config.account}/{stage_config.region}): "
                        f"{', '.join(stage_config.scenarios)}",
                    )
                )
            self.pipeline.add_stage(stage, pre=pre, post=[step])
            stages[stage_config.name], runners[stage_config.name], steps[stage_config.name] = stage, runner, step
        self.stages: Mapping[str, LlamaStage] = types.MappingProxyType(stages)
        self.smoke_runners: Mapping[str, iam.Role] = types.MappingProxyType(runners)
        self.smoke_steps: Mapping[str, pipelines.CodeBuildStep] = types.MappingProxyType(steps)
        self.pipeline.build_pipeline()  # now, so the generated resources exist for the acknowledgments below
        grant_use_connection(self.pipeline, p.source)
        self.artifacts = ArtifactBucketHardening(
            self, "Artifacts", props=ArtifactBucketHardeningProps(bucket=self.pipeline.pipeline.artifact_bucket)
        )
        # The support stack CDK makes for each other region holds that region's replication bucket.
        self.replication_buckets: Mapping[str, ArtifactBucketHardening] = types.MappingProxyType(
            {
                region: ArtifactBucketHardening(
                    support.stack, "Replication", props=ArtifactBucketHardeningProps(bucket=support.replication_bucket)
                )
                for region, support in self.pipeline.pipeline.cross_region_support.items()
            }
        )
        acknowledge_generated_resources(self.pipeline, roles=list(self.smoke_runners.values()))

    def _smoke_test(self, stage: LlamaStage, config: StagesConfig) -> tuple[iam.Role, pipelines.CodeBuildStep]:
        """A runner role in this account that may assume the stage's smoke-test role, and the step that uses it."""
        cfg = stage.config
        names = smoke_role_names(config.pipeline.name, cfg.name)
        runner = SmokeTestRunner(
            self,
            f"SmokeRunner-{cfg.name}",
            props=SmokeTestRunnerProps(stage_name=cfg.name, names=names, stage_account=cfg.account),
        ).role
        step = pipelines.CodeBuildStep(
            f"SmokeTest-{cfg.name}",
            input=self.source,
            role=runner,
            commands=smoke_commands(cfg),
            env_from_cfn_outputs={
                "SMOKE_ROLE_ARN": stage.smoke_role_output,
                **{_endpoint_env(s): output for s, output in stage.endpoint_outputs.items()},
            },
            timeout=cdk.Duration.minutes(15),
        )
        return runner, step
