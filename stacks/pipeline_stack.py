"""LlamaPipelineStack: promote the same stacks from dev to staging to prod with CDK Pipelines.

Source -> Synth (set up, run the test suite and the nag checks, synthesize with the stage file) -> self-mutate
-> one ``LlamaStage`` per stage in the file's order, each followed by a smoke test that invokes every endpoint
of the stage, and preceded by a manual approval when the stage requires one (prod always does).

Cross-account: the pipeline runs in the tooling account; ``cross_account_keys`` gives the artifact bucket a
customer-managed key (rotated) whose policy lets each stage account's bootstrap roles read the artifacts, and
CloudFormation in the stage account deploys through those roles (``cdk bootstrap --trust <pipeline account>``).
The smoke test runs in the pipeline account as a per-stage runner role that may only assume that stage's
smoke-test role (``constructs/smoke_test_access.py``), which may only invoke that stage's endpoints.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import pipelines

from constructs import Construct
from constructs.pipeline_artifacts import ArtifactBucketHardening, ArtifactBucketHardeningProps
from constructs.smoke_test_access import role_arn, smoke_role_names
from settings.stages import SourceConfig, StageConfig, StagesConfig
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
        f'python3 -m benchmark.smoke --region {stage.region} --role-arn "$SMOKE_ROLE_ARN" {endpoints}',
    ]


def _endpoint_env(scenario: str) -> str:
    return f"ENDPOINT_{scenario.upper()}"


class LlamaPipelineStack(cdk.Stack):
    """Exposes ``.pipeline`` (built), ``.source``, ``.synth``, ``.stages`` (name -> LlamaStage),
    ``.smoke_runners`` (name -> runner role) and ``.smoke_steps`` (name -> CodeBuildStep)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StagesConfig) -> None:
        p = config.pipeline
        super().__init__(
            scope,
            construct_id,
            env=cdk.Environment(account=p.account, region=p.region),
            description=f"CDK Pipeline {p.name}: promotes the Llama 2 stacks through "
            f"{', '.join(s.name for s in config.stages)}",
        )
        self.source = _source(self, p.source)
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
        _use_connection(self, p.source)
        self.artifacts = ArtifactBucketHardening(
            self, "Artifacts", props=ArtifactBucketHardeningProps(bucket=self.pipeline.pipeline.artifact_bucket)
        )
        _acknowledge(self)

    def _smoke_test(self, stage: LlamaStage, config: StagesConfig) -> tuple[iam.Role, pipelines.CodeBuildStep]:
        """A runner role in this account that may assume the stage's smoke-test role, and the step that uses it."""
        cfg = stage.config
        names = smoke_role_names(config.pipeline.name, cfg.name)
        target = role_arn(cfg.account, names.target)
        runner = iam.Role(
            self,
            f"SmokeRunner-{cfg.name}",
            role_name=names.runner,
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"Smoke test of stage {cfg.name}: may only assume {names.target} in {cfg.account}",
        )
        runner.add_to_principal_policy(
            iam.PolicyStatement(sid="AssumeStageSmokeTestRole", actions=["sts:AssumeRole"], resources=[target])
        )
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


def _source(scope: Construct, source: SourceConfig) -> pipelines.CodePipelineSource:
    if source.provider == "codecommit":
        repository = codecommit.Repository.from_repository_name(scope, "Repository", source.repository)
        return pipelines.CodePipelineSource.code_commit(repository, source.branch)
    return pipelines.CodePipelineSource.connection(
        source.repository, source.branch, connection_arn=str(source.connection_arn)
    )


def _use_connection(stack: LlamaPipelineStack, source: SourceConfig) -> None:
    """CDK Pipelines grants ``codestar-connections:UseConnection``; IAM matches an action's service prefix with the
    connection ARN's, so a ``codeconnections`` connection (the prefix since the rename) needs its own action."""
    if source.provider != "connection":
        return
    service = str(source.connection_arn).split(":")[2]
    (role,) = [
        r for r in stack.pipeline.pipeline.node.find_all() if isinstance(r, iam.Role) and "/Source/" in r.node.path
    ]
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=[f"{service}:UseConnection"], resources=[str(source.connection_arn)])
    )


# --- cdk-nag: what remains in the resources CDK Pipelines generates, with the reason ------------------------

_ARTIFACT_ACTIONS = (
    "s3:Abort*",
    "s3:DeleteObject*",
    "s3:GetBucket*",
    "s3:GetObject*",
    "s3:List*",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)


def _acknowledge(stack: LlamaPipelineStack) -> None:
    pipeline = stack.pipeline.pipeline
    bucket = f"<{stack.get_logical_id(pipeline.artifact_bucket.node.default_child)}.Arn>/*"  # type: ignore[arg-type]
    acks = [
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Action::{action}]",
            reason="CDK Pipelines grants its roles the artifact bucket and key with the read/write action groups; "
            "the statements name only this pipeline's bucket, its objects and its key",
        )
        for action in _ARTIFACT_ACTIONS
    ]
    acks.append(
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::{bucket}]",
            reason="artifact object names are made per pipeline execution, inside this pipeline's own bucket",
        )
    )
    acks += _codebuild_acknowledgments(stack)
    acks.append(
        cdk.Acknowledgment(
            id="NIST.800.53.R5-IAMNoInlinePolicy",
            reason="CDK Pipelines writes each generated role's grants as that role's inline default policy, "
            "scoped to this pipeline's bucket, key, projects and the stage accounts' bootstrap roles",
        )
    )
    targets: list[Construct] = [stack.pipeline, *stack.smoke_runners.values()]
    for target in targets:
        cdk.Validations.of(target).acknowledge(*acks)
    cdk.Validations.of(pipeline.role).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="the key of each cross-region support bucket lives in another region's support stack and "
            "cannot be referenced here, so CDK grants kms:Decrypt/Encrypt on *; that key's own policy admits "
            "only this account",
        )
    )
    for region, support in pipeline.cross_region_support.items():
        replica = support.replication_bucket
        cdk.Validations.of(pipeline.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{stack.resolve(replica.bucket_name)}/*]",
                reason=f"artifact copies for the deploy actions in {region}, in the support bucket CDK made for them",
            )
        )
        _acknowledge_replication_bucket(replica, region)
    assets = stack.pipeline.node.try_find_child("Assets")  # only when a stage has file assets (Lambda code)
    if assets is not None:
        where = f"{stack.region}:{stack.account}"
        cdk.Validations.of(assets).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:aws:logs:{where}:log-group:/aws/codebuild/*]",
                reason="CDK Pipelines shares one asset-publishing role across its per-asset CodeBuild projects, "
                "whose names it generates; limited to CodeBuild log groups of this account and region",
            ),
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:aws:codebuild:{where}:report-group/*]",
                reason="report groups of the generated asset-publishing projects, this account and region only",
            ),
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="the asset-publishing role starts and watches its generated CodeBuild builds "
                "(codebuild:StartBuild/BatchGetBuilds/StopBuild), named only at run time",
            ),
        )
    self_mutation = stack.node.find_child("Pipeline").node.find_child("UpdatePipeline")
    cdk.Validations.of(self_mutation).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="self-mutation reads stack status (cloudformation:DescribeStacks) and lists the bootstrap "
            "asset bucket, whose name it learns at run time",
        ),
        cdk.Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:*:iam::{stack.account}:role/*]",
            reason="self-mutation may assume only roles tagged aws-cdk:bootstrap-role (deploy, file and image "
            "publishing) of this account; the tag condition, not the name, selects them",
        ),
    )


def _codebuild_acknowledgments(stack: cdk.Stack) -> list[cdk.Acknowledgment]:
    """Each CodeBuild project may write its own log group and test reports, named after the project."""
    acks: list[cdk.Acknowledgment] = []
    for project in stack.node.find_all():
        if not isinstance(project, codebuild.CfnProject):
            continue
        name = f"<{stack.get_logical_id(project)}>"
        where = f"{stack.region}:{stack.account}"
        acks += [
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:aws:logs:{where}:log-group:/aws/codebuild/{name}:*]",
                reason="a CodeBuild project writes log streams it names per build, in its own log group",
            ),
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:aws:codebuild:{where}:report-group/{name}-*]",
                reason="a CodeBuild project creates its report groups per build, under its own name",
            ),
        ]
    return acks


def _acknowledge_replication_bucket(bucket: s3.IBucket, region: str) -> None:
    reason = (
        f"the cross-region support bucket CDK makes in {region} for this pipeline's deploy actions: transient "
        "copies of artifacts rebuilt on every execution, KMS-encrypted with a rotated key, TLS-only, no public access"
    )
    cdk.Validations.of(bucket).acknowledge(
        *(
            cdk.Acknowledgment(id=rule, reason=reason)
            for rule in (
                "AwsSolutions-S1",
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "NIST.800.53.R5-S3BucketVersioningEnabled",
            )
        )
    )
