"""The cdk-nag findings that remain in the resources CDK Pipelines generates, acknowledged with their reasons.

CDK Pipelines creates the pipeline's roles, CodeBuild projects, asset-publishing and self-mutation steps and
the cross-region support buckets itself; what it grants is acknowledged here, on the resources it made. (The
support buckets' logging, versioning and upload policy are completed by
``llama_constructs.pipeline.pipeline_artifacts``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from constructs import IConstruct

_ARTIFACT_ACTIONS = (
    "s3:Abort*",
    "s3:DeleteObject*",
    "s3:GetBucket*",
    "s3:GetObject*",
    "s3:List*",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)


def acknowledge_generated_resources(pipelines_pipeline: pipelines.CodePipeline, *, roles: Sequence[iam.IRole]) -> None:
    """Acknowledge what remains in the resources ``pipelines_pipeline`` generated (call after ``build_pipeline``);
    ``roles``: roles of our own that CDK Pipelines grants its CodeBuild and artifact permissions to (smoke runners)."""
    stack = cdk.Stack.of(pipelines_pipeline)
    pipeline = pipelines_pipeline.pipeline
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
    targets: list[IConstruct] = [pipelines_pipeline, *roles]
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
    assets = pipelines_pipeline.node.try_find_child("Assets")  # only when a stage has file assets (Lambda code)
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
    self_mutation = pipelines_pipeline.node.find_child("UpdatePipeline")
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
